"""Reading stores: open with checks on kind and status, the videos table, features by split."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import zarr

import pipeline
from pipeline.errors import StoreError
from pipeline.store.location import StoreLocation
from pipeline.store.writer import read_attrs
from store_schema import ATTRIBUTE_PREFIX, LEGACY_VERSIONS, SCHEMA_VERSION, VIDEO_OK, VIDEO_TABLE


@dataclass(frozen=True, eq=False)
class FeatureStore:
    """An opened anon-store store (raw or sanitized)."""

    location: StoreLocation
    group: zarr.Group
    meta: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.meta.get("kind"))

    @property
    def status(self) -> str:
        return str(self.meta.get("status"))

    @property
    def store_id(self) -> str:
        return str(self.meta.get("store_id"))

    @property
    def encoder(self) -> dict[str, Any]:
        return dict(self.meta.get("encoder") or {})

    @property
    def feature_dim(self) -> int:
        return int(self.group["clip_features"].shape[-1])

    @property
    def attribute_names(self) -> list[str]:
        return list((self.meta.get("dataset") or {}).get("attributes") or {})

    @property
    def num_videos(self) -> int:
        return int(self.group["video_id"].shape[0])

    @cached_property
    def videos(self) -> dict[str, np.ndarray]:
        """The videos table as numpy columns (attributes under their plain names' attr_ keys)."""
        names = [spec.name for spec in VIDEO_TABLE]
        names += [f"{ATTRIBUTE_PREFIX}{name}" for name in self.attribute_names]
        return {name: np.asarray(self.group[name][:]) for name in names}

    def rows(self, split: str | None = None, *, ok_only: bool = True) -> np.ndarray:
        """Video rows of `split` (all splits if None), in store order, optionally only ok ones."""
        mask = np.ones(self.num_videos, dtype=bool)
        if split is not None:
            mask &= self.videos["split"] == split
        if ok_only:
            mask &= self.videos["status"] == VIDEO_OK
        return np.flatnonzero(mask)

    def splits(self) -> list[str]:
        return sorted({str(s) for s in self.videos["split"]})

    def read_rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Rows of a video-dimension array, read contiguously then indexed (fast on zarr)."""
        if len(rows) == 0:
            shape = self.group[name].shape[1:]
            return np.empty((0, *shape), dtype=self.group[name].dtype)
        lo, hi = int(rows.min()), int(rows.max()) + 1
        block = np.asarray(self.group[name][lo:hi])
        return block[rows - lo]

    def size_bytes(self) -> int:
        fs, path = self.location.filesystem()
        try:
            return int(fs.du(path, total=True))
        except Exception:
            return -1


def open_store(
    location: str | Path | StoreLocation,
    *,
    kind: str | None = None,
    require_complete: bool = True,
    storage_options: dict | None = None,
) -> FeatureStore:
    """Open a store for reading; one-line StoreError if missing, foreign, incomplete, wrong kind."""
    loc = (
        location
        if isinstance(location, StoreLocation)
        else StoreLocation.parse(location, storage_options)
    )
    if not loc.exists():
        raise StoreError(f"no store at {loc}")
    try:
        group = loc.open_group("r")
    except Exception as error:
        raise StoreError(f"{loc} is not a zarr v3 store: {type(error).__name__}: {error}") from None
    meta = read_attrs(group)
    if meta is None:
        raise StoreError(f"{loc} is a zarr group but not an anon-store feature store")
    version = meta.get("schema_version")
    if version in LEGACY_VERSIONS:
        raise StoreError(
            f"{loc} has store schema v{version}; this anon-store reads v{SCHEMA_VERSION}: "
            f"upgrade it in place with `anon-store migrate {loc}` (or re-extract it)"
        )
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{loc} has store schema v{version!r}, which this anon-store "
            f"({pipeline.__version__}) cannot read (it reads v{SCHEMA_VERSION})"
        )
    if kind is not None and meta.get("kind") != kind:
        raise StoreError(f"{loc} is a {meta.get('kind')} store, expected a {kind} store")
    if require_complete and meta.get("status") != "complete":
        raise StoreError(
            f"{loc} is not complete (status {meta.get('status')!r}): finish or rerun the stage "
            "that writes it"
        )
    return FeatureStore(loc, group, meta)
