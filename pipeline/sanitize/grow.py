"""Incremental sanitize: a sanitized store follows its raw store's appends, new rows only.

When the output is a complete sanitized copy of an earlier version of the same raw store, made
with the same adapter and arithmetic, and the raw store has only been appended to since, the
output's arrays are grown to the input's sizes and only the chunks holding new rows are
written (a partly filled edge chunk is recomputed: the kernel is row-wise and deterministic, so
its existing rows come out bit for bit the same). The output keeps its status and consolidated
metadata until completion, so readers see the previous version meanwhile.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from pipeline.aam.checkpoint import LoadedAdapter
from pipeline.sanitize.config import SanitizeConfig
from pipeline.sanitize.units import MARKERS, Family, create_markers, marker_count
from pipeline.store.location import StoreLocation
from pipeline.store.reader import FeatureStore
from pipeline.store.writer import CONTENT_EVENTS, read_attrs

FAMILY_DIMS = {
    "clip_features": "video",
    "static_features": "video",
    "video_table": "video",
    "window_features": "window",
    "window_table": "window",
    "segments": "segment",
}


def growable(
    location: StoreLocation,
    source: FeatureStore,
    loaded: LoadedAdapter,
    config: SanitizeConfig,
    numerics_version: int,
) -> dict[str, Any] | None:
    """The output's metadata if it can follow `source` incrementally (see module doc), else None."""
    if not location.exists():
        return None
    try:
        meta = read_attrs(location.open_group("r"))
    except Exception:  # unreadable: the usual state checks report it
        return None
    if not meta or meta.get("kind") != "sanitized" or meta.get("status") != "complete":
        return None
    arithmetic = meta.get("sanitize") or {}
    same = (
        meta.get("input_store_id") == source.store_id
        and (meta.get("adapter") or {}).get("sha256") == loaded.adapter_hash
        and arithmetic.get("precision") == config.precision
        and arithmetic.get("numerics_version") == numerics_version
    )
    since = int(meta.get("input_version") or 0)
    if not same or since <= 0 or since >= int(source.meta.get("version") or 0):
        return None
    later = [
        entry
        for entry in source.meta.get("history") or []
        if int(entry.get("version") or 0) > since and entry.get("op") in CONTENT_EVENTS
    ]
    return meta if later and all(entry["op"] == "appended" for entry in later) else None


def grow_output(location: StoreLocation, source: FeatureStore) -> zarr.Group:
    """The output opened for writing, every array grown to the input's sizes."""
    group = zarr.open_group(location.zarr_store(), mode="r+", use_consolidated=False)
    sizes = {
        "video": source.num_videos,
        "window": int(source.group["window_features"].shape[0]),
        "segment": int(source.group["segment_video"].shape[0]),
    }
    for name in group.array_keys():
        array = group[name]
        dim = (array.metadata.dimension_names or (None,))[0]
        if dim in sizes and array.shape[0] != sizes[dim]:
            array.resize((sizes[dim], *array.shape[1:]))
    return group


def mark_existing(group: zarr.Group, families: list[Family], old_sizes: dict[str, int]) -> None:
    """Create the chunk markers with every chunk that holds only existing rows marked done
    (unless a previous attempt at this growth already made them)."""
    total = marker_count(families)
    if MARKERS in group.array_keys() and group[MARKERS].shape == (total,):
        return
    done = np.zeros(total, dtype=np.int8)
    for family in families:
        whole = old_sizes[FAMILY_DIMS[family.name]] // family.chunk_rows
        done[family.marker_offset : family.marker_offset + min(whole, family.num_chunks)] = 1
    create_markers(group, total)[:] = done
