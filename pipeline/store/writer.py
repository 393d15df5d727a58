"""Writing stores: create the layout, commit shards atomically, resume, and mark complete last."""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.errors import ZarrUserWarning

import pipeline
from pipeline.errors import StoreError
from pipeline.store.layout import StoreLayout
from pipeline.store.location import StoreLocation
from pipeline.store.permissions import private_directory, restrict_tree
from store_schema import (
    ATTRS_KEY,
    FEATURE_ARRAYS,
    PADDED_PREFIX,
    PADDED_WINDOW_ARRAYS,
    SCHEMA_ID,
    SCHEMA_VERSION,
    SEGMENT_TABLE,
    VIDEO_PENDING,
    VIDEO_TABLE,
    ArraySpec,
    attribute_spec,
    decode_meta,
    frame_label_specs,
    label_flags,
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
    """The anon-store metadata of `group`, or None if it is not an anon-store store."""
    return decode_meta(dict(group.attrs).get(ATTRS_KEY))


def write_attrs(group: zarr.Group, meta: Mapping[str, Any]) -> None:
    """Store the metadata object as one JSON string: flat root attrs that netCDF writers and
    every zarr reader accept (a nested object made `ds.to_netcdf` fail)."""
    group.attrs[ATTRS_KEY] = json.dumps(meta, default=str, separators=(",", ":"))


def update_attrs(group: zarr.Group, **changes: Any) -> dict[str, Any]:
    meta = read_attrs(group) or {}
    meta.update(changes)
    write_attrs(group, meta)
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


def table_specs(dataset: Mapping[str, Any]) -> list[ArraySpec]:
    """Every non-feature array of a store with metadata ``dataset``: the videos table with its
    attributes, clip indices, frame-level labels of static clips, windows and segments."""
    specs = list(VIDEO_TABLE) + attribute_specs(dataset)
    specs += [spec for spec in FEATURE_ARRAYS if not spec.features] + frame_label_specs(dataset)
    return specs + list(SEGMENT_TABLE)


def array_attributes(spec: ArraySpec, dataset: Mapping[str, Any]) -> dict[str, Any]:
    """An array's attrs: its schema doc, plus class names where its ints are action labels."""
    if spec.name == "action":
        spec = replace(spec, flags=label_flags(list(dataset.get("actions") or [])))
    return spec.attributes()


def attribute_specs(dataset: Mapping[str, Any]) -> list[ArraySpec]:
    """The ``attr_*`` columns of `dataset` (the metadata's dataset object), coded by value names."""
    attributes = dataset.get("attributes") or {}
    return [
        attribute_spec(name, tuple((info or {}).get("values") or ()))
        for name, info in attributes.items()
    ]


def new_array(
    group: zarr.Group,
    name: str,
    spec: ArraySpec,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    codecs: StoreCodecs,
    dataset: Mapping[str, Any],
) -> zarr.Array:
    """Create (or replace) array `name` of `spec`'s dtype, dims, codecs and attrs."""
    kwargs: dict[str, Any] = {
        "shape": shape,
        "chunks": chunks,
        "dimension_names": spec.dims,
        "compressors": codecs.compressors(spec),
        "attributes": array_attributes(spec, dataset),
        "overwrite": True,
    }
    if spec.dtype == "str":
        kwargs.update(dtype=str, fill_value="")
    else:
        fill = FILL_VALUES[spec.dtype] if spec.fill is None else spec.fill
        kwargs.update(dtype=spec.dtype, fill_value=fill)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ZarrUserWarning)
        return group.create_array(name, **kwargs)


