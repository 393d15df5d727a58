"""Retries of transient storage errors, through a real fsspec filesystem that fails (faulty://)."""

from __future__ import annotations

import errno
import pickle

import faulty_fs
import numpy as np
import pytest
import zarr
from zarr.codecs import Crc32cCodec

from pipeline.errors import StoreError
from pipeline.store.location import StoreLocation
from pipeline.store.retry import (
    ENV_ATTEMPTS,
    RetryingStore,
    RetryPolicy,
    StoreIOError,
    is_transient,
    retry_call,
)

FAST = RetryPolicy(attempts=4, initial_delay=0.001, max_delay=0.01)


@pytest.fixture(autouse=True)
def default_policy(monkeypatch):
    """The stores here retry by the default policy (5 tries in all), whatever the caller's
    ANON_STORE_IO_ATTEMPTS says; tests of the variable set it themselves."""
    monkeypatch.delenv(ENV_ATTEMPTS, raising=False)


@pytest.mark.parametrize(
    "error, transient",
    [
        (TimeoutError("slow"), True),
        (ConnectionResetError(), True),
        (OSError(errno.EIO, "io"), True),
        (OSError(errno.EBUSY, "SlowDown"), True),
        (FileNotFoundError("gone"), False),
        (PermissionError("denied"), False),
        (OSError(errno.ENOSPC, "disk full"), False),
        (ValueError("checksum"), False),
    ],
)
def test_only_transient_errors_are_retried(error, transient):
    assert is_transient(error) is transient


def test_retry_call_gives_up_with_one_line_and_does_not_retry_permanent_errors():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError("injected")
        return "ok"

    assert retry_call(flaky, "reading x", FAST) == "ok" and len(calls) == 3
    with pytest.raises(StoreIOError) as info:
        retry_call(lambda: (_ for _ in ()).throw(OSError(errno.EIO, "dead\ndisk")), "x", FAST)
    assert str(info.value) == "x failed after 4 attempts: OSError: [Errno 5] dead disk"
    calls.clear()

    def missing():
        calls.append(1)
        raise FileNotFoundError("/nonexistent/x")

    with pytest.raises(FileNotFoundError):
        retry_call(missing, "reading", FAST)
    assert len(calls) == 1


def test_policy_from_the_environment(monkeypatch):
    assert RetryPolicy.from_env() == RetryPolicy() and RetryPolicy().attempts == 5
    monkeypatch.setenv(ENV_ATTEMPTS, "2")
    assert RetryPolicy.from_env().attempts == 2
    monkeypatch.setenv(ENV_ATTEMPTS, "0")
    assert RetryPolicy.from_env().attempts == 1
    monkeypatch.setenv(ENV_ATTEMPTS, "many")
    with pytest.raises(StoreError, match="must be an integer"):
        RetryPolicy.from_env()


def test_zarr_reads_and_writes_through_a_failing_filesystem(tmp_path):
    faulty_fs.FaultyFileSystem.reset("zarr")
    options = {"rate": 0.25, "seed": 7, "tag": "zarr"}
    location = StoreLocation.parse(faulty_fs.url(tmp_path / "a.zarr"), options)
    values = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    group = location.open_group("w")
    assert isinstance(group.store, RetryingStore)
    array = group.create_array(
        "x", shape=values.shape, chunks=(4, 6), dtype="float32", compressors=[Crc32cCodec()]
    )
    array[:] = values
    again = location.open_group("r")
    np.testing.assert_array_equal(again["x"][:], values)
    assert sorted(again.array_keys()) == ["x"]
    stats = faulty_fs.FaultyFileSystem.stats["zarr"]
    assert stats["write_faults"] > 0 and stats["read_faults"] > 0
    # Torn writes were replaced by whole ones: the same bytes as a clean write.
    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / "a.zarr"))["x"][:], values)
    # Groups travel to worker processes (dask, processes scheduler) with their retrying store.
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(again))["x"][:], values)


def test_a_store_that_keeps_failing_is_reported_in_one_line(tmp_path):
    location = StoreLocation.parse(
        faulty_fs.url(tmp_path / "a.zarr"), {"rate": 1.0, "ops": ["write"], "only": ["/c/"]}
    )
    group = location.open_group("w")
    array = group.create_array("x", shape=(8,), chunks=(4,), dtype="int32")
    with pytest.raises(StoreIOError) as info:
        array[:] = np.arange(8)
    message = str(info.value)
    assert "\n" not in message
    assert "write x/c/" in message and "failed after 5 attempts" in message
