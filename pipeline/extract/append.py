"""Growing a complete raw store with the new videos of a grown manifest (`extract --append`).

The new videos are extracted into a staging store inside the store (``_append``, a complete raw
store of its own, resumable like any extraction), then committed: every array is grown and the
new rows written after the existing ones, whose values never change, and the metadata (counts,
version, history, fingerprint) is written last. Readers that open the store through its
consolidated metadata (anon-store, xarray and zarr by default) see the previous complete version
until that last write: growing an array keeps its chunk grid, and a partly filled edge chunk is
rewritten with the same values for the existing rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
import zarr

from pipeline.data.clips import ClipSampling
from pipeline.data.manifest import Manifest
from pipeline.encoders.registry import VideoEncoder
from pipeline.errors import StoreError
from pipeline.extract.config import ExtractConfig
from pipeline.extract.plan import ExtractionPlan, plan_extraction, sampling_json
from pipeline.extract.run import ExtractResult, ProgressFn, fill_store
from pipeline.store.layout import recorded_sizes
from pipeline.store.location import StoreLocation
from pipeline.store.lock import StoreLock
from pipeline.store.reader import FeatureStore, open_store
from pipeline.store.writer import consolidate, read_attrs, with_event, write_attrs
from store_schema import VIDEO_FAILED

log = logging.getLogger(__name__)

STAGING = "_append"
"""Child group of the store holding the videos being appended until they are committed."""

COMPARED_COLUMNS = ("split", "kind", "action", "anomalous", "fps", "num_frames", "window_count")
"""Videos-table columns an existing video must keep in the grown manifest (with its attributes
and segments)."""

OFFSET_COLUMNS = {"window_offset": "window", "window_video": "video", "segment_video": "video"}
"""Columns holding row numbers: shifted by the existing row count of that dimension."""


def append_videos(
    location: StoreLocation,
    manifest: Manifest,
    model: VideoEncoder,
    sampling: ClipSampling,
    config: ExtractConfig,
    progress: ProgressFn | None = None,
) -> ExtractResult:
    """Extract the manifest's videos that `location` lacks and append them to it."""
    started = time.perf_counter()
    full = plan_extraction(manifest, sampling, model.hidden_size, model.identity, config)
    with StoreLock(location, break_lock=config.break_lock) as lock:
        store = open_store(location, kind="raw")
        _check_settings(store, full, model, sampling)
        new_ids = _new_videos(store, full, manifest)
        staging = StoreLocation.parse(
            f"{location.url.rstrip('/')}/{STAGING}", location.storage_options
        )
        if not new_ids:
            if staging.exists():  # a commit that finished before its staging store was removed
                _remove_staging(location)
            log.info(
                "%s already holds every video of the manifest: nothing to append", location.name
            )
            return ExtractResult(str(location), "unchanged", 0, 0, 0, 0.0, store.store_id)
        # The staging store keeps the store's chunking, so the commit copies whole chunks.
        layout = store.meta.get("layout") or {}
        staging_config = _with_chunking(config, layout)
        plan = plan_extraction(
            manifest, sampling, model.hidden_size, model.identity, staging_config, only=new_ids
        )
        log.info("appending %d new videos to %s", len(plan.rows), location.name)
        added = fill_store(staging, plan, manifest, model, sampling, staging_config, lock,
                           progress, overwrite=True)  # fmt: skip
        lock.verify()
        meta = _commit(location, staging, manifest)
        _remove_staging(location)
    failed = int(meta["history"][-1]["failed"])
    return ExtractResult(
        output=str(location),
        action="appended",
        videos=len(plan.rows),
        failed=failed,
        clips_encoded=added.clips_encoded,
        seconds=time.perf_counter() - started,
        store_id=store.store_id,
    )


def _with_chunking(config: ExtractConfig, layout: dict[str, Any]) -> ExtractConfig:
    return replace(
        config,
        append=False,
        videos_per_chunk=int(layout.get("videos_per_chunk") or 0) or None,
        window_chunk=int(layout.get("window_chunk") or 0) or None,
    )


def _check_settings(
    store: FeatureStore, full: ExtractionPlan, model: VideoEncoder, sampling: ClipSampling
) -> None:
    """The store must have been made with this encoder, sampling and split selection."""
    meta = store.meta
    differences = []
    if (meta.get("encoder") or {}).get("weights_sha256") != model.identity.get("weights_sha256"):
        differences.append("encoder weights")
    if meta.get("sampling") != json.loads(json.dumps(sampling_json(sampling))):
        differences.append("clip sampling")
    if list((meta.get("dataset") or {}).get("splits") or []) != list(full.splits):
        differences.append(f"splits ({list(full.splits)})")
    if differences:
        verb = "differs" if len(differences) == 1 else "differ"
        raise StoreError(
            f"cannot append to {store.location}: this run's {', '.join(differences)} {verb} from "
            "the store's; append with the store's settings, or rebuild it with --overwrite"
        )


