"""Fixtures for the interop tests: a raw store, its sanitized copy, and a matching manifest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.data.manifest import DatasetInfo, write_manifest
from pipeline.sanitize import sanitize
from pipeline.store.location import StoreLocation

# The store builders live with the sanitize tests; pytest does not put tests/ on sys.path for
# packages under it, so make the sibling package importable.
if str(Path(__file__).parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parents[1]))
from sanitize.stores import ATTRIBUTES, make_adapter, make_raw_store

INFO = DatasetInfo(name="test", actions=tuple("abcd"), attributes=ATTRIBUTES)


def manifest_for(store: str | Path, path: Path) -> Path:
    """A manifest listing the store's videos with its labels (the video files do not exist)."""
    group = zarr.open_group(str(store), mode="r")
    seg_video = np.asarray(group["segment_video"][:])
    rows = []
    for v, vid in enumerate(group["video_id"][:]):
        segments = [
            {"start": int(s), "end": int(e), "label": int(label)}
            for s, e, label in zip(
                np.asarray(group["segment_start"][:])[seg_video == v],
                np.asarray(group["segment_end"][:])[seg_video == v],
                np.asarray(group["segment_label"][:])[seg_video == v],
                strict=True,
            )
        ]
        rows.append(
            {
                "video_id": str(vid),
                "path": f"videos/{vid}.mp4",
                "split": str(group["split"][v]),
                "kind": str(group["kind"][v]),
                "action": int(group["action"][v]),
                "attr_skin": int(group["attr_skin"][v]),
                "attr_scene": int(group["attr_scene"][v]),
                "fps": float(group["fps"][v]),
                "num_frames": int(group["num_frames"][v]),
                "segments": segments,
            }
        )
    return write_manifest(path, rows, INFO)


@pytest.fixture
def raw_store(tmp_path: Path) -> StoreLocation:
    return make_raw_store(tmp_path / "raw.zarr")


@pytest.fixture
def sanitized_store(raw_store: StoreLocation, tmp_path: Path) -> Path:
    adapter = make_adapter(tmp_path / "adapter")
    sanitize(raw_store.url, adapter, tmp_path / "sanitized.zarr")
    return tmp_path / "sanitized.zarr"
