"""Shared helpers of the benchmarks: timing, medians, fitted exponents, machine, data, encoder.

Absolute times on shared machines drift with the load of other jobs; every benchmark therefore
measures the variants it compares alternately in one process, on the same data, and reports
medians and their ratios.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.openmp import wait_policy

# Nothing is ever downloaded: set before transformers is imported anywhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def process_tree_cpu() -> float:
    """CPU seconds of this process and of its live children: extraction's decode processes are
    kept alive between runs, so the resource module's RUSAGE_CHILDREN (reaped children only)
    would miss them."""
    import psutil

    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system
    for child in me.children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def rnd(value: float | None, digits: int = 3) -> float | None:
    """Round for the JSON (None and non-finite values pass through)."""
    if value is None or not math.isfinite(value):
        return value
    return round(float(value), digits)


def loglog_slope(sizes: Sequence[float], seconds: Sequence[float]) -> float:
    """Least-squares slope of log(seconds) over log(size): 1 = linear growth."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(max(t, 1e-9)) for t in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def machine() -> dict[str, Any]:
    """What the numbers were measured on (load average included: the machine is shared)."""
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "openmp_wait_policy": wait_policy() or "default (spin, then sleep)",
        "cuda": cuda,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def save_random_videomae(directory: Path, **overrides: Any) -> Path:
    """A random-initialised transformers VideoMAE saved like a real checkpoint.

    Defaults: the tiny default encoder's architecture (pipeline.encoders.tiny), so speed
    matches the real default encoder without its minutes-long training.
    """
    import torch
    from transformers import VideoMAEConfig, VideoMAEModel

    from pipeline.encoders.tiny import videomae_architecture

    arch: dict[str, Any] = {**videomae_architecture(), **overrides}
    torch.manual_seed(0)
    VideoMAEModel(VideoMAEConfig(**arch)).save_pretrained(directory)
    return directory


def encoder_source(name: str, work: Path) -> tuple[str, str]:
    """(directory, description): a path as given; "tiny" = the cached tiny encoder when it is
    already built, else a random VideoMAE of the same architecture (never trained or fetched)."""
    if name != "tiny":
        return name, name
    try:
        from pipeline.encoders.tiny import tiny_encoder_path

        return str(tiny_encoder_path(build_if_missing=False)), "cached tiny encoder"
    except Exception:
        path = save_random_videomae(work / "videomae-random")
        return str(path), "random VideoMAE of the tiny encoder's architecture"


def replicate_manifest(manifest_path: Path, copies: int, out: Path) -> Path:
    """A manifest listing every video of `manifest_path` `copies` times (distinct video ids,
    same files): the same data at `copies` x the number of videos, for growth measurements."""
    import pyarrow as pa

    from pipeline.data.manifest import read_manifest, write_manifest

    manifest = read_manifest(manifest_path)
    tables = []
    for copy in range(copies):
        ids = [f"{v}~{copy}" for v in manifest.table.column("video_id").to_pylist()]
        index = manifest.table.column_names.index("video_id")
        tables.append(manifest.table.set_column(index, "video_id", pa.array(ids, pa.string())))
    # `out` must sit beside `manifest_path`: the paths stay relative to that directory.
    return write_manifest(out, pa.concat_tables(tables), manifest.info)
