"""Who holds a store's lock: a zombie holder (exited, not yet reaped by its parent) is dead, not
alive; and a run whose lock was taken over while it wrote (broken and re-taken by another run) is
stopped by lock.verify() before it marks its store complete, in sanitize and in extract."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import zarr

from pipeline.extract import ExtractConfig, extract
from pipeline.sanitize import SanitizeConfig, sanitize
from pipeline.store.location import StoreLocation
from pipeline.store.lock import LockHolder, StoreLock, StoreLockedError
from pipeline.store.writer import read_attrs

if str(Path(__file__).parents[1]) not in sys.path:
    sys.path.append(str(Path(__file__).parents[1]))
from sanitize.stores import make_adapter, make_raw_store


def _lock_file(store: Path) -> Path:
    return Path(StoreLocation.parse(store).url + ".lock")


def _write_holder(store: Path, holder: LockHolder) -> LockHolder:
    _lock_file(store).write_bytes(holder.to_bytes())
    return holder


def _status(store: Path) -> str:
    return (read_attrs(zarr.open_group(str(store), mode="r", use_consolidated=False)) or {})[
        "status"
    ]


# ---------------------------------------------------------------- liveness of the holder


@pytest.fixture
def zombie():
    """A child process that has exited but is not reaped (its parent, this test, has not waited
    for it yet): its pid still exists, in state zombie. Reaped when the test ends."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        yield child
        # Never reaped meanwhile: what the test saw was a zombie.
        assert psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
    finally:
        child.wait()


def _zombie_holder(child: subprocess.Popen) -> LockHolder:
    return dataclasses.replace(
        LockHolder.me("a run that exited"),
        pid=child.pid,
        process_started=psutil.Process(child.pid).create_time(),
    )


def test_a_zombie_holder_is_dead_and_its_lock_stale(zombie, tmp_path) -> None:
    store = tmp_path / "raw.zarr"
    holder = _write_holder(store, _zombie_holder(zombie))
    assert holder.liveness() == "dead"
    with pytest.raises(StoreLockedError) as info:
        StoreLock(StoreLocation.parse(store)).acquire()
    assert info.value.state == "dead"
    message = str(info.value)
    assert "\n" not in message
    assert f"has a stale lock: {holder.owner}@{holder.host} pid {zombie.pid}" in message
    assert "--break-lock" in message
    # Stale, so the flag breaks it (a live holder's lock never is).
    with StoreLock(StoreLocation.parse(store), break_lock=True) as lock:
        assert json.loads(_lock_file(store).read_text())["token"] == lock.holder.token
    assert not _lock_file(store).exists()


def test_liveness_of_each_kind_of_holder(zombie) -> None:
    me = LockHolder.me("this test")
    reaped = subprocess.Popen([sys.executable, "-c", "pass"])
    reaped.wait()
    holders = {
        "this process": (me, "alive"),
        "this process, start time unknown": (
            dataclasses.replace(me, process_started=None),
            "alive",
        ),
        "zombie": (_zombie_holder(zombie), "dead"),
        "exited and reaped": (dataclasses.replace(me, pid=reaped.pid), "dead"),
        "pid reused by a later process": (dataclasses.replace(me, process_started=1.0), "dead"),
        "another host": (dataclasses.replace(me, host="elsewhere.example"), "unknown"),
    }
    assert {name: h.liveness() for name, (h, _) in holders.items()} == {
        name: state for name, (_, state) in holders.items()
    }


def test_a_live_holder_is_never_broken_or_overwritten(tmp_path) -> None:
    store = tmp_path / "raw.zarr"
    holder = _write_holder(store, LockHolder.me("the live run"))  # this very process: alive
    for break_lock in (False, True):
        with pytest.raises(StoreLockedError, match="being written by another run") as info:
            StoreLock(StoreLocation.parse(store), break_lock=break_lock).acquire()
        assert info.value.state == "alive"
    assert json.loads(_lock_file(store).read_text())["token"] == holder.token


# ---------------------------------------------------------------- lock lost during a run


def _lose_the_lock(store: Path, how: str) -> LockHolder | None:
    """What a --break-lock run elsewhere does: the lock file is replaced (or just removed)."""
    if how == "removed":
        _lock_file(store).unlink()
        return None
    other = dataclasses.replace(
        LockHolder.me("a run that broke the lock"), host="elsewhere.example"
    )
    return _write_holder(store, other)


def _assert_lost(info: pytest.ExceptionInfo, store: Path, other: LockHolder | None) -> None:
    message = str(info.value)
    assert info.value.state == "lost" and "\n" not in message
    assert "this run's lock was broken while it was writing" in message
    assert "the store is not marked complete" in message
    assert ("elsewhere.example" if other else "now held by nobody") in message
    assert _status(store) == "writing"  # not complete: readers refuse it, a rerun resumes it
    if other is None:
        assert not _lock_file(store).exists()
    else:  # the new holder's lock is left alone
        assert json.loads(_lock_file(store).read_text())["token"] == other.token


@pytest.mark.parametrize("how", ["replaced", "removed"])
def test_sanitize_that_lost_its_lock_does_not_complete(tmp_path, monkeypatch, how) -> None:
    import pipeline.sanitize.run as run

    raw = make_raw_store(tmp_path / "raw.zarr")
    adapter = make_adapter(tmp_path / "adapter")
    out = tmp_path / "sanitized.zarr"
    lost: list[LockHolder | None] = []
    write_chunks = run._run

    def write_then_lose_the_lock(*args, **kwargs):
        write_chunks(*args, **kwargs)  # every chunk written: completion comes next
        lost.append(_lose_the_lock(out, how))

    monkeypatch.setattr(run, "_run", write_then_lose_the_lock)
    config = SanitizeConfig(scheduler="synchronous")
    with pytest.raises(StoreLockedError) as info:
        sanitize(raw.url, adapter, out, config)
    assert len(lost) == 1
    _assert_lost(info, out, lost[0])
    # Once the other run is gone, a rerun resumes the store and completes it.
    monkeypatch.setattr(run, "_run", write_chunks)
    _lock_file(out).unlink(missing_ok=True)
    assert sanitize(raw.url, adapter, out, config).action == "resumed"
    assert _status(out) == "complete"


@pytest.mark.parametrize("how", ["replaced", "removed"])
def test_extract_that_lost_its_lock_does_not_complete(
    tiny_benchmark, tiny_encoder_dir, tmp_path, monkeypatch, how
) -> None:
    import pipeline.extract.run as run

    out = tmp_path / "raw.zarr"
    lost: list[LockHolder | None] = []
    commit = run.commit_shard

    def commit_then_lose_the_lock(group, layout, result):
        commit(group, layout, result)
        if result.shard == layout.num_shards - 1:  # the last shard: completion comes next
            lost.append(_lose_the_lock(out, how))

    monkeypatch.setattr(run, "commit_shard", commit_then_lose_the_lock)
    config = ExtractConfig(splits=("val", "tad_test"), videos_per_chunk=2, workers=0)
    with pytest.raises(StoreLockedError) as info:
        extract(tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), out, config)
    assert len(lost) == 1
    _assert_lost(info, out, lost[0])
    monkeypatch.setattr(run, "commit_shard", commit)
    _lock_file(out).unlink(missing_ok=True)
    manifest = tiny_benchmark / "manifest.parquet"
    assert extract(manifest, str(tiny_encoder_dir), out, config).action == "resumed"
    assert _status(out) == "complete"
