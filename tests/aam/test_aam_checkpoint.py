"""Adapter checkpoints: round trip, atomic writes, no pickle, one-line errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter
from pipeline.aam.checkpoint import load_adapter, save_adapter
from pipeline.aam.heads import ActionHead
from pipeline.aam.trainer import TrainConfig
from pipeline.errors import AdapterError

ENCODER = {"name": "tiny", "weights_sha256": "ab" * 32, "hidden_size": 16, "family": "videomae"}
STORE = {"store_id": "store-123", "encoder": ENCODER}
HISTORY = [{"epoch": 0, "action_top1": 0.5, "static_retrieval": float("nan")}]


def _save(path: Path, arch: str = "attention", **kwargs) -> tuple[AnonymizingAdapter, ActionHead]:
    torch.manual_seed(0)
    config = AdapterConfig(arch=arch, dim=16, heads=4)
    adapter = AnonymizingAdapter(config)
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0.0, 0.2)
    head = ActionHead("action", 16, 5)
    save_adapter(path, adapter, [head], config, TrainConfig(w_lc=7.0), STORE, HISTORY, **kwargs)
    return adapter, head


@pytest.mark.parametrize("arch", ["mlp", "attention"])
def test_round_trip_is_exact(tmp_path: Path, arch: str) -> None:
    adapter, head = _save(tmp_path / "adapter", arch, selected=HISTORY[0])
    loaded = load_adapter(tmp_path / "adapter", expect_encoder=ENCODER, expect_dim=16)
    assert loaded.adapter_config == adapter.config and not loaded.adapter.training
    state = adapter.state_dict()
    assert all(torch.equal(v, state[k]) for k, v in loaded.adapter.state_dict().items())
    x = torch.randn(3, 4, 16)
    assert torch.equal(loaded.adapter(x), adapter.eval()(x))
    (lhead,) = loaded.heads
    assert lhead.spec() == head.spec()
    assert torch.equal(lhead.module.weight, head.module.weight)
    raw = (tmp_path / "adapter" / "model.safetensors").read_bytes()
    assert loaded.adapter_hash == hashlib.sha256(raw).hexdigest()
    assert loaded.encoder == ENCODER and loaded.store["store_id"] == "store-123"
    cfg = loaded.config
    assert cfg["losses"]["w_lc"] == 7.0 and cfg["losses"]["temperature"] == 0.1
    assert cfg["training"]["heads"] == ["action"] and cfg["adapter"]["arch"] == arch
    assert TrainConfig.from_dict(cfg["training"]) == TrainConfig(w_lc=7.0)
    assert loaded.metrics["history"][0]["static_retrieval"] is None  # NaN -> null
    assert loaded.metrics["selected"]["epoch"] == 0


def test_files_are_safetensors_and_json_only_and_write_is_atomic(tmp_path: Path) -> None:
    _save(tmp_path / "adapter")
    names = sorted(p.name for p in (tmp_path / "adapter").iterdir())
    assert names == ["config.json", "metrics.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no temp dirs left
    raw = (tmp_path / "adapter" / "model.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + header_len])
    assert header["__metadata__"]["format"] == "anon-store-adapter"
    assert b"\x80\x04" not in raw[:2]  # not a pickle
    # refusing to clobber, then replacing on request
    with pytest.raises(AdapterError, match="already exists"):
        _save(tmp_path / "adapter")
    before = load_adapter(tmp_path / "adapter").adapter_hash
    _save(tmp_path / "adapter", arch="mlp", overwrite=True)
    assert load_adapter(tmp_path / "adapter").adapter_hash != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_save_checks_the_store_identity(tmp_path: Path) -> None:
    config = AdapterConfig(dim=16)
    adapter = AnonymizingAdapter(config)
    for bad in (
        {"encoder": ENCODER},
        {"store_id": "s", "encoder": {"hidden_size": 16}},
        {"store_id": "s", "encoder": {**ENCODER, "hidden_size": 32}},
    ):
        with pytest.raises(AdapterError):
            save_adapter(tmp_path / "a", adapter, [], config, TrainConfig(), bad, [])
    assert not (tmp_path / "a").exists()


def _one_line_error(path: Path, **kwargs) -> str:
    with pytest.raises(AdapterError) as err:
        load_adapter(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message and message
    return message


def test_each_load_error_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "adapter"
    assert "not found" in _one_line_error(tmp_path / "nowhere")
    _save(root)
    model, config = root / "model.safetensors", root / "config.json"
    good_model, good_config = model.read_bytes(), config.read_text()

    assert "dimension 16" in _one_line_error(root, expect_dim=768)
    other = {**ENCODER, "weights_sha256": "cd" * 32}
    assert "encoder weights" in _one_line_error(root, expect_encoder=other)
    assert "hidden_size" in _one_line_error(root, expect_encoder={**ENCODER, "hidden_size": 8})

    model.unlink()
    assert "missing model.safetensors" in _one_line_error(root)
    model.write_bytes(good_model)
    config.unlink()
    assert "missing config.json" in _one_line_error(root)

    config.write_text("{not json")
    assert "corrupt JSON" in _one_line_error(root)
    config.write_text(good_config.replace('"arch": "attention"', '"arch": "lstm"'))
    assert "corrupt adapter config" in _one_line_error(root)
    config.write_text(good_config.replace('"width": null', '"width": 8'))
    assert "does not match config.json" in _one_line_error(root)
    config.write_text(good_config.replace('"anon-store-adapter"', '"something-else"'))
    assert "not an anon-store adapter" in _one_line_error(root)
    config.write_text(good_config)

    model.write_bytes(good_model[: len(good_model) // 2])
    assert "corrupt safetensors" in _one_line_error(root)
    model.write_bytes(b"\x00" * 64)
    assert "corrupt safetensors" in _one_line_error(root)
    model.write_bytes(good_model)
    (root / "metrics.json").write_text("[1,")
    assert "corrupt JSON" in _one_line_error(root)


def test_a_trained_adapter_survives_save_and_load(tmp_path: Path, planted) -> None:
    from pipeline.aam.trainer import train_adapter

    config = TrainConfig(epochs=2, batch_size=10, val_every=1, head_warmup_epochs=1)
    result = train_adapter(planted(seed=0), planted(seed=1), config, AdapterConfig(dim=16))
    save_adapter(
        tmp_path / "a",
        result.adapter,
        result.heads,
        result.adapter_config,
        result.config,
        STORE,
        result.history,
        selected=result.best,
    )
    loaded = load_adapter(tmp_path / "a", expect_encoder=ENCODER, expect_dim=16)
    x = planted(seed=2).clip_features
    assert torch.equal(loaded.adapter(x), result.adapter(x))
    assert loaded.metrics["selected"]["epoch"] == result.best_epoch
    assert len(loaded.metrics["history"]) == len(result.history) == 3
