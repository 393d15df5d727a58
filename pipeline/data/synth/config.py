"""Names, sizes and the typed configuration of the synthetic privacy-video benchmark."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import ConfigError

DATASET_NAME = "anon-synth"

# Motion-only classes: every pair differs within any 16-frame clip (direction of travel, growth
# vs shrinkage, which body part oscillates and how fast). No pair differs only by the sense of a
# rotation, which two 8-frame tubelets cannot tell apart (FINDINGS #9).
ACTIONS: tuple[str, ...] = (
    "walk_right",
    "walk_left",
    "rise",
    "sink",
    "approach",
    "retreat",
    "wave",
    "jump",
    "turn",
    "sway",
)

# name -> (value names, role). Person attributes are what the adapter should erase; the scene is
# context (FINDINGS #3: report it separately).
ATTRIBUTES: dict[str, tuple[tuple[str, ...], str]] = {
    "skin": (("light", "tan", "brown", "dark"), "person"),
    "gender": (("male_presenting", "female_presenting"), "person"),
    "clothing": (("red", "green", "blue", "yellow"), "person"),
    "hat": (("none", "hat"), "person"),
    "scene": (("street", "park", "beach", "office", "night", "kitchen"), "context"),
}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)

ANOMALY_TYPES: tuple[str, ...] = ("fall", "erratic", "run")

TRIMMED_SPLITS: tuple[str, ...] = (
    "pretrain",
    "train",
    "val",
    "test",
    "privacy_train",
    "privacy_test",
    "bias_train",
    "bias_test",
)
UNTRIMMED_SPLITS: tuple[str, ...] = ("tad_train", "tad_test")
ANOMALY_SPLITS: tuple[str, ...] = ("anomaly_train", "anomaly_test")
SPLITS: tuple[str, ...] = TRIMMED_SPLITS + UNTRIMMED_SPLITS + ANOMALY_SPLITS


def split_kind(split: str) -> str:
    """The video kind ("trimmed" | "untrimmed" | "anomaly") every video of ``split`` has."""
    if split in UNTRIMMED_SPLITS:
        return "untrimmed"
    if split in ANOMALY_SPLITS:
        return "anomaly"
    if split in TRIMMED_SPLITS:
        return "trimmed"
    raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")


@dataclass(frozen=True)
class ScaleSpec:
    """Videos per split and frames per video of one benchmark scale."""

    counts: dict[str, int]
    """Number of videos in each split (all of SPLITS)."""
    trimmed_frames: int
    """Frames of a trimmed action video."""
    long_frames: int
    """Frames of an untrimmed (temporal detection) or anomaly video."""


SCALES: dict[str, ScaleSpec] = {
    "default": ScaleSpec(
        counts={
            "pretrain": 1500,
            "train": 1200,
            "val": 300,
            "test": 1000,
            "privacy_train": 600,
            "privacy_test": 400,
            "bias_train": 500,
            "bias_test": 400,
            "tad_train": 120,
            "tad_test": 80,
            "anomaly_train": 120,
            "anomaly_test": 80,
        },
        trimmed_frames=48,
        long_frames=192,
    ),
    "small": ScaleSpec(
        counts={
            "pretrain": 300,
            "train": 240,
            "val": 60,
            "test": 200,
            "privacy_train": 120,
            "privacy_test": 80,
            "bias_train": 100,
            "bias_test": 80,
            "tad_train": 24,
            "tad_test": 16,
            "anomaly_train": 24,
            "anomaly_test": 16,
        },
        trimmed_frames=48,
        long_frames=192,
    ),
    # For unit tests: a few seconds. The trimmed splits rotate through the actions, so that
    # together they hold every action; anomaly_train holds every anomaly type.
    "tiny": ScaleSpec(
        counts={
            "pretrain": 4,
            "train": 6,
            "val": 2,
            "test": 6,
            "privacy_train": 4,
            "privacy_test": 4,
            "bias_train": 4,
            "bias_test": 4,
            "tad_train": 3,
            "tad_test": 2,
            "anomaly_train": 6,
            "anomaly_test": 2,
        },
        trimmed_frames=32,
        long_frames=64,
    ),
}


GENERATOR_VERSION = 1
"""Bump when a change to the generator's code changes the videos a config produces: caches built
from generated data (the tiny encoder's) are keyed by it."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines a generated benchmark (with the same config, the same bytes)."""

    scale: str = "default"
    """One of SCALES: "default" (~6,300 videos), "small" (~1/5) or "tiny" (unit tests)."""
    seed: int = 0
    """Root seed. Video i of split s is drawn from its own RNG seeded by (seed, s, i), and by
    the world too in worlds other than the default."""
    frame_size: int = 64
    """Frame width and height in pixels (even, 32..512); shapes scale with it."""
    fps: float = 25.0
    """Frame rate written into the mp4 files and the manifest."""
    crf: int = 18
    """x264 constant rate factor (0 lossless .. 51 worst)."""
    preset: str = "veryfast"
    """x264 preset; it changes file size and speed, not the picture much at crf 18."""
    splits: tuple[str, ...] | None = None
    """Generate only these splits (e.g. ("pretrain",)); None = all. A video does not depend on
    which other splits are generated."""
    workers: int | None = None
    """Processes rendering and encoding; None = one per core (at most 8) when there are many
    videos, 1 = in this process. The output does not depend on it."""
    trimmed_frames: int | None = None
    """Override the scale's frames per trimmed video (>= 16)."""
    long_frames: int | None = None
    """Override the scale's frames per untrimmed / anomaly video (>= 48)."""
    world: str = "default"
    """World family (pipeline.data.synth.worlds): "default" is the original benchmark; the
    others have their own actors, actions, attributes, scenes and camera motion."""

    def __post_init__(self) -> None:
        from pipeline.data.synth.worlds import get_world  # the worlds import this module

        get_world(self.world)
        if self.scale not in SCALES:
            raise ConfigError(f"synth scale {self.scale!r} is not one of {', '.join(SCALES)}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"synth seed must be an integer >= 0, got {self.seed!r}")
        if not (32 <= self.frame_size <= 512 and self.frame_size % 2 == 0):
            raise ConfigError(f"frame_size must be even and in 32..512, got {self.frame_size}")
        if not (0 < self.fps <= 240):
            raise ConfigError(f"fps must be in (0, 240], got {self.fps}")
        if not (0 <= self.crf <= 51):
            raise ConfigError(f"crf must be in 0..51, got {self.crf}")
        if self.splits is not None:
            splits = tuple(dict.fromkeys(self.splits))
            unknown = [s for s in splits if s not in SPLITS]
            if unknown or not splits:
                raise ConfigError(
                    f"unknown or no splits {list(self.splits)}; expected some of "
                    f"{', '.join(SPLITS)}"
                )
            object.__setattr__(self, "splits", splits)
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1 (or None = auto), got {self.workers}")
        if self.trimmed_frames is not None and self.trimmed_frames < 16:
            raise ConfigError(f"trimmed_frames must be >= 16, got {self.trimmed_frames}")
        if self.long_frames is not None and self.long_frames < 48:
            raise ConfigError(f"long_frames must be >= 48, got {self.long_frames}")

    @property
    def generator_version(self) -> int:
        """Version of the code that draws this config's world (GENERATOR_VERSION for the
        default world): caches built from generated data should be keyed by it."""
        from pipeline.data.synth.worlds import get_world

        return get_world(self.world).version

    @property
    def scale_spec(self) -> ScaleSpec:
        return SCALES[self.scale]

    @property
    def selected_splits(self) -> tuple[str, ...]:
        """The splits to generate, in canonical order."""
        wanted = SPLITS if self.splits is None else self.splits
        return tuple(s for s in SPLITS if s in wanted)

    def num_frames(self, kind: str) -> int:
        """Frames per video of ``kind``."""
        spec = self.scale_spec
        if kind == "trimmed":
            return self.trimmed_frames or spec.trimmed_frames
        return self.long_frames or spec.long_frames

    def count(self, split: str) -> int:
        """Videos in ``split`` at this scale (whether or not the split is selected)."""
        return self.scale_spec.counts[split]

    def resolved_workers(self, num_videos: int) -> int:
        """Worker processes to use for ``num_videos`` videos."""
        if self.workers is not None:
            return self.workers
        if num_videos < 48:
            return 1  # starting processes costs more than it saves
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return max(1, min(cores, 8))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (as written into benchmark.json)."""
        d = asdict(self)
        d["splits"] = list(self.splits) if self.splits is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthConfig:
        d = dict(d)
        if d.get("splits") is not None:
            d["splits"] = tuple(d["splits"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})
