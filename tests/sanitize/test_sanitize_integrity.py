"""sanitize under concurrency and storage faults: one writer at a time (the second is refused with
the holder named), stale locks broken only with --break-lock, transient I/O errors retried to the
same output as a clean run, persistent ones stopped in one line with no store taken as complete."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import faulty_fs
import numpy as np
import pytest
import zarr

from pipeline.errors import StoreError
from pipeline.sanitize import SanitizeConfig, sanitize
from pipeline.store.location import StoreLocation
from pipeline.store.lock import LockHolder, StoreLock, StoreLockedError
from pipeline.store.reader import open_store
from pipeline.store.writer import read_attrs, table_specs, update_attrs
from sanitize.stores import ATTRIBUTES, assert_same_features
from store_schema import validate

BLOCKED_RUN = textwrap.dedent(
    """
    import os, sys, time
    from pipeline.sanitize import SanitizeConfig, sanitize

    def report(progress):
        # The first report comes once the output exists and before any chunk is written.
        if not os.path.exists(sys.argv[4]):
            print("writing", flush=True)
        while not os.path.exists(sys.argv[4]):
            time.sleep(0.02)

    sanitize(sys.argv[1], sys.argv[2], sys.argv[3], SanitizeConfig(workers=1), progress=report)
    print("finished", flush=True)
    """
)


def _same_store(a: Path, b: Path) -> None:
    assert_same_features(a, b)
    left, right = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    for spec in table_specs({"attributes": ATTRIBUTES}):
        np.testing.assert_array_equal(left[spec.name][:], right[spec.name][:], err_msg=spec.name)


@pytest.fixture
def clean(raw_store, mlp_adapter, tmp_path) -> Path:
    """The output of an undisturbed run."""
    out = tmp_path / "clean.zarr"
    sanitize(raw_store.url, mlp_adapter, out)
    return out


def test_second_writer_is_refused_naming_the_holder_and_readers_see_no_complete_store(
    raw_store, mlp_adapter, tmp_path, run_cli
):
    output, go = tmp_path / "out.zarr", tmp_path / "go"
    child = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_RUN, raw_store.url, str(mlp_adapter), str(output), str(go)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "writing"
        with pytest.raises(StoreLockedError) as info:
            sanitize(raw_store.url, mlp_adapter, output, SanitizeConfig(overwrite=True))
        assert info.value.holder.pid == child.pid and info.value.state == "alive"
        code, _, err = run_cli(
            "sanitize", "--input", raw_store.url, "--adapter", mlp_adapter, "--output", output,
            "--break-lock",
        )  # fmt: skip
        line = faulty_fs.error_line(err)
        assert code == 1 and line.startswith("error:") and "being written by another run" in line
        assert f"pid {child.pid}" in line
        # Meanwhile a reader finds a store that is not complete, and says so.
        faulty_fs.assert_not_complete(output)
        go.touch()
        assert child.stdout.read().strip() == "finished"
    finally:
        go.touch()
        child.wait(timeout=120)
    assert child.returncode == 0
    assert open_store(output).status == "complete"
    assert not Path(f"{output}.lock").exists()


def test_stale_lock_is_refused_then_broken_with_the_flag(raw_store, mlp_adapter, tmp_path, run_cli):
    output = tmp_path / "out.zarr"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    holder = dataclasses.replace(
        LockHolder.me("anon-store sanitize (killed)"), pid=int(dead.stdout), process_started=None
    )
    Path(f"{output}.lock").write_bytes(holder.to_bytes())
    args = ("sanitize", "--input", raw_store.url, "--adapter", mlp_adapter, "--output", output)
    code, _, err = run_cli(*args)
    line = faulty_fs.error_line(err)
    assert code == 1 and "stale lock" in line and f"pid {holder.pid}" in line
    assert "--break-lock" in line and not output.exists()
    code, _, err = run_cli(*args, "--break-lock")
    assert code == 0, err
    assert open_store(output).status == "complete" and not Path(f"{output}.lock").exists()


def test_transient_faults_in_input_and_output_give_the_clean_result(
    raw_store, mlp_adapter, tmp_path, clean
):
    faulty_fs.FaultyFileSystem.reset("sanitize")
    output = tmp_path / "out.zarr"
    options = {"rate": 0.1, "seed": 11, "tag": "sanitize"}
    result = sanitize(
        faulty_fs.url(raw_store.url), mlp_adapter, faulty_fs.url(output), storage_options=options
    )
    assert result.action == "created"
    stats = faulty_fs.FaultyFileSystem.stats["sanitize"]
    assert stats["read_faults"] > 5 and stats["write_faults"] > 5, dict(stats)
    _same_store(output, clean)
    assert validate(str(output), deep=True) == []
    assert not Path(f"{output}.lock").exists()


def test_persistent_write_faults_stop_in_one_line_and_the_rerun_resumes(
    raw_store, mlp_adapter, tmp_path, clean, run_cli, monkeypatch
):
    output = tmp_path / "out.zarr"
    # Every write of a feature chunk fails, after leaving half of it (a torn write).
    faults = {"rate": 1.0, "ops": ["write"], "only": ["clip_features/c/"], "torn": True}
    monkeypatch.setenv("ANON_STORE_STORAGE_OPTIONS", json.dumps(faults))
    code, _, err = run_cli(
        "sanitize", "--input", raw_store.url, "--adapter", mlp_adapter,
        "--output", faulty_fs.url(output), "--workers", "1",
    )  # fmt: skip
    line = faulty_fs.assert_gave_up_in_one_line(code, err, "error: write clip_features/c/")
    assert "rerun to resume" in line
    # Not complete, refused by readers, and the torn chunk is named by a deep validation.
    faulty_fs.assert_not_complete(output)
    torn = [p for p in validate(str(output), deep=True) if "is corrupt" in p]
    assert torn and all(p.startswith("array 'clip_features' chunk (") for p in torn), torn
    assert not Path(f"{output}.lock").exists()  # released on the error
    monkeypatch.delenv("ANON_STORE_STORAGE_OPTIONS")
    resumed = sanitize(raw_store.url, mlp_adapter, output)
    assert resumed.action == "resumed"
    _same_store(output, clean)
    assert validate(str(output), deep=True) == []


def test_a_storage_that_always_fails_writes_nothing(
    raw_store, mlp_adapter, tmp_path, run_cli, monkeypatch
):
    output = tmp_path / "out.zarr"
    code, _, err = run_cli(
        "sanitize", "--input", raw_store.url, "--adapter", mlp_adapter,
        "--output", faulty_fs.url(output),
    )  # fmt: skip
    assert code == 0, err  # no faults configured: faulty:// is a plain filesystem
    again = tmp_path / "again.zarr"
    monkeypatch.setenv("ANON_STORE_STORAGE_OPTIONS", json.dumps({"rate": 1.0}))
    code, _, err = run_cli(
        "sanitize", "--input", raw_store.url, "--adapter", mlp_adapter,
        "--output", faulty_fs.url(again),
    )  # fmt: skip
    faulty_fs.assert_gave_up_in_one_line(code, err, "error:")
    assert not again.exists() and not Path(f"{again}.lock").exists()


def test_an_input_replaced_while_it_is_read_leaves_the_output_incomplete(
    raw_store, mlp_adapter, tmp_path
):
    output = tmp_path / "out.zarr"

    def replace_input(progress):
        # What a concurrent `extract --overwrite` of the input does first (discard_store).
        group = zarr.open_group(raw_store.url, mode="r+")
        update_attrs(group, status="creating")

    with pytest.raises(StoreError, match="was replaced or is being rewritten"):
        sanitize(raw_store.url, mlp_adapter, output, progress=replace_input)
    assert read_attrs(zarr.open_group(str(output), mode="r"))["status"] == "writing"
    assert not Path(f"{output}.lock").exists()


@pytest.mark.integration
def test_lock_on_s3_is_exclusive_and_released(s3_endpoint):
    def location() -> StoreLocation:
        return StoreLocation.parse("s3://anon-store-test/locks/raw.zarr", s3_endpoint)

    with StoreLock(location(), command="first") as lock:
        with pytest.raises(StoreLockedError, match=r"being written by another run.*first"):
            StoreLock(location()).acquire()
        lock.verify()
    fs, path = location().filesystem()
    fs.invalidate_cache()
    assert not fs.exists(path + ".lock")
