"""Embeddings do not depend on where clips are built: decode processes or inline, and on a GPU
(bf16 autocast) within bf16 tolerance of the float32 CPU store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from pipeline.extract import ExtractConfig, extract


def _features(store: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(store), mode="r")
    return {n: np.asarray(group[n][:]) for n in ("clip_features", "static_features")}


def test_decode_processes_and_inline_give_the_same_bits(
    tiny_benchmark: Path, tiny_encoder_dir: Path, raw_store: Path, tmp_path: Path
) -> None:
    """raw_store was extracted with the default decode processes; inline decoding (workers 0)
    and two processes write the same bits (results are consumed in order)."""
    reference = _features(raw_store)
    for workers in (0, 2):
        out = tmp_path / f"w{workers}.zarr"
        config = ExtractConfig(videos_per_chunk=8, batch_size=16, workers=workers)
        extract(tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), out, config)
        for name, values in _features(out).items():
            assert np.array_equal(values, reference[name], equal_nan=True), (workers, name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_store_within_bf16_tolerance_of_cpu(
    tiny_benchmark: Path, tiny_encoder_dir: Path, raw_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "gpu.zarr"
    config = ExtractConfig(videos_per_chunk=8, batch_size=16, device="cuda")
    extract(tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), out, config)
    cpu, gpu = _features(raw_store), _features(out)
    for name in cpu:
        a, b = (
            cpu[name].reshape(-1, cpu[name].shape[-1]),
            gpu[name].reshape(-1, cpu[name].shape[-1]),
        )
        ok = np.isfinite(a).all(axis=1)
        assert np.array_equal(ok, np.isfinite(b).all(axis=1))
        a, b = a[ok].astype(np.float64), b[ok].astype(np.float64)
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        scale = np.abs(a).max()
        # bf16 keeps 8 bits of mantissa: ~0.4% relative error per operation.
        assert cosine.min() > 0.995, (name, cosine.min())
        assert np.abs(a - b).max() <= 0.05 * scale, (name, np.abs(a - b).max(), scale)
