"""Configuration of the extract-features stage."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.data.clips import MAX_COUNT
from pipeline.errors import ConfigError

DEFAULT_EXCLUDED_SPLITS = ("pretrain",)
"""Splits not extracted unless asked for: the encoder's own training data is never evaluated on."""


@dataclass(frozen=True)
class ExtractConfig:
    """How to turn a manifest's videos into a raw feature store."""

    device: str = "auto"
    """auto | cpu | cuda | cuda:N (auto picks CUDA when present)."""
    devices: tuple[str, ...] | None = None
    """Several devices of this machine (e.g. ("cuda:0", "cuda:1")): one encoder copy per device,
    each encoding the next shard not yet taken; overrides ``device``."""
    precision: str = "auto"
    """auto (bf16 autocast on CUDA, float32 on CPU) | float32 | bfloat16 | float16."""
    batch_size: int = 64
    """Clips per encoder forward pass (clips of several videos are batched together)."""
    workers: int | None = None
    """Decode worker processes running ahead of the encoder (None: cores - 2, at least 1, with
    a GPU encoder; one per core with a CPU encoder; 0: decode inline in the encoder's process)."""
    clips_per_video: int = 5
    """Normal clips per video, evenly spaced (overlapping when the video is short)."""
    static_clips: int = 10
    """Static clips per video (one frame repeated), for the self-supervised privacy loss."""
    frame_stride: int = 1
    """Frames between consecutive frames of a clip."""
    window_stride: int = 8
    """Frames between sliding windows of untrimmed and anomaly videos."""
    seed: int = 0
    """Seed of the static clips' augmentation (per video, independent of processing order)."""
    splits: tuple[str, ...] | None = None
    """Splits to extract; None = all but `pretrain`."""
    videos_per_chunk: int | None = None
    """Videos per chunk and per committed shard; None = sized for ~4 MB feature chunks."""
    window_chunk: int | None = None
    """Window rows per chunk; None = sized for ~4 MB."""
    feature_compression: str = "none"
    """none | zstd for embedding chunks (they barely compress; see benchmarks)."""
    overwrite: bool = False
    """Replace an existing raw store made with different settings."""
    append: bool = False
    """Add the videos of a grown manifest to an existing complete store (same encoder, sampling
    and settings; existing rows must be unchanged) instead of extracting from scratch."""
    break_lock: bool = False
    """Break the store's writer lock if its holder is dead (killed) or on another host; a lock
    held by a live process of this host is never broken (pipeline.store.lock)."""
    video_root: str | None = None
    """Directory the manifest's relative video paths are resolved under; None = the manifest's
    own directory."""
    allow_outside_root: bool = False
    """Accept manifest paths that leave the root (absolute, ``..``, symlinks pointing out)."""
    trust_remote_code: bool = False
    """Let transformers run Python code shipped with the encoder (its config's ``auto_map``)."""
    record_paths: bool = False
    """Record the encoder's absolute directory in the store's attrs; by default the store names
    it by base name and content hashes only, and holds no path of this machine."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "frame_stride", "window_stride"):
            _check_int(name, getattr(self, name), low=1, high=None)
        _check_int("clips_per_video", self.clips_per_video, low=1)
        _check_int("static_clips", self.static_clips, low=0)
        if self.workers is not None:
            _check_int("workers", self.workers, low=0, high=MAX_WORKERS)
        _check_int("seed", self.seed, low=None, high=None)
        if self.append and self.overwrite:
            raise ConfigError("append and overwrite exclude each other: append keeps the store")
        for name in ("videos_per_chunk", "window_chunk"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), low=1, high=None)
        for name in ("device", "precision", "feature_compression"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a string, got {getattr(self, name)!r}")
        if self.devices is not None:
            if isinstance(self.devices, str):
                object.__setattr__(self, "devices", tuple(self.devices.split(",")))
            devices = tuple(self.devices)
            if not devices or not all(isinstance(d, str) and d.strip() for d in devices):
                raise ConfigError(f"devices must be device names, got {self.devices!r}")
            object.__setattr__(self, "devices", tuple(d.strip() for d in devices))
        if self.feature_compression not in ("none", "zstd"):
            raise ConfigError(
                f"feature_compression must be none or zstd, got {self.feature_compression!r}"
            )
        if self.splits is not None:
            if not isinstance(self.splits, list | tuple) or not all(
                isinstance(s, str) for s in self.splits
            ):
                raise ConfigError(f"splits must be a list of split names, got {self.splits!r}")
            object.__setattr__(self, "splits", tuple(self.splits))
        if self.video_root is not None and not isinstance(self.video_root, str):
            object.__setattr__(self, "video_root", str(self.video_root))
        for name in ("overwrite", "break_lock", "allow_outside_root", "trust_remote_code",
                     "record_paths"):  # fmt: skip
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")


MAX_CLIPS = MAX_COUNT
"""Upper bound of per-video clip counts: ClipSampling's, checked here before any encoder loads."""
MAX_WORKERS = 1024


def _check_int(name: str, value: object, *, low: int | None, high: int | None = MAX_CLIPS) -> None:
    """A whole number in [low, high] (bools are refused: True is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{name} must be {'positive' if low == 1 else f'>= {low}'}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"{name} must be at most {high}, got {value}")
