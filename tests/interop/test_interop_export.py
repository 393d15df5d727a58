"""export(): every format reads back equal to the store; streaming; bad requests refused."""

from __future__ import annotations

import json
import tracemalloc

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr
from sanitize.stores import make_raw_store

from pipeline.errors import ConfigError, StoreError
from pipeline.interop import export
from store_schema import VIDEO_OK


def _store_videos(path) -> dict[str, dict]:
    """video id -> {clips, static, windows, window_start, row} of the store's ok videos."""
    g = zarr.open_group(str(path), mode="r")
    clips, static = np.asarray(g["clip_features"][:]), np.asarray(g["static_features"][:])
    windows, starts = np.asarray(g["window_features"][:]), np.asarray(g["window_start"][:])
    status = np.asarray(g["status"][:])
    out = {}
    for v, vid in enumerate(g["video_id"][:]):
        if status[v] != VIDEO_OK:
            continue
        lo, n = int(g["window_offset"][v]), int(g["window_count"][v])
        out[str(vid)] = {
            "row": v,
            "clips": clips[v],
            "static": static[v],
            "windows": windows[lo : lo + n],
            "window_start": starts[lo : lo + n],
            "clip_start": np.asarray(g["clip_start"][v]),
            "split": str(g["split"][v]),
            "action": int(g["action"][v]),
            "skin": int(g["attr_skin"][v]),
        }
    return out


def test_h5_reads_back_equal(sanitized_store, tmp_path):
    result = export(sanitized_store, "h5", tmp_path / "h5")
    expected = _store_videos(sanitized_store)
    assert result.videos == len(expected) and result.skipped == 2
    with h5py.File(tmp_path / "h5" / "features.h5", "r") as f:
        root = {k for k, v in f.items() if isinstance(v, h5py.Dataset)}
        assert root == set(expected)  # failed videos are not exported
        for vid, video in expected.items():
            np.testing.assert_array_equal(f[vid][()], video["clips"])
            np.testing.assert_array_equal(f["static"][vid][()], video["static"])
            assert f[vid].attrs["split"] == video["split"]
            np.testing.assert_array_equal(f[vid].attrs["clip_start"], video["clip_start"])
            if len(video["windows"]):
                np.testing.assert_array_equal(f["windows"][vid][()], video["windows"])
                np.testing.assert_array_equal(
                    f["windows"][vid].attrs["window_start"], video["window_start"]
                )
            else:
                assert vid not in f["windows"]
        assert json.loads(f.attrs["anon_store"])["kind"] == "sanitized"
    summary = json.loads((tmp_path / "h5" / "export.json").read_text())
    assert summary["videos"] == len(expected) and summary["store"]["kind"] == "sanitized"


def test_npy_reads_back_equal(sanitized_store, tmp_path):
    export(sanitized_store, "npy", tmp_path / "npy")
    out = tmp_path / "npy"
    expected = _store_videos(sanitized_store)
    assert {p.stem for p in (out / "clips").glob("*.npy")} == set(expected)
    records = [json.loads(line) for line in (out / "videos.jsonl").read_text().splitlines()]
    assert [r["video_id"] for r in records] == list(expected)
    database = json.loads((out / "annotations.json").read_text())["database"]
    for record in records:
        video = expected[record["video_id"]]
        np.testing.assert_array_equal(
            np.load(out / "clips" / f"{record['video_id']}.npy"), video["clips"]
        )
        np.testing.assert_array_equal(
            np.load(out / "static" / f"{record['video_id']}.npy"), video["static"]
        )
        assert record["action"] == video["action"]
        assert record["attributes"]["skin"] == video["skin"]
        assert record["window_start"] == video["window_start"].tolist()
        if len(video["windows"]):
            feats = np.load(out / "windows" / f"{record['video_id']}.npy")  # [T, C]
            np.testing.assert_array_equal(feats, video["windows"])
            entry = database[record["video_id"]]
            assert entry["feat_stride"] == 8 and entry["subset"] == record["split"]
            assert [a["segment_frames"] for a in entry["annotations"]] == [
                s[:2] for s in record["segments"]
            ]
        else:
            assert record["video_id"] not in database


def test_parquet_reads_back_equal(sanitized_store, tmp_path):
    export(sanitized_store, "parquet", tmp_path / "pq")
    expected = _store_videos(sanitized_store)
    for name, key, start in (
        ("clips", "clips", "clip_start"),
        ("static", "static", None),
        ("windows", "windows", "window_start"),
    ):
        table = pq.read_table(tmp_path / "pq" / f"{name}.parquet")
        assert b"anon_store" in table.schema.metadata
        rows = table.to_pydict()
        ids = np.array(rows["video_id"])
        for vid, video in expected.items():
            mask = ids == vid
            got = np.array([rows["feature"][i] for i in np.flatnonzero(mask)], np.float32)
            want = video[key]
            np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=f"{name} {vid}")
            assert list(np.array(rows["clip"])[mask]) == list(range(len(want)))
            assert set(np.array(rows["action"])[mask]) <= {video["action"]}
            assert set(np.array(rows["attr_skin"])[mask]) <= {video["skin"]}
            if start:
                np.testing.assert_array_equal(np.array(rows["start_frame"])[mask], video[start])


@pytest.mark.parametrize("fmt", ["h5", "npy", "parquet"])
def test_export_memory_does_not_grow_with_the_store(tmp_path, fmt):
    stores = {
        n: make_raw_store(tmp_path / f"raw-{n}.zarr", videos=n, dim=256, failed=())
        for n in (40, 160)
    }  # 4x the videos, same chunks (5 videos)
    export(stores[40].url, fmt, tmp_path / "warm-up")  # imports and caches out of the way
    peaks, sizes = [], []
    for n, store in stores.items():
        group = zarr.open_group(store.url, mode="r")
        names = ("clip_features", "static_features", "window_features")
        sizes.append(sum(group[name].nbytes for name in names))
        tracemalloc.start()
        try:
            export(store.url, fmt, tmp_path / f"{fmt}-{n}")
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    # Only per-video metadata (ids, status, file indexes) may grow, not the features.
    # A non-streaming export would grow by the whole difference; allow a quarter for metadata.
    assert peaks[1] - peaks[0] < 0.25 * (sizes[1] - sizes[0]), (peaks, sizes)


def test_bad_requests_are_refused(sanitized_store, tmp_path):
    with pytest.raises(ConfigError, match="format"):
        export(sanitized_store, "csv", tmp_path / "x")
    export(sanitized_store, "h5", tmp_path / "h5")
    with pytest.raises(StoreError, match="overwrite"):
        export(sanitized_store, "h5", tmp_path / "h5")
    export(sanitized_store, "h5", tmp_path / "h5", overwrite=True)
    incomplete = make_raw_store(tmp_path / "incomplete.zarr", complete=False)
    with pytest.raises(StoreError, match="not complete"):
        export(incomplete.url, "npy", tmp_path / "npy")
    zarr.open_group(str(sanitized_store), mode="r+")["video_id"][0] = "static"
    with pytest.raises(StoreError, match="cannot name"):
        export(sanitized_store, "h5", tmp_path / "h5-bad")
    assert not (tmp_path / "h5-bad").exists()
