"""sanitize() applies the adapter exactly as torch does, and writes a complete sanitized copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from pipeline.aam.adapter import anonymize
from pipeline.aam.checkpoint import load_adapter
from pipeline.sanitize import SanitizeConfig, sanitize
from pipeline.sanitize.units import MARKERS
from pipeline.store.reader import open_store
from pipeline.store.writer import table_specs
from sanitize.stores import FEATURES, make_adapter
from store_schema import ATTRS_KEY, VIDEO_OK, decode_meta, validate


def _raw(location) -> zarr.Group:
    return zarr.open_group(location.url, mode="r")


def test_equals_the_adapter_applied_directly_in_torch(raw_store, adapter_dir, tmp_path):
    sanitize(raw_store.url, adapter_dir, tmp_path / "out.zarr")
    raw, out = _raw(raw_store), zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    adapter = load_adapter(adapter_dir).adapter
    ok = np.asarray(raw["status"][:]) == VIDEO_OK
    for name in ("clip_features", "static_features"):
        x = torch.from_numpy(np.asarray(raw[name][:])[ok])  # [V, K, D]: videos as sequences
        expected = anonymize(adapter, x).numpy()
        got = np.asarray(out[name][:])
        np.testing.assert_allclose(got[ok], expected, rtol=1e-5, atol=1e-5)
        assert np.isnan(got[~ok]).all()  # failed videos stay NaN
        # float64 in torch, rounded once: bit-identical to what the store holds.
        with torch.no_grad():
            exact = adapter.double()(x.double()).float().numpy()
        adapter.float()
        np.testing.assert_array_equal(got[ok], exact)
    rows = np.asarray(raw["window_video"][:])
    real = (rows >= 0) & ok[np.maximum(rows, 0)]
    windows = torch.from_numpy(np.asarray(raw["window_features"][:])[real])  # [N, D] single clips
    got = np.asarray(out["window_features"][:])
    np.testing.assert_allclose(got[real], anonymize(adapter, windows).numpy(), rtol=1e-5, atol=1e-5)
    assert np.isnan(got[~real]).all()  # padding rows and failed videos' windows


def test_output_is_a_complete_sanitized_copy_with_provenance(raw_store, mlp_adapter, tmp_path):
    output = tmp_path / "out.zarr"
    result = sanitize(raw_store.url, mlp_adapter, output)
    assert result.action == "created" and result.chunks_written == result.chunks_total
    assert validate(str(output)) == []
    store = open_store(output, kind="sanitized")
    raw = open_store(raw_store.url)
    meta = store.meta
    assert meta["status"] == "complete" and meta["provenance"] == "sanitized"
    assert meta["input_store_id"] == raw.store_id
    assert meta["input_fingerprint"] == raw.meta["fingerprint"]
    assert meta["adapter"]["sha256"] == load_adapter(mlp_adapter).adapter_hash
    assert meta["adapter"]["config"]["adapter"]["arch"] == "mlp"
    assert meta["producer"]["name"] == "anon-store" and meta["created_at"]
    for key in ("encoder", "sampling", "dataset"):
        assert meta[key] == raw.meta[key]
    assert MARKERS not in store.group.array_keys()
    # Same arrays, shapes, chunks and dimension names; tables copied unchanged.
    assert sorted(store.group.array_keys()) == sorted(raw.group.array_keys())
    for name in raw.group.array_keys():
        a, b = raw.group[name], store.group[name]
        assert (a.shape, a.chunks, a.dtype) == (b.shape, b.chunks, b.dtype), name
        assert a.metadata.dimension_names == b.metadata.dimension_names
    for spec in table_specs(raw.meta["dataset"]):
        np.testing.assert_array_equal(raw.group[spec.name][:], store.group[spec.name][:])
    # No raw embedding reaches the output: no output row equals its raw row.
    for name in FEATURES:
        before = np.asarray(raw.group[name][:])
        after = np.asarray(store.group[name][:])
        finite = np.isfinite(before).all(axis=-1)
        assert not (before == after).all(axis=-1)[finite].any(), name


def test_progress_reports_every_chunk_and_the_bytes(raw_store, mlp_adapter, tmp_path):
    reports = []
    result = sanitize(raw_store.url, mlp_adapter, tmp_path / "out.zarr", progress=reports.append)
    assert reports[0].chunks_done == 0
    assert reports[-1].chunks_done == reports[-1].chunks_total == result.chunks_total
    assert [r.chunks_done for r in reports] == sorted(r.chunks_done for r in reports)
    feature_bytes = sum(np.asarray(_raw(raw_store)[name]).nbytes for name in FEATURES)
    assert feature_bytes < reports[-1].bytes_written == result.bytes_written


def test_rerun_leaves_a_complete_output_alone_and_overwrite_replaces_another(
    raw_store, mlp_adapter, tmp_path
):
    output = tmp_path / "out.zarr"
    first = sanitize(raw_store.url, mlp_adapter, output)
    again = sanitize(raw_store.url, mlp_adapter, output)
    assert again.action == "unchanged" and again.store_id == first.store_id
    other = make_adapter(tmp_path / "other", seed=1)
    replaced = sanitize(raw_store.url, other, output, SanitizeConfig(overwrite=True))
    assert replaced.action == "created" and replaced.store_id != first.store_id
    assert open_store(output).meta["adapter"]["sha256"] == replaced.adapter_sha256


def test_store_without_static_clips_is_sanitized(store_factory, mlp_adapter, tmp_path):
    raw = store_factory("nostatic.zarr", static=0)
    sanitize(raw.url, mlp_adapter, tmp_path / "out.zarr")
    out = open_store(tmp_path / "out.zarr", kind="sanitized")
    assert out.group["static_features"].shape == (23, 0, 16)
    assert validate(out.group) == []


def test_store_without_windows_or_segments_is_sanitized(store_factory, mlp_adapter, tmp_path):
    raw = store_factory("trimmed.zarr", untrimmed=False)
    sanitize(raw.url, mlp_adapter, tmp_path / "out.zarr")
    out = open_store(tmp_path / "out.zarr", kind="sanitized")
    assert out.group["window_features"].shape == (0, 16)
    assert out.group["segment_video"].shape == (0,)
    assert validate(out.group) == []


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_output_keeps_the_input_codecs(store_factory, mlp_adapter, tmp_path, compression):
    from pipeline.store.writer import StoreCodecs

    raw = store_factory("raw.zarr", codecs=StoreCodecs(feature_compression=compression))
    sanitize(raw.url, mlp_adapter, tmp_path / "out.zarr")
    meta = decode_meta(zarr.open_group(str(tmp_path / "out.zarr"), mode="r").attrs[ATTRS_KEY])
    assert meta["codecs"]["feature_compression"] == compression
    codecs = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")["clip_features"].compressors
    assert any("Zstd" in type(c).__name__ for c in codecs) == (compression == "zstd")
