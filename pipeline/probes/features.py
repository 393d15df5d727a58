"""Features and labels for the probes: what each probe needs from a store, per split, in numpy."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import StoreError
from pipeline.store.reader import FeatureStore, open_store
from store_schema import FRAME_LABEL_PREFIX, IMAGE_KIND

log = logging.getLogger(__name__)

FEATURE_PARTS = ("clip", "static", "window")
"""The three kinds of embeddings a store holds; a feature transform is called once per part."""

DEFAULT_WINDOW_LENGTH = 16
"""Frames a window spans when the store does not say (a 16-frame clip, stride 1)."""


@dataclass(frozen=True)
class AttributeSpec:
    """One private or context attribute of the dataset."""

    name: str
    values: tuple[str, ...]
    """Value names; the store holds indices into them (-1 = unknown)."""
    role: str
    """"person" (private, what anonymization should erase) or "context" (e.g. the scene)."""


@dataclass(frozen=True)
class DatasetSpec:
    """Label vocabularies of the dataset behind a store."""

    actions: tuple[str, ...]
    attributes: dict[str, AttributeSpec]
    anomaly_types: tuple[str, ...] = ()
    frame_labels: tuple[str, ...] = ()
    """Attributes whose static clips carry frame-level labels (e.g. PA-HMDB51)."""

    @property
    def person_attributes(self) -> list[str]:
        return [n for n, a in self.attributes.items() if a.role == "person"]

    @property
    def context_attributes(self) -> list[str]:
        return [n for n, a in self.attributes.items() if a.role != "person"]

    @classmethod
    def from_meta(cls, dataset: Mapping[str, Any]) -> DatasetSpec:
        attributes = {
            str(name): AttributeSpec(
                str(name), tuple(str(v) for v in spec.get("values", ())), str(spec.get("role"))
            )
            for name, spec in (dataset.get("attributes") or {}).items()
        }
        return cls(
            actions=tuple(str(a) for a in dataset.get("actions") or ()),
            attributes=attributes,
            anomaly_types=tuple(str(a) for a in dataset.get("anomaly_types") or ()),
            frame_labels=tuple(str(a) for a in dataset.get("frame_labels") or ()),
        )


def _empty(shape: tuple[int, ...], dtype: Any = np.int64) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


@dataclass(frozen=True, eq=False)
class VideoSet:
    """The ok videos of one split with their embeddings and labels (indices are split-local).

    Trimmed splits have no windows and no segments (empty arrays). For untrimmed and anomaly
    videos ``window_video`` says which video (0..V-1) each window row belongs to, and segments
    are frames [start, end) of an action (label = action class) or an abnormal event.
    """

    video_id: np.ndarray
    """str [V]."""
    clip: np.ndarray
    """float32 [V, K, D]: normal clips, evenly spaced in the video."""
    static: np.ndarray
    """float32 [V, S, D]: static clips (S may be 0)."""
    action: np.ndarray
    """int [V]: action class, -1 where none."""
    attributes: dict[str, np.ndarray]
    """name -> int [V]: attribute value index, -1 unknown."""
    anomalous: np.ndarray = field(default_factory=lambda: _empty((0,)))
    """int [V]: 1 abnormal event, 0 none, -1 not applicable."""
    num_frames: np.ndarray = field(default_factory=lambda: _empty((0,)))
    """int [V]."""
    window_features: np.ndarray = field(default_factory=lambda: _empty((0, 0), np.float32))
    """float32 [W, D]."""
    window_video: np.ndarray = field(default_factory=lambda: _empty((0,)))
    """int [W]: split-local video index of each window."""
    window_start: np.ndarray = field(default_factory=lambda: _empty((0,)))
    """int [W]: first frame of each window."""
    segment_video: np.ndarray = field(default_factory=lambda: _empty((0,)))
    segment_start: np.ndarray = field(default_factory=lambda: _empty((0,)))
    segment_end: np.ndarray = field(default_factory=lambda: _empty((0,)))
    segment_label: np.ndarray = field(default_factory=lambda: _empty((0,)))
    static_attributes: dict[str, np.ndarray] = field(default_factory=dict)
    """name -> int [V, S]: the attribute's value at each static clip's frame (-1 unlabelled),
    for attributes with frame-level labels (DatasetSpec.frame_labels) only."""

    def __post_init__(self) -> None:
        v = len(self.video_id)
        defaults = {"anomalous": -1, "num_frames": 0}
        for name, fill in defaults.items():
            if len(getattr(self, name)) != v:  # left at the empty default
                object.__setattr__(self, name, np.full(v, fill, dtype=np.int64))
        if self.window_features.shape[0] == 0:
            empty = np.zeros((0, self.clip.shape[-1]), dtype=np.float32)
            object.__setattr__(self, "window_features", empty)

    def __len__(self) -> int:
        return len(self.video_id)

    @property
    def feature_dim(self) -> int:
        return int(self.clip.shape[-1])

    @property
    def num_windows(self) -> int:
        return len(self.window_video)

    @property
    def has_clips(self) -> np.ndarray:
        """bool [V]: videos with normal clips (image rows have static clips only, NaN clips)."""
        if self.clip.shape[1] == 0:
            return np.zeros(len(self), dtype=bool)
        return np.isfinite(self.clip).all(axis=(1, 2))

    def with_clips(self) -> VideoSet:
        """The videos that have normal clips (all of them unless the split holds images)."""
        keep = self.has_clips
        return self if keep.all() else self.subset(np.flatnonzero(keep))

    def replace(self, **changes: Any) -> VideoSet:
        return dataclasses.replace(self, **changes)

    def subset(self, videos: np.ndarray) -> VideoSet:
        """The videos at split-local indices ``videos`` (windows and segments follow them)."""
        videos = np.asarray(videos, dtype=np.int64)
        new_index = np.full(len(self), -1, dtype=np.int64)
        new_index[videos] = np.arange(len(videos))
        win = np.flatnonzero(new_index[self.window_video] >= 0) if self.num_windows else []
        seg = np.flatnonzero(new_index[self.segment_video] >= 0) if len(self.segment_video) else []
        win, seg = np.asarray(win, dtype=np.int64), np.asarray(seg, dtype=np.int64)
        return VideoSet(
            video_id=self.video_id[videos],
            clip=self.clip[videos],
            static=self.static[videos],
            action=self.action[videos],
            attributes={k: a[videos] for k, a in self.attributes.items()},
            anomalous=self.anomalous[videos],
            num_frames=self.num_frames[videos],
            window_features=self.window_features[win],
            window_video=new_index[self.window_video[win]],
            window_start=self.window_start[win],
            segment_video=new_index[self.segment_video[seg]],
            segment_start=self.segment_start[seg],
            segment_end=self.segment_end[seg],
            segment_label=self.segment_label[seg],
            static_attributes={k: a[videos] for k, a in self.static_attributes.items()},
        )

    def video_windows(self, video: int) -> np.ndarray:
        """Window rows of ``video``, sorted by start frame."""
        rows = np.flatnonzero(self.window_video == video)
        return rows[np.argsort(self.window_start[rows], kind="stable")]

    def video_segments(self, video: int) -> np.ndarray:
        """int [G, 3]: (start, end, label) of the segments of ``video``."""
        rows = self.segment_video == video
        return np.stack(
            [self.segment_start[rows], self.segment_end[rows], self.segment_label[rows]], axis=1
        ).astype(np.int64)

    def frame_labels(self, video: int) -> np.ndarray:
        """bool [num_frames]: frames inside a segment of ``video`` (abnormal frames for anomaly
        videos). A video marked not anomalous has no abnormal frame whatever its segments say."""
        labels = np.zeros(int(self.num_frames[video]), dtype=bool)
        if self.anomalous[video] == 0:
            return labels
        for start, end, _ in self.video_segments(video):
            labels[max(int(start), 0) : max(int(end), 0)] = True
        return labels


FeatureFn = Callable[[np.ndarray, str], np.ndarray]
"""(features [..., D], part in FEATURE_PARTS) -> transformed features [..., D']."""


@dataclass(frozen=True, eq=False)
class ProbeFeatures:
    """Everything the probes read from one store (or from a transform of one), split by split."""

    dataset: DatasetSpec
    splits: dict[str, VideoSet]
    window_length: int = DEFAULT_WINDOW_LENGTH
    """Frames each window spans (frames per clip x frame stride)."""
    source: dict[str, Any] = field(default_factory=dict)
    """Where the features came from: store url, kind, store_id, encoder name, transform, ..."""

    def has(self, *splits: str) -> bool:
        return all(s in self.splits and len(self.splits[s]) > 0 for s in splits)

    def __getitem__(self, split: str) -> VideoSet:
        return self.splits[split]

    @property
    def feature_dim(self) -> int:
        for videos in self.splits.values():
            return videos.feature_dim
        return 0

    def map_features(self, fn: FeatureFn, **source: Any) -> ProbeFeatures:
        """Apply ``fn`` to the clip, static and window embeddings of every split.

        ``fn(x, part)`` gets clip features [V, K, D], static features [V, S, D] (videos kept
        whole, so an adapter that attends over the clips of one video can) and window features
        [W, D], with the part's name; it returns the same leading shape with any last size.
        ``source`` entries are added to the provenance of the result.
        """
        splits = {}
        for name, videos in self.splits.items():
            clip = _apply(fn, videos.clip, "clip")
            static = _apply(fn, videos.static, "static", clip.shape[-1])
            windows = _apply(fn, videos.window_features, "window", clip.shape[-1])
            splits[name] = videos.replace(clip=clip, static=static, window_features=windows)
        return dataclasses.replace(self, splits=splits, source={**self.source, **source})


def _apply(fn: FeatureFn, x: np.ndarray, part: str, dim: int | None = None) -> np.ndarray:
    if x.size == 0:  # nothing to transform: keep the shape, with the transformed width
        return np.zeros((*x.shape[:-1], x.shape[-1] if dim is None else dim), np.float32)
    out = np.asarray(fn(x, part), dtype=np.float32)
    if out.shape[:-1] != x.shape[:-1]:
        raise StoreError(
            f"feature transform returned shape {out.shape} for {part} features of shape {x.shape}"
        )
    return out


def _window_length(meta: Mapping[str, Any]) -> int:
    sampling = meta.get("sampling") or {}
    frames = sampling.get("frames_per_clip")
    if frames is None:
        log.warning(
            "store has no sampling.frames_per_clip: windows taken as %d frames",
            DEFAULT_WINDOW_LENGTH,
        )
        return DEFAULT_WINDOW_LENGTH
    return int(frames) * int(sampling.get("frame_stride") or 1)


def _read_windows(
    store: FeatureStore, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Window features, split-local video index and start of the windows of store rows ``rows``."""
    group, videos = store.group, store.videos
    counts = videos["window_count"][rows].astype(np.int64)
    offsets = videos["window_offset"][rows].astype(np.int64)
    dim = store.feature_dim
    has = counts > 0
    if not has.any():
        return np.zeros((0, dim), np.float32), _empty((0,)), _empty((0,))
    lo = int(offsets[has].min())
    hi = int((offsets[has] + counts[has]).max())
    block = np.asarray(group["window_features"][lo:hi], dtype=np.float32)
    starts = np.asarray(group["window_start"][lo:hi], dtype=np.int64)
    owner = np.asarray(group["window_video"][lo:hi], dtype=np.int64)
    take, local = [], []
    for i in np.flatnonzero(has):
        idx = np.arange(offsets[i], offsets[i] + counts[i]) - lo
        idx = idx[owner[idx] == rows[i]]  # guards against a table / window index mismatch
        take.append(idx)
        local.append(np.full(len(idx), i, dtype=np.int64))
    sel = np.concatenate(take)
    return block[sel], np.concatenate(local), starts[sel]


def _load_split(store: FeatureStore, split: str) -> VideoSet:
    rows = store.rows(split)
    videos = store.videos
    clip = store.read_rows("clip_features", rows).astype(np.float32, copy=False)
    if "static_features" in store.group and store.group["static_features"].shape[1] > 0:
        static = store.read_rows("static_features", rows).astype(np.float32, copy=False)
    else:
        static = np.zeros((len(rows), 0, clip.shape[-1]), np.float32)
    windows, window_video, window_start = _read_windows(store, rows)
    seg_video = np.asarray(store.group["segment_video"][:], dtype=np.int64)
    local = np.full(store.num_videos, -1, dtype=np.int64)
    local[rows] = np.arange(len(rows))
    seg = np.flatnonzero((seg_video >= 0) & (local[np.clip(seg_video, 0, None)] >= 0))
    result = VideoSet(
        video_id=np.array([str(x) for x in videos["video_id"][rows]]),
        clip=clip,
        static=static,
        action=videos["action"][rows].astype(np.int64),
        attributes={
            name: videos[f"attr_{name}"][rows].astype(np.int64) for name in store.attribute_names
        },
        anomalous=videos["anomalous"][rows].astype(np.int64),
        num_frames=videos["num_frames"][rows].astype(np.int64),
        window_features=windows,
        window_video=window_video,
        window_start=window_start,
        segment_video=local[seg_video[seg]],
        segment_start=np.asarray(store.group["segment_start"][:], dtype=np.int64)[seg],
        segment_end=np.asarray(store.group["segment_end"][:], dtype=np.int64)[seg],
        segment_label=np.asarray(store.group["segment_label"][:], dtype=np.int64)[seg],
        static_attributes={
            name: store.read_rows(f"{FRAME_LABEL_PREFIX}{name}", rows).astype(np.int64)
            for name in (store.meta.get("dataset") or {}).get("frame_labels") or ()
        },
    )
    images = np.asarray(videos["kind"][rows]) == IMAGE_KIND
    return _drop_non_finite(result, split, images)


def _drop_non_finite(videos: VideoSet, split: str, images: np.ndarray) -> VideoSet:
    """Drop videos with NaN/inf features: an ok status with NaN features is a broken store, but
    one bad video must not turn every probe's number into NaN. Images keep their NaN normal
    clips (they have none; probes that need clips skip them)."""
    bad = ~(np.isfinite(videos.clip).all(axis=(1, 2)) | images)
    bad |= ~np.isfinite(videos.static).all(axis=(1, 2))
    if videos.num_windows:
        bad_win = ~np.isfinite(videos.window_features).all(axis=1)
        bad[np.unique(videos.window_video[bad_win])] = True
    if bad.any():
        log.warning("split %s: %d video(s) with non-finite features left out", split, bad.sum())
        return videos.subset(np.flatnonzero(~bad))
    return videos


def load_features(
    store: FeatureStore | str | Path,
    splits: Iterable[str] | None = None,
) -> ProbeFeatures:
    """Read the ok videos of ``splits`` (default: every split in the store) into numpy."""
    if not isinstance(store, FeatureStore):
        store = open_store(store)
    meta = store.meta
    dataset = DatasetSpec.from_meta(meta.get("dataset") or {})
    wanted = store.splits() if splits is None else [s for s in splits if s in store.splits()]
    loaded = {}
    for split in wanted:
        videos = _load_split(store, split)
        if len(videos):
            loaded[split] = videos
    source = {
        "store": str(store.location),
        "kind": store.kind,
        "store_id": store.store_id,
        "encoder": store.encoder.get("name"),
    }
    if meta.get("input_store_id"):
        source["input_store_id"] = meta["input_store_id"]
    if meta.get("adapter"):
        source["adapter"] = meta["adapter"]
    return ProbeFeatures(dataset, loaded, _window_length(meta), source)
