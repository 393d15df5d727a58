"""Sanitize throughput vs a plain copy of the same store, side by side in one run; prints JSON.

Every measurement runs in its own child process (so each has its own peak RSS) on the same raw
store, alternating, best of `--repeats`:
- copy: every array copied with dask (``da.from_zarr(src).store(dst)``, same chunks and codecs,
  same scheduler and workers) - what a user would do to duplicate a store;
- pipeline_identity: sanitize's own machinery (tasks, markers, tables, finalise) with the adapter
  replaced by the identity: the cost of everything but the adapter;
- sanitize_<precision>: the real thing.
MB/s counts the uncompressed bytes of every array (features and tables) read and written once.
Target: sanitize >= 80% of copy.

    .venv/bin/python benchmarks/sanitize_vs_copy.py --videos 20000 --dim 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _status_mb(key: str) -> float:
    """VmRSS / VmHWM of this process (not ru_maxrss: a child's starts at its parent's RSS)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(key))
    return int(line.split()[1]) / 1024


def _peak_rss_mb() -> float:
    return _status_mb("VmHWM:")


def _current_rss_mb() -> float:
    return _status_mb("VmRSS:")


def build_store(path: Path, videos: int, dim: int, clips: int, static: int, seed: int) -> None:
    """A raw store of random features through the store writer (a quarter of the videos have
    windows), streamed shard by shard."""
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
    windows = np.where(np.arange(videos) % 4 == 0, 40, 0)
    layout = plan_layout(windows, clips_per_video=clips, static_clips=static, feature_dim=dim)
    window_video = np.full(layout.num_windows, -1, dtype=np.int32)
    for v in np.flatnonzero(windows):
        offset = int(layout.window_offset[v])
        window_video[offset : offset + int(windows[v])] = v
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


def child(mode: str, raw: Path, adapter: Path, out: Path, workers: int) -> dict:
    """One measurement, in this (child) process."""
    import dask.array  # noqa: F401 - imported before the baseline, like torch and zarr
    import torch  # noqa: F401
    import zarr  # noqa: F401

    import pipeline.sanitize.run as run_module
    from pipeline.sanitize import SanitizeConfig, sanitize

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # peak RSS := current RSS (drops the import-time peak)
    baseline = _current_rss_mb()
    started = time.perf_counter()
    if mode == "copy":
        _copy(raw, out, workers)
    else:
        if mode == "pipeline_identity":
            run_module.kernel_for = lambda *a, **k: _Identity()
            precision = "float32"
        else:
            precision = mode.removeprefix("sanitize_")
        sanitize(raw, adapter, out, SanitizeConfig(workers=workers, precision=precision))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_before_mb": baseline, "peak_rss_mb": _peak_rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--clips", type=int, default=5)
    parser.add_argument("--static", type=int, default=10)
    parser.add_argument("--arch", default="mlp", choices=["mlp", "attention"])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--modes", default="copy,pipeline_identity,sanitize_float64,sanitize_float32"
    )
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
        raw, adapter = work / "raw.zarr", work / "adapter"
        started = time.perf_counter()
        build_store(raw, args.videos, args.dim, args.clips, args.static, seed=0)
        build_adapter(adapter, args.dim, args.arch)
        build_seconds = time.perf_counter() - started
        nbytes = store_bytes(raw)
        modes = args.modes.split(",")
        runs: dict[str, list[dict]] = {m: [] for m in modes}
        for _ in range(args.repeats):
            for mode in modes:  # alternating, so drifting machine load hits every mode alike
                out = work / f"{mode}.zarr"
                shutil.rmtree(out, ignore_errors=True)
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    str(raw),
                    str(adapter),
                    str(out),
                    str(args.workers),
                ]
                done = subprocess.run(cmd, capture_output=True, text=True, check=True)
                runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
                shutil.rmtree(out, ignore_errors=True)
        results = {}
        for mode, measured in runs.items():
            best = min(measured, key=lambda r: r["seconds"])
            results[mode] = {
                "seconds": round(best["seconds"], 3),
                "mb_per_s": round(nbytes / 1e6 / best["seconds"], 1),
                "peak_rss_mb": round(max(r["peak_rss_mb"] for r in measured), 1),
                "rss_before_mb": round(best["rss_before_mb"], 1),
                "all_seconds": [round(r["seconds"], 3) for r in measured],
            }
        copy_rate = results.get("copy", {}).get("mb_per_s")
        ratios = {
            f"{mode}_vs_copy": round(r["mb_per_s"] / copy_rate, 3)
            for mode, r in results.items()
            if copy_rate and mode != "copy"
        }
        print(
            json.dumps(
                {
                    "store": {
                        "videos": args.videos,
                        "dim": args.dim,
                        "clips": args.clips,
                        "static": args.static,
                        "uncompressed_mb": round(nbytes / 1e6, 1),
                        "build_seconds": round(build_seconds, 1),
                    },
                    "adapter": {"arch": args.arch, "dim": args.dim, "depth": 2},
                    "workers": args.workers,
                    "cpus": os.cpu_count(),
                    "machine": platform.machine(),
                    "load_average": os.getloadavg(),
                    "results": results,
                    "ratios": ratios,
                    "target": "sanitize >= 0.8 x copy",
                },
                indent=2,
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
