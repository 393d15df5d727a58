"""The local Prefect server: start until healthy, status, stop of the whole tree, errors."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.parse

import psutil
import pytest
import typer
from local_servers import start_on_free_port, start_prefect_server
from typer.testing import CliRunner

from pipeline.errors import AnonStoreError
from pipeline.orchestration import server
from pipeline.orchestration.commands import register, server_app


def _gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids)


def test_terminate_tree_kills_children_that_ignore_sigterm():
    # The shell and its children ignore SIGTERM (SIG_IGN is inherited): SIGKILL must follow.
    proc = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; sleep 60 & sleep 60 & wait"], start_new_session=True
    )
    deadline = time.monotonic() + 10
    while len(psutil.Process(proc.pid).children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    assert len(pids) == 3
    started = time.monotonic()
    server.terminate_tree(proc.pid, grace=0.5)
    proc.wait(timeout=5)
    assert _gone(pids) and time.monotonic() - started < 5


def test_port_in_use_is_a_one_line_error_and_leaves_nothing(tmp_path):
    with socket.socket() as sock:
        sock.bind((server.DEFAULT_HOST, 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(AnonStoreError, match=f"port {port}") as info:
            server.start_server(port=port, home=tmp_path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / server.STATE_FILE).exists()
    assert not server.server_status(home=tmp_path).running


def test_a_server_that_is_not_healthy_in_time_is_stopped(tmp_path):
    with pytest.raises(AnonStoreError, match="not healthy after") as info:
        start_on_free_port(
            lambda port: server.start_server(port=port, home=tmp_path, timeout=0.2, ui=False)
        )
    assert "\n" not in str(info.value) and str(tmp_path / server.LOG_FILE) in str(info.value)
    assert not (tmp_path / server.STATE_FILE).exists()
    ours = [
        p
        for p in psutil.process_iter(["cmdline", "cwd"])
        if p.info["cwd"] == str(tmp_path) and "server" in (p.info["cmdline"] or [])
    ]
    assert ours == []


def test_stop_and_status_without_a_server(tmp_path):
    status = server.stop_server(home=tmp_path)
    assert not status.running and not status.healthy
    app = typer.Typer()
    app.add_typer(server_app, name="server")
    result = CliRunner().invoke(app, ["server", "status", "--home", str(tmp_path), "--json"])
    assert result.exit_code == 1 and '"running": false' in result.stdout


def test_serve_refuses_an_api_that_is_not_up():
    app = typer.Typer()
    register(app)  # as pipeline/cli.py wires it
    url = f"http://127.0.0.1:{server.free_port()}/api"
    result = CliRunner().invoke(app, ["serve", "--api-url", url])
    assert isinstance(result.exception, AnonStoreError)
    assert "no healthy Prefect API" in str(result.exception) and "\n" not in str(result.exception)


@pytest.mark.integration
def test_start_status_stop_a_real_server(tmp_path):
    started = start_prefect_server(tmp_path, timeout=120)
    port = urllib.parse.urlsplit(started.url).port
    try:
        assert started.healthy and started.url == f"http://127.0.0.1:{port}/api"
        assert server.is_healthy(started.url)
        assert server.server_status(home=tmp_path) == started
        again = server.start_server(port=port, home=tmp_path)  # idempotent
        assert again.pid == started.pid
        with pytest.raises(AnonStoreError, match="already runs at"):
            server.start_server(port=server.free_port(), home=tmp_path)
        tree = [started.pid] + [c.pid for c in psutil.Process(started.pid).children(True)]
    finally:
        stopped = server.stop_server(home=tmp_path, grace=5)
    assert not stopped.running and _gone(tree)
    assert not server.is_healthy(started.url)
    assert server.server_status(home=tmp_path).pid is None
    assert server.port_free(server.DEFAULT_HOST, port)


def test_health_check_of_a_local_server_ignores_proxies(monkeypatch):
    """A user behind a proxy without NO_PROXY: the local server is still seen as healthy."""
    import http.server
    import threading

    from pipeline.orchestration.server import is_healthy

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.setenv(
                name, "http://10.255.255.1:9"
            )  # unroutable: a check through it fails
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert is_healthy(f"http://127.0.0.1:{server.server_port}/api", timeout=5)
    finally:
        server.shutdown()
