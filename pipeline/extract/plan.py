"""From a manifest to what a raw store will hold: selected videos, tables, layout, fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pipeline.data.clips import ClipSampling, window_starts
from pipeline.data.decode import DECODER
from pipeline.data.manifest import Manifest
from pipeline.errors import ConfigError, VideoError
from pipeline.extract.config import DEFAULT_EXCLUDED_SPLITS, ExtractConfig
from pipeline.store.layout import StoreLayout, plan_layout
from store_schema import IMAGE_KIND, SCHEMA_VERSION

WINDOWED_KINDS = ("untrimmed", "anomaly")


def augments_images(split: str) -> bool:
    """Whether the images of `split` get S augmented crops (training splits: train,
    privacy_train, bias_train, ...) rather than one centre crop (every other split)."""
    return split.endswith("train")


def frame_labelled(manifest: Manifest) -> list[str]:
    """Attributes with frame-level labels in the manifest (in attribute order): their static
    clips get per-clip labels (``static_attr_<name>``)."""
    named = {seg["attribute"] for segs in manifest.attribute_segments() for seg in segs or ()}
    return [name for name in manifest.attribute_names if name in named]


def static_frame_labels(
    segments: list[dict[str, Any]], frames: np.ndarray, names: list[str]
) -> dict[str, np.ndarray]:
    """int16 [S] per attribute: the largest value of the segments covering each static clip's
    frame (several values coexist when several people are in view), -1 where none does."""
    labels = {name: np.full(len(frames), -1, dtype=np.int16) for name in names}
    for seg in segments or ():
        if seg["attribute"] not in labels:
            continue
        inside = (frames >= seg["start"]) & (frames < seg["end"])
        target = labels[seg["attribute"]]
        target[inside] = np.maximum(target[inside], seg["value"])
    return labels


def sampling_for(encoder: Any, config: ExtractConfig) -> ClipSampling:
    """Clip sampling matched to the encoder's clip length, input size and normalisation."""
    return ClipSampling(
        frames_per_clip=int(encoder.frames_per_clip),
        frame_stride=config.frame_stride,
        clips_per_video=config.clips_per_video,
        static_clips=config.static_clips,
        size=int(encoder.image_size),
        window_stride=config.window_stride,
        seed=config.seed,
        mean=tuple(encoder.mean),
        std=tuple(encoder.std),
    )


def sampling_json(sampling: ClipSampling) -> dict[str, Any]:
    return {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(sampling).items()}


@dataclass(frozen=True, eq=False)
class ExtractionPlan:
    """The videos to extract (manifest rows, in manifest order) and the store they go into."""

    rows: np.ndarray
    """Manifest row of each store video."""
    tables: dict[str, np.ndarray]
    """Arrays written when the store is created (videos table, window index, segments)."""
    layout: StoreLayout
    fingerprint: str
    splits: tuple[str, ...]
    frame_labels: tuple[str, ...] = ()
    """Attributes with frame-level labels (frame_labelled): their static clips get labels."""


def _windows(num_frames: int, kind: str, sampling: ClipSampling) -> np.ndarray:
    if kind not in WINDOWED_KINDS or num_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    try:
        return np.asarray(window_starts(num_frames, sampling), dtype=np.int64)
    except VideoError:  # too short for one window: the video fails when it is decoded
        return np.zeros(0, dtype=np.int64)


def _at_most(value: int | None, limit: int) -> int | None:
    return None if value is None else min(int(value), max(1, int(limit)))


