"""Fixtures for the sanitize tests: small raw stores and adapters made through the public APIs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.store.location import StoreLocation
from sanitize.stores import make_adapter, make_raw_store


@pytest.fixture
def raw_store(tmp_path: Path) -> StoreLocation:
    """23 videos (2 failed, every third untrimmed with windows), D=16, chunks of 5 videos."""
    return make_raw_store(tmp_path / "raw.zarr")


@pytest.fixture(params=["mlp", "attention"])
def adapter_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return make_adapter(tmp_path / f"adapter-{request.param}", arch=request.param)


@pytest.fixture
def mlp_adapter(tmp_path: Path) -> Path:
    return make_adapter(tmp_path / "adapter-mlp", arch="mlp")


@pytest.fixture
def store_factory(tmp_path: Path) -> Callable[..., StoreLocation]:
    """make(name, **make_raw_store kwargs) -> a raw store under tmp_path."""

    def make(name: str, **kwargs) -> StoreLocation:
        return make_raw_store(tmp_path / name, **kwargs)

    return make


@pytest.fixture(scope="module")
def s3_endpoint():
    """An in-process moto S3 server with bucket 'anon-store-test'; yields storage options.

    Reached directly even with HTTP(S)_PROXY set: the root conftest puts 127.0.0.1 in NO_PROXY.
    """
    import logging

    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    import s3fs
    from local_servers import start_moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server, endpoint = start_moto_server()  # on a port the kernel picked: no free-port race
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    fs = s3fs.S3FileSystem(**options, skip_instance_cache=True)
    fs.call_s3("create_bucket", Bucket="anon-store-test")
    yield options
    server.stop()
