"""Writing stores: create the layout, commit shards atomically, resume, and mark complete last."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.errors import ZarrUserWarning

import pipeline
from pipeline.errors import StoreError
from pipeline.store.layout import StoreLayout
from pipeline.store.location import StoreLocation
from store_schema import (
    ATTRS_KEY,
    FEATURE_ARRAYS,
    SCHEMA_ID,
    SCHEMA_VERSION,
    SEGMENT_TABLE,
    VIDEO_PENDING,
    VIDEO_TABLE,
    ArraySpec,
    attribute_spec,
)

log = logging.getLogger(__name__)

FILL_VALUES = {"float32": np.nan, "int8": -1, "int16": -1, "int32": -1, "int64": -1}
"""Unwritten chunks read back as these: NaN features, -1 indices (= padding / unknown)."""


@dataclass(frozen=True)
class StoreCodecs:
    """Codecs of the arrays; every chunk carries a crc32c checksum so corruption is detected."""

    feature_compression: str = "none"
    """'none' or 'zstd' for embedding arrays (embeddings barely compress: zstd saves ~8%)."""
    zstd_level: int = 1
    """zstd level where zstd is used."""

    def compressors(self, spec: ArraySpec) -> list:
        if spec.features and self.feature_compression == "none":
            return [Crc32cCodec()]
        return [ZstdCodec(level=self.zstd_level), Crc32cCodec()]

    def to_json(self) -> dict:
        return {"feature_compression": self.feature_compression, "zstd_level": self.zstd_level}


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def base_attrs(kind: str, fingerprint: str, provenance: str) -> dict[str, Any]:
    """Root attrs common to every store, in status 'creating'."""
    return {
        "schema": SCHEMA_ID,
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "status": "creating",
        "store_id": uuid.uuid4().hex,
        "fingerprint": fingerprint,
        "created_at": utc_now(),
        "producer": {"name": "anon-store", "version": pipeline.__version__},
        "provenance": provenance,
    }


def read_attrs(group: zarr.Group) -> dict[str, Any] | None:
    """The anon-store root attrs of `group`, or None if it is not an anon-store store."""
    meta = dict(group.attrs).get(ATTRS_KEY)
    return dict(meta) if isinstance(meta, Mapping) else None


def update_attrs(group: zarr.Group, **changes: Any) -> dict[str, Any]:
    meta = read_attrs(group) or {}
    meta.update(changes)
    group.attrs[ATTRS_KEY] = meta
    return meta


def discard_store(location: StoreLocation) -> None:
    """Delete the store at `location` before writing it afresh.

    Its status is set back to 'creating' first: deleting many objects is not atomic, and a reader
    opening the store midway must not take a half-deleted store for a complete one.
    """
    try:
        group = location.open_group("r+")
        if read_attrs(group) is not None:
            update_attrs(group, status="creating")
    except StoreError:
        raise
    except Exception as error:  # unreadable metadata: no reader can take it for complete either
        log.debug("%s: status not reset before removal (%s)", location, error)
    location.remove()


def _chunks_for(spec: ArraySpec, layout: StoreLayout, sizes: dict[str, int]) -> tuple[int, ...]:
    chunk_of = {
        "video": layout.videos_per_chunk,
        "window": layout.window_chunk,
        "segment": max(1, sizes["segment"]),
    }
    return tuple(chunk_of.get(dim, sizes[dim]) for dim in spec.dims)


def table_specs(attribute_names: list[str]) -> list[ArraySpec]:
    """Every non-feature array: the videos table with its attributes, indices and segments."""
    specs = list(VIDEO_TABLE) + [attribute_spec(name) for name in attribute_names]
    specs += [spec for spec in FEATURE_ARRAYS if not spec.features] + list(SEGMENT_TABLE)
    return specs


def create_store(
    location: StoreLocation,
    meta: dict[str, Any],
    layout: StoreLayout,
    tables: Mapping[str, np.ndarray],
    codecs: StoreCodecs,
    *,
    num_segments: int | None = None,
) -> zarr.Group:
    """Create a store with every array; `tables` are written now, the rest shard by shard.

    The group starts in status 'creating' and moves to 'writing' only once all arrays exist, so a
    store interrupted while being created is recognised and recreated from scratch.
    `num_segments` sizes the segment arrays when `tables` lacks ``segment_video`` (a caller that
    writes every array chunk by chunk, e.g. sanitize, passes no tables at all).
    """
    attribute_names = list(meta["dataset"]["attributes"])
    sizes = {
        "video": layout.num_videos,
        "clip": layout.clips_per_video,
        "static": layout.static_clips,
        "feature": layout.feature_dim,
        "window": layout.num_windows,
        "segment": len(tables["segment_video"]) if num_segments is None else num_segments,
    }
    group = location.open_group("w")
    group.attrs[ATTRS_KEY] = {**meta, "status": "creating", "layout": layout.to_json()}
    specs = [spec for spec in FEATURE_ARRAYS if spec.features] + table_specs(attribute_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ZarrUserWarning)
        for spec in specs:
            shape = tuple(sizes[dim] for dim in spec.dims)
            kwargs: dict[str, Any] = {
                "shape": shape,
                "chunks": _chunks_for(spec, layout, sizes),
                "dimension_names": spec.dims,
                "compressors": codecs.compressors(spec),
            }
            if spec.dtype == "str":
                kwargs.update(dtype=str, fill_value="")
            else:
                fill = FILL_VALUES[spec.dtype] if spec.fill is None else spec.fill
                kwargs.update(dtype=spec.dtype, fill_value=fill)
            array = group.create_array(spec.name, **kwargs)
            if spec.name not in tables:  # written shard by shard
                continue
            values = np.asarray(tables[spec.name])
            if values.shape != shape:
                raise StoreError(f"table '{spec.name}' has shape {values.shape}, expected {shape}")
            if values.size:
                array[...] = values
    update_attrs(group, status="writing", codecs=codecs.to_json())
    return group


def shard_committed(group: zarr.Group, layout: StoreLayout) -> np.ndarray:
    """bool [shard]: shards whose videos all have a final status (ok or failed)."""
    done = np.zeros(layout.num_shards, dtype=bool)
    status = group["status"]
    for shard in range(layout.num_shards):
        videos = layout.shard_videos(shard)
        try:
            values = np.asarray(status[videos.start : videos.stop])
        except Exception as error:  # a chunk torn by a kill mid-write: redo the shard
            log.warning("status of shard %d unreadable (%s): redoing it", shard, error)
            continue
        done[shard] = len(values) > 0 and bool((values != VIDEO_PENDING).all())
    return done


@dataclass(frozen=True)
class ShardResult:
    """Everything one shard writes: embeddings, then per-video status (the commit marker)."""

    shard: int
    clip_features: np.ndarray
    """float32 [videos, clip, feature]."""
    clip_start: np.ndarray
    """int32 [videos, clip]."""
    static_frame: np.ndarray
    """int32 [videos, static]."""
    static_features: np.ndarray
    """float32 [videos, static, feature]."""
    window_features: np.ndarray
    """float32 [shard window rows incl. padding, feature]."""
    status: np.ndarray
    """int8 [videos]: ok or failed."""
    failure_reason: np.ndarray
    """str [videos]."""


def commit_shard(group: zarr.Group, layout: StoreLayout, result: ShardResult) -> None:
    """Write a shard's chunks; status goes last so a torn write is never taken as committed."""
    videos = layout.shard_videos(result.shard)
    windows = layout.shard_windows(result.shard)
    group["clip_features"][videos.start : videos.stop] = result.clip_features
    group["clip_start"][videos.start : videos.stop] = result.clip_start
    if layout.static_clips:
        group["static_features"][videos.start : videos.stop] = result.static_features
        group["static_frame"][videos.start : videos.stop] = result.static_frame
    if len(windows):
        group["window_features"][windows.start : windows.stop] = result.window_features
    group["failure_reason"][videos.start : videos.stop] = result.failure_reason
    group["status"][videos.start : videos.stop] = result.status


def finalize_store(location: StoreLocation, group: zarr.Group, **extra: Any) -> dict[str, Any]:
    """Mark the store complete (last write of the data) and consolidate metadata for readers."""
    meta = update_attrs(group, status="complete", completed_at=utc_now(), **extra)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ZarrUserWarning)
        zarr.consolidate_metadata(location.zarr_store(), zarr_format=3)
    return meta
