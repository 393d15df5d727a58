"""Small raw stores and adapters built directly through the store writer and the checkpoint API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import zarr

from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter
from pipeline.aam.checkpoint import save_adapter
from pipeline.aam.trainer import TrainConfig
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

FEATURES = ("clip_features", "static_features", "window_features")
ENCODER_SHA = "e" * 64
ATTRIBUTES = {
    "skin": {"values": ["a", "b", "c"], "role": "person"},
    "scene": {"values": ["x", "y"], "role": "context"},
}


def encoder_identity(dim: int, sha: str = ENCODER_SHA) -> dict:
    return {
        "name": "test-encoder",
        "source": "tests",
        "family": "videomae",
        "pooling": "mean",
        "hidden_size": dim,
        "weights_sha256": sha,
    }


def make_raw_store(
    path: str | Path,
    *,
    videos: int = 23,
    clips: int = 5,
    static: int = 4,
    dim: int = 16,
    videos_per_chunk: int = 5,
    window_chunk: int = 16,
    failed: tuple[int, ...] = (3, 11),
    seed: int = 0,
    codecs: StoreCodecs | None = None,
    complete: bool = True,
    storage_options: dict | None = None,
    untrimmed: bool = True,
) -> StoreLocation:
    """A raw store with random features: every third video untrimmed (with windows and segments),
    `failed` videos failed (NaN features). The same seed gives the same values whatever the
    chunking, so stores differing only in chunks can be compared."""
    rng = np.random.default_rng(seed)
    kinds = np.array(
        ["untrimmed" if untrimmed and v % 3 == 0 else "trimmed" for v in range(videos)], object
    )
    windows = np.where(kinds == "untrimmed", rng.integers(3, 12, videos), 0)
    layout = plan_layout(
        windows,
        clips_per_video=clips,
        static_clips=static,
        feature_dim=dim,
        videos_per_chunk=videos_per_chunk,
        window_chunk=window_chunk,
    )
    window_video = np.full(layout.num_windows, -1, dtype=np.int32)
    window_start = np.full(layout.num_windows, -1, dtype=np.int32)
    segments = []
    for v in range(videos):
        offset, count = int(layout.window_offset[v]), int(layout.window_count[v])
        window_video[offset : offset + count] = v
        window_start[offset : offset + count] = np.arange(count) * 8
        if count:
            segments += [(v, 0, 16, v % 4), (v, 24, 40, (v + 1) % 4)]
    seg = np.array(segments, dtype=np.int32).reshape(-1, 4)
    tables = {
        "video_id": np.array([f"video-{v:03d}" for v in range(videos)], dtype=object),
        "split": np.array([("train", "val", "test")[v % 3] for v in range(videos)], dtype=object),
        "kind": kinds,
        "action": (np.arange(videos) % 4).astype(np.int16),
        "anomalous": np.full(videos, -1, dtype=np.int8),
        "fps": np.full(videos, 25.0, dtype=np.float32),
        "num_frames": (64 + 8 * windows).astype(np.int32),
        "window_offset": layout.window_offset,
        "window_count": layout.window_count,
        "window_video": window_video,
        "window_start": window_start,
        "segment_video": seg[:, 0],
        "segment_start": seg[:, 1],
        "segment_end": seg[:, 2],
        "segment_label": seg[:, 3],
        "attr_skin": (np.arange(videos) % 3).astype(np.int16),
        "attr_scene": (np.arange(videos) % 2).astype(np.int16),
    }
    meta = base_attrs("raw", f"fp-{seed}-{videos}-{dim}", provenance="extracted")
    meta.update(
        encoder=encoder_identity(dim),
        sampling={
            "frames_per_clip": 16,
            "clips_per_video": clips,
            "static_clips": static,
            "window_stride": 8,
        },
        dataset={
            "name": "test",
            "manifest_sha256": "m" * 64,
            "actions": list("abcd"),
            "anomaly_types": [],
            "attributes": ATTRIBUTES,
        },
    )
    location = StoreLocation.parse(path, storage_options)
    group = create_store(location, meta, layout, tables, codecs or StoreCodecs())
    # Values per video / window row, independent of the chunking.
    all_clips = rng.standard_normal((videos, clips, dim)).astype(np.float32)
    all_static = rng.standard_normal((videos, static, dim)).astype(np.float32)
    per_video_windows = [rng.standard_normal((int(c), dim)).astype(np.float32) for c in windows]
    for v in failed:
        all_clips[v] = np.nan
        all_static[v] = np.nan
        per_video_windows[v][:] = np.nan
    for shard in range(layout.num_shards):
        vids = layout.shard_videos(shard)
        rows = layout.shard_windows(shard)
        window_features = np.full((len(rows), dim), np.nan, dtype=np.float32)
        for v in vids:
            offset = int(layout.window_offset[v]) - rows.start
            window_features[offset : offset + int(windows[v])] = per_video_windows[v]
        status = np.array([VIDEO_FAILED if v in failed else VIDEO_OK for v in vids], np.int8)
        commit_shard(
            group,
            layout,
            ShardResult(
                shard=shard,
                clip_features=all_clips[vids.start : vids.stop],
                clip_start=np.tile(np.arange(clips, dtype=np.int32) * 8, (len(vids), 1)),
                static_features=all_static[vids.start : vids.stop],
                static_frame=np.tile(np.arange(static, dtype=np.int32) * 4, (len(vids), 1)),
                window_features=window_features,
                status=status,
                failure_reason=np.array(
                    ["corrupt: test" if v in failed else "" for v in vids], dtype=object
                ),
            ),
        )
    if complete:
        finalize_store(location, group, num_failed=len(failed))
    return location


def make_adapter(
    path: str | Path,
    *,
    dim: int = 16,
    arch: str = "mlp",
    encoder_sha: str = ENCODER_SHA,
    seed: int = 0,
    trained: bool = True,
) -> Path:
    """An adapter with random (non-identity) weights, or a fresh identity one if not `trained`,
    saved with the checkpoint API."""
    config = AdapterConfig(arch=arch, dim=dim, depth=2, heads=2)
    torch.manual_seed(seed)
    adapter = AnonymizingAdapter(config)
    with torch.no_grad():
        for param in adapter.parameters() if trained else []:
            param.copy_(0.3 * torch.randn_like(param))
    return save_adapter(
        path,
        adapter,
        [],
        config,
        TrainConfig(),
        {"store_id": "train-store", "encoder": {"weights_sha256": encoder_sha, "hidden_size": dim}},
        [],
    )


def read_features(path: str | Path, storage_options: dict | None = None) -> dict[str, np.ndarray]:
    """Feature arrays of a store; window rows in video order without padding (so stores with
    different window chunks compare)."""
    group = zarr.open_group(str(path), mode="r", storage_options=storage_options)
    out = {name: np.asarray(group[name][:]) for name in FEATURES}
    offsets, counts = np.asarray(group["window_offset"][:]), np.asarray(group["window_count"][:])
    rows = [np.arange(o, o + c) for o, c in zip(offsets, counts, strict=True)]
    out["window_features"] = out["window_features"][np.concatenate(rows).astype(np.int64)]
    return out


def assert_same_features(a: str | Path, b: str | Path) -> None:
    left, right = read_features(a), read_features(b)
    for name in FEATURES:
        np.testing.assert_array_equal(left[name], right[name], err_msg=name)
