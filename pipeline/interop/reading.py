"""Streaming a store's usable videos chunk by chunk: table columns, clips, static clips, windows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import zarr

from pipeline.store.reader import FeatureStore
from store_schema import ATTRIBUTE_PREFIX, VIDEO_OK

COLUMNS = (
    "video_id",
    "split",
    "kind",
    "action",
    "anomalous",
    "fps",
    "num_frames",
    "status",
    "window_offset",
    "window_count",
    "clip_start",
    "static_frame",
)


@dataclass(frozen=True, eq=False)
class VideoBatch:
    """The ok videos of one chunk of the ``video`` dimension."""

    rows: np.ndarray
    """Store rows of the videos."""
    table: dict[str, np.ndarray]
    """Columns (COLUMNS and attr_<name>) for those rows."""
    clips: np.ndarray
    """float32 [n, K, D]."""
    static: np.ndarray
    """float32 [n, S, D]."""
    windows: list[np.ndarray]
    """float32 [W_i, D] per video (empty for videos without windows)."""
    window_start: list[np.ndarray]
    """int32 [W_i] per video."""

    @property
    def video_ids(self) -> list[str]:
        return [str(v) for v in self.table["video_id"]]


class _WindowRows:
    """Reads window rows a chunk-aligned block at a time and keeps the last block: consecutive
    videos' windows are adjacent, so each window chunk is decoded about once."""

    def __init__(self, group: zarr.Group) -> None:
        self.features = group["window_features"]
        self.starts = group["window_start"]
        self.chunk = max(1, int(self.features.chunks[0]))
        self.lo = self.hi = 0
        self.block_features = np.zeros((0, self.features.shape[1]), np.float32)
        self.block_starts = np.zeros(0, np.int32)

    def get(self, offset: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        if count == 0:
            return self.block_features[:0], self.block_starts[:0]
        if not (self.lo <= offset and offset + count <= self.hi):
            self.lo = offset - offset % self.chunk
            self.hi = min(-(-(offset + count) // self.chunk) * self.chunk, self.features.shape[0])
            self.block_features = np.asarray(self.features[self.lo : self.hi])
            self.block_starts = np.asarray(self.starts[self.lo : self.hi])
        a, b = offset - self.lo, offset - self.lo + count
        return self.block_features[a:b], self.block_starts[a:b]


def iter_videos(store: FeatureStore) -> Iterator[VideoBatch]:
    """Every ok video of `store`, in store order, one ``video`` chunk at a time (memory: one
    chunk of each feature array plus the windows of the videos in it)."""
    group = store.group
    columns = list(COLUMNS) + [f"{ATTRIBUTE_PREFIX}{n}" for n in store.attribute_names]
    step = max(1, int(group["clip_features"].chunks[0]))
    windows = _WindowRows(group)
    for start in range(0, store.num_videos, step):
        stop = min(start + step, store.num_videos)
        ok = np.flatnonzero(np.asarray(group["status"][start:stop]) == VIDEO_OK)
        if len(ok) == 0:
            continue
        table = {name: np.asarray(group[name][start:stop])[ok] for name in columns}
        feats = [
            windows.get(int(o), int(c))
            for o, c in zip(table["window_offset"], table["window_count"], strict=True)
        ]
        yield VideoBatch(
            rows=start + ok,
            table=table,
            clips=np.asarray(group["clip_features"][start:stop])[ok],
            static=np.asarray(group["static_features"][start:stop])[ok],
            windows=[f for f, _ in feats],
            window_start=[s for _, s in feats],
        )


def segments_by_video(store: FeatureStore) -> dict[int, np.ndarray]:
    """Store row -> int32 [n, 3] (start, end, label) segments (all segments fit in memory: they
    are one chunk in the schema)."""
    group = store.group
    video = np.asarray(group["segment_video"][:])
    rows = np.stack(
        [np.asarray(group[n][:]) for n in ("segment_start", "segment_end", "segment_label")], axis=1
    )
    order = np.argsort(video, kind="stable")
    video, rows = video[order], rows[order]
    bounds = np.flatnonzero(np.diff(video)) + 1
    return {
        int(v[0]): r
        for v, r in zip(np.split(video, bounds), np.split(rows, bounds), strict=True)
        if len(v)
    }
