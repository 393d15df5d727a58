"""Sanitize throughput vs a plain copy of the same store, and sanitize's memory as stores grow.

Speed: the variants run in this process on the same raw stores, alternating, `repetitions` times;
medians are reported:
- copy: every array copied with dask (``da.from_zarr(src).store(dst)``, same chunks and codecs,
  same scheduler and workers) - what a user would do to duplicate a store;
- pipeline_identity: sanitize's own machinery (tasks, markers, tables, finalise) with the adapter
  replaced by the identity: the cost of everything but the adapter;
- sanitize_<precision>: the real thing, float64 (the default) and float32.
Stores of 1x, 2x and 4x `videos` (random features through the store writer; a quarter of the
videos have 40 windows): the comparison runs on the 4x store; the default precision also runs on
1x and 2x for the growth exponent. Memory: the default precision once more on 1x and 4x, each in
its own child process; the ratio is peak RSS above the child's post-import baseline, 4x / 1x
(~1 is flat). MB/s counts the uncompressed bytes of every array (features and
tables) read and written once. Target: sanitize >= 0.8 x copy. CPU seconds of each variant are
reported too (`cpu_seconds`): sanitize minus pipeline_identity is the adapter's arithmetic, what
limits sanitize where the adapter runs on the CPU.

    .venv/bin/python benchmarks/sanitize_vs_copy.py --videos 5000 --dim 128
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `pipeline` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _status_mb(key: str) -> float:
    """VmRSS / VmHWM of this process (not ru_maxrss: a child's starts at its parent's RSS)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(key))
    return int(line.split()[1]) / 1024


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM:")


def _current_rss_mb() -> float:
    return _status_mb("VmRSS:")


