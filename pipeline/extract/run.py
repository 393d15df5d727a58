"""extract(): decode, sample and encode every video once into a resumable raw feature store."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.clips import ClipSampling
from pipeline.data.decode import decoder_identity
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.encoders.registry import VideoEncoder, load_encoder
from pipeline.encoders.tiny import resolve_encoder_source
from pipeline.errors import AnonStoreError, StoreError
from pipeline.extract.config import ExtractConfig
from pipeline.extract.plan import (
    ExtractionPlan,
    plan_extraction,
    sampling_for,
    sampling_json,
)
from pipeline.extract.shards import ShardEncoder, SharedShards
from pipeline.store.location import StoreLocation
from pipeline.store.lock import StoreLock
from pipeline.store.retry import StoreIOError
from pipeline.store.writer import (
    ShardResult,
    StoreCodecs,
    base_attrs,
    commit_shard,
    create_store,
    discard_store,
    finalize_store,
    read_attrs,
    shard_committed,
)
from store_schema import VIDEO_FAILED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractProgress:
    """A progress report, sent after every video."""

    videos_done: int
    videos_total: int
    clips_done: int
    failed: int


@dataclass(frozen=True)
class ExtractResult:
    """What an extract call did."""

    output: str
    action: str
    """created | resumed | unchanged (already complete with the same settings)."""
    videos: int
    failed: int
    clips_encoded: int
    seconds: float
    store_id: str


ProgressFn = Callable[[ExtractProgress], None]


def existing_state_of(location: StoreLocation, fingerprint: str, overwrite: bool) -> str:
    """new | resume | complete | recreate; refuse anything that is not our raw store."""
    if not location.exists():
        return "new"
    try:
        group = location.open_group("r")
        meta = read_attrs(group)
    except Exception:
        meta = None
    if meta is None:
        raise StoreError(
            f"{location} exists and is not an anon-store store: refusing to touch it "
            "(choose another --output)"
        )
    if meta.get("kind") != "raw":
        raise StoreError(f"{location} holds a {meta.get('kind')} store, not a raw store")
    if meta.get("status") == "creating":
        return "recreate"
    if meta.get("fingerprint") != fingerprint:
        if overwrite:
            return "recreate"
        raise StoreError(
            f"{location} was extracted with a different manifest, encoder or sampling: "
            "pass --overwrite to replace it"
        )
    return "complete" if meta.get("status") == "complete" else "resume"


def read_manifest_for(manifest: str | Path, config: ExtractConfig) -> Manifest:
    """The manifest, its paths resolved under ``config.video_root`` (default: its directory)."""
    return read_manifest(
        manifest, root=config.video_root, allow_outside_root=config.allow_outside_root
    )


def load_encoder_for(source: str, config: ExtractConfig, **overrides: Any) -> VideoEncoder:
    """The encoder with the config's device, precision and trust / path-recording settings."""
    kwargs: dict[str, Any] = {
        "device": config.device,
        "precision": config.precision,
        "trust_remote_code": config.trust_remote_code,
        "record_paths": config.record_paths,
    }
    return load_encoder(source, **{**kwargs, **overrides})


def raw_store_meta(
    plan: ExtractionPlan, manifest: Manifest, encoder: VideoEncoder, sampling: ClipSampling
) -> dict[str, Any]:
    info = manifest.info
    meta = base_attrs("raw", plan.fingerprint, provenance="extracted")
    meta.update(
        encoder=dict(encoder.identity),
        decoder=decoder_identity(),
        sampling=sampling_json(sampling),
        dataset={
            "name": info.name,
            "manifest_sha256": manifest.sha256,
            "actions": list(info.actions),
            "anomaly_types": list(info.anomaly_types),
            "attributes": {
                name: {"values": list(attr.values), "role": attr.role}
                for name, attr in info.attributes.items()
            },
            "splits": list(plan.splits),
        },
    )
    if plan.frame_labels:
        meta["dataset"]["frame_labels"] = list(plan.frame_labels)
    return meta


def open_raw_store(
    location: StoreLocation,
    state: str,
    plan: ExtractionPlan,
    manifest: Manifest,
    encoder: VideoEncoder,
    sampling: ClipSampling,
    config: ExtractConfig,
) -> Any:
    """The store for ``state`` (existing_state_of): created, after discarding one made with other
    settings, for "new" / "recreate"; opened read-only when "complete", else to resume."""
    if state not in ("new", "recreate"):
        return location.open_group("r" if state == "complete" else "r+")
    if state == "recreate":
        discard_store(location)
    meta = raw_store_meta(plan, manifest, encoder, sampling)
    codecs = StoreCodecs(feature_compression=config.feature_compression)
    return create_store(location, meta, plan.layout, plan.tables, codecs)


def commit_in_background(
    results: Iterator[ShardResult], commit: Callable[[ShardResult], None]
) -> None:
    """Commit each shard in a background thread while the next one is encoded. One commit in
    flight (memory stays bounded at two shards) and in shard order; the first failure is raised
    once the commit running at that moment has ended (nothing is left half written by us)."""
    with ThreadPoolExecutor(1, thread_name_prefix="commit") as pool:
        inflight: Future[None] | None = None
        for result in results:
            if inflight is not None:
                inflight.result()
            inflight = pool.submit(commit, result)
        if inflight is not None:
            inflight.result()