def plan_extraction(
    manifest: Manifest,
    sampling: ClipSampling,
    feature_dim: int,
    encoder_identity: dict,
    config: ExtractConfig,
    *,
    only: set[str] | None = None,
    decoder: str = DECODER,
) -> ExtractionPlan:
    """Select videos (of the extracted splits; with `only`, just those ids), lay out the store,
    and fingerprint everything that determines its content (the decoder's name included)."""
    table = manifest.table
    all_splits = [str(s) for s in table.column("split").to_pylist()]
    if config.splits is None:
        splits = tuple(sorted({s for s in all_splits if s not in DEFAULT_EXCLUDED_SPLITS}))
    else:
        missing = sorted(set(config.splits) - set(all_splits))
        if missing:
            raise ConfigError(f"splits {missing} are not in the manifest")
        splits = tuple(config.splits)
    rows = np.array([i for i, s in enumerate(all_splits) if s in splits], dtype=np.int64)
    if only is not None:
        ids = table.column("video_id").to_pylist()
        rows = np.array([i for i in rows if ids[i] in only], dtype=np.int64)
    if len(rows) == 0:
        raise ConfigError("no videos to extract: the selected splits are empty")

    def column(name: str) -> list:
        values = table.column(name).to_pylist()
        return [values[i] for i in rows]

    kinds = column("kind")
    num_frames = np.array(column("num_frames"), dtype=np.int32)
    images = np.array([k == IMAGE_KIND for k in kinds], dtype=bool)
    if images.any() and sampling.static_clips < 1:
        raise ConfigError(
            f"{int(images.sum())} selected rows are images, which become static clips only: "
            "static_clips must be at least 1"
        )
    videos = num_frames[~images]
    if len(videos) and (videos > 0).all() and (videos < sampling.clip_span).all():
        raise ConfigError(
            f"every selected video is shorter than one clip: a clip spans {sampling.clip_span} "
            f"frames ({sampling.frames_per_clip} frames, stride {sampling.frame_stride}), the "
            f"longest video has {int(videos.max())}"
        )
    starts = [_windows(int(n), k, sampling) for n, k in zip(num_frames, kinds, strict=True)]
    layout = plan_layout(
        np.array([len(s) for s in starts]),
        clips_per_video=sampling.clips_per_video,
        static_clips=sampling.static_clips,
        feature_dim=feature_dim,
        # A chunk never needs to be larger than the whole array: clamping keeps a huge value
        # from asking zarr for a chunk buffer larger than memory.
        videos_per_chunk=_at_most(config.videos_per_chunk, len(rows)),
        window_chunk=_at_most(config.window_chunk, sum(len(s) for s in starts)),
    )
    window_video = layout.window_video()
    window_start = np.full(layout.num_windows, -1, dtype=np.int32)
    for video, video_starts in enumerate(starts):
        offset = int(layout.window_offset[video])
        window_start[offset : offset + len(video_starts)] = video_starts
    segment_rows = [
        (video, seg["start"], seg["end"], seg["label"])
        for video, segments in enumerate(column("segments"))
        for seg in segments or []
    ]
    segments = np.array(segment_rows, dtype=np.int32).reshape(-1, 4)
    tables: dict[str, np.ndarray] = {
        "video_id": np.array(column("video_id"), dtype=object),
        "split": np.array(column("split"), dtype=object),
        "kind": np.array(kinds, dtype=object),
        "action": np.array(column("action"), dtype=np.int16),
        "anomalous": np.array(column("anomalous"), dtype=np.int8),
        "fps": np.array(column("fps"), dtype=np.float32),
        "num_frames": num_frames,
        "window_offset": layout.window_offset,
        "window_count": layout.window_count,
        "window_video": window_video,
        "window_start": window_start,
        "segment_video": segments[:, 0],
        "segment_start": segments[:, 1],
        "segment_end": segments[:, 2],
        "segment_label": segments[:, 3],
    }
    for name in manifest.attribute_names:
        tables[f"attr_{name}"] = np.array(column(f"attr_{name}"), dtype=np.int16)
    identity = {
        "schema_version": SCHEMA_VERSION,
        "manifest_sha256": manifest.sha256,
        "encoder": {
            key: encoder_identity.get(key)
            for key in ("family", "pooling", "weights_sha256", "hidden_size")
        },
        "sampling": sampling_json(sampling),
        "splits": list(splits),
        "videos_per_chunk": layout.videos_per_chunk,
        "window_chunk": layout.window_chunk,
    }
    if decoder != DECODER:
        # Hashed only when it is not PyAV, the decoder every store so far was extracted with:
        # their fingerprints (and so resuming them) stay valid.
        identity["decoder"] = decoder
    if only is not None:
        identity["only"] = hashlib.sha256("\n".join(sorted(only)).encode()).hexdigest()
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return ExtractionPlan(
        rows, tables, layout, fingerprint, splits, tuple(frame_labelled(manifest))
    )
