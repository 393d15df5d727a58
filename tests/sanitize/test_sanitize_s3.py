"""Input and output on S3 (a local moto server): same result as local; failing credentials are
reported before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
import s3fs

from pipeline.errors import StoreError
from pipeline.sanitize import sanitize
from pipeline.store.reader import open_store
from sanitize.stores import make_raw_store, read_features

pytestmark = pytest.mark.integration


def test_s3_to_s3_equals_local(s3_endpoint, mlp_adapter, tmp_path):
    local = make_raw_store(tmp_path / "raw.zarr")
    remote = make_raw_store("s3://anon-store-test/raw.zarr", storage_options=s3_endpoint)
    sanitize(local.url, mlp_adapter, tmp_path / "out.zarr")
    result = sanitize(
        remote.url, mlp_adapter, "s3://anon-store-test/out.zarr", storage_options=s3_endpoint
    )
    assert result.output == "s3://anon-store-test/out.zarr"
    store = open_store(result.output, kind="sanitized", storage_options=s3_endpoint)
    assert store.meta["input_store_id"] == remote_store_id(remote, s3_endpoint)
    expected = read_features(tmp_path / "out.zarr")
    got = read_features(result.output, storage_options=s3_endpoint)
    for name, values in expected.items():
        np.testing.assert_array_equal(got[name], values, err_msg=name)


def remote_store_id(location, options) -> str:
    return open_store(location.url, storage_options=options).store_id


def test_failing_credentials_are_reported_before_writing(
    s3_endpoint, mlp_adapter, raw_store, monkeypatch, tmp_path
):
    import moto.settings

    fs = s3fs.S3FileSystem(**s3_endpoint, skip_instance_cache=True)
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # unknown keys: 403
    bad = {**s3_endpoint, "key": "wrong", "secret": "wrong"}
    with pytest.raises(StoreError, match="cannot reach") as info:
        sanitize(
            raw_store.url, mlp_adapter, "s3://anon-store-test/denied.zarr", storage_options=bad
        )
    assert "\n" not in str(info.value)
    with pytest.raises(StoreError, match="cannot reach"):
        sanitize(
            "s3://anon-store-test/raw.zarr", mlp_adapter, tmp_path / "out.zarr", storage_options=bad
        )
    assert not (tmp_path / "out.zarr").exists()
    monkeypatch.undo()
    assert not fs.exists("anon-store-test/denied.zarr")
    with pytest.raises(StoreError, match="does not exist"):
        sanitize(
            raw_store.url, mlp_adapter, "s3://no-such-bucket/out.zarr", storage_options=s3_endpoint
        )
