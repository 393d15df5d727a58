"""Upgrade a complete store written under an older schema version to the current one, in place."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from pipeline.errors import StoreError
from pipeline.store.location import StoreLocation
from pipeline.store.lock import StoreLock
from pipeline.store.writer import (
    StoreCodecs,
    array_attributes,
    attribute_specs,
    finalize_store,
    new_array,
    read_attrs,
    update_attrs,
    write_attrs,
)
from store_schema import (
    ALL_ARRAYS,
    LEGACY_VERSIONS,
    PADDED_PREFIX,
    PADDED_WINDOW_ARRAYS,
    SCHEMA_VERSION,
    VIDEO_COORD,
    validate,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MigrationResult:
    """What `migrate_store` did."""

    store: str
    from_version: int
    to_version: int
    padding_rows_removed: int
    """Window rows that were shard padding (all-NaN, window_video -1) and are gone now."""


def migrate_store(
    store: str | Path, *, break_lock: bool = False, storage_options: dict | None = None
) -> MigrationResult:
    """Upgrade the complete store at `store` to the current schema; resumable if interrupted.

    v1 -> v2: the ``video`` coordinate, per-array attrs, window rows compacted (padding removed),
    the metadata as a JSON string. Feature values are copied bit for bit.
    """
    location = StoreLocation.parse(store, storage_options)
    if not location.exists():
        raise StoreError(f"no store at {location}")
    with StoreLock(location, break_lock=break_lock) as lock:
        # Not through consolidated metadata: it lists the v1 arrays only, and the first attrs
        # write below drops it, so readers relying on it stop seeing a 'complete' v1 store.
        group = zarr.open_group(location.zarr_store(), mode="r+", use_consolidated=False)
        meta = read_attrs(group)
        if meta is None:
            raise StoreError(f"{location} is not an anon-store feature store")
        version = meta.get("schema_version")
        resuming = (
            version == SCHEMA_VERSION
            and "migrated_from" in meta
            and meta.get("status") != "complete"
        )
        if version == SCHEMA_VERSION and not resuming:
            raise StoreError(
                f"{location} already has store schema v{SCHEMA_VERSION}: nothing to do"
            )
        if not resuming:
            if version not in LEGACY_VERSIONS:
                raise StoreError(f"{location} has store schema v{version!r}: no migration known")
            if meta.get("status") != "complete":
                raise StoreError(
                    f"{location} is an incomplete v{version} store (status "
                    f"{meta.get('status')!r}): re-extract it, no migration for half-written stores"
                )
            # From here on the store is a v2 store being written: readers refuse it until the end.
            meta.update(status="writing", schema_version=SCHEMA_VERSION, migrated_from=version)
            write_attrs(group, meta)
        codecs = StoreCodecs(**(meta.get("codecs") or {}))
        padding = _stage_padded_windows(group, codecs)
        _describe_arrays(group, meta, codecs)
        # v1 layouts lack the segment count, which appends and incremental sanitize read.
        layout = {**(read_attrs(group) or {}).get("layout", {})}
        layout["num_segments"] = int(group["segment_video"].shape[0])
        update_attrs(group, layout=layout)
        lock.verify()
        event = {"op": "migrated", "from_schema": meta["migrated_from"]}
        meta = finalize_store(location, group, event, migrated_from=meta["migrated_from"])
    problems = validate(location.url, storage_options=storage_options)
    if problems:
        raise StoreError(f"{location}: migrated store fails validation: {problems[0]}")
    log.info("%s migrated to schema v%d (%d padding rows removed)", location.name, SCHEMA_VERSION,
             padding)  # fmt: skip
    return MigrationResult(str(location), int(meta["migrated_from"]), SCHEMA_VERSION, padding)


def _stage_padded_windows(group: zarr.Group, codecs: StoreCodecs) -> int:
    """Copy padded v1 window arrays to their ``_padded_`` names (finalize compacts them).

    ``_padded_window_video`` is copied last and marks a finished copy; the originals are removed
    only after it, so an interrupted copy is redone from intact originals.
    """
    marker = PADDED_PREFIX + "window_video"
    copied = marker in set(group.array_keys())
    owner = np.asarray(group[marker if copied else "window_video"][:])
    padding = int((owner < 0).sum())
    if padding == 0:
        return 0
    if not copied:
        for name in ("window_features", "window_start", "window_video"):  # the marker last
            _copy_array(group, name, PADDED_PREFIX + name, codecs)
    for name in set(PADDED_WINDOW_ARRAYS) & set(group.array_keys()):
        del group[name]
    return padding


def _copy_array(group: zarr.Group, source: str, target: str, codecs: StoreCodecs) -> None:
    src = group[source]
    spec = next(spec for spec in ALL_ARRAYS if spec.name == source)
    dst = new_array(group, target, spec, src.shape, src.chunks, codecs, {})
    rows = max(1, int(src.chunks[0]))
    for lo in range(0, src.shape[0], rows):
        dst[lo : lo + rows] = src[lo : lo + rows]


def _describe_arrays(group: zarr.Group, meta: dict, codecs: StoreCodecs) -> None:
    """Write the ``video`` coordinate and every array's attrs (docs, flags, label names)."""
    dataset = meta.get("dataset") or {}
    stored = set(group.array_keys())
    if VIDEO_COORD.name not in stored:
        ids = group["video_id"]
        coord = new_array(
            group, VIDEO_COORD.name, VIDEO_COORD, ids.shape, ids.chunks, codecs, dataset
        )
        coord[...] = np.asarray(ids[:])
    specs = list(ALL_ARRAYS) + attribute_specs(dataset)
    stored = set(group.array_keys())
    for spec in specs:
        if spec.name in stored:
            group[spec.name].update_attributes(array_attributes(spec, dataset))
