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
