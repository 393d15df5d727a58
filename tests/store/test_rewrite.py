"""A store being replaced (--overwrite) is never seen as complete while it is deleted."""

from __future__ import annotations

import shutil

import pytest
import zarr

from pipeline.errors import StoreError
from pipeline.store.location import StoreLocation
from pipeline.store.reader import open_store
from pipeline.store.writer import discard_store
from store_schema import decode_meta


def test_status_leaves_complete_before_anything_is_deleted(raw_store, tmp_path, monkeypatch):
    copy = tmp_path / "raw.zarr"
    shutil.copytree(raw_store, copy)
    seen = []
    remove = StoreLocation.remove

    def observed_remove(self):
        # What a reader opening the store at this moment finds (with consolidated metadata too).
        seen.append(decode_meta(zarr.open_group(str(copy), mode="r").attrs["anon_store"])["status"])
        with pytest.raises(StoreError, match="not complete"):
            open_store(copy)
        remove(self)

    monkeypatch.setattr(StoreLocation, "remove", observed_remove)
    discard_store(StoreLocation.parse(copy))
    assert seen == ["creating"] and not copy.exists()


def test_discarding_unreadable_or_absent_stores(tmp_path):
    broken = tmp_path / "broken.zarr"
    broken.mkdir()
    (broken / "zarr.json").write_text("{not json")
    discard_store(StoreLocation.parse(broken))
    assert not broken.exists()
    discard_store(StoreLocation.parse(tmp_path / "absent.zarr"))
