"""Sanitize streams: peak memory does not grow with the store (1x vs 4x, separate processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import zarr

from sanitize.stores import make_adapter, make_raw_store

# VmHWM, not ru_maxrss: on Linux a child's ru_maxrss starts at its parent's RSS at fork time.
CHILD = textwrap.dedent(
    """
    import json, sys
    import dask.array, torch, zarr
    from pipeline.sanitize import SanitizeConfig, sanitize

    def status_mb(key):
        with open("/proc/self/status") as f:
            line = next(line for line in f if line.startswith(key))
        return int(line.split()[1]) / 1024

    if __name__ == "__main__":
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # peak RSS := current RSS (drops the import-time peak)
        before = status_mb("VmRSS:")
        sanitize(sys.argv[1], sys.argv[2], sys.argv[3], SanitizeConfig(workers=2))
        print(json.dumps({"before": before, "peak": status_mb("VmHWM:")}))
    """
)


@pytest.mark.slow
def test_peak_memory_is_flat_from_1x_to_4x_store(tmp_path):
    adapter = make_adapter(tmp_path / "adapter", dim=128)
    growth, sizes = [], []
    # 1 chunk (the fixed cost: lazy imports, thread pools), then ~50 MB and ~200 MB of features
    # in chunks of 200 videos (1 MB of static clips per chunk).
    for videos in (200, 3000, 12000):
        raw = make_raw_store(
            tmp_path / f"raw-{videos}.zarr",
            videos=videos,
            dim=128,
            static=10,
            videos_per_chunk=200,
            window_chunk=None,
            failed=(),
        )
        group = zarr.open_group(raw.url, mode="r")
        names = ("clip_features", "static_features", "window_features")
        sizes.append(sum(group[n].nbytes for n in names))
        out = subprocess.run(
            [sys.executable, "-c", CHILD, raw.url, str(adapter), str(tmp_path / f"{videos}.zarr")],
            capture_output=True,
            text=True,
            check=True,
        )
        report = json.loads(out.stdout.strip().splitlines()[-1])
        growth.append((report["peak"] - report["before"]) * 2**20)
    held = [g - growth[0] for g in growth[1:]]  # what sanitize holds beyond its fixed cost
    print(f"feature bytes {sizes}, peak RSS growth {growth}")
    assert held[1] - held[0] < 0.2 * (sizes[2] - sizes[1]), (growth, sizes)
    assert sizes[2] > 3 * held[1], (growth, sizes)  # the store is several times what it holds
