"""`validate --deep` reads every chunk of a real store on disk and names each corrupt one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from store_schema import validate
from store_schema.deep import check_chunks


@pytest.fixture
def store(raw_store, tmp_path) -> Path:
    """A private copy of the session's raw store (complete, valid) to damage."""
    copy = tmp_path / "raw.zarr"
    shutil.copytree(raw_store, copy)
    return copy


def _flip(path: Path, offset: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def test_intact_store_reads_every_chunk_and_passes(store):
    report = check_chunks(store)
    assert report.problems == []
    expected = sum(
        int(np.prod(a.cdata_shape)) for _, a in zarr.open_group(str(store), mode="r").arrays()
    )
    assert 0 < report.chunks <= expected and report.arrays >= 20
    assert validate(str(store), deep=True) == []


@pytest.mark.parametrize("offset", [0, 57, -1])  # first byte, a feature value, the checksum
def test_a_flipped_bit_in_a_chunk_is_reported_with_its_array_and_index(store, offset):
    chunk = store / "clip_features" / "c" / "1" / "0" / "0"
    _flip(chunk, offset)
    assert validate(str(store)) == []  # the shallow check cannot see it
    problems = validate(str(store), deep=True)
    assert problems == [
        "array 'clip_features' chunk (1, 0, 0) ('clip_features/c/1/0/0') is corrupt: "
        "crc32c checksum mismatch (flipped bits or a truncated chunk)"
    ]


def test_truncated_and_missing_chunks_are_reported(store):
    torn = store / "static_features" / "c" / "0" / "0" / "0"
    torn.write_bytes(torn.read_bytes()[:100])  # a write that died midway
    (store / "window_features" / "c" / "0" / "0").unlink()  # rows of ok videos: would read NaN
    problems = validate(str(store), deep=True)
    assert any(
        p.startswith(
            "array 'static_features' chunk (0, 0, 0) ('static_features/c/0/0/0') is corrupt"
        )
        for p in problems
    ), problems
    assert any(
        p.startswith("array 'window_features' chunk (0, 0) is missing though it holds features")
        for p in problems
    ), problems
    assert len(problems) == 2


def test_corrupt_metadata_is_reported_never_raised(store, run_cli):
    array_meta = store / "status" / "zarr.json"
    _flip(array_meta, 0, 0xFF)  # '{' becomes a non-UTF-8 byte
    text = (store / "zarr.json").read_text()
    (store / "zarr.json").write_text(text.replace('"attributes"', '"attributes', 1))
    problems = validate(str(store), deep=True)
    assert problems[0].startswith("cannot open store: JSONDecodeError")
    assert "metadata 'zarr.json' (root group) is not valid JSON: JSONDecodeError" in "\n".join(
        problems
    )
    assert any(p.startswith("metadata 'status/zarr.json' is not valid JSON") for p in problems)
    assert "array 'status': its 6 chunks cannot be checked" in problems  # 43 videos, 8 a chunk
    # The chunks of the other arrays are still read (and are fine).
    assert not any("corrupt" in p for p in problems)
    code, out, err = run_cli("validate", str(store), "--deep")
    assert code == 1 and "Traceback" not in out + err
    assert "problem: metadata 'status/zarr.json' is not valid JSON" in out + err


def test_consolidated_metadata_that_disagrees_with_an_array_is_reported(store):
    meta_path = store / "clip_features" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["fill_value"] = 0.0  # parses, decodes, but no longer what readers of consolidated see
    meta_path.write_text(json.dumps(meta))
    assert "consolidated metadata of 'clip_features' differs from 'clip_features/zarr.json'" in (
        validate(str(store), deep=True)
    )


def test_cli_validate_deep_on_a_good_and_a_bad_store(store, run_cli):
    code, out, err = run_cli("validate", str(store), "--deep")
    assert code == 0 and "valid (" in out + err and "chunks of" in out + err
    _flip(store / "video_id" / "c" / "0", 3)
    code, out, err = run_cli("validate", str(store), "--deep")
    assert code == 1
    lines = [line for line in (out + err).splitlines() if line.startswith("problem:")]
    assert lines == [
        "problem: array 'video_id' chunk (0,) ('video_id/c/0') is corrupt: crc32c checksum "
        "mismatch (flipped bits or a truncated chunk)"
    ]
