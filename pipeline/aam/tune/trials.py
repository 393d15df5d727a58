"""The trial list of a search: the named presets first, then seeded samples of the space."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.aam.from_store import TrainAAMConfig
from pipeline.aam.losses import LOSS_WEIGHTS
from pipeline.aam.trainer import RECIPE_EPOCHS, TrainConfig
from pipeline.aam.tune.config import TuneConfig
from pipeline.aam.tune.space import scrambled_halton
from pipeline.errors import ConfigError

ADAPTER_KEYS = ("arch", "width", "depth", "heads")
"""TrainAAMConfig fields that shape the adapter (the rest of a trial's settings train it)."""
PARAM_KEYS = (*ADAPTER_KEYS, "epochs", "lr", *LOSS_WEIGHTS)
"""The effective settings a trial records and the report shows."""


@dataclass(frozen=True)
class Trial:
    """One configuration to train: what it sets, and everything it resolves to."""

    trial_id: str
    """Directory name under trials/: ``preset-<name>`` or ``sample-<NNN>``."""
    origin: str
    """"preset" or "sample"."""
    settings: Mapping[str, Any]
    """What the trial sets over the defaults (adapter and TrainConfig fields)."""
    preset: str | None = None
    """The preset's name, for preset trials."""

    def train_config(self, config: TuneConfig, memory_budget_bytes: int | None) -> TrainAAMConfig:
        """The train-aam config of this trial under ``config`` (epochs capped, seed set)."""
        adapter = {k: v for k, v in self.settings.items() if k in ADAPTER_KEYS}
        training = {
            **config.training,
            **{k: v for k, v in self.settings.items() if k not in ADAPTER_KEYS},
            "seed": config.seed,
            "device": config.device,
        }
        if config.max_epochs is not None:
            # Left to the recipe (None), a trial's length depends on the store; the cap is what
            # a quick first look asks for, so it applies to the recipe's minimum too.
            epochs = training.get("epochs") or RECIPE_EPOCHS
            training["epochs"] = min(int(epochs), config.max_epochs)
        if "preset" in {f.name for f in dataclasses.fields(TrainConfig)}:
            training["preset"] = self.preset  # recorded in the adapter's config.json
        try:
            return TrainAAMConfig(
                training=TrainConfig(**training),
                **adapter,
                train_split=config.train_split,
                val_split=config.val_split,
                memory_budget_bytes=memory_budget_bytes,
                resume=True,
            )
        except TypeError as error:  # a setting TrainConfig does not know
            raise ConfigError(f"trial {self.trial_id}: {error}") from None

    def params(self, config: TuneConfig) -> dict[str, Any]:
        """The effective architecture, epochs, learning rate and loss weights."""
        resolved = self.train_config(config, None)
        values = {k: getattr(resolved, k) for k in ADAPTER_KEYS}
        values.update({k: getattr(resolved.training, k) for k in ("epochs", "lr", *LOSS_WEIGHTS)})
        return {k: values[k] for k in PARAM_KEYS}


def preset_trials() -> list[Trial]:
    """One trial per named preset (pipeline.aam.presets), in the registry's order."""
    from pipeline.aam.presets import PRESETS

    trials = []
    for name, preset in PRESETS.items():
        settings = {**dict(preset.adapter), **dict(preset.training)}
        trials.append(Trial(f"preset-{name}", "preset", settings, preset=name))
    return trials


def trial_list(config: TuneConfig) -> list[Trial]:
    """``config.trials`` trials: the presets (when enabled), then samples 0, 1, ... of the
    space; the same config gives the same list, and a longer list starts with a shorter one."""
    trials = preset_trials() if config.presets else []
    trials = trials[: config.trials]
    n = config.trials - len(trials)
    points = scrambled_halton(n, config.space.dims, config.seed)
    for i, point in enumerate(points):
        trials.append(Trial(f"sample-{i:03d}", "sample", config.space.settings(point)))
    return trials
