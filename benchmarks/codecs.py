"""zstd vs no compression for the feature arrays, on real extracted features.

Every feature array of a raw store (finite rows: real clips, static clips and windows) is written
into fresh zarr arrays with the store's codecs (crc32c, with or without zstd first) and read back;
reported: stored size relative to uncompressed (of the features as extracted), and write / read
MB/s relative to no compression (on copies of them with random last mantissa bits, stacked to
`min_mb` so timings are measurable and zstd cannot find the repeats).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import median, rnd, timed

FEATURES = ("clip_features", "static_features", "window_features")


def _stored_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and p.name != "zarr.json")


def run(raw_store: Path, repetitions: int, min_mb: float = 16.0) -> dict[str, Any]:
    import zarr
    from zarr.codecs import Crc32cCodec, ZstdCodec

    group = zarr.open_group(str(raw_store), mode="r")
    parts = []
    for name in FEATURES:
        values = np.asarray(group[name][:], dtype=np.float32)
        rows = values.reshape(-1, values.shape[-1])
        parts.append(rows[np.isfinite(rows).all(axis=1)])
    original = np.concatenate(parts)
    data = original
    # Sizes come from the original features; timings from copies of them (last mantissa bit
    # randomised) stacked up to `min_mb`: measurable, and zstd cannot find the repeats.
    copies = max(1, int(np.ceil(min_mb * 1e6 / max(data.nbytes, 1))))
    rng = np.random.default_rng(0)
    blocks = []
    for _ in range(copies):
        noise = rng.integers(0, 2, size=data.shape, dtype=np.uint32)
        blocks.append((data.view(np.uint32) ^ noise).view(np.float32))
    data = np.concatenate(blocks)
    chunk_rows = max(1, (4 << 20) // (data.shape[1] * 4))
    codecs = {
        "none": [Crc32cCodec()],
        "zstd1": [ZstdCodec(level=1), Crc32cCodec()],
        "zstd3": [ZstdCodec(level=3), Crc32cCodec()],
    }
    work = Path(tempfile.mkdtemp(prefix="anon-store-bench-codecs-"))

    def write(path: Path, values: np.ndarray, compressors: list) -> Any:
        shutil.rmtree(path, ignore_errors=True)
        array = zarr.create_array(
            str(path),
            shape=values.shape,
            chunks=(min(chunk_rows, len(values)), values.shape[1]),
            dtype="float32",
            compressors=compressors,
        )
        seconds, _ = timed(lambda: array.__setitem__(..., values))
        return array, seconds

    times: dict[str, dict[str, list[float]]] = {c: {"write": [], "read": []} for c in codecs}
    sizes: dict[str, int] = {}
    try:
        for _ in range(repetitions):
            for name, compressors in codecs.items():
                array, seconds = write(work / f"{name}.zarr", data, compressors)
                times[name]["write"].append(seconds)
                times[name]["read"].append(timed(lambda a=array: a[...])[0])
        for name, compressors in codecs.items():
            write(work / f"{name}-original.zarr", original, compressors)
            sizes[name] = _stored_bytes(work / f"{name}-original.zarr")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = data.nbytes / 1e6
    rates = {
        name: {op: mb / median(values) for op, values in ops.items()} for name, ops in times.items()
    }
    return {
        "feature_mb": rnd(original.nbytes / 1e6, 2),
        "timed_mb": rnd(mb, 1),
        "stored_vs_uncompressed": {n: rnd(s / sizes["none"]) for n, s in sizes.items()},
        "write_mb_per_s": {n: rnd(r["write"], 1) for n, r in rates.items()},
        "read_mb_per_s": {n: rnd(r["read"], 1) for n, r in rates.items()},
        "zstd1_saves": rnd(1 - sizes["zstd1"] / sizes["none"]),
        "zstd1_write_vs_none": rnd(rates["zstd1"]["write"] / rates["none"]["write"]),
        "zstd1_read_vs_none": rnd(rates["zstd1"]["read"] / rates["none"]["read"]),
    }
