"""ShardEncoder: the videos of extraction shards decoded in worker processes, turned into float
clips where the encoder runs, encoded in full batches, and gathered into ShardResults."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from pipeline.data.clips import ClipSampling, PreparedClips, materialise
from pipeline.data.manifest import Manifest
from pipeline.encoders.registry import VideoEncoder
from pipeline.errors import VideoError
from pipeline.extract.batching import ClipBatcher
from pipeline.extract.config import ExtractConfig
from pipeline.extract.decoders import DecodeJob, DecodePool, default_decode_workers
from pipeline.extract.plan import (
    WINDOWED_KINDS,
    ExtractionPlan,
    augments_images,
    static_frame_labels,
)
from pipeline.heap import large_buffers_in_heap
from pipeline.store.writer import ShardResult
from store_schema import FRAME_LABEL_PREFIX, VIDEO_FAILED, VIDEO_OK

log = logging.getLogger(__name__)

DECODE_NICE_ON_CPU = 15
"""Niceness of the decode workers when the encoder runs on the CPU. They then share the cores
with the encoder's threads; preempting those stalls every thread of its parallel regions, while
at low priority decoding fills the encoder's gaps: 954 -> 1,025 clips/s, 1.65 -> 1.75 of 2 cores
busy (`small` benchmark, tiny encoder, 4 alternating runs, decode threads). Not used with a GPU
encoder, where decoding is the work the CPU is there for."""


class SharedShards:
    """Shard numbers handed out one at a time to whichever thread asks next (thread-safe)."""

    def __init__(self, shards: Iterable[int]) -> None:
        self._shards = iter(shards)
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        with self._lock:
            return next(self._shards)


@dataclass
class _Shard:
    """The result arrays of one shard, filled video by video (features when batches encode)."""

    shard: int
    videos: range
    windows: range
    result: ShardResult
    clips_before: int
    """The batcher's count when the shard opened: its clips are those encoded since."""
    one_view: list[int] = field(default_factory=list)
    """Rows of images scored on one centre crop: copied to every static slot at the end."""


