"""Extraction in three steps (prepare, one shard, finish) so an orchestrator can spread shards.

Built from pipeline.extract's own pieces (plan, store creation, the shard encoder, the shard
commit), so a shard is encoded and committed exactly as extract() does it, and the finished store
equals a single-process extract() run. Shards never share a chunk (pipeline.store.layout), so any
number of processes or machines may encode and commit different shards of one store at once.
The store's writer lock (pipeline.store.lock) is held by whoever orchestrates these steps (the
extract-features flow holds it for the whole run); the steps themselves take none.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.clips import ClipSampling
from pipeline.data.manifest import Manifest
from pipeline.encoders.registry import VideoEncoder
from pipeline.encoders.tiny import resolve_encoder_source
from pipeline.errors import AnonStoreError, StoreError
from pipeline.extract import ExtractConfig, ExtractResult
from pipeline.extract.plan import ExtractionPlan, plan_extraction, sampling_for
from pipeline.extract.run import (
    existing_state_of,
    load_encoder_for,
    open_raw_store,
    read_manifest_for,
)
from pipeline.extract.shards import ShardEncoder
from pipeline.store.location import StoreLocation
from pipeline.store.writer import (
    commit_shard,
    finalize_store,
    read_attrs,
    shard_committed,
)
from store_schema import VIDEO_FAILED, VIDEO_PENDING

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractionJob:
    """A planned extraction as plain JSON-able values: what every shard task receives.

    Storage options are deliberately absent (they may hold credentials and orchestrators record
    task inputs): every process takes them from its environment (ANON_STORE_STORAGE_OPTIONS,
    AWS_*), see pipeline.store.location.
    """

    manifest: str
    """Absolute path of manifest.parquet."""
    encoder: str
    """The encoder source with "tiny" resolved to its directory."""
    output: str
    """The raw store's location (absolute path or URL)."""
    config: dict[str, Any]
    """ExtractConfig as a dict."""
    fingerprint: str
    """Hash of manifest content, encoder identity, sampling, splits and chunking."""
    store_id: str
    """The store being written (a store deleted and recreated gets a new id)."""
    num_shards: int
    todo: tuple[int, ...]
    """Shards not yet committed when the job was planned."""
    action: str
    """created | resumed | unchanged."""
    videos: int
    started: float = field(default_factory=time.time)

    def extract_config(self) -> ExtractConfig:
        values = dict(self.config)
        for name in ("splits", "devices"):
            if values.get(name) is not None:
                values[name] = tuple(values[name])
        return ExtractConfig(**values)


@dataclass(frozen=True)
class ShardReport:
    """What one shard task did."""

    shard: int
    videos: int
    failed: int
    clips_encoded: int
    seconds: float
    skipped: bool
    """True if the shard was already committed (nothing encoded)."""


def _config_dict(config: ExtractConfig) -> dict[str, Any]:
    values = asdict(config)
    values["splits"] = list(config.splits) if config.splits is not None else None
    values["devices"] = list(config.devices) if config.devices is not None else None
    return values


@dataclass(frozen=True, eq=False)
class _Context:
    manifest: Manifest
    model: VideoEncoder
    sampling: ClipSampling
    plan: ExtractionPlan
    shard_encoder: ShardEncoder | None
    """None when the encoder was loaded for planning only (on the CPU)."""


_CACHE: dict[str, _Context] = {}
_CACHE_LOCK = threading.Lock()


def _cpu_only(config: ExtractConfig) -> bool:
    device = config.devices[0] if config.devices else config.device
    if device == "auto":
        import torch

        return not torch.cuda.is_available()
    return device == "cpu"


def _worker_device(config: ExtractConfig) -> str:
    """This process's device: with ``config.devices``, the one of the dask worker's slot (a
    LocalCluster names its workers 0, 1, ...: worker i takes devices[i], one GPU each), else
    ``config.device``."""
    if not config.devices:
        return config.device
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):  # not inside a dask worker: the first device
        return config.devices[0]
    slot = int(name) if isinstance(name, int) or str(name).isdigit() else 0
    return config.devices[slot % len(config.devices)]


def _build_context(
    manifest: str | Path, source: str, config: ExtractConfig, *, for_encoding: bool
) -> _Context:
    loaded = read_manifest_for(manifest, config)
    # Planning needs only the encoder's identity and shapes, so a flow process on a host without
    # a GPU loads it on the CPU; where the CPU is what shards use anyway, the model is reused.
    encodes = for_encoding or _cpu_only(config)
    device, precision = (
        (_worker_device(config), config.precision) if encodes else ("cpu", "float32")
    )
    model = load_encoder_for(source, config, device=device, precision=precision)
    sampling = sampling_for(model, config)
    plan = plan_extraction(loaded, sampling, model.hidden_size, model.identity, config)
    shard_encoder = ShardEncoder(loaded, plan, model, sampling, config) if encodes else None
    return _Context(loaded, model, sampling, plan, shard_encoder)


def _job_key(job: ExtractionJob) -> str:
    return json.dumps([job.manifest, job.encoder, job.config, job.fingerprint])


def _remember(key: str, context: _Context) -> None:
    _CACHE.clear()  # one model per process at a time: they can be large
    _CACHE[key] = context


