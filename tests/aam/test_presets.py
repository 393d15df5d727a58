"""Training presets: the recommended one is the default everywhere, flags override, config.json
records what was resolved, and training without privacy terms warns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.aam.from_store import TrainAAMConfig
from pipeline.aam.losses import LOSS_WEIGHTS
from pipeline.aam.presets import (
    DEFAULT_PRESET,
    PRESETS,
    PRIVACY_WEIGHTS,
    get_preset,
    preset_config,
    privacy_off_warning,
)
from pipeline.aam.trainer import TrainConfig
from pipeline.errors import ConfigError


def test_the_recommended_preset_is_every_default() -> None:
    resolved = preset_config()
    assert DEFAULT_PRESET == "recommended" and resolved.training.preset == "recommended"
    # the dataclasses' defaults ARE the recommended recipe: one source for the library, the CLI,
    # the flow and the demo
    assert resolved == TrainAAMConfig(training=TrainConfig(preset="recommended"))
    assert get_preset("recommended").settings()["arch"] == TrainAAMConfig().arch == "attention"
    # ... and it protects: several privacy terms on, consistency not dominating them
    training = resolved.training
    assert training.w_b > 0 and training.w_spread > 0 and training.w_swap > 0
    assert training.w_lc <= training.w_b


def test_the_reference_preset_is_the_papers_objective() -> None:
    config = preset_config("reference")
    weights = {name: getattr(config.training, name) for name in LOSS_WEIGHTS}
    assert weights == {
        "w_lc": 100.0, "w_t": 1.0, "w_b": 1.0, "w_motion": 0.0, "w_spread": 0.0, "w_swap": 0.0,
        "w_class": 0.0,
    }  # fmt: skip
    assert (config.arch, config.depth, config.heads) == ("attention", 3, 8)
    assert (config.training.epochs, config.training.lr) == (100, 1e-4)
    assert config.training.preset == "reference"


def test_explicit_settings_override_the_preset_and_none_keeps_it() -> None:
    config = preset_config(
        "reference", {"w_b": 7.0, "arch": "mlp", "epochs": None, "seed": 3}, overwrite=True
    )
    assert config.training.w_b == 7.0 and config.arch == "mlp" and config.training.seed == 3
    assert config.training.epochs == 100 and config.training.w_lc == 100.0  # the preset's
    assert config.overwrite is True and config.training.preset == "reference"
    assert preset_config(None).training.preset is None


def test_bad_preset_or_setting_is_one_line_error() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'fast'; choose one of recommended"):
        preset_config("fast")
    with pytest.raises(ConfigError, match="unknown training setting"):
        preset_config("recommended", {"w_privacy": 1.0})
    with pytest.raises(ConfigError, match="unknown preset"):
        TrainConfig(preset="fast")


def test_privacy_off_warning_only_when_every_privacy_weight_is_zero() -> None:
    assert set(PRIVACY_WEIGHTS) <= set(LOSS_WEIGHTS) and "w_lc" not in PRIVACY_WEIGHTS
    off = {name: 0.0 for name in PRIVACY_WEIGHTS} | {"w_lc": 1.0, "w_t": 1.0}
    message = privacy_off_warning(off)
    assert message is not None and "\n" not in message and "will not anonymize" in message
    for name in PRIVACY_WEIGHTS:
        assert privacy_off_warning(off | {name: 0.5}) is None
    for preset in PRESETS:
        assert privacy_off_warning(get_preset(preset).settings()) is None


def test_cli_train_records_the_preset_and_warns_without_privacy(
    run_cli, raw_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "adapter"
    code, _, err = run_cli(
        "train", "--input", raw_store, "--output", out, "--epochs", "1",
        "--w-b", "0", "--w-spread", "0", "--w-swap", "0",
    )  # fmt: skip
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "will not anonymize" in line]
    assert len(warnings) == 1
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["preset"] == "recommended"
    assert config["adapter"]["arch"] == "attention"  # the preset's, not given on the line
    assert config["losses"]["w_lc"] == 1.0 and config["losses"]["w_b"] == 0.0
    assert config["training"]["epochs"] == 1

    code, _, err = run_cli(
        "train", "--input", raw_store, "--output", tmp_path / "ref", "--epochs", "1",
        "--preset", "reference",
    )  # fmt: skip
    assert code == 0, err
    assert "will not anonymize" not in err
    config = json.loads((tmp_path / "ref" / "config.json").read_text())
    assert config["training"]["preset"] == "reference" and config["losses"]["w_lc"] == 100.0
    assert config["adapter"]["depth"] == 3

    code, _, err = run_cli("train", "--input", raw_store, "--output", tmp_path / "x",
                           "--preset", "paper")  # fmt: skip
    assert code != 0 and "unknown preset 'paper'" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_the_recipe_length_is_120_epochs_or_its_steps_whichever_is_longer() -> None:
    recipe = TrainConfig()
    assert recipe.epochs is None and recipe.min_steps == 2280
    # The default benchmark's 1,200 training videos: 19 batches of 64, 120 epochs = 2,280 steps.
    assert recipe.epochs_for(1200) == 120
    assert recipe.epochs_for(240) == 570  # 4 batches: as many steps as at the default scale
    assert recipe.epochs_for(100_000) == 120  # never fewer epochs than the recipe's
    assert recipe.epochs_for(65) == 2280  # a last batch of one video is dropped: 1 step
    assert TrainConfig(min_steps=0).epochs_for(240) == 120
    assert TrainConfig(epochs=7).epochs_for(240) == 7  # given epochs are exact
    assert recipe.resolved(240) == TrainConfig(epochs=570)
    from pipeline.aam.trainer import epochs_label

    assert (epochs_label(None), epochs_label(7)) == ("120+", "7")  # tune's tables
    for bad in ({"epochs": 0}, {"min_steps": -1}):
        with pytest.raises(ConfigError):
            TrainConfig(**bad)


def test_a_run_left_to_the_recipe_records_the_epochs_it_took(planted_store, tmp_path) -> None:
    from pipeline.aam.from_store import train_aam
    from pipeline.aam.sampler import steps_per_epoch

    store = planted_store(videos=40)  # 32 train videos, 2 of them failed (not trained on)
    per_epoch = steps_per_epoch(30, 8)
    assert per_epoch == 4
    training = TrainConfig(batch_size=8, head_warmup_epochs=0, val_every=200,
                           min_steps=130 * per_epoch + 1)  # fmt: skip
    heard: list[str] = []
    train_aam(store, tmp_path / "a", TrainAAMConfig(training=training, arch="mlp"),
              notify=heard.append)  # fmt: skip
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["training"]["epochs"] == 131 and config["training"]["min_steps"] == 521
    assert any("131 epochs of 30 training videos (4 steps each" in line for line in heard)
