"""The public read API: metadata, audit, xarray, and the torch Dataset (with DataLoader workers)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from pipeline.errors import ConfigError, StoreError
from pipeline.interop import FeatureDataset, open_dataset, read_audit, store_metadata
from pipeline.store.writer import update_attrs
from store_schema import VIDEO_OK


def _arrays(store):
    group = zarr.open_group(str(store), mode="r")
    names = ("split", "status", "clip_features", "static_features", "action", "video_id")
    return {name: np.asarray(group[name][:]) for name in names}


def test_clip_items_are_the_store_values_of_ok_videos(sanitized_store):
    data = _arrays(sanitized_store)
    dataset = FeatureDataset(sanitized_store, split="train")
    rows = np.flatnonzero((data["split"] == "train") & (data["status"] == VIDEO_OK))
    clips = data["clip_features"].shape[1]
    assert len(dataset) == len(rows) * clips > 0
    for index in (0, clips + 1, len(dataset) - 1, -1):
        item = dataset[index]
        row, clip = rows[(index % len(dataset)) // clips], (index % len(dataset)) % clips
        np.testing.assert_array_equal(item["features"].numpy(), data["clip_features"][row, clip])
        assert item["video"] == row and item["video_id"] == data["video_id"][row]
        assert item["action"] == data["action"][row]
    assert len(item["attributes"]) == len(dataset.attribute_names)
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_video_level_and_static_clips(sanitized_store):
    data = _arrays(sanitized_store)
    videos = FeatureDataset(sanitized_store, level="video", static=True)
    ok = np.flatnonzero(data["status"] == VIDEO_OK)
    assert len(videos) == len(ok)
    item = videos[3]
    np.testing.assert_array_equal(item["features"].numpy(), data["static_features"][ok[3]])


def test_dataloader_workers_give_the_same_batches(sanitized_store):
    dataset = FeatureDataset(sanitized_store, cache_chunks=1)
    here = torch.cat([b["features"] for b in torch.utils.data.DataLoader(dataset, batch_size=7)])
    loader = torch.utils.data.DataLoader(dataset, batch_size=7, num_workers=2)
    there = torch.cat([b["features"] for b in loader])
    assert torch.equal(here, there) and len(here) == len(dataset)


def test_bad_arguments_are_one_line_errors(sanitized_store, tmp_path):
    with pytest.raises(ConfigError, match="no split"):
        FeatureDataset(sanitized_store, split="nope")
    with pytest.raises(ConfigError, match="level"):
        FeatureDataset(sanitized_store, level="frame")
    with pytest.raises(StoreError, match="no store"):
        FeatureDataset(tmp_path / "missing.zarr")


def test_audit_is_none_until_recorded_and_metadata_is_a_dict(sanitized_store):
    assert read_audit(sanitized_store) is None
    meta = store_metadata(sanitized_store)
    assert meta["kind"] == "sanitized" and meta["status"] == "complete"
    update_attrs(zarr.open_group(str(sanitized_store), mode="r+"), audit={"summary": {"x": 1}})
    assert read_audit(sanitized_store) == {"summary": {"x": 1}}


def test_open_dataset_checks_the_store_and_decodes_metadata(sanitized_store):
    ds = open_dataset(sanitized_store)
    assert ds.attrs["anon_store"]["kind"] == "sanitized"
    assert ds["clip_features"].dims == ("video", "clip", "feature")
    update_attrs(zarr.open_group(str(sanitized_store), mode="r+"), status="writing")
    with pytest.raises(StoreError, match="not complete"):
        open_dataset(sanitized_store)
