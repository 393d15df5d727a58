"""Store layout planning: chunk sizes, extraction shards, and where each video's window rows go."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import ConfigError

TARGET_CHUNK_BYTES = 4 * 1024 * 1024
"""Feature chunks aim at ~4 MB: big enough for object stores, small enough to stream."""


def _chunk_rows(row_bytes: int, lo: int, hi: int) -> int:
    return int(max(lo, min(hi, TARGET_CHUNK_BYTES // max(row_bytes, 1))))


@dataclass(frozen=True, eq=False)
class StoreLayout:
    """Shapes and chunking of a store, and the shards extraction commits one at a time.

    A shard is one chunk of the ``video`` dimension plus the window rows of its videos, padded to
    whole window chunks, so that shards never share a chunk and can be written independently
    (by threads, processes or dask workers) and committed atomically.
    """

    num_videos: int
    clips_per_video: int
    static_clips: int
    feature_dim: int
    videos_per_chunk: int
    window_chunk: int
    window_offset: np.ndarray
    """int64 [video]: first window row of each video."""
    window_count: np.ndarray
    """int32 [video]: number of window rows of each video."""
    num_windows: int
    """Window rows including padding."""

    def window_video(self) -> np.ndarray:
        """int32 [num_windows]: the video row owning each window row (-1 = shard padding)."""
        owner = np.full(self.num_windows, -1, dtype=np.int32)
        for video, (offset, count) in enumerate(
            zip(self.window_offset, self.window_count, strict=True)
        ):
            owner[int(offset) : int(offset) + int(count)] = video
        return owner

    @property
    def padded(self) -> bool:
        """Whether shards' window rows are padded to whole chunks (then completion compacts)."""
        return self.num_windows != int(self.window_count.sum())

    @property
    def num_shards(self) -> int:
        return max(1, -(-self.num_videos // self.videos_per_chunk))

    def shard_videos(self, shard: int) -> range:
        start = shard * self.videos_per_chunk
        return range(start, min(start + self.videos_per_chunk, self.num_videos))

    def shard_windows(self, shard: int) -> range:
        """Window rows owned by `shard` (whole chunks, padding included)."""
        videos = self.shard_videos(shard)
        if len(videos) == 0:
            return range(0, 0)
        start = int(self.window_offset[videos.start])
        stop = start + int(self.window_count[videos.start : videos.stop].sum())
        stop = -(-stop // self.window_chunk) * self.window_chunk if stop > start else start
        return range(start, stop)

    def to_json(self) -> dict:
        return {
            "num_videos": self.num_videos,
            "clips_per_video": self.clips_per_video,
            "static_clips": self.static_clips,
            "feature_dim": self.feature_dim,
            "videos_per_chunk": self.videos_per_chunk,
            "window_chunk": self.window_chunk,
            "num_windows": self.num_windows,
            "num_shards": self.num_shards,
        }


def plan_layout(
    windows_per_video: np.ndarray,
    *,
    clips_per_video: int,
    static_clips: int,
    feature_dim: int,
    videos_per_chunk: int | None = None,
    window_chunk: int | None = None,
) -> StoreLayout:
    """Plan a store for videos with `windows_per_video` window rows each (0 for trimmed videos)."""
    counts = np.asarray(windows_per_video, dtype=np.int64)
    if feature_dim <= 0 or clips_per_video <= 0 or static_clips < 0:
        raise ConfigError("feature_dim and clips_per_video must be positive")
    per_video_bytes = max(clips_per_video, static_clips, 1) * feature_dim * 4
    # Chunks never exceed the data: zarr writes edge chunks whole, so a chunk sized for 1,638
    # videos made a 40-video store 40x larger on disk than its features.
    vpc = videos_per_chunk or min(_chunk_rows(per_video_bytes, 16, 4096), max(1, len(counts)))
    total = int(counts.sum())
    target = _chunk_rows(feature_dim * 4, 64, 4096)
    # No windows yet: keep the target, so that windows appended later are not one row per chunk.
    wch = window_chunk or (min(target, total) if total else target)
    if vpc <= 0 or wch <= 0:
        raise ConfigError("videos_per_chunk and window_chunk must be positive")
    offsets = np.zeros(len(counts), dtype=np.int64)
    row = 0
    for shard_start in range(0, len(counts), vpc):
        shard_counts = counts[shard_start : shard_start + vpc]
        offsets[shard_start : shard_start + vpc] = row + np.concatenate(
            [[0], np.cumsum(shard_counts)[:-1]]
        )
        used = int(shard_counts.sum())
        row += -(-used // wch) * wch if used else 0
    return StoreLayout(
        num_videos=len(counts),
        clips_per_video=clips_per_video,
        static_clips=static_clips,
        feature_dim=feature_dim,
        videos_per_chunk=int(vpc),
        window_chunk=int(wch),
        window_offset=offsets,
        window_count=counts.astype(np.int32),
        num_windows=row,
    )


def recorded_sizes(meta: dict) -> dict[str, int]:
    """Rows along video, window and segment as the store's metadata records them (the counts
    of its last complete version: growing writers change the arrays first, these last)."""
    layout = meta.get("layout") or {}
    return {
        "video": int(layout.get("num_videos") or 0),
        "window": int(layout.get("num_windows") or 0),
        "segment": int(layout.get("num_segments") or 0),
    }
