"""sanitize(): apply a trained adapter to every embedding of a raw store into a sanitized store."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from pipeline.aam.checkpoint import LoadedAdapter, load_adapter
from pipeline.errors import AdapterError, AnonStoreError, StoreError
from pipeline.sanitize.config import SanitizeConfig
from pipeline.sanitize.grow import grow_output, growable, mark_existing
from pipeline.sanitize.kernel import AdapterKernel, kernel_for, resolve_device
from pipeline.sanitize.output import check_apart, check_reachable, existing_state
from pipeline.sanitize.schedule import connect, run_distributed, run_local
from pipeline.sanitize.units import (
    MARKERS,
    Family,
    build_units,
    marker_count,
    plan_families,
    read_markers,
)
from pipeline.store.layout import StoreLayout, recorded_sizes
from pipeline.store.location import StoreLocation
from pipeline.store.lock import StoreLock
from pipeline.store.reader import FeatureStore, open_store
from pipeline.store.retry import StoreIOError
from pipeline.store.writer import (
    StoreCodecs,
    base_attrs,
    create_store,
    discard_store,
    finalize_store,
    read_attrs,
)
from store_schema import SCHEMA_VERSION, validate

log = logging.getLogger(__name__)

NUMERICS_VERSION = 2
"""Bumped whenever a change to the kernel could change a stored bit (part of the fingerprint)."""


@dataclass(frozen=True)
class SanitizeProgress:
    """A progress report, sent after every task (a few chunks)."""

    chunks_done: int
    """Output chunk groups written, those of a resumed run's earlier attempt included."""
    chunks_total: int
    bytes_written: int
    """Uncompressed bytes written by this run (features and tables)."""
    seconds: float
    """Since this run started writing; bytes_written / seconds is the throughput."""


@dataclass(frozen=True)
class SanitizeResult:
    """What a sanitize call did."""

    output: str
    action: str
    """created | resumed | unchanged (already complete for the same input and adapter)."""
    store_id: str
    input_store_id: str
    adapter_sha256: str
    videos: int
    chunks_written: int
    chunks_total: int
    bytes_written: int
    seconds: float


ProgressFn = Callable[[SanitizeProgress], None]


def _open_input(location: StoreLocation) -> FeatureStore:
    source = open_store(location, require_complete=True)
    if source.kind != "raw":
        raise StoreError(
            f"{location} is a {source.kind} store: sanitize reads a raw store "
            "(a sanitized store is never sanitized twice)"
        )
    problems = validate(source.group)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StoreError(f"{location} does not match the store schema: {problems[0]}{more}")
    return source


def is_identity(adapter: torch.nn.Module) -> bool:
    """True if every residual branch ends in an all-zero projection (a fresh, untrained adapter
    returns its input exactly)."""
    last = [p for name, p in adapter.named_parameters() if name.split(".")[-2] in ("fc2", "out")]
    return bool(last) and all(not bool(p.detach().any()) for p in last)


def layout_of(source: FeatureStore) -> StoreLayout:
    """The input's layout (shapes and chunks), which the output copies."""
    group = source.group
    clips, static, windows = (
        group[n] for n in ("clip_features", "static_features", "window_features")
    )
    if static.chunks[0] != clips.chunks[0]:
        raise StoreError(
            f"{source.location}: clip and static features are chunked differently "
            f"({clips.chunks[0]} vs {static.chunks[0]} videos): not a v1 layout"
        )
    return StoreLayout(
        num_videos=clips.shape[0],
        clips_per_video=clips.shape[1],
        static_clips=static.shape[1],
        feature_dim=clips.shape[2],
        videos_per_chunk=clips.chunks[0],
        window_chunk=windows.chunks[0],
        window_offset=np.asarray(group["window_offset"][:], dtype=np.int64),
        window_count=np.asarray(group["window_count"][:], dtype=np.int32),
        num_windows=windows.shape[0],
    )