def _context(job: ExtractionJob, *, for_encoding: bool) -> _Context:
    """Manifest, encoder and plan of `job`, built once per process (the encoder is the costly
    part: a worker that runs many shards loads it once)."""
    key = _job_key(job)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None and (cached.shard_encoder is not None or not for_encoding):
            return cached
        context = _build_context(
            job.manifest, job.encoder, job.extract_config(), for_encoding=for_encoding
        )
        if context.plan.fingerprint != job.fingerprint:
            raise StoreError(
                f"the manifest or encoder changed since this extraction of {job.output} was "
                "planned: start a new run"
            )
        _remember(key, context)
        return context


def prepare_extraction(
    manifest: str | Path,
    encoder: str,
    output: str | Path,
    config: ExtractConfig | None = None,
    *,
    storage_options: dict | None = None,
) -> ExtractionJob:
    """Check inputs, plan the store and create it (or find what is left to do): like the start of
    extract(), without encoding anything."""
    config = config or ExtractConfig()
    location = StoreLocation.parse(output, storage_options)
    source = resolve_encoder_source(encoder)
    context = _build_context(manifest, source, config, for_encoding=False)
    plan = context.plan
    state = existing_state_of(location, plan.fingerprint, config.overwrite)
    group = open_raw_store(
        location, state, plan, context.manifest, context.model, context.sampling, config
    )
    meta = read_attrs(group) or {}
    done = shard_committed(group, plan.layout)
    todo = () if state == "complete" else tuple(int(s) for s in np.flatnonzero(~done))
    action = {"new": "created", "recreate": "created", "resume": "resumed"}.get(state, "unchanged")
    job = ExtractionJob(
        manifest=str(Path(manifest).absolute()),
        encoder=source,
        output=str(location),
        config=_config_dict(config),
        fingerprint=plan.fingerprint,
        store_id=str(meta["store_id"]),
        num_shards=plan.layout.num_shards,
        todo=todo,
        action=action,
        videos=len(plan.rows),
    )
    with _CACHE_LOCK:
        _remember(_job_key(job), context)
    return job


def _open_job_store(job: ExtractionJob, mode: str):
    location = StoreLocation.parse(job.output)
    group = location.open_group(mode)
    meta = read_attrs(group) or {}
    if meta.get("store_id") != job.store_id:
        raise StoreError(
            f"{job.output} was replaced since this extraction was planned "
            f"(store id {meta.get('store_id')}, expected {job.store_id}): start a new run"
        )
    return location, group


def _shard_status(group: Any, shard: int) -> np.ndarray:
    """Status of a shard's videos, read from the store alone (no encoder, no manifest)."""
    layout = (read_attrs(group) or {}).get("layout") or {}
    per_shard = int(layout["videos_per_chunk"])
    start = shard * per_shard
    stop = min(start + per_shard, int(layout["num_videos"]))
    return np.asarray(group["status"][start:stop])


def uncommitted_shards(job: ExtractionJob) -> list[int]:
    """Shards of `job` whose videos are not all committed yet."""
    _, group = _open_job_store(job, "r")
    return [s for s in range(job.num_shards) if (_shard_status(group, s) == VIDEO_PENDING).any()]


def extract_shard(
    job: ExtractionJob, shard: int, *, on_video: Callable[[bool], None] | None = None
) -> ShardReport:
    """Decode, encode and commit one shard of `job` (a no-op if it is already committed)."""
    started = time.perf_counter()
    if not 0 <= shard < job.num_shards:
        raise StoreError(f"shard {shard} out of range: the store has {job.num_shards} shards")
    _, group = _open_job_store(job, "r+")
    status = _shard_status(group, shard)
    if len(status) and (status != VIDEO_PENDING).all():
        failed = int((status == VIDEO_FAILED).sum())
        return ShardReport(shard, len(status), failed, 0, time.perf_counter() - started, True)
    context = _context(job, for_encoding=True)
    layout = context.plan.layout
    videos = layout.shard_videos(shard)
    shard_encoder = context.shard_encoder
    assert shard_encoder is not None
    result = shard_encoder.run(shard, on_video or (lambda ok: None))
    commit_shard(group, layout, result)
    return ShardReport(
        shard=shard,
        videos=len(videos),
        failed=int((result.status == VIDEO_FAILED).sum()),
        clips_encoded=result.clips_encoded,
        seconds=time.perf_counter() - started,
        skipped=False,
    )


def finish_extraction(job: ExtractionJob, clips_encoded: int = 0) -> ExtractResult:
    """Check every shard is committed, then mark the store complete (as extract() does)."""
    if job.action == "unchanged":
        return ExtractResult(job.output, "unchanged", job.videos, 0, 0, 0.0, job.store_id)
    location, group = _open_job_store(job, "r+")
    layout = _context(job, for_encoding=False).plan.layout
    done = shard_committed(group, layout)
    if not done.all():
        missing = [int(s) for s in np.flatnonzero(~done)]
        raise StoreError(
            f"{job.output}: shards {missing} are not committed yet; rerun to finish them"
        )
    status = np.asarray(group["status"][:])
    failed = int((status == VIDEO_FAILED).sum())
    if failed == len(status):
        raise AnonStoreError(
            f"all {failed} videos failed to decode (reasons are in {location}/failure_reason); "
            "the store is left incomplete"
        )
    finalize_store(
        location, group, {"op": "created", "videos": len(status), "failed": failed},
        num_failed=failed,
    )  # fmt: skip
    return ExtractResult(
        output=job.output,
        action=job.action,
        videos=job.videos,
        failed=failed,
        clips_encoded=clips_encoded,
        seconds=time.time() - job.started,
        store_id=job.store_id,
    )
