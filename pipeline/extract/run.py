"""extract(): decode, sample and encode every video once into a resumable raw feature store."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.clips import ClipSampling, frames_used, sample_image, sample_video
from pipeline.data.decode import decode_image, decode_video
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.prefetch import run_ahead
from pipeline.encoders.registry import VideoEncoder, load_encoder
from pipeline.encoders.tiny import resolve_encoder_source
from pipeline.errors import AnonStoreError, StoreError, VideoError, VideoTooShortError
from pipeline.extract.batching import ClipBatcher
from pipeline.extract.config import ExtractConfig
from pipeline.extract.plan import (
    WINDOWED_KINDS,
    ExtractionPlan,
    augments_images,
    frame_labelled,
    plan_extraction,
    sampling_for,
    sampling_json,
    static_frame_labels,
)
from pipeline.heap import large_buffers_in_heap
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
from store_schema import FRAME_LABEL_PREFIX, IMAGE_KIND, VIDEO_FAILED, VIDEO_OK

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
    framed = frame_labelled(manifest)
    if framed:
        meta["dataset"]["frame_labels"] = framed
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


DECODE_NICE_ON_CPU = 15
"""Niceness of the decode threads when the encoder runs on the CPU. They then share the cores
with the encoder's threads; preempting those stalls every thread of its parallel regions, while
at low priority decoding fills the encoder's gaps: 954 -> 1,025 clips/s, 1.65 -> 1.75 of 2 cores
busy (`small` benchmark, tiny encoder, 4 alternating runs). Not used with a GPU encoder, where
decoding is the work the CPU is there for."""


class ShardEncoder:
    """Decodes, samples and encodes the videos of one shard into a ShardResult."""

    def __init__(
        self,
        manifest: Manifest,
        plan: ExtractionPlan,
        encoder: VideoEncoder,
        sampling: ClipSampling,
        config: ExtractConfig,
    ) -> None:
        self.plan = plan
        self.sampling = sampling
        self.config = config
        self.batcher = ClipBatcher(
            encoder.encode, config.batch_size, pin_memory=encoder.device.type == "cuda"
        )
        self.paths = manifest.video_paths()
        self.video_ids = manifest.table.column("video_id").to_pylist()
        self.framed = frame_labelled(manifest)
        self.attribute_segments = manifest.attribute_segments() if self.framed else []
        self.decode_nice = DECODE_NICE_ON_CPU if encoder.device.type == "cpu" else 0

    def _load(self, video: int) -> Any:
        row = int(self.plan.rows[video])
        kind = str(self.plan.tables["kind"][video])
        expected = int(self.plan.tables["num_frames"][video])
        video_key, with_windows = str(self.video_ids[row]), kind in WINDOWED_KINDS
        try:
            if kind == IMAGE_KIND:
                augmented = augments_images(str(self.plan.tables["split"][video]))
                return sample_image(
                    decode_image(self.paths[row]), self.sampling,
                    video_key=video_key, augmented=augmented,
                )  # fmt: skip
            frames = decode_video(
                self.paths[row],
                expected_frames=expected if expected > 0 else None,
                keep=self._frames_used(expected, video_key, with_windows),
            )
            if expected > 0:
                frames = frames[:expected]
            return sample_video(
                frames, self.sampling, video_key=video_key, with_windows=with_windows
            )
        except VideoError as error:
            return error

    def _frames_used(self, expected: int, video_key: str, with_windows: bool) -> np.ndarray | None:
        """The frames sampling will read, when the frame count is known (decoding fewer frames
        than that fails the video): only those are converted to RGB."""
        if expected <= 0:
            return None
        try:
            return frames_used(
                expected, self.sampling, video_key=video_key, with_windows=with_windows
            )
        except VideoTooShortError:
            return None  # decode it all and let sampling report it, as for any video

    def run(self, shard: int, on_video: Callable[[bool], None]) -> ShardResult:
        layout = self.plan.layout
        videos = layout.shard_videos(shard)
        windows = layout.shard_windows(shard)
        n, dim = len(videos), layout.feature_dim
        clip_features = np.full((n, layout.clips_per_video, dim), np.nan, dtype=np.float32)
        static_features = np.full((n, layout.static_clips, dim), np.nan, dtype=np.float32)
        window_features = np.full((len(windows), dim), np.nan, dtype=np.float32)
        clip_start = np.full((n, layout.clips_per_video), -1, dtype=np.int32)
        static_frame = np.full((n, layout.static_clips), -1, dtype=np.int32)
        status = np.full(n, VIDEO_OK, dtype=np.int8)
        reasons = np.array([""] * n, dtype=object)
        static_labels = {
            f"{FRAME_LABEL_PREFIX}{name}": np.full((n, layout.static_clips), -1, np.int16)
            for name in self.framed
        }
        one_view: list[int] = []  # images scored on one centre crop: copied to every static slot
        # Encoder batches are tens of MB: reused from the heap, not page-faulted in each time.
        with large_buffers_in_heap():
            for video, sampled in run_ahead(
                self._load, videos, workers=self.config.workers, nice=self.decode_nice
            ):
                i = video - videos.start
                if isinstance(sampled, VideoError):
                    status[i], reasons[i] = VIDEO_FAILED, f"{sampled.reason}: {sampled.detail}"
                    log.warning(
                        "video %s failed: %s", self.video_ids[self.plan.rows[video]], reasons[i]
                    )
                    on_video(False)
                    continue
                expected_windows = int(layout.window_count[video])
                if len(sampled.windows) != expected_windows:
                    status[i] = VIDEO_FAILED
                    reasons[i] = (
                        f"truncated: {len(sampled.windows)} windows, {expected_windows} planned"
                    )
                    on_video(False)
                    continue
                if len(sampled.clip_starts):  # images have none: their row stays NaN / -1
                    clip_start[i] = sampled.clip_starts
                static_frame[i] = sampled.static_frames if len(sampled.static_frames) else -1
                if self.framed:
                    segments = self.attribute_segments[int(self.plan.rows[video])]
                    labels = static_frame_labels(segments, static_frame[i], self.framed)
                    for name, values in labels.items():
                        static_labels[f"{FRAME_LABEL_PREFIX}{name}"][i] = values
                self.batcher.add(sampled.clips, clip_features[i])
                views = len(sampled.static)
                self.batcher.add(sampled.static, static_features[i, :views])
                if 0 < views < layout.static_clips:
                    one_view.append(i)
                offset = int(layout.window_offset[video]) - windows.start
                rows = slice(offset, offset + expected_windows)
                self.batcher.add(sampled.windows, window_features[rows])
                on_video(True)
            self.batcher.flush()
        for i in one_view:
            static_features[i, 1:] = static_features[i, :1]
        return ShardResult(
            shard=shard,
            clip_features=clip_features,
            clip_start=clip_start,
            static_features=static_features,
            static_frame=static_frame,
            window_features=window_features,
            status=status,
            failure_reason=reasons,
            static_labels=static_labels,
        )


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
    model = load_encoder_for(resolve_encoder_source(encoder), config)
    sampling = sampling_for(model, config)
    if config.append:
        from pipeline.extract.append import append_videos

        return append_videos(location, loaded_manifest, model, sampling, config, progress)
    plan = plan_extraction(loaded_manifest, sampling, model.hidden_size, model.identity, config)
    # The lock is taken before the store is even looked at: what is found must not change under
    # this run's feet. Checks above wrote nothing, so bad input leaves no lock behind either.
    with StoreLock(location, break_lock=config.break_lock) as lock:
        return fill_store(location, plan, loaded_manifest, model, sampling, config, lock, progress)


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
) -> ExtractResult:
    """Create or resume the raw store of `plan` at `location` (its lock held) and complete it."""
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
    shard_encoder = ShardEncoder(manifest, plan, model, sampling, config)
    counts = {"done": skipped, "failed": 0}

    def on_video(ok: bool) -> None:
        counts["done"] += 1
        counts["failed"] += 0 if ok else 1
        if progress is not None:
            progress(
                ExtractProgress(
                    counts["done"],
                    len(plan.rows),
                    shard_encoder.batcher.clips_encoded,
                    counts["failed"],
                )
            )

    for shard in todo:
        result = shard_encoder.run(shard, on_video)
        try:
            commit_shard(group, plan.layout, result)
        except StoreIOError as error:
            raise StoreIOError(
                f"{error}; {location} is left incomplete: rerun to resume"
            ) from error
        log.info("committed shard %d/%d", shard + 1, plan.layout.num_shards)
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
        clips_encoded=shard_encoder.batcher.clips_encoded,
        seconds=time.perf_counter() - started,
        store_id=str(meta.get("store_id")),
    )
