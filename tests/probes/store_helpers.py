"""Write ProbeFeatures into a real (tiny) store with pipeline.store.writer, for loading tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.probes.features import ProbeFeatures
from pipeline.store.layout import plan_layout
from pipeline.store.location import StoreLocation
from pipeline.store.writer import (
    ShardResult,
    StoreCodecs,
    base_attrs,
    commit_shard,
    create_store,
    finalize_store,
)
from store_schema import VIDEO_FAILED, VIDEO_OK

KINDS = {"tad_train": "untrimmed", "tad_test": "untrimmed"}


def write_store(
    path: Path,
    features: ProbeFeatures,
    *,
    kind: str = "raw",
    failed: dict[str, list[int]] | None = None,
    input_store_id: str | None = None,
) -> StoreLocation:
    """A complete store holding ``features``; videos listed in ``failed`` (split -> local
    indices) are marked failed with NaN features, as extraction leaves them."""
    failed = failed or {}
    names = list(features.splits)
    videos = [features[s] for s in names]
    k, s_, d = videos[0].clip.shape[1], videos[0].static.shape[1], videos[0].feature_dim
    counts = np.concatenate(
        [
            np.bincount(v.window_video, minlength=len(v)) if v.num_windows else np.zeros(len(v))
            for v in videos
        ]
    ).astype(np.int64)
    layout = plan_layout(
        counts, clips_per_video=k, static_clips=s_, feature_dim=d,
        videos_per_chunk=16, window_chunk=32,
    )  # fmt: skip
    n = layout.num_videos
    first = np.cumsum([0] + [len(v) for v in videos])
    split_of = [s for s, v in zip(names, videos, strict=True) for _ in range(len(v))]
    kind_of = [KINDS.get(s, "anomaly" if s.startswith("anomaly") else "trimmed") for s in split_of]
    tables: dict[str, np.ndarray] = {
        "video_id": np.concatenate([v.video_id for v in videos]).astype(object),
        "split": np.array(split_of, dtype=object),
        "kind": np.array(kind_of, dtype=object),
        "action": np.concatenate([v.action for v in videos]).astype(np.int16),
        "anomalous": np.concatenate([v.anomalous for v in videos]).astype(np.int8),
        "fps": np.full(n, 25, dtype=np.float32),
        "num_frames": np.concatenate([v.num_frames for v in videos]).astype(np.int32),
        "window_offset": layout.window_offset,
        "window_count": layout.window_count,
    }
    for name in features.dataset.attributes:
        tables[f"attr_{name}"] = np.concatenate([v.attributes[name] for v in videos]).astype(
            np.int16
        )
    window_video = np.full(layout.num_windows, -1, dtype=np.int32)
    window_start = np.full(layout.num_windows, -1, dtype=np.int32)
    window_features = np.full((layout.num_windows, d), np.nan, dtype=np.float32)
    for i, v in enumerate(videos):
        for local in range(len(v)):
            rows = v.video_windows(local)
            g = first[i] + local
            at = int(layout.window_offset[g]) + np.arange(len(rows))
            window_video[at] = g
            window_start[at] = v.window_start[rows]
            window_features[at] = v.window_features[rows]
    tables["window_video"], tables["window_start"] = window_video, window_start
    tables["segment_video"] = np.concatenate(
        [first[i] + v.segment_video for i, v in enumerate(videos)]
    ).astype(np.int32)
    for col in ("start", "end", "label"):
        tables[f"segment_{col}"] = np.concatenate(
            [getattr(v, f"segment_{col}") for v in videos]
        ).astype(np.int32)
    meta = base_attrs(kind, "fp", provenance="extracted" if kind == "raw" else "sanitized")
    ds = features.dataset
    meta.update(
        encoder={"name": "synthetic", "hidden_size": d},
        sampling={"frames_per_clip": features.window_length, "frame_stride": 1,
                  "clips_per_video": k, "static_clips": s_},
        dataset={
            "name": "synthetic",
            "actions": list(ds.actions),
            "attributes": {a: {"values": list(x.values), "role": x.role}
                           for a, x in ds.attributes.items()},
            "anomaly_types": list(ds.anomaly_types),
        },
    )  # fmt: skip
    if input_store_id:
        meta["input_store_id"] = input_store_id
    location = StoreLocation.parse(path)
    group = create_store(location, meta, layout, tables, StoreCodecs())
    clip = np.concatenate([v.clip for v in videos])
    static = np.concatenate([v.static for v in videos])
    status = np.full(n, VIDEO_OK, dtype=np.int8)
    reason = np.array([""] * n, dtype=object)
    for split, locals_ in failed.items():
        for local in locals_:
            g = first[names.index(split)] + local
            status[g], reason[g] = VIDEO_FAILED, "corrupt"
            clip[g] = static[g] = np.nan
            window_features[window_video == g] = np.nan
    for shard in range(layout.num_shards):
        vid, win = layout.shard_videos(shard), layout.shard_windows(shard)
        sl = slice(vid.start, vid.stop)
        commit_shard(group, layout, ShardResult(
            shard=shard, clip_features=clip[sl], clip_start=np.zeros((len(vid), k), np.int32),
            static_frame=np.zeros((len(vid), s_), np.int32), static_features=static[sl],
            window_features=window_features[win.start : win.stop], status=status[sl],
            failure_reason=reason[sl],
        ))  # fmt: skip
    finalize_store(location, group)
    return location
