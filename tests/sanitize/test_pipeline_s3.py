"""extract -> train -> sanitize with both stores on s3:// (a real moto S3 server on 127.0.0.1),
credentials and endpoint taken from the environment as users set them."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.aam.from_store import TrainAAMConfig, train_aam
from pipeline.aam.trainer import TrainConfig
from pipeline.extract import ExtractConfig, extract
from pipeline.sanitize import sanitize
from pipeline.store.reader import open_store
from store_schema import validate

pytestmark = pytest.mark.integration


def test_extract_train_sanitize_on_s3(
    s3_endpoint, monkeypatch, tmp_path, tiny_benchmark, tiny_encoder_dir
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint["endpoint_url"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_endpoint["key"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_endpoint["secret"])
    raw_url, out_url = "s3://anon-store-test/e2e/raw.zarr", "s3://anon-store-test/e2e/clean.zarr"
    config = ExtractConfig(videos_per_chunk=8, batch_size=16)
    manifest = tiny_benchmark / "manifest.parquet"
    extract(manifest, str(tiny_encoder_dir), raw_url, config)
    extract(manifest, str(tiny_encoder_dir), tmp_path / "local.zarr", config)
    remote, local = open_store(raw_url), open_store(tmp_path / "local.zarr")
    for name in ("clip_features", "static_features", "window_features", "video_id"):
        np.testing.assert_array_equal(remote.group[name][:], local.group[name][:], err_msg=name)
    adapter = tmp_path / "adapter"
    train_aam(raw_url, adapter, TrainAAMConfig(training=TrainConfig(epochs=2, batch_size=4)))
    result = sanitize(raw_url, adapter, out_url)
    assert result.action == "created"
    assert validate(out_url, storage_options=s3_endpoint) == []
    clean = open_store(out_url, kind="sanitized")
    assert clean.meta["input_store_id"] == remote.store_id
    assert not np.array_equal(clean.group["clip_features"][:], remote.group["clip_features"][:])
    assert "secret" not in str(clean.meta).lower() and s3_endpoint["secret"] not in str(clean.meta)
