"""A real Prefect server for the session (temp PREFECT_HOME, free port), stopped at the end."""

from __future__ import annotations

import contextlib

import pytest


@pytest.fixture
def assert_same_store():
    """assert_same_store(a, b): every array of two stores equal, bit for bit (NaN == NaN)."""
    import numpy as np
    import zarr

    def check(expected, got) -> None:
        a, b = zarr.open_group(str(expected), mode="r"), zarr.open_group(str(got), mode="r")
        assert sorted(a.array_keys()) == sorted(b.array_keys())
        for name in a.array_keys():
            x, y = np.asarray(a[name][:]), np.asarray(b[name][:])
            if x.dtype.kind == "f":
                np.testing.assert_array_equal(x, y, err_msg=name)
            else:
                assert (x == y).all(), name

    return check


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """ServerStatus of a healthy `prefect server start` on 127.0.0.1 (stopped even on failure);
    started again on another port if its free port got taken before the server bound it."""
    from local_servers import start_prefect_server

    from pipeline.orchestration.server import stop_server

    home = tmp_path_factory.mktemp("prefect-server")
    try:
        yield start_prefect_server(home, timeout=120)
    finally:
        stop_server(home=home, grace=5)


@pytest.fixture(scope="session")
def prefect_api(prefect_server) -> str:
    """Flows called in-process report to the session's server, not to an ephemeral one (each
    dask worker would start its own otherwise); tasks on dask workers inherit these settings."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: prefect_server.url}):
        yield prefect_server.url
        _drain_prefect_workers()


def _drain_prefect_workers() -> None:
    """Send buffered logs and events while the server is still up (else: errors at exit)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):  # best effort: the session is ending anyway
            worker.drain_all(timeout=5)