def build_store(
    path: Path, videos: int, dim: int, clips: int, static: int, seed: int, windows: bool = True
) -> None:
    """A raw store of random features through the store writer (with `windows`, a quarter of the
    videos have 40 windows), streamed shard by shard."""
    from pipeline.store.layout import plan_layout
    from pipeline.store.location import StoreLocation
    from pipeline.store.writer import (
        ShardResult,
        StoreCodecs,
        base_attrs,
        commit_shard,
        create_store,
        finalize_store,
    )

    rng = np.random.default_rng(seed)
    windows = np.where((np.arange(videos) % 4 == 0) & windows, 40, 0)
    layout = plan_layout(windows, clips_per_video=clips, static_clips=static, feature_dim=dim)
    window_video = layout.window_video()
    tables = {
        "video_id": np.array([f"v{v:07d}" for v in range(videos)], dtype=object),
        "split": np.array(["train", "test"] * (videos // 2) + ["train"] * (videos % 2), object),
        "kind": np.where(windows > 0, "untrimmed", "trimmed").astype(object),
        "action": (np.arange(videos) % 10).astype(np.int16),
        "anomalous": np.full(videos, -1, dtype=np.int8),
        "fps": np.full(videos, 25, dtype=np.float32),
        "num_frames": np.full(videos, 400, dtype=np.int32),
        "window_offset": layout.window_offset,
        "window_count": layout.window_count,
        "window_video": window_video,
        "window_start": np.where(window_video >= 0, 8, -1).astype(np.int32),
        "segment_video": np.zeros(0, np.int32),
        "segment_start": np.zeros(0, np.int32),
        "segment_end": np.zeros(0, np.int32),
        "segment_label": np.zeros(0, np.int32),
        "attr_skin": (np.arange(videos) % 4).astype(np.int16),
    }
    meta = base_attrs("raw", f"bench-{seed}", provenance="extracted")
    meta.update(
        encoder={"name": "bench", "hidden_size": dim, "weights_sha256": "b" * 64},
        sampling={"clips_per_video": clips, "static_clips": static},
        dataset={
            "name": "bench",
            "attributes": {"skin": {"values": list("abcd"), "role": "person"}},
        },
    )
    location = StoreLocation.parse(path)
    group = create_store(location, meta, layout, tables, StoreCodecs())
    for shard in range(layout.num_shards):
        vids, rows = layout.shard_videos(shard), layout.shard_windows(shard)
        n = len(vids)
        commit_shard(
            group,
            layout,
            ShardResult(
                shard=shard,
                clip_features=rng.standard_normal((n, clips, dim), dtype=np.float32),
                clip_start=np.zeros((n, clips), np.int32),
                static_features=rng.standard_normal((n, static, dim), dtype=np.float32),
                static_frame=np.zeros((n, static), np.int32),
                window_features=rng.standard_normal((len(rows), dim), dtype=np.float32),
                status=np.ones(n, np.int8),
                failure_reason=np.array([""] * n, dtype=object),
            ),
        )
    finalize_store(location, group)


def build_adapter(path: Path, dim: int, arch: str) -> None:
    import torch

    from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter
    from pipeline.aam.checkpoint import save_adapter
    from pipeline.aam.trainer import TrainConfig

    config = AdapterConfig(arch=arch, dim=dim)
    adapter = AnonymizingAdapter(config)
    with torch.no_grad():
        for p in adapter.parameters():
            p.copy_(0.05 * torch.randn_like(p))
    identity = {"store_id": "bench", "encoder": {"weights_sha256": "b" * 64, "hidden_size": dim}}
    save_adapter(path, adapter, [], config, TrainConfig(), identity, [])


def store_bytes(path: Path) -> int:
    import zarr

    group = zarr.open_group(str(path), mode="r")
    total = 0
    for name in group.array_keys():
        array = group[name]
        total += int(np.prod(array.shape)) * (
            array.dtype.itemsize if array.dtype.kind != "T" else 8
        )
    return total


class _Identity:
    """Stands in for the adapter kernel: the pipeline's cost without the adapter's."""

    def __call__(self, block: np.ndarray, row_start: int) -> np.ndarray:
        return np.array(block, dtype=np.float32)

    def without_weights(self) -> _Identity:
        return self


def _copy(src_path: Path, dst_path: Path, workers: int) -> None:
    import dask
    import dask.array as da
    import zarr

    src = zarr.open_group(str(src_path), mode="r")
    dst = zarr.open_group(str(dst_path), mode="w")
    dst.attrs.update(dict(src.attrs))
    sources, targets = [], []
    for name in src.array_keys():
        a = src[name]
        b = dst.create_array(
            name,
            shape=a.shape,
            chunks=a.chunks,
            dtype=a.dtype,
            fill_value=a.fill_value,
            compressors=a.compressors,
            dimension_names=a.metadata.dimension_names,
        )
        if a.size:
            sources.append(da.from_zarr(a, chunks=a.chunks))
            targets.append(b)
    with dask.config.set(scheduler="threads", num_workers=workers):
        da.store(sources, targets, lock=False)
    zarr.consolidate_metadata(str(dst_path))


def run_mode(mode: str, raw: Path, adapter: Path, out: Path, workers: int) -> float:
    """Seconds of one copy / sanitize run in this process (`out` is replaced)."""
    import pipeline.sanitize.run as run_module
    from pipeline.sanitize import SanitizeConfig, sanitize

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    if mode == "copy":
        _copy(raw, out, workers)
        return time.perf_counter() - started
    kernel_for = run_module.kernel_for
    if mode == "pipeline_identity":
        run_module.kernel_for = lambda *a, **k: _Identity()
        precision = "float32"
    else:
        precision = mode.removeprefix("sanitize_")
    try:
        sanitize(raw, adapter, out, SanitizeConfig(workers=workers, precision=precision))
    finally:
        run_module.kernel_for = kernel_for
    return time.perf_counter() - started


def child(mode: str, raw: Path, adapter: Path, out: Path, workers: int) -> dict:
    """One measurement, in this (child) process."""
    import dask.array  # noqa: F401 - imported before the baseline, like torch and zarr
    import torch  # noqa: F401
    import zarr  # noqa: F401

    import pipeline.sanitize.run  # noqa: F401

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS (drops the import-time peak)
    baseline = _current_rss_mb()
    seconds = run_mode(mode, raw, adapter, out, workers)
    return {"seconds": seconds, "rss_before_mb": baseline, "peak_rss_mb": _peak_rss_mb()}


def measure(mode: str, raw: Path, adapter: Path, out: Path, workers: int) -> dict:
    """One measurement in a fresh child process (its own peak RSS); the output is removed."""
    shutil.rmtree(out, ignore_errors=True)
    args = [mode, str(raw), str(adapter), str(out), str(workers)]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode:
        raise RuntimeError(f"sanitize benchmark child {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def suite(
    work: Path,
    videos: int,
    dim: int = 128,
    repetitions: int = 2,
    workers: int | None = None,
    arch: str = "mlp",
    clips: int = 5,
    static: int = 10,
) -> dict[str, Any]:
    """Copy vs sanitize on the 4x store, the default precision at 1x, 2x, 4x (in this process,
    alternating), and peak memory at 1x and 4x (one child process each)."""
    from benchmarks.common import loglog_slope
    from pipeline.sanitize import SanitizeConfig

    workers = workers or os.cpu_count() or 1
    default = f"sanitize_{SanitizeConfig().precision}"
    sizes = {1: videos, 2: 2 * videos, 4: 4 * videos}
    started = time.perf_counter()
    raws = {}
    for factor, n in sizes.items():
        raws[factor] = work / f"raw-{factor}x.zarr"
        build_store(raws[factor], n, dim, clips, static, seed=factor)
    adapter = work / "adapter"
    build_adapter(adapter, dim, arch)
    build_seconds = time.perf_counter() - started
    nbytes = {factor: store_bytes(path) for factor, path in raws.items()}
    out = work / "out.zarr"
    run_mode(default, raws[1], adapter, out, workers)  # warm-up: imports, kernel cache
    runs = [(m, 4) for m in ("copy", "pipeline_identity", "sanitize_float64", "sanitize_float32")]
    runs += [(default, 1), (default, 2)]
    seconds: dict[tuple[str, int], list[float]] = {run: [] for run in runs}
    cpu: dict[tuple[str, int], list[float]] = {run: [] for run in runs}
    for _ in range(repetitions):
        for mode, factor in runs:  # alternating, so drifting load hits every mode alike
            started = time.process_time()
            seconds[(mode, factor)].append(run_mode(mode, raws[factor], adapter, out, workers))
            cpu[(mode, factor)].append(time.process_time() - started)
    shutil.rmtree(out, ignore_errors=True)
    memory = {f: measure(default, raws[f], adapter, work / "child.zarr", workers) for f in (1, 4)}
    results: dict[str, Any] = {}
    for (mode, factor), values in seconds.items():
        med = statistics.median(values)
        results[f"{mode}@{factor}x"] = {
            "seconds": round(med, 3),
            "cpu_seconds": round(statistics.median(cpu[(mode, factor)]), 3),
            "mb_per_s": round(nbytes[factor] / 1e6 / med, 1),
            "all_seconds": [round(v, 3) for v in values],
        }
    copy_rate = results["copy@4x"]["mb_per_s"]
    growth = {factor: results[f"{default}@{factor}x"]["seconds"] for factor in sizes}
    mem = {f: round(r["peak_rss_mb"] - r["rss_before_mb"], 1) for f, r in memory.items()}
    return {
        "store": {
            "videos_1x": videos,
            "dim": dim,
            "clips": clips,
            "static": static,
            "uncompressed_mb": {f"{f}x": round(b / 1e6, 1) for f, b in nbytes.items()},
            "build_seconds": round(build_seconds, 1),
        },
        "adapter": {"arch": arch, "dim": dim, "depth": 2},
        "workers": workers,
        "default_precision": SanitizeConfig().precision,
        "results": results,
        "vs_copy": {
            mode: round(results[f"{mode}@4x"]["mb_per_s"] / copy_rate, 3)
            for mode in ("pipeline_identity", "sanitize_float64", "sanitize_float32")
        },
        "sanitize_vs_copy": results[f"{default}@4x"]["mb_per_s"] / copy_rate,
        "cpu_seconds": {
            mode: results[f"{mode}@4x"]["cpu_seconds"]
            for mode in ("copy", "pipeline_identity", "sanitize_float64", "sanitize_float32")
        },
        "memory": {f"{f}x": r for f, r in memory.items()},
        "memory_growth_mb": {f"{f}x": m for f, m in mem.items()},
        "sanitize_memory_growth": max(mem[4], 1.0) / max(mem[1], 1.0),
        "growth_seconds": {f"{f}x": s for f, s in growth.items()},
        "growth_exponent": loglog_slope(list(sizes.values()), list(growth.values())),
        "target": "sanitize >= 0.8 x copy; memory flat (ratio ~1)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=5000, help="videos of the 1x store")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--static", type=int, default=10)
    parser.add_argument("--arch", default="mlp", choices=["mlp", "attention"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--child",
        nargs=5,
        metavar=("MODE", "RAW", "ADAPTER", "OUT", "WORKERS"),
        help=argparse.SUPPRESS,
    )
    args = parser.parse_args()
    if args.child:
        mode, raw, adapter, out, workers = args.child
        print(json.dumps(child(mode, Path(raw), Path(adapter), Path(out), int(workers))))
        return
    work = Path(tempfile.mkdtemp(prefix="anon-store-bench-", dir=args.workdir))
    try:
        result = suite(
            work, args.videos, args.dim, args.repeats, args.workers, args.arch, args.clips,
            args.static,
        )  # fmt: skip
        result["machine"] = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
