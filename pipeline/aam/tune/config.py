"""TuneConfig: what `anon-store tune` searches, how it scores and selects, and where it runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.aam.tune.space import SearchSpace
from pipeline.errors import ConfigError
from pipeline.probes.action import LinearProbeConfig
from pipeline.probes.attacker import AttackerConfig

PRIVACY_MODES = ("auto", "attacker", "proxy")
TRIAL_FIXED = ("seed", "device", "preset")
"""TrainConfig fields the search sets itself (``training`` may not)."""


@dataclass(frozen=True)
class TuneConfig:
    """A search over the adapter's loss weights, architecture and epochs."""

    trials: int = 20
    """Trials in all: the presets first, then seeded samples of ``space``. Growing it later
    keeps the finished trials (the samples are a sequence: trial i does not depend on it)."""
    seed: int = 0
    """Seeds the samples, every trial's training and the probes that score it."""
    space: SearchSpace = field(default_factory=SearchSpace)
    presets: bool = True
    """Start with the named presets (pipeline.aam.presets) as the first trials."""
    max_epochs: int | None = None
    """Cap on every trial's epochs, presets included (a quick first look; tests)."""
    training: Mapping[str, Any] = field(default_factory=dict)
    """TrainConfig fields every trial gets (batch_size, val_every, head_warmup_epochs, ...),
    under the preset's or the sample's own settings."""
    tolerance: float = 1.0
    """Utility slack of the selection, in accuracy points: a trial qualifies when its val
    action top-1 is at least the raw features' minus this."""
    privacy: str = "auto"
    """How a trial's privacy is measured: "attacker" (an MLP attacker within privacy_train),
    "proxy" (label-free same-video retrieval on val), "auto" (attacker when the store's
    privacy_train split is labelled, else proxy)."""
    train_split: str = "train"
    """Split the adapters (and the utility probe) are trained on."""
    val_split: str = "val"
    """Split the utility is measured on (and each trial's checkpoints are selected on)."""
    privacy_train_split: str = "privacy_train"
    """The only split the attackers read: split by video into a part they are fitted on and a
    part they are scored on (``attack_val_fraction``; pipeline.aam.tune.scoring.attack_split)."""
    attack_val_fraction: float = 0.3
    """Part of the privacy_train VIDEOS the attacker is scored on (the rest: fitted on)."""
    privacy_test_split: str = "privacy_test"
    """The split `evaluate` and `audit` score their attackers on: tune never reads it (the
    selection must not see what the final report measures), so no other split may be it."""
    probe: LinearProbeConfig = field(default_factory=LinearProbeConfig)
    """The linear action probe that measures utility (as `evaluate`'s)."""
    attacker: AttackerConfig = field(
        default_factory=lambda: AttackerConfig(lr=1e-2, max_epochs=30, patience=5)
    )
    """The MLP attacker: `evaluate --fast`'s budget (one seed; rough but ranks trials)."""
    workers: int | None = None
    """Trials trained side by side in worker processes (None: one per core, at most the
    trials to run; 1: in this process). Exclusive with ``scheduler``."""
    scheduler: str | None = None
    """A dask scheduler address (tcp://host:8786): trials run on its workers, which must see
    the store and the output directory at the same paths."""
    memory_budget_bytes: int | None = None
    """Bytes one trial's features may take (None: half the memory available when the search
    starts). The same for every trial wherever it runs, so in-memory or streamed training (which
    differ in batch order) does not depend on the worker count."""
    device: str = "cpu"
    overwrite: bool = False
    """Start over in an output directory made by a different search."""

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"trials must be at least 1, got {self.trials}")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ConfigError(f"max_epochs must be at least 1, got {self.max_epochs}")
        if not 0 <= self.tolerance < 100:
            raise ConfigError(f"tolerance is in accuracy points [0, 100), got {self.tolerance}")
        if self.privacy not in PRIVACY_MODES:
            raise ConfigError(f"privacy must be one of {PRIVACY_MODES}, got {self.privacy!r}")
        if self.workers is not None and self.scheduler:
            raise ConfigError("give workers (local processes) or scheduler (dask), not both")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.scheduler is not None and "://" not in self.scheduler:
            raise ConfigError(f"scheduler must look like tcp://host:8786, got {self.scheduler!r}")
        fixed = sorted(set(self.training) & set(TRIAL_FIXED))
        if fixed:
            raise ConfigError(f"training may not set {', '.join(fixed)}: the search sets them")
        if not 0 < self.attack_val_fraction < 1:
            raise ConfigError(
                f"attack_val_fraction must be in (0, 1), got {self.attack_val_fraction}"
            )
        if self.train_split == self.val_split:
            raise ConfigError("train and val split must differ")
        if self.privacy_test_split in (self.train_split, self.val_split, self.privacy_train_split):
            raise ConfigError(
                f"tune never reads {self.privacy_test_split} (the final report's attacker test "
                "split): train, val and privacy_train split must differ from it"
            )

    def search_identity(self) -> dict[str, Any]:
        """What decides the trials and their scores: a finished search is reused only by a
        rerun with the same identity (trials, tolerance, workers, device may change)."""
        return {
            "seed": self.seed,
            "space": dataclasses.asdict(self.space),
            "presets": self.presets,
            "max_epochs": self.max_epochs,
            "training": dict(sorted(self.training.items())),
            "privacy": self.privacy,
            "splits": [self.train_split, self.val_split, self.privacy_train_split],
            "attack_val_fraction": self.attack_val_fraction,
            "probe": dataclasses.asdict(self.probe),
            "attacker": dataclasses.asdict(self.attacker),
        }
