"""Bad inputs fail with one line of AnonStoreError, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import zarr

from pipeline.errors import AdapterError, AnonStoreError, ConfigError, StoreError
from pipeline.sanitize import SanitizeConfig, sanitize
from sanitize.stores import make_adapter


def _refused(error_type, match, source, adapter, *, output: Path, config=None) -> AnonStoreError:
    existed = output.exists()
    before = sorted(p.name for p in output.iterdir()) if output.is_dir() else None
    with pytest.raises(error_type, match=match) as info:
        sanitize(source, adapter, output, config)
    assert "\n" not in str(info.value)
    if existed:  # untouched
        after = sorted(p.name for p in output.iterdir()) if output.is_dir() else None
        assert after == before
    else:
        assert not output.exists()
    return info.value


def test_missing_incomplete_or_sanitized_input(store_factory, mlp_adapter, tmp_path):
    out = tmp_path / "out.zarr"
    _refused(StoreError, "no store", tmp_path / "nothing.zarr", mlp_adapter, output=out)
    incomplete = store_factory("incomplete.zarr", complete=False)
    _refused(StoreError, "not complete", incomplete.url, mlp_adapter, output=out)
    raw = store_factory("raw.zarr")
    sanitize(raw.url, mlp_adapter, tmp_path / "sanitized.zarr")
    _refused(StoreError, "sanitized store", tmp_path / "sanitized.zarr", mlp_adapter, output=out)
    foreign = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w")
    foreign.attrs["x"] = 1
    _refused(StoreError, "not an anon-store", tmp_path / "foreign.zarr", mlp_adapter, output=out)


def test_schema_problems_in_the_input_are_reported(raw_store, mlp_adapter, tmp_path):
    group = zarr.open_group(raw_store.url, mode="r+")
    del group["window_start"]
    _refused(
        StoreError,
        "missing array 'window_start'",
        raw_store.url,
        mlp_adapter,
        output=tmp_path / "out.zarr",
    )


def test_missing_corrupt_or_mismatched_adapter(raw_store, tmp_path):
    out = tmp_path / "out.zarr"
    _refused(AdapterError, "not found", raw_store.url, tmp_path / "no-adapter", output=out)
    corrupt = make_adapter(tmp_path / "corrupt")
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    _refused(AdapterError, "corrupt", raw_store.url, corrupt, output=out)
    (tmp_path / "badjson").mkdir()
    (tmp_path / "badjson" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "badjson" / "config.json").write_text("{not json")
    _refused(AdapterError, "corrupt JSON", raw_store.url, tmp_path / "badjson", output=out)
    other_encoder = make_adapter(tmp_path / "other-encoder", encoder_sha="f" * 64)
    _refused(AdapterError, "encoder weights", raw_store.url, other_encoder, output=out)
    other_dim = make_adapter(tmp_path / "other-dim", dim=8)
    _refused(AdapterError, "hidden_size|dimension", raw_store.url, other_dim, output=out)
    untrained = make_adapter(tmp_path / "untrained", trained=False)
    _refused(AdapterError, "identity", raw_store.url, untrained, output=out)


def test_output_is_the_input_inside_it_or_around_it(raw_store, mlp_adapter, tmp_path):
    raw = Path(raw_store.url)
    _refused(StoreError, "is the input", raw, mlp_adapter, output=raw)
    _refused(StoreError, "is the input", raw, mlp_adapter, output=raw / "nested.zarr")
    with pytest.raises(StoreError, match="contains the input"):
        sanitize(raw, mlp_adapter, tmp_path, SanitizeConfig(overwrite=True))
    assert raw.exists()


def test_existing_output_needs_overwrite_and_foreign_data_is_never_touched(
    raw_store, mlp_adapter, tmp_path
):
    out = tmp_path / "out.zarr"
    sanitize(raw_store.url, mlp_adapter, out)
    other = make_adapter(tmp_path / "other", seed=1)
    _refused(StoreError, "pass overwrite", raw_store.url, other, output=out)
    # Not anon-store data: refused even with overwrite.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    config = SanitizeConfig(overwrite=True)
    _refused(
        StoreError,
        "not an anon-store store",
        raw_store.url,
        mlp_adapter,
        output=foreign,
        config=config,
    )
    assert (foreign / "notes.txt").read_text() == "keep me"
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain.attrs["owner"] = "someone else"
    _refused(
        StoreError,
        "not an anon-store store",
        raw_store.url,
        mlp_adapter,
        output=tmp_path / "plain.zarr",
        config=config,
    )


def test_unreachable_scheduler_and_bad_settings(raw_store, mlp_adapter, tmp_path, monkeypatch):
    monkeypatch.setattr("pipeline.sanitize.schedule.CONNECT_TIMEOUT", "1s")
    out = tmp_path / "out.zarr"
    config = SanitizeConfig(scheduler="tcp://127.0.0.1:9")
    _refused(StoreError, "cannot connect", raw_store.url, mlp_adapter, output=out, config=config)
    for bad in (
        {"scheduler": "gpu"},
        {"precision": "float16"},
        {"batch_size": 0},
        {"chunks_per_task": 0},
        {"workers": 0},
    ):
        with pytest.raises(ConfigError):
            SanitizeConfig(**bad)
