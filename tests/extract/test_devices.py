"""Several encoder copies (`--devices`): shards are shared out, the store is the one-device
store bit for bit (checked with two CPU copies; the same code runs one copy per GPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.errors import ConfigError
from pipeline.extract import ExtractConfig, extract


def test_two_encoder_copies_write_the_one_device_store(
    tiny_benchmark: Path, tiny_encoder_dir: Path, raw_store: Path, tmp_path: Path
) -> None:
    out = tmp_path / "two.zarr"
    config = ExtractConfig(videos_per_chunk=8, batch_size=16, devices=("cpu", "cpu"))
    result = extract(tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), out, config)
    assert result.action == "created" and result.clips_encoded > 0
    one, two = zarr.open_group(str(raw_store), mode="r"), zarr.open_group(str(out), mode="r")
    assert sorted(one.array_keys()) == sorted(two.array_keys())
    for name in one.array_keys():
        a, b = np.asarray(one[name][:]), np.asarray(two[name][:])
        same = np.array_equal(a, b, equal_nan=True) if a.dtype.kind == "f" else (a == b).all()
        assert same, name


def test_devices_are_checked(tiny_benchmark: Path, tiny_encoder_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="devices must be device names"):
        ExtractConfig(devices=("cpu", ""))
    assert ExtractConfig(devices="cuda:0,cuda:1").devices == ("cuda:0", "cuda:1")
    with pytest.raises(ConfigError, match="unknown device 'gpu7'"):
        extract(
            tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), tmp_path / "x.zarr",
            ExtractConfig(devices=("cpu", "gpu7")),
        )  # fmt: skip
    assert not (tmp_path / "x.zarr").exists()
