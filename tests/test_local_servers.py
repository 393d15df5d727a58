"""The tests' own server helper (tests/support/local_servers.py): a start that lost its free port
to another process is run again on a new one; any other failure is not retried."""

from __future__ import annotations

import errno
import socket

import local_servers
import pytest

from pipeline.errors import AnonStoreError
from pipeline.orchestration import server


def test_a_start_that_lost_its_port_is_run_again_on_another(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        held = taken.getsockname()[1]
        picks = iter([held, held])
        monkeypatch.setattr(
            local_servers, "free_port", lambda host: next(picks, None) or server.free_port(host)
        )
        tried: list[int] = []

        def start(port: int) -> int:
            tried.append(port)
            with socket.socket() as sock:  # as a server binds its port
                sock.bind(("127.0.0.1", port))
            return port

        port = local_servers.start_on_free_port(start)
    assert tried[:2] == [held, held] and port == tried[-1] != held and len(tried) == 3


def test_other_failures_are_not_retried_and_retries_end():
    calls: list[int] = []

    def broken(port: int) -> None:
        calls.append(port)
        raise AnonStoreError("the Prefect server exited with code 1 before it was healthy: boom")

    with pytest.raises(AnonStoreError, match="boom"):
        local_servers.start_on_free_port(broken)
    assert len(calls) == 1

    def always_taken(port: int) -> None:
        calls.append(port)
        raise OSError(errno.EADDRINUSE, "Address already in use")

    calls.clear()
    with pytest.raises(OSError, match="already in use"):
        local_servers.start_on_free_port(always_taken, attempts=3)
    assert len(calls) == 3


@pytest.mark.parametrize(
    "message, taken",
    [
        ("port 4200 on 127.0.0.1 is in use: choose another with --port", True),  # start_server
        ("[Errno 98] error while attempting to bind on address: address already in use", True),
        ("the Prefect server at http://127.0.0.1:1/api was not healthy after 120 s", False),
    ],
)
def test_port_taken_reads_the_servers_words(message, taken):
    assert local_servers.port_taken(AnonStoreError(message)) is taken


def test_port_taken_follows_the_causes():
    wrapped = RuntimeError("the server did not start")
    wrapped.__cause__ = OSError(errno.EADDRINUSE, "bind")
    assert local_servers.port_taken(wrapped)
    assert not local_servers.port_taken(RuntimeError("the server did not start"))


def test_start_server_refuses_a_taken_port_in_words_the_helper_knows(tmp_path):
    with socket.socket() as sock:
        sock.bind((server.DEFAULT_HOST, 0))
        sock.listen()
        with pytest.raises(AnonStoreError) as info:
            server.start_server(port=sock.getsockname()[1], home=tmp_path)
    assert local_servers.port_taken(info.value)


def test_moto_listens_on_a_port_the_kernel_picked():
    pytest.importorskip("moto.server")
    import urllib.request

    moto, endpoint = local_servers.start_moto_server()
    try:
        assert endpoint.startswith("http://127.0.0.1:") and not endpoint.endswith(":0")
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=10) as response:
            assert response.status == 200
    finally:
        moto.stop()