def extract(
    manifest: str | Path,
    encoder: str,
    output: str | Path,
    config: ExtractConfig | None = None,
    *,
    progress: ProgressFn | None = None,
    storage_options: dict | None = None,
) -> ExtractResult:
    """Encode every clip of the manifest's videos once into the raw store at `output`.

    Resumable: shards already committed are kept, so a rerun after a crash does only what is left.
    Re-running on a complete store with the same settings does nothing. ``config.append`` adds
    the videos of a grown manifest to a complete store instead (pipeline.extract.append).
    """
    config = config or ExtractConfig()
    location = StoreLocation.parse(output, storage_options)
    loaded_manifest = read_manifest_for(manifest, config)
    source = resolve_encoder_source(encoder)
    devices = config.devices or (config.device,)
    model = load_encoder_for(source, config, device=devices[0])
    more = [load_encoder_for(source, config, device=device) for device in devices[1:]]
    sampling = sampling_for(model, config)
    if config.append:
        from pipeline.extract.append import append_videos

        return append_videos(location, loaded_manifest, model, sampling, config, progress)
    plan = plan_extraction(loaded_manifest, sampling, model.hidden_size, model.identity, config)
    # The lock is taken before the store is even looked at: what is found must not change under
    # this run's feet. Checks above wrote nothing, so bad input leaves no lock behind either.
    with StoreLock(location, break_lock=config.break_lock) as lock:
        return fill_store(
            location, plan, loaded_manifest, model, sampling, config, lock, progress,
            more_encoders=more,
        )  # fmt: skip


def fill_store(
    location: StoreLocation,
    plan: ExtractionPlan,
    manifest: Manifest,
    model: VideoEncoder,
    sampling: ClipSampling,
    config: ExtractConfig,
    lock: StoreLock,
    progress: ProgressFn | None = None,
    *,
    overwrite: bool | None = None,
    more_encoders: list[VideoEncoder] | None = None,
) -> ExtractResult:
    """Create or resume the raw store of `plan` at `location` (its lock held) and complete it.
    With `more_encoders` (copies of `model` on other devices), one thread per encoder takes the
    next uncommitted shard until none is left; every one commits its own shards."""
    started = time.perf_counter()
    overwrite = config.overwrite if overwrite is None else overwrite
    state = existing_state_of(location, plan.fingerprint, overwrite)
    if state == "complete":
        meta = read_attrs(location.open_group("r")) or {}
        log.info("%s is already complete with the same settings: nothing to do", location.name)
        return ExtractResult(
            str(location), "unchanged", len(plan.rows), 0, 0, 0.0, meta["store_id"]
        )
    group = open_raw_store(location, state, plan, manifest, model, sampling, config)
    done = shard_committed(group, plan.layout)
    todo = [shard for shard in range(plan.layout.num_shards) if not done[shard]]
    skipped = sum(
        len(plan.layout.shard_videos(s)) for s in range(plan.layout.num_shards) if done[s]
    )
    log.info(  # the store's name only: logs carry no path of this machine
        "extracting %d videos in %d shards into %s (%d already committed)",
        len(plan.rows) - skipped,
        len(todo),
        location.name,
        skipped,
    )
    counts = {"done": skipped, "failed": 0}
    count_lock = threading.Lock()

    def commit(result: ShardResult) -> None:
        try:
            commit_shard(group, plan.layout, result)
        except StoreIOError as error:
            raise StoreIOError(
                f"{error}; {location} is left incomplete: rerun to resume"
            ) from error
        log.info("committed shard %d/%d", result.shard + 1, plan.layout.num_shards)

    encoders = [model, *(more_encoders or [])]
    shard_encoders = [ShardEncoder(manifest, plan, e, sampling, config) for e in encoders]

    def clips_encoded() -> int:
        return sum(s.clips_encoded for s in shard_encoders)

    def on_video(ok: bool) -> None:
        with count_lock:
            counts["done"] += 1
            counts["failed"] += 0 if ok else 1
            done, failed = counts["done"], counts["failed"]
        if progress is not None:
            progress(ExtractProgress(done, len(plan.rows), clips_encoded(), failed))

    source = SharedShards(todo)
    if len(shard_encoders) == 1:
        commit_in_background(shard_encoders[0].run_shards(source, on_video), commit)
    else:
        with ThreadPoolExecutor(len(shard_encoders), thread_name_prefix="device") as pool:
            runs = [
                pool.submit(commit_in_background, s.run_shards(source, on_video), commit)
                for s in shard_encoders
            ]
            for run in runs:
                run.result()
    status = np.asarray(group["status"][:])
    failed = int((status == VIDEO_FAILED).sum())
    meta = read_attrs(group) or {}
    if failed == len(status):
        raise AnonStoreError(
            f"all {failed} videos failed to decode (reasons are in {location}/failure_reason); "
            "the store is left incomplete"
        )
    lock.verify()
    finalize_store(
        location, group, {"op": "created", "videos": len(status), "failed": failed},
        num_failed=failed,
    )  # fmt: skip
    return ExtractResult(
        output=str(location),
        action="created" if state in ("new", "recreate") else "resumed",
        videos=len(plan.rows),
        failed=failed,
        clips_encoded=clips_encoded(),
        seconds=time.perf_counter() - started,
        store_id=str(meta.get("store_id")),
    )
