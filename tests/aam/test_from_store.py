"""train_aam over a real raw store: checkpoint contents, CLI, and refusals of bad stores."""

from __future__ import annotations

import json

import pytest

from pipeline.aam.checkpoint import load_adapter
from pipeline.aam.from_store import TrainAAMConfig, train_aam
from pipeline.aam.trainer import TrainConfig
from pipeline.errors import AdapterError, StoreError
from pipeline.extract import ExtractConfig, extract
from pipeline.store.reader import open_store

FAST = TrainAAMConfig(
    training=TrainConfig(epochs=2, batch_size=4, val_every=1, head_warmup_epochs=1)
)


def test_train_writes_a_loadable_adapter_tied_to_its_store(raw_store, tmp_path):
    result = train_aam(raw_store, tmp_path / "adapter", FAST)
    store = open_store(raw_store)
    assert {p.name for p in (tmp_path / "adapter").iterdir()} >= {
        "model.safetensors",
        "config.json",
        "metrics.json",
    }
    config = json.loads((tmp_path / "adapter" / "config.json").read_text())
    assert config["store"]["store_id"] == store.store_id
    assert config["store"]["encoder"]["weights_sha256"] == store.encoder["weights_sha256"]
    assert config["losses"]["w_lc"] == FAST.training.w_lc
    assert len(result.history) == 3  # epoch 0 (raw) + 2 validations
    loaded = load_adapter(tmp_path / "adapter", expect_encoder=store.encoder, expect_dim=32)
    assert loaded.adapter_config.dim == store.feature_dim
    with pytest.raises(AdapterError, match="already exists"):
        train_aam(raw_store, tmp_path / "adapter", FAST)


def test_cli_train(raw_store, tmp_path, run_cli):
    code, _, err = run_cli(
        "train",
        "--input",
        raw_store,
        "--output",
        tmp_path / "a",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--arch",
        "attention",
        "--w-spread",
        "2",
        "--w-swap",
        "0.5",
    )
    assert code == 0, err
    saved = json.loads((tmp_path / "a" / "config.json").read_text())
    assert saved["adapter"]["arch"] == "attention"
    assert (saved["losses"]["w_spread"], saved["losses"]["w_swap"]) == (2.0, 0.5)
    history = json.loads((tmp_path / "a" / "metrics.json").read_text())["history"]
    assert history[-1]["train_l_swap"] > 0 and history[-1]["train_l_spread"] > 0


def test_bad_stores_are_refused_with_nothing_written(
    tmp_path, tiny_benchmark, tiny_encoder_dir, run_cli
):
    manifest = tiny_benchmark / "manifest.parquet"
    no_static = tmp_path / "no-static.zarr"
    extract(
        manifest,
        str(tiny_encoder_dir),
        no_static,
        ExtractConfig(splits=("train", "val"), static_clips=0, clips_per_video=2),
    )
    with pytest.raises(StoreError, match="lacks static clips"):
        train_aam(no_static, tmp_path / "a1", FAST)
    only_val = tmp_path / "only-val.zarr"
    extract(
        manifest,
        str(tiny_encoder_dir),
        only_val,
        ExtractConfig(splits=("val",), static_clips=2, clips_per_video=2),
    )
    with pytest.raises(StoreError, match="split 'train'"):
        train_aam(only_val, tmp_path / "a2", FAST)
    code, _, err = run_cli(
        "train", "--input", tmp_path / "missing.zarr", "--output", tmp_path / "a3"
    )
    assert code == 1 and "no store at" in err
    assert not any((tmp_path / name).exists() for name in ("a1", "a2", "a3"))
