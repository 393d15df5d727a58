"""Named training recipes: `recommended` (the default: protects) and `reference` (the paper's)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeline.aam.losses import LOSS_WEIGHTS
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.aam.from_store import TrainAAMConfig
    from pipeline.aam.trainer import TrainConfig

PRIVACY_WEIGHTS: tuple[str, ...] = ("w_b", "w_motion", "w_spread", "w_swap", "w_class")
"""Loss weights that remove private information; with all of them at 0 nothing does."""

ADAPTER_FIELDS: tuple[str, ...] = ("arch", "width", "depth", "heads")
"""Preset keys that shape the adapter (TrainAAMConfig) rather than its training (TrainConfig)."""


@dataclass(frozen=True)
class TrainPreset:
    """A named recipe: the adapter's shape and the training settings it overrides."""

    name: str
    """What `--preset` takes."""
    summary: str
    """One line for `--help` and the docs."""
    adapter: Mapping[str, Any] = field(default_factory=dict)
    """TrainAAMConfig fields (arch, width, depth, heads) that differ from the defaults."""
    training: Mapping[str, Any] = field(default_factory=dict)
    """TrainConfig fields (loss weights, epochs, lr, ...) that differ from the defaults."""

    def raw_settings(self) -> dict[str, Any]:
        """The fields the preset sets (adapter and training), nothing else."""
        return {**self.adapter, **self.training}

    def settings(self) -> dict[str, Any]:
        """Every adapter-shape field and every loss weight, epochs and lr, resolved over the
        dataclass defaults (what the preset means, in full)."""
        config = preset_config(self.name)
        training = config.training
        return {
            **{name: getattr(config, name) for name in ADAPTER_FIELDS},
            "epochs": training.epochs,
            "lr": training.lr,
            **{name: getattr(training, name) for name in LOSS_WEIGHTS},
        }


PRESETS: dict[str, TrainPreset] = {
    preset.name: preset
    for preset in (
        TrainPreset(
            name="recommended",
            summary=(
                "the defaults: attention adapter, latent consistency 1, static privacy 5, "
                "static spread 100, appearance swap 30, 120 epochs or 2,280 steps (whichever "
                "is longer)"
            ),
        ),
        TrainPreset(
            name="reference",
            summary=(
                "the paper's objective and weights (w_LC 100, w_T 1, w_B 1, no extensions), "
                "3 attention blocks of 8 heads, 100 epochs at lr 1e-4: barely anonymizes here"
            ),
            adapter={"arch": "attention", "depth": 3, "heads": 8},
            training={
                "epochs": 100,
                "lr": 1e-4,
                "w_lc": 100.0,
                "w_t": 1.0,
                "w_b": 1.0,
                "w_motion": 0.0,
                "w_spread": 0.0,
                "w_swap": 0.0,
                "w_class": 0.0,
            },
        ),
    )
}
DEFAULT_PRESET = "recommended"
"""What `anon-store train`, the `train-aam` flow and TrainAAMConfig() use: the dataclass defaults
of TrainConfig and TrainAAMConfig ARE this preset, so the recipe has one source."""


def get_preset(name: str) -> TrainPreset:
    """The preset called ``name``; a one-line ConfigError naming the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def preset_config(
    preset: str | None = DEFAULT_PRESET,
    overrides: Mapping[str, Any] | None = None,
    **fields: Any,
) -> TrainAAMConfig:
    """The train-aam config of ``preset`` with the explicitly given settings on top.

    ``overrides`` holds adapter-shape fields (arch, width, depth, heads) and TrainConfig fields;
    None values mean "not given" (a CLI flag left out) and keep the preset's. ``fields`` are the
    other TrainAAMConfig fields (splits, memory budget, resume, ...). ``preset=None``: the
    dataclass defaults, recorded as no preset.
    """
    from pipeline.aam.from_store import TrainAAMConfig
    from pipeline.aam.trainer import TrainConfig

    base: dict[str, Any] = {} if preset is None else get_preset(preset).raw_settings()
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    # "heads" names attention heads here (TrainAAMConfig); TrainConfig's seen-task heads are not
    # a preset setting.
    training_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"preset", "heads"}
    unknown = set(given) - training_fields - set(ADAPTER_FIELDS)
    if unknown:
        raise ConfigError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    settings = {**base, **given}
    training = TrainConfig(
        **{k: v for k, v in settings.items() if k in training_fields}, preset=preset
    )
    adapter = {k: v for k, v in settings.items() if k in ADAPTER_FIELDS}
    return TrainAAMConfig(training=training, **adapter, **fields)


def describe_config(config: TrainAAMConfig) -> str:
    """One line: the preset and the settings that decide what the adapter removes."""
    training = config.training
    weights = ", ".join(f"{name} {getattr(training, name):g}" for name in LOSS_WEIGHTS)
    source = f"preset {training.preset}" if training.preset else "no preset"
    return (
        f"{source}: {config.arch} adapter (depth {config.depth}), {weights}, "
        f"{epochs_text(training)}, lr {training.lr:g}"
    )


def epochs_text(training: TrainConfig) -> str:
    """ "40 epochs", or the recipe's rule when epochs are left to it."""
    from pipeline.aam.trainer import RECIPE_EPOCHS

    if training.epochs is not None:
        return f"{training.epochs} epochs"
    return f"{RECIPE_EPOCHS} epochs or {training.min_steps} steps, whichever is longer"


def privacy_off(weights: Mapping[str, float]) -> bool:
    """True when every privacy weight is 0: the adapter would only copy its input."""
    return all(float(weights.get(name, 0.0)) == 0.0 for name in PRIVACY_WEIGHTS)


def privacy_off_warning(weights: Mapping[str, float]) -> str | None:
    """The one-line warning for training without any privacy term, or None."""
    if not privacy_off(weights):
        return None
    names = ", ".join(PRIVACY_WEIGHTS)
    return (
        f"warning: every privacy weight ({names}) is 0: the adapter will not anonymize "
        "anything (drop the flags to use the recommended preset)"
    )


def split_settings(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(adapter fields, training fields) of a resolved settings dict; unknown keys refused."""
    from pipeline.aam.trainer import TrainConfig

    training_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(settings) - training_fields - set(ADAPTER_FIELDS)
    if unknown:
        raise ConfigError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    adapter = {k: v for k, v in settings.items() if k in ADAPTER_FIELDS}
    training = {k: v for k, v in settings.items() if k in training_fields}
    return adapter, training
