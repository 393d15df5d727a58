"""A sanitize killed mid-run leaves an incomplete store; a rerun resumes and equals a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr

from pipeline.errors import StoreError
from pipeline.sanitize import SanitizeConfig, sanitize
from pipeline.sanitize.units import MARKERS
from pipeline.store.lock import StoreLockedError
from pipeline.store.reader import open_store
from pipeline.store.writer import table_specs
from sanitize.stores import ATTRIBUTES, assert_same_features, make_adapter
from store_schema import decode_meta

RUNNER = textwrap.dedent(
    """
    import sys
    from pipeline.sanitize import SanitizeConfig, sanitize

    def report(p):
        print(p.chunks_done, p.chunks_total, flush=True)

    if __name__ == "__main__":
        sanitize(sys.argv[1], sys.argv[2], sys.argv[3],
                 SanitizeConfig(workers=2, break_lock=len(sys.argv) > 4), progress=report)
        print("finished", flush=True)
    """
)


def _kill_midway(args: list[str], fraction: float) -> None:
    """Run sanitize in a child process and SIGKILL it once `fraction` of the chunks are done."""
    child = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    try:
        for line in child.stdout:
            if line.startswith("finished"):
                pytest.fail("sanitize finished before it could be killed: make the store bigger")
            done, total = map(int, line.split())
            if done >= fraction * total:
                child.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL


def test_killed_once_at_a_random_point_resumes_to_a_clean_run(store_factory, tmp_path):
    """The CI form of the slow tests below: a smaller store, one random kill point."""
    raw = store_factory("raw.zarr", videos=60, videos_per_chunk=3, window_chunk=8)
    adapter = make_adapter(tmp_path / "adapter", arch="mlp")
    killed = tmp_path / "killed.zarr"
    fraction = float(np.random.default_rng(11).uniform(0.2, 0.8))
    _kill_midway([raw.url, str(adapter), str(killed)], fraction=fraction)
    assert decode_meta(zarr.open_group(str(killed), mode="r").attrs["anon_store"])["status"] == (
        "writing"
    )
    resumed = sanitize(raw.url, adapter, killed, SanitizeConfig(break_lock=True))
    assert resumed.action == "resumed" and 0 < resumed.chunks_written < resumed.chunks_total
    clean = tmp_path / "clean.zarr"
    sanitize(raw.url, adapter, clean)
    assert_same_features(killed, clean)


@pytest.mark.slow
def test_killed_run_is_refused_then_resumed_to_the_same_result(store_factory, tmp_path):
    # Many small chunks (3 videos, 8 windows): ~250 tasks, so the kill lands mid-run.
    raw = store_factory("raw.zarr", videos=150, videos_per_chunk=3, window_chunk=8)
    adapter = make_adapter(tmp_path / "adapter", arch="attention")
    killed = tmp_path / "killed.zarr"
    _kill_midway([raw.url, str(adapter), str(killed)], fraction=0.3)

    meta = decode_meta(zarr.open_group(str(killed), mode="r").attrs["anon_store"])
    assert meta["status"] == "writing"
    with pytest.raises(StoreError, match="not complete"):
        open_store(killed)
    markers = np.asarray(zarr.open_group(str(killed), mode="r")[MARKERS][:])
    assert 0 < markers.sum() < len(markers)

    # The killed run's lock is stale: refused until broken, then resumed with another task
    # size: chunks already marked are skipped, the rest redone.
    with pytest.raises(StoreLockedError, match="stale lock"):
        sanitize(raw.url, adapter, killed, SanitizeConfig(chunks_per_task=3))
    resumed = sanitize(raw.url, adapter, killed, SanitizeConfig(chunks_per_task=3, break_lock=True))
    assert resumed.action == "resumed"
    assert 0 < resumed.chunks_written < resumed.chunks_total
    clean = tmp_path / "clean.zarr"
    sanitize(raw.url, adapter, clean)
    assert_same_features(killed, clean)
    a, b = open_store(killed, kind="sanitized"), open_store(clean, kind="sanitized")
    for spec in table_specs({"attributes": ATTRIBUTES}):
        np.testing.assert_array_equal(a.group[spec.name][:], b.group[spec.name][:])
    assert MARKERS not in a.group.array_keys()
    assert a.meta["store_id"] == meta["store_id"]  # resumed in place, not recreated


@pytest.mark.slow
def test_killed_at_several_random_points_still_ends_equal_to_a_clean_run(store_factory, tmp_path):
    raw = store_factory("raw.zarr", videos=150, videos_per_chunk=3, window_chunk=8)
    adapter = make_adapter(tmp_path / "adapter", arch="mlp")
    killed = tmp_path / "killed.zarr"
    fractions = np.sort(np.random.default_rng(7).uniform(0.1, 0.9, size=3))
    done_before = 0
    for round_, fraction in enumerate(fractions):
        # every rerun after a kill must break the dead run's lock
        extra = ["--break-lock"] if round_ else []
        _kill_midway([raw.url, str(adapter), str(killed), *extra], fraction=float(fraction))
        done = int(np.asarray(zarr.open_group(str(killed), mode="r")[MARKERS][:]).sum())
        assert done >= done_before  # nothing committed is ever lost
        done_before = done
    resumed = sanitize(raw.url, adapter, killed, SanitizeConfig(break_lock=True))
    assert resumed.action == "resumed"
    clean = tmp_path / "clean.zarr"
    sanitize(raw.url, adapter, clean)
    assert_same_features(killed, clean)
