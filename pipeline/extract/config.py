"""Configuration of the extract-features stage."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import ConfigError

DEFAULT_EXCLUDED_SPLITS = ("pretrain",)
"""Splits not extracted unless asked for: the encoder's own training data is never evaluated on."""


@dataclass(frozen=True)
class ExtractConfig:
    """How to turn a manifest's videos into a raw feature store."""

    device: str = "auto"
    """auto | cpu | cuda (auto picks CUDA when present)."""
    precision: str = "auto"
    """auto (bf16 autocast on CUDA, float32 on CPU) | float32 | bfloat16 | float16."""
    batch_size: int = 64
    """Clips per encoder forward pass (clips of several videos are batched together)."""
    workers: int = 2
    """Decode threads running ahead of the encoder (0 = decode inline)."""
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

    def __post_init__(self) -> None:
        positive = {
            "batch_size": self.batch_size,
            "clips_per_video": self.clips_per_video,
            "frame_stride": self.frame_stride,
            "window_stride": self.window_stride,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.static_clips < 0 or self.workers < 0:
            raise ConfigError("static_clips and workers must not be negative")
        if self.feature_compression not in ("none", "zstd"):
            raise ConfigError(
                f"feature_compression must be none or zstd, got {self.feature_compression!r}"
            )
        for name in ("videos_per_chunk", "window_chunk"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