def _new_videos(store: FeatureStore, full: ExtractionPlan, manifest: Manifest) -> set[str]:
    """Ids of the grown manifest's videos the store lacks; refuses removed or changed videos."""
    dataset = store.meta.get("dataset") or {}
    info = manifest.info
    attributes = {n: {"values": list(a.values), "role": a.role} for n, a in info.attributes.items()}
    if (
        list(dataset.get("actions") or []) != list(info.actions)
        or (dataset.get("attributes") or {}) != attributes
        or list(dataset.get("frame_labels") or []) != list(full.frame_labels)
    ):
        raise StoreError(
            f"cannot append to {store.location}: the manifest's action or attribute names (or "
            "its attributes with frame-level labels) differ from the store's; rebuild it with "
            "--overwrite"
        )
    stored = [str(v) for v in store.videos["video_id"]]
    grown = [str(v) for v in full.tables["video_id"]]
    index = {video_id: i for i, video_id in enumerate(grown)}
    removed = [v for v in stored if v not in index]
    if removed:
        raise StoreError(
            f"cannot append to {store.location}: {len(removed)} of its videos are not in the "
            f"manifest (e.g. {removed[0]!r}); removing videos needs a rebuild with --overwrite"
        )
    rows = np.array([index[v] for v in stored], dtype=np.int64)
    columns = list(COMPARED_COLUMNS) + [f"attr_{n}" for n in store.attribute_names]
    for column in columns:
        before = np.asarray(store.videos[column])
        after = np.asarray(full.tables[column])[rows]
        if before.dtype.kind in "fc":
            same = np.isclose(before, after.astype(before.dtype), equal_nan=True)
        else:
            same = np.array([str(b) == str(a) for b, a in zip(before, after, strict=True)])
        if not bool(same.all()):
            first = stored[int(np.flatnonzero(~same)[0])]
            raise StoreError(
                f"cannot append to {store.location}: video {first!r} changed its {column} in the "
                "manifest; changed videos need a rebuild with --overwrite"
            )
    if _segments(store.group, len(stored)) != _plan_segments(full, rows):
        raise StoreError(
            f"cannot append to {store.location}: the manifest changes segments of videos already "
            "in the store; changed videos need a rebuild with --overwrite"
        )
    return set(grown) - set(stored)


def _segments(group: zarr.Group, videos: int) -> list[list[tuple[int, int, int]]]:
    per_video: list[list[tuple[int, int, int]]] = [[] for _ in range(videos)]
    names = ("segment_video", "segment_start", "segment_end", "segment_label")
    columns = [np.asarray(group[name][:]) for name in names]
    for v, start, end, label in zip(*columns, strict=True):
        per_video[int(v)].append((int(start), int(end), int(label)))
    return per_video


def _plan_segments(plan: ExtractionPlan, rows: np.ndarray) -> list[list[tuple[int, int, int]]]:
    by_row: dict[int, list[tuple[int, int, int]]] = {}
    names = ("segment_video", "segment_start", "segment_end", "segment_label")
    for v, start, end, label in zip(*(plan.tables[name] for name in names), strict=True):
        by_row.setdefault(int(v), []).append((int(start), int(end), int(label)))
    return [by_row.get(int(r), []) for r in rows]


def _commit(location: StoreLocation, staging: StoreLocation, manifest: Manifest) -> dict[str, Any]:
    """Grow every array by the staging store's rows; the metadata goes last. Idempotent: the
    existing row counts come from the metadata, which changes only at the very end."""
    group = zarr.open_group(location.zarr_store(), mode="r+", use_consolidated=False)
    meta = read_attrs(group) or {}
    layout = dict(meta.get("layout") or {})
    before = recorded_sizes(meta)
    new = zarr.open_group(staging.zarr_store(read_only=True), mode="r", use_consolidated=False)
    added = {
        "video": int(new["video_id"].shape[0]),
        "window": int(new["window_features"].shape[0]),
        "segment": int(new["segment_video"].shape[0]),
    }
    for name in sorted(group.array_keys()):
        array = group[name]
        dim = (array.metadata.dimension_names or (None,))[0]
        if dim not in before:
            continue
        _grow(array, new[name], before[dim], added[dim], shift=_shift(name, before))
    failed = int((np.asarray(new["status"][:]) == VIDEO_FAILED).sum())
    layout.update(
        num_videos=before["video"] + added["video"],
        num_windows=before["window"] + added["window"],
        num_segments=before["segment"] + added["segment"],
    )
    dataset = {**(meta.get("dataset") or {}), "manifest_sha256": manifest.sha256}
    lineage = {"previous": meta.get("fingerprint"), "manifest_sha256": manifest.sha256}
    meta = with_event(meta, "appended", videos=added["video"], failed=failed)
    meta.update(
        layout=layout,
        dataset=dataset,
        num_failed=int(meta.get("num_failed") or 0) + failed,
        fingerprint=hashlib.sha256(json.dumps(lineage, sort_keys=True).encode()).hexdigest(),
    )
    # The switch: one write of the root document, without consolidated metadata (the group was
    # opened without it), so every reader now sees the grown arrays with their new counts.
    write_attrs(group, meta)
    log.info("appended %d videos (%d failed) to %s", added["video"], failed, location.name)
    return meta


def _shift(name: str, before: dict[str, int]) -> int:
    dim = OFFSET_COLUMNS.get(name)
    return before[dim] if dim else 0


def _grow(array: zarr.Array, source: zarr.Array, start: int, count: int, *, shift: int) -> None:
    """Resize `array` to start + count rows and write `source`'s rows after row `start`."""
    shape = (start + count, *array.shape[1:])
    if tuple(array.shape) != shape:
        array.resize(shape)
    step = max(1, int(array.chunks[0]))
    for lo in range(0, count, step):
        values = np.asarray(source[lo : lo + step])
        if shift:
            values = np.where(values >= 0, values + shift, values)
        array[start + lo : start + lo + len(values)] = values


def _remove_staging(location: StoreLocation) -> None:
    """Delete the staging store, then consolidate: readers' metadata lists the grown arrays."""
    group = zarr.open_group(location.zarr_store(), mode="r+", use_consolidated=False)
    if STAGING in group:
        del group[STAGING]
    consolidate(location)