class ShardEncoder:
    """Decodes, samples and encodes the videos of shards into ShardResults.

    Decoding runs in worker processes (``config.workers``; pipeline.extract.decoders keeps them
    for the process) that serve every shard of a ``run_shards`` call, so they stay busy across
    shard boundaries. Each ``run`` / ``run_shards`` call batches with its own ClipBatcher:
    threads that share one ShardEncoder (a multi-threaded dask worker) never mix their batches.
    """

    def __init__(
        self,
        manifest: Manifest,
        plan: ExtractionPlan,
        encoder: VideoEncoder,
        sampling: ClipSampling,
        config: ExtractConfig,
    ) -> None:
        self.plan = plan
        self.encoder = encoder
        self.sampling = sampling
        self.config = config
        self.paths = [str(p) for p in manifest.video_paths()]
        self.video_ids = manifest.table.column("video_id").to_pylist()
        self.framed = list(plan.frame_labels)
        self.attribute_segments = manifest.attribute_segments() if self.framed else []
        self.decode_nice = DECODE_NICE_ON_CPU if encoder.device.type == "cpu" else 0
        self._count_lock = threading.Lock()
        self.clips_encoded = 0
        """Clips encoded by every run so far (all threads)."""

    @property
    def decode_workers(self) -> int:
        """Decode processes; none (decoding inline) inside a daemonic process, e.g. a default
        dask worker, which may not start children."""
        wanted = self.config.workers
        if wanted is None:
            wanted = default_decode_workers(self.encoder.device.type)
        if wanted and multiprocessing.current_process().daemon:
            log.info("a daemonic process cannot start decode workers: decoding inline")
            return 0
        return wanted

    def job(self, video: int) -> DecodeJob:
        """What a decode worker needs for store video `video`."""
        row = int(self.plan.rows[video])
        kind = str(self.plan.tables["kind"][video])
        return DecodeJob(
            path=self.paths[row],
            kind=kind,
            video_key=str(self.video_ids[row]),
            expected_frames=int(self.plan.tables["num_frames"][video]),
            with_windows=kind in WINDOWED_KINDS,
            augmented=augments_images(str(self.plan.tables["split"][video])),
        )

    def run(self, shard: int, on_video: Callable[[bool], None]) -> ShardResult:
        """The ShardResult of one shard."""
        return next(self.run_shards([shard], on_video))

    def run_shards(
        self, shards: Iterable[int], on_video: Callable[[bool], None]
    ) -> Iterator[ShardResult]:
        """The ShardResult of each shard, in order, as soon as its last clip is encoded; the
        decode workers are already on the next shard's videos meanwhile. `shards` is read
        lazily, as decoding reaches each shard: several ShardEncoders (one per GPU) can share
        one thread-safe source (SharedShards) and balance the work between them."""
        layout = self.plan.layout
        taken: list[int] = []

        def jobs() -> Iterator[tuple[int, DecodeJob]]:
            for shard in shards:
                taken.append(shard)
                for video in layout.shard_videos(shard):
                    yield video, self.job(video)

        batcher = ClipBatcher(
            self.encoder.embed,
            self.config.batch_size,
            pin_memory=self.encoder.device.type == "cuda",
        )
        current: _Shard | None = None
        opened = 0
        # Encoder batches are tens of MB: reused from the heap, not page-faulted in each time.
        with large_buffers_in_heap():
            decoders = DecodePool(
                self.decode_workers,
                self.sampling,
                nice=self.decode_nice,
                help_out=self.encoder.device.type == "cpu",
            )
            for video, prepared in decoders.prepared(jobs()):
                while current is None or video not in current.videos:
                    if current is not None:
                        yield self._close(current, batcher)
                    current = self._open(taken[opened], batcher)
                    opened += 1
                on_video(self._add(current, video, prepared, batcher))
            if current is not None:
                yield self._close(current, batcher)

    def _open(self, shard: int, batcher: ClipBatcher) -> _Shard:
        layout = self.plan.layout
        videos, windows = layout.shard_videos(shard), layout.shard_windows(shard)
        n, dim, statics = len(videos), layout.feature_dim, layout.static_clips
        result = ShardResult(
            shard=shard,
            clip_features=np.full((n, layout.clips_per_video, dim), np.nan, dtype=np.float32),
            clip_start=np.full((n, layout.clips_per_video), -1, dtype=np.int32),
            static_frame=np.full((n, statics), -1, dtype=np.int32),
            static_features=np.full((n, statics, dim), np.nan, dtype=np.float32),
            window_features=np.full((len(windows), dim), np.nan, dtype=np.float32),
            status=np.full(n, VIDEO_OK, dtype=np.int8),
            failure_reason=np.array([""] * n, dtype=object),
            static_labels={
                f"{FRAME_LABEL_PREFIX}{name}": np.full((n, statics), -1, np.int16)
                for name in self.framed
            },
        )
        return _Shard(shard, videos, windows, result, batcher.clips_encoded)

    def _close(self, state: _Shard, batcher: ClipBatcher) -> ShardResult:
        batcher.flush()
        result = state.result
        for i in state.one_view:
            result.static_features[i, 1:] = result.static_features[i, :1]
        clips = batcher.clips_encoded - state.clips_before
        with self._count_lock:
            self.clips_encoded += clips
        return dataclasses.replace(result, clips_encoded=clips)

    def _fail(self, state: _Shard, i: int, video: int, reason: str) -> bool:
        state.result.status[i], state.result.failure_reason[i] = VIDEO_FAILED, reason
        log.warning("video %s failed: %s", self.video_ids[self.plan.rows[video]], reason)
        return False

    def _add(
        self,
        state: _Shard,
        video: int,
        prepared: PreparedClips | VideoError,
        batcher: ClipBatcher,
    ) -> bool:
        """Queue one video's clips for encoding into its shard's rows; False if it failed."""
        layout, result = self.plan.layout, state.result
        i = video - state.videos.start
        if isinstance(prepared, VideoError):
            return self._fail(state, i, video, f"{prepared.reason}: {prepared.detail}")
        expected_windows = int(layout.window_count[video])
        if len(prepared.window_rows) != expected_windows:
            found = len(prepared.window_rows)
            return self._fail(
                state, i, video, f"truncated: {found} windows, {expected_windows} planned"
            )
        sampled = materialise(prepared, self.sampling, self.encoder.device)
        if len(sampled.clip_starts):  # images have none: their row stays NaN / -1
            result.clip_start[i] = sampled.clip_starts
        result.static_frame[i] = sampled.static_frames if len(sampled.static_frames) else -1
        if self.framed:
            segments = self.attribute_segments[int(self.plan.rows[video])]
            labels = static_frame_labels(segments, result.static_frame[i], self.framed)
            for name, values in labels.items():
                result.static_labels[f"{FRAME_LABEL_PREFIX}{name}"][i] = values
        batcher.add(sampled.clips, result.clip_features[i])
        views = len(sampled.static)
        batcher.add(sampled.static, result.static_features[i, :views])
        if 0 < views < layout.static_clips:
            state.one_view.append(i)
        offset = int(layout.window_offset[video]) - state.windows.start
        batcher.add(sampled.windows, result.window_features[offset : offset + expected_windows])
        return True
