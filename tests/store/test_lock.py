"""The writer lock: one holder at a time, named in the refusal; stale locks reported and broken
only when asked; released however the holder ends; works through fsspec (faulty://) too."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import faulty_fs
import pytest

from pipeline.errors import StoreError
from pipeline.store.location import StoreLocation
from pipeline.store.lock import LockHolder, StoreLock, StoreLockedError
from pipeline.store.retry import ENV_ATTEMPTS

HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from pipeline.store.location import StoreLocation
    from pipeline.store.lock import StoreLock

    StoreLock(StoreLocation.parse(sys.argv[1]), command="holder-test").acquire()
    print("locked", flush=True)
    time.sleep(120)
    """
)


def _location(tmp_path: Path, name: str = "raw.zarr") -> StoreLocation:
    return StoreLocation.parse(tmp_path / name)


def _lock_file(location: StoreLocation) -> Path:
    return Path(location.url + ".lock")


def _write_holder(location: StoreLocation, **changes) -> LockHolder:
    holder = dataclasses.replace(LockHolder.me("someone else's run"), **changes)
    _lock_file(location).write_bytes(holder.to_bytes())
    return holder


def test_lock_records_its_holder_and_is_released_on_exit_and_on_error(tmp_path):
    location = _location(tmp_path)
    with StoreLock(location, command="anon-store extract ...") as lock:
        recorded = json.loads(_lock_file(location).read_text())
        assert recorded["pid"] == os.getpid()
        assert recorded["host"] == socket.gethostname()
        assert recorded["owner"] and recorded["created_at"]
        assert recorded["command"] == "anon-store extract ..."
        assert recorded["token"] == lock.holder.token
        assert not Path(location.url).exists()  # beside the store, not inside it
    assert not _lock_file(location).exists()
    with pytest.raises(RuntimeError, match="boom"), StoreLock(location):
        raise RuntimeError("boom")
    assert not _lock_file(location).exists()


def test_a_second_writer_is_refused_with_the_holder_named_even_with_break_lock(tmp_path):
    location = _location(tmp_path)
    with StoreLock(location, command="first run"):
        for break_lock in (False, True):
            with pytest.raises(StoreLockedError) as info:
                StoreLock(location, break_lock=break_lock).acquire()
            message = str(info.value)
            assert "\n" not in message
            assert "being written by another run" in message
            assert f"pid {os.getpid()}" in message and socket.gethostname() in message
            assert "first run" in message and info.value.state == "alive"
        assert json.loads(_lock_file(location).read_text())["command"] == "first run"


def test_lock_of_a_killed_process_is_stale_and_broken_only_with_the_flag(tmp_path, caplog):
    location = _location(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, location.url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLockedError, match="being written by another run"):
            StoreLock(location).acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with pytest.raises(StoreLockedError) as info:
        StoreLock(location).acquire()
    assert info.value.state == "dead"
    assert f"stale lock: {info.value.holder.owner}@" in str(info.value)
    assert f"pid {child.pid}" in str(info.value) and "--break-lock" in str(info.value)
    with caplog.at_level(logging.WARNING), StoreLock(location, break_lock=True) as lock:
        assert json.loads(_lock_file(location).read_text())["token"] == lock.holder.token
    assert "breaking the stale lock" in caplog.text and f"pid {child.pid}" in caplog.text
    assert not _lock_file(location).exists()


def test_reused_pid_other_host_and_garbage_lock_files(tmp_path):
    location = _location(tmp_path)
    # Our own (live) pid, but a process start time that is not ours: the pid was reused.
    _write_holder(location, process_started=1.0)
    with pytest.raises(StoreLockedError, match="stale lock"):
        StoreLock(location).acquire()
    _write_holder(location, host="elsewhere.example")
    with pytest.raises(StoreLockedError, match=r"on another host.*--break-lock") as info:
        StoreLock(location).acquire()
    assert info.value.state == "unknown"
    with StoreLock(location, break_lock=True):
        pass
    _lock_file(location).write_bytes(b"\x00garbage")
    with pytest.raises(StoreLockedError, match="unreadable lock file"):
        StoreLock(location).acquire()
    with StoreLock(location, break_lock=True):
        pass
    assert not _lock_file(location).exists()


def test_a_run_whose_lock_was_broken_does_not_remove_the_new_holders_lock(tmp_path):
    location = _location(tmp_path)
    lock = StoreLock(location)
    lock.acquire()
    lock.verify()
    other = _write_holder(location, host="elsewhere.example")  # broken and taken meanwhile
    with pytest.raises(StoreLockedError, match="lock was broken while it was writing"):
        lock.verify()
    lock.release()
    assert json.loads(_lock_file(location).read_text())["token"] == other.token


def test_lock_through_fsspec(tmp_path):
    location = StoreLocation.parse(faulty_fs.url(tmp_path / "raw.zarr"))
    assert not location.is_local
    with StoreLock(location):
        assert _lock_file(StoreLocation.parse(tmp_path / "raw.zarr")).exists()
        with pytest.raises(StoreLockedError, match="being written by another run"):
            StoreLock(location).acquire()
    assert not (tmp_path / "raw.zarr.lock").exists()


def test_lock_survives_transient_faults_and_reports_persistent_ones(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_ATTEMPTS, raising=False)  # the default policy: 5 tries in all
    faulty_fs.FaultyFileSystem.reset("lock")
    flaky = StoreLocation.parse(
        faulty_fs.url(tmp_path / "a.zarr"), {"rate": 0.3, "seed": 3, "tag": "lock"}
    )
    for _ in range(10):
        with StoreLock(flaky):
            pass
    stats = faulty_fs.FaultyFileSystem.stats["lock"]
    assert stats["read_faults"] + stats["write_faults"] > 0
    broken = StoreLocation.parse(faulty_fs.url(tmp_path / "b.zarr"), {"rate": 1.0})
    started = time.monotonic()
    with pytest.raises(
        StoreError, match=r"taking the lock .*b\.zarr\.lock failed after 5 attempts"
    ):
        StoreLock(broken).acquire()
    assert time.monotonic() - started < 10
    assert not (tmp_path / "b.zarr.lock").exists()
