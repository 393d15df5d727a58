"""Creating, committing, finalising and validating stores built from hand-made tables."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from pipeline.errors import StoreError
from pipeline.store.layout import plan_layout
from pipeline.store.location import StoreLocation
from pipeline.store.reader import open_store
from pipeline.store.writer import (
    ShardResult,
    StoreCodecs,
    base_attrs,
    commit_shard,
    create_store,
    finalize_store,
    shard_committed,
)
from store_schema import ATTRS_KEY, VIDEO_OK, decode_meta, validate

K, S, D = 3, 2, 8


def _tables(layout, n_videos):
    windows = layout.num_windows
    return {
        "video_id": np.array([f"vid-{i}" for i in range(n_videos)], dtype=object),
        "split": np.array(["train", "test"] * (n_videos // 2), dtype=object),
        "kind": np.array(["untrimmed"] * n_videos, dtype=object),
        "action": np.arange(n_videos, dtype=np.int16) % 3,
        "anomalous": np.full(n_videos, -1, dtype=np.int8),
        "fps": np.full(n_videos, 25, dtype=np.float32),
        "num_frames": np.full(n_videos, 48, dtype=np.int32),
        "window_offset": layout.window_offset,
        "window_count": layout.window_count,
        "window_video": layout.window_video(),
        "window_start": np.full(windows, -1, dtype=np.int32),
        "segment_video": np.array([0, 1], dtype=np.int32),
        "segment_start": np.array([0, 4], dtype=np.int32),
        "segment_end": np.array([8, 12], dtype=np.int32),
        "segment_label": np.array([1, 2], dtype=np.int32),
        "attr_skin": np.arange(n_videos, dtype=np.int16) % 4,
    }


def _meta():
    meta = base_attrs("raw", "fp", provenance="extracted")
    meta.update(
        encoder={"name": "test", "hidden_size": D},
        sampling={"clips_per_video": K, "static_clips": S},
        dataset={"name": "t", "attributes": {"skin": {"values": list("abcd"), "role": "person"}}},
    )
    return meta


def _shard(layout, shard, rng):
    videos = layout.shard_videos(shard)
    windows = layout.shard_windows(shard)
    n = len(videos)
    return ShardResult(
        shard=shard,
        clip_features=rng.standard_normal((n, K, D)).astype(np.float32),
        clip_start=np.zeros((n, K), dtype=np.int32),
        static_features=rng.standard_normal((n, S, D)).astype(np.float32),
        static_frame=np.zeros((n, S), dtype=np.int32),
        window_features=rng.standard_normal((len(windows), D)).astype(np.float32),
        status=np.full(n, VIDEO_OK, dtype=np.int8),
        failure_reason=np.array([""] * n, dtype=object),
    )


@pytest.fixture
def built(tmp_path):
    n = 10
    layout = plan_layout(
        np.full(n, 3),
        clips_per_video=K,
        static_clips=S,
        feature_dim=D,
        videos_per_chunk=4,
        window_chunk=5,
    )
    location = StoreLocation.parse(tmp_path / "raw.zarr")
    group = create_store(location, _meta(), layout, _tables(layout, n), StoreCodecs())
    return location, group, layout


def test_incomplete_store_is_reported_and_refused(built):
    location, group, layout = built
    rng = np.random.default_rng(0)
    commit_shard(group, layout, _shard(layout, 0, rng))
    assert shard_committed(group, layout).tolist() == [True, False, False]
    problems = validate(location.url)
    assert problems == []  # a store being written is valid, just not complete
    with pytest.raises(StoreError, match="not complete"):
        open_store(location.url)


def test_complete_store_reads_with_plain_zarr_and_xarray(built):
    location, group, layout = built
    rng = np.random.default_rng(0)
    shards = [_shard(layout, s, rng) for s in range(layout.num_shards)]
    for result in shards:
        commit_shard(group, layout, result)
    finalize_store(location, group)
    assert validate(location.url) == []
    store = open_store(location.url, kind="raw")
    assert store.status == "complete"
    expected = np.concatenate([r.clip_features for r in shards])
    np.testing.assert_array_equal(store.group["clip_features"][:], expected)
    plain = zarr.open_group(location.url, mode="r")
    assert decode_meta(plain.attrs[ATTRS_KEY])["status"] == "complete"
    ds = xr.open_zarr(location.url)
    assert ds["clip_features"].dims == ("video", "clip", "feature")
    np.testing.assert_array_equal(ds["clip_features"].values, expected)
    assert list(ds["video_id"].values[:2]) == ["vid-0", "vid-1"]


def test_validate_reports_a_pending_video_in_a_complete_store(built):
    location, group, layout = built
    for shard in range(layout.num_shards):
        commit_shard(group, layout, _shard(layout, shard, np.random.default_rng(shard)))
    group["status"][3] = 0
    finalize_store(location, group)
    assert any("pending" in problem for problem in validate(location.url))


def test_validate_reports_foreign_group_and_missing_array(tmp_path, built):
    foreign = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w")
    foreign.attrs["x"] = 1
    assert "not an anon-store store" in validate(str(tmp_path / "foreign.zarr"))[0]
    location, group, _ = built
    del group["static_frame"]
    assert "missing array 'static_frame'" in validate(location.url)
    assert validate(str(tmp_path / "nothing-here"))[0].startswith("cannot open store")
