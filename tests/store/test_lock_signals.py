"""Ctrl-C and SIGTERM end a writing run cleanly: its lock is removed, the store stays
resumable, and the next run needs no --break-lock (only SIGKILL leaves a stale lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.extract import ExtractConfig, extract
from pipeline.store.reader import open_store

CHILD = """
import os, signal, sys, time
from pipeline.extract import ExtractConfig, extract, run

# What a terminal's Ctrl-C meets: Python's own SIGINT handler, nothing blocked, whatever the
# process that started this one ignored or blocked (Python keeps an inherited SIG_IGN).
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
if os.path.exists("/proc/self/status"):  # for the failure message
    with open("/proc/self/status") as status:
        sys.stderr.write("".join(l for l in status if l.startswith(("SigIgn", "SigBlk"))))

# Each commit takes a while longer, so the signal lands while shards are still being written
# even when encoding (decode processes, a helping consumer) has run ahead of the commits.
commit = run.commit_shard
run.commit_shard = lambda *args: (commit(*args), time.sleep(0.3))
extract(sys.argv[1], sys.argv[2], sys.argv[3], ExtractConfig(videos_per_chunk=2, batch_size=4))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_releases_the_lock_and_the_run_resumes(
    signum, tmp_path, tiny_benchmark, tiny_encoder_dir
):
    store = tmp_path / "raw.zarr"
    lock = Path(f"{store}.lock")
    manifest = tiny_benchmark / "manifest.parquet"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(manifest), str(tiny_encoder_dir), str(store)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    # Wait for a committed shard: the store is then being written, no longer created.
    while not (store / "status" / "c").exists() and time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read()[-2000:]
        time.sleep(0.05)
    assert lock.exists(), "the run never took its lock"
    child.send_signal(signum)
    code = child.wait(timeout=120)
    assert code != 0, child.stderr.read()[-2000:]  # interrupted, not finished
    assert not lock.exists(), "the interrupted run left its lock behind"
    result = extract(
        manifest, str(tiny_encoder_dir), store, ExtractConfig(videos_per_chunk=2, batch_size=4)
    )
    assert result.action == "resumed" and open_store(store).status == "complete"
