"""extract under storage faults and a concurrent writer, on real mp4 files and a real model."""

from __future__ import annotations

import json
from pathlib import Path

import faulty_fs
import numpy as np
import zarr

from pipeline.extract import ExtractConfig, extract
from pipeline.store.location import StoreLocation
from pipeline.store.lock import StoreLock
from store_schema import validate

CONFIG = ExtractConfig(videos_per_chunk=8, batch_size=16)
"""As the raw_store fixture: its store is what an undisturbed run writes."""


def test_transient_faults_give_the_same_store_as_a_clean_run(
    tiny_benchmark, tiny_encoder_dir, raw_store, tmp_path
):
    faulty_fs.FaultyFileSystem.reset("extract")
    out = tmp_path / "raw.zarr"
    result = extract(
        tiny_benchmark / "manifest.parquet",
        str(tiny_encoder_dir),
        faulty_fs.url(out),
        CONFIG,
        storage_options={"rate": 0.1, "seed": 5, "tag": "extract"},
    )
    assert result.action == "created"
    stats = faulty_fs.FaultyFileSystem.stats["extract"]
    assert stats["read_faults"] > 5 and stats["write_faults"] > 5, dict(stats)
    got, want = zarr.open_group(str(out), mode="r"), zarr.open_group(str(raw_store), mode="r")
    assert sorted(got.array_keys()) == sorted(want.array_keys())
    for name in want.array_keys():
        np.testing.assert_array_equal(got[name][:], want[name][:], err_msg=name)
    assert validate(str(out), deep=True) == []
    assert not Path(f"{out}.lock").exists()


def test_persistent_faults_stop_in_one_line_and_leave_no_complete_store(
    tiny_benchmark, tiny_encoder_dir, tmp_path, run_cli, monkeypatch
):
    out = tmp_path / "raw.zarr"
    faults = {"rate": 1.0, "ops": ["write"], "only": ["clip_features/c/"], "torn": True}
    monkeypatch.setenv("ANON_STORE_STORAGE_OPTIONS", json.dumps(faults))
    code, _, err = run_cli(
        "extract", "--manifest", tiny_benchmark / "manifest.parquet",
        "--encoder", tiny_encoder_dir, "--output", faulty_fs.url(out),
        "--videos-per-chunk", "8", "--batch-size", "16",
    )  # fmt: skip
    line = faulty_fs.assert_gave_up_in_one_line(
        code, err, "error: write clip_features/c/0/0/0 of faulty://"
    )
    assert "rerun to resume" in line
    faulty_fs.assert_not_complete(out)
    torn = [p for p in validate(str(out), deep=True) if "is corrupt" in p]
    assert torn == [
        "array 'clip_features' chunk (0, 0, 0) ('clip_features/c/0/0/0') is corrupt: crc32c "
        "checksum mismatch (flipped bits or a truncated chunk)"
    ]
    assert not Path(f"{out}.lock").exists()


def test_a_second_writer_is_refused_naming_the_holder(
    tiny_benchmark, tiny_encoder_dir, tmp_path, run_cli
):
    out = tmp_path / "raw.zarr"
    with StoreLock(StoreLocation.parse(out), command="anon-store extract (first run)") as lock:
        code, _, err = run_cli(
            "extract", "--manifest", tiny_benchmark / "manifest.parquet",
            "--encoder", tiny_encoder_dir, "--output", out, "--videos-per-chunk", "8",
        )  # fmt: skip
        line = faulty_fs.error_line(err)
        assert code == 1 and "is being written by another run" in line
        assert f"pid {lock.holder.pid}" in line and lock.holder.host in line
        assert "anon-store extract (first run)" in line
    assert not out.exists()