def fingerprint(source: FeatureStore, loaded: LoadedAdapter, config: SanitizeConfig) -> str:
    """What determines the output's values: input store, adapter, arithmetic (not chunking)."""
    identity = {
        "schema_version": SCHEMA_VERSION,
        "input_store_id": source.store_id,
        "input_fingerprint": source.meta.get("fingerprint"),
        "adapter_sha256": loaded.adapter_hash,
        "precision": config.precision,
        "numerics_version": NUMERICS_VERSION,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def sanitized_store_meta(
    source: FeatureStore, loaded: LoadedAdapter, config: SanitizeConfig, fp: str
) -> dict[str, Any]:
    meta = base_attrs("sanitized", fp, provenance="sanitized")
    for key in ("encoder", "sampling", "dataset", "num_failed"):
        if key in source.meta:
            meta[key] = source.meta[key]
    meta.update(
        input_store_id=source.store_id,
        input_fingerprint=source.meta.get("fingerprint"),
        input_version=int(source.meta.get("version") or 0),
        input_provenance=source.meta.get("provenance"),
        adapter={"sha256": loaded.adapter_hash, "config": loaded.config},
        sanitize={
            "precision": config.precision,
            "numerics_version": NUMERICS_VERSION,
            "batch_size": config.batch_size,
            "clip_features": "each video's clips as one [K, D] sequence",
            "static_features": "each video's static clips as one [S, D] sequence",
            "window_features": "each window as a single clip [1, D]",
            "non_finite": "a video or window with any non-finite input is all-NaN",
        },
    )
    return meta


def _codecs(source: FeatureStore) -> StoreCodecs:
    recorded = source.meta.get("codecs") or {}
    try:
        return StoreCodecs(**recorded)
    except TypeError:
        log.warning("unknown codecs %s in %s: using the defaults", recorded, source.location)
        return StoreCodecs()


def sanitize(
    input: str | Path,
    adapter: str | Path,
    output: str | Path,
    config: SanitizeConfig | None = None,
    *,
    progress: ProgressFn | None = None,
    storage_options: dict | None = None,
) -> SanitizeResult:
    """Write `output`, a sanitized copy of the raw store `input` with every embedding anonymized.

    Everything is checked before anything is written. Streams chunk by chunk (memory: a few
    chunks per worker). Interrupted runs leave the output in status 'writing' (refused by
    readers) and resume where they stopped; a complete output for the same input and adapter is
    left as it is.
    """
    config = config or SanitizeConfig()
    started = time.perf_counter()
    source_location = StoreLocation.parse(input, storage_options)
    location = StoreLocation.parse(output, storage_options)
    check_apart(source_location, location)
    source = _open_input(source_location)
    loaded = load_adapter(adapter, expect_encoder=source.encoder, expect_dim=source.feature_dim)
    if is_identity(loaded.adapter):
        raise AdapterError(
            f"{adapter}: the adapter is still the identity (untrained): its 'sanitized' store "
            "would hold the raw features"
        )
    if not config.is_distributed:
        resolve_device(config.device)
    layout = layout_of(source)
    fp = fingerprint(source, loaded, config)
    check_reachable(location)  # a bad endpoint or bucket is reported as such, before the lock
    # Taken before the output is looked at, released however this ends (pipeline.store.lock).
    with StoreLock(location, break_lock=config.break_lock) as lock:
        previous = growable(location, source, loaded, config, NUMERICS_VERSION)
        state = (
            "grow"
            if previous is not None
            else existing_state(
                location, kind="sanitized", fingerprint=fp, overwrite=config.overwrite
            )
        )
        if state == "complete":
            meta = read_attrs(location.open_group("r")) or {}
            log.info(
                "%s is already a complete sanitized copy of this input: nothing to do",
                location.name,
            )
            return SanitizeResult(
                str(location),
                "unchanged",
                str(meta.get("store_id")),
                source.store_id,
                loaded.adapter_hash,
                layout.num_videos,
                0,
                0,
                0,
                time.perf_counter() - started,
            )
        kernel = kernel_for(
            loaded, precision=config.precision, batch_size=config.batch_size, device=config.device
        )
        with contextlib.ExitStack() as stack:
            # Connect before writing anything: an unreachable cluster must leave no trace.
            client = (
                stack.enter_context(connect(config.scheduler)) if config.is_distributed else None
            )
            if state == "grow":
                group = grow_output(location, source)
                families = plan_families(group, source.meta.get("dataset") or {})
                mark_existing(group, families, recorded_sizes(previous))
            else:
                group = _prepare_output(location, state, source, loaded, config, layout, fp)
                families = plan_families(group, source.meta.get("dataset") or {})
            total = marker_count(families)
            done = read_markers(group, total)
            log.info(  # store names only: logs carry no path of this machine
                "sanitizing %s into %s: %d chunk groups, %d already written",
                source_location.name,
                location.name,
                total,
                int(done.sum()),
            )
            counts = {"chunks": int(done.sum()), "bytes": 0}
            write_started = time.perf_counter()

            def on_result(chunks: int, nbytes: int) -> None:
                counts["chunks"] += chunks
                counts["bytes"] += nbytes
                if progress is not None:
                    elapsed = time.perf_counter() - write_started
                    progress(SanitizeProgress(counts["chunks"], total, counts["bytes"], elapsed))

            if progress is not None:
                progress(SanitizeProgress(counts["chunks"], total, 0, 0.0))
            try:
                _run(client, source, group, families, done, kernel, config, on_result)
            except StoreIOError as error:
                raise StoreIOError(
                    f"{error}; {location} is left incomplete: rerun to resume"
                ) from error
            except AnonStoreError:
                raise
            except Exception as error:
                raise StoreError(
                    f"sanitizing into {location} failed ({type(error).__name__}: "
                    f"{' '.join(str(error).split())}); the output is left incomplete: rerun to "
                    "resume"
                ) from error
        final = read_markers(group, total)
        if not final.all():
            raise StoreError(f"{location}: {int((~final).sum())} chunks were not written; rerun")
        lock.verify()
        _check_input_unchanged(source)
        del group[MARKERS]
        event, extra = _completion(state, source, previous, fp, loaded.adapter_hash)
        meta = finalize_store(location, group, event, **extra)
        return SanitizeResult(
            output=str(location),
            action={"new": "created", "recreate": "created", "grow": "appended"}.get(
                state, "resumed"
            ),
            store_id=str(meta.get("store_id")),
            input_store_id=source.store_id,
            adapter_sha256=loaded.adapter_hash,
            videos=layout.num_videos,
            chunks_written=int(total - done.sum()),
            chunks_total=total,
            bytes_written=counts["bytes"],
            seconds=time.perf_counter() - started,
        )


def _check_input_unchanged(source: FeatureStore) -> None:
    """Refuse to mark the output complete if the input was replaced while it was being read (a
    concurrent `extract --overwrite` of the input): what was read may be a mix of two stores."""
    try:
        now = read_attrs(source.location.open_group("r")) or {}
    except Exception as error:
        now = {"status": f"unreadable ({type(error).__name__})"}
    if now.get("store_id") != source.store_id or now.get("status") != "complete":
        raise StoreError(
            f"the input {source.location} was replaced or is being rewritten (store id "
            f"{now.get('store_id')}, status {now.get('status')}) while it was read: the output is "
            "left incomplete; rerun once the input is complete"
        )


def _completion(
    state: str, source: FeatureStore, previous: dict[str, Any] | None, fp: str, adapter_sha: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The history event and metadata updates that complete the output."""
    input_version = int(source.meta.get("version") or 0)
    if state != "grow" or previous is None:
        event = {
            "op": "sanitized",
            "input_store_id": source.store_id,
            "input_version": input_version,
            "adapter_sha256": adapter_sha,
        }
        return event, {}
    added = source.num_videos - recorded_sizes(previous)["video"]
    layout = {
        **(previous.get("layout") or {}),
        "num_videos": source.num_videos,
        "num_windows": int(source.group["window_features"].shape[0]),
        "num_segments": int(source.group["segment_video"].shape[0]),
    }
    event = {
        "op": "appended",
        "videos": added,
        "input_version": input_version,
        "adapter_sha256": adapter_sha,
    }
    extra = {
        "fingerprint": fp,
        "input_fingerprint": source.meta.get("fingerprint"),
        "input_version": input_version,
        "num_failed": source.meta.get("num_failed"),
        "layout": layout,
    }
    return event, extra


def _prepare_output(
    location: StoreLocation,
    state: str,
    source: FeatureStore,
    loaded: LoadedAdapter,
    config: SanitizeConfig,
    layout: StoreLayout,
    fp: str,
) -> zarr.Group:
    """Create the output (every array, no data) or reopen the one being resumed."""
    if state == "resume":
        return location.open_group("r+")
    if state == "recreate":
        discard_store(location)
    return create_store(
        location,
        sanitized_store_meta(source, loaded, config, fp),
        layout,
        {},
        _codecs(source),
        num_segments=int(source.group["segment_video"].shape[0]),
    )


def _run(
    client: Any,
    source: FeatureStore,
    group: zarr.Group,
    families: list[Family],
    done: np.ndarray,
    kernel: AdapterKernel,
    config: SanitizeConfig,
    on_result: Callable[[int, int], None],
) -> None:
    if client is not None:
        # Shipped to each worker once, then referenced by every task.
        shared = client.scatter(kernel, broadcast=True, hash=False)
        units = build_units(source.group, group, families, done, shared, config.chunks_per_task)
        run_distributed(client, [u.task for u in units], on_result)
        return
    # Worker processes load the weights from the adapter directory once each, instead of
    # receiving them with every task.
    task_kernel = kernel.without_weights() if config.scheduler == "processes" else kernel
    units = build_units(source.group, group, families, done, task_kernel, config.chunks_per_task)
    run_local([u.task for u in units], config.scheduler, config.workers, on_result)