def window_name(name: str, layout: StoreLayout) -> str:
    """Where window array `name` is written while the store is being filled shard by shard."""
    return PADDED_PREFIX + name if layout.padded and name in PADDED_WINDOW_ARRAYS else name


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
    writes every array chunk by chunk, e.g. sanitize, passes no tables at all). With a padded
    layout the window arrays are written under their ``_padded_`` names until `finalize_store`.
    """
    if "video_id" in tables and "video" not in tables:
        tables = {**tables, "video": tables["video_id"]}
    dataset = meta.get("dataset") or {}
    sizes = {
        "video": layout.num_videos,
        "clip": layout.clips_per_video,
        "static": layout.static_clips,
        "feature": layout.feature_dim,
        "window": layout.num_windows,
        "segment": len(tables["segment_video"]) if num_segments is None else num_segments,
    }
    if meta.get("kind") == "raw" and location.is_local:
        private_directory(location.url)  # before the first file: nothing is ever world-readable
    group = location.open_group("w")
    layout_json = {**layout.to_json(), "num_segments": sizes["segment"]}
    write_attrs(group, {**meta, "status": "creating", "layout": layout_json})
    specs = [spec for spec in FEATURE_ARRAYS if spec.features] + table_specs(dataset)
    for spec in specs:
        shape = tuple(sizes[dim] for dim in spec.dims)
        array = new_array(
            group, window_name(spec.name, layout), spec, shape, _chunks_for(spec, layout, sizes),
            codecs, dataset,
        )  # fmt: skip
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
    static_labels: dict[str, np.ndarray] = field(default_factory=dict)
    """Array name (``static_attr_<name>``) -> int16 [videos, static]: frame-level labels."""
    clips_encoded: int = 0
    """Clips the encoder embedded for this shard (not written)."""


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
        target = window_name("window_features", layout)
        group[target][windows.start : windows.stop] = result.window_features
    for name, labels in result.static_labels.items():
        group[name][videos.start : videos.stop] = labels
    group["failure_reason"][videos.start : videos.stop] = result.failure_reason
    group["status"][videos.start : videos.stop] = result.status


def compact_windows(group: zarr.Group, codecs: StoreCodecs) -> None:
    """Move the window rows of a shard-padded store into compact ``window_*`` arrays.

    Idempotent and safe to interrupt: the padded arrays are removed only after the compact ones
    and the new offsets are written, ``_padded_window_video`` (the marker) last.
    """
    padded = {name: PADDED_PREFIX + name for name in PADDED_WINDOW_ARRAYS}
    stored = set(group.array_keys())
    if padded["window_video"] not in stored:
        return
    if padded["window_features"] in stored:
        owner = np.asarray(group[padded["window_video"]][:])
        keep = np.flatnonzero(owner >= 0)
        counts = np.asarray(group["window_count"][:], dtype=np.int64)
        if len(keep) != int(counts.sum()):
            raise StoreError(
                f"{len(keep)} window rows are owned by videos but window_count sums to "
                f"{int(counts.sum())}: the store is inconsistent; rerun with --overwrite"
            )
        meta = read_attrs(group) or {}
        dataset = meta.get("dataset") or {}
        source = group[padded["window_features"]]
        chunk = max(1, min(int(source.chunks[0]), len(keep)))
        specs = {spec.name: spec for spec in FEATURE_ARRAYS}
        for name in PADDED_WINDOW_ARRAYS:
            src = group[padded[name]]
            shape = (len(keep), *src.shape[1:])
            dst = new_array(
                group, name, specs[name], shape, (chunk, *src.shape[1:]), codecs, dataset
            )
            for lo in range(0, len(keep), chunk):
                rows = keep[lo : lo + chunk]
                block = np.asarray(src[int(rows[0]) : int(rows[-1]) + 1])
                dst[lo : lo + len(rows)] = block[rows - rows[0]]
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        if len(offsets):
            group["window_offset"][:] = offsets
        layout = dict(meta.get("layout") or {})
        layout.update(num_windows=len(keep), window_chunk=chunk)
        update_attrs(group, layout=layout)
    for name in ("window_features", "window_start", "window_video"):
        if padded[name] in set(group.array_keys()):
            del group[padded[name]]


CONTENT_EVENTS = ("created", "imported", "sanitized", "appended")
"""History operations that change a store's content: each one bumps its version."""


def with_event(meta: Mapping[str, Any], op: str, **details: Any) -> dict[str, Any]:
    """`meta` with one more history entry (append-only) and, for content changes, the next
    version. Entries: {version, op, at, producer version, details...}."""
    version = int(meta.get("version") or 0)
    if op in CONTENT_EVENTS:
        version += 1
    entry = {"version": version, "op": op, "at": utc_now(), "anon_store": pipeline.__version__}
    history = [*list(meta.get("history") or []), {**entry, **details}]
    return {**meta, "version": version, "history": history}


def consolidate(location: StoreLocation) -> None:
    """(Re)write the consolidated metadata that readers open the store through."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ZarrUserWarning)
        zarr.consolidate_metadata(location.zarr_store(), zarr_format=3)


def finalize_store(
    location: StoreLocation,
    group: zarr.Group,
    event: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Compact shard-padded window rows, record `event` ({"op": ..., details}; default
    "created") in the history, mark the store complete (the last write of the data) and
    consolidate metadata for readers."""
    compact_windows(group, StoreCodecs(**((read_attrs(group) or {}).get("codecs") or {})))
    event = dict(event or {"op": "created"})
    meta = with_event(read_attrs(group) or {}, event.pop("op"), **event)
    meta.update(status="complete", completed_at=utc_now(), **extra)
    write_attrs(group, meta)
    consolidate(location)
    if meta.get("kind") == "raw" and location.is_local:
        restrict_tree(location.url)
    return meta
