"""A real local Prefect server on 127.0.0.1: start (until healthy), stop (whole tree), status."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from pipeline.errors import AnonStoreError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_HOME = ".prefect"
"""Project-local PREFECT_HOME (database, logs, results), relative to the working directory."""
STATE_FILE = "anon-store-server.json"
LOG_FILE = "server.log"


@dataclass(frozen=True)
class ServerStatus:
    """What is known about the local server of one PREFECT_HOME."""

    home: str
    """The PREFECT_HOME the server runs with (its SQLite database lives there)."""
    running: bool
    """A process started by `start_server` from this home is alive."""
    healthy: bool
    """GET {url}/health answered true."""
    url: str | None = None
    """The API URL (what PREFECT_API_URL should be set to), e.g. http://127.0.0.1:4200/api."""
    pid: int | None = None
    """Process id (and process group id) of `prefect server start`."""
    log: str | None = None
    """The server's log file."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def resolve_home(home: str | Path | None = None) -> Path:
    """The server's PREFECT_HOME: `home`, or .prefect/ in the working directory."""
    return Path(home or DEFAULT_HOME).expanduser().absolute()


def api_url(host: str, port: int) -> str:
    return f"http://{host}:{port}/api"


def server_env(home: Path) -> dict[str, str]:
    """The server's environment: project-local PREFECT_HOME, analytics off, no remote API."""
    env = dict(os.environ)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PYTHONUNBUFFERED="1",
    )
    # The server must not think it is a client of some other API (e.g. a user's cloud profile).
    for name in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILE"):
        env.pop(name, None)
    return env


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """True if the API at `url` answers its health check."""
    host = urllib.parse.urlsplit(url).hostname or ""
    # A server on this machine is asked directly: an HTTP_PROXY without NO_PROXY would send the
    # health check to the proxy, and a healthy local server would never be seen as up.
    local = host in ("localhost", "::1") or host.startswith("127.")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({} if local else None))
    try:
        with opener.open(f"{url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200 and response.read().strip() == b"true"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def port_free(host: str, port: int) -> bool:
    """True if a server could listen on host:port now. SO_REUSEADDR as the server itself uses
    it, so connections of a just-stopped server in TIME_WAIT do not count as "in use"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nobody listens on right now (for tests and side-by-side servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _state_path(home: Path) -> Path:
    return home / STATE_FILE


def _read_state(home: Path) -> dict[str, Any] | None:
    try:
        return json.loads(_state_path(home).read_text())
    except (OSError, ValueError):
        return None


def _write_state(home: Path, state: dict[str, Any]) -> None:
    tmp = _state_path(home).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_path(home))


def _clear_state(home: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        _state_path(home).unlink()


def _process(state: dict[str, Any] | None) -> psutil.Process | None:
    """The recorded server process if it is still the same process (pids get reused)."""
    if not state or not state.get("pid"):
        return None
    try:
        proc = psutil.Process(int(state["pid"]))
        same = abs(proc.create_time() - float(state.get("create_time", 0))) < 0.01
        if not same or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _status(home: Path, state: dict[str, Any] | None, running: bool) -> ServerStatus:
    url = (state or {}).get("url")
    return ServerStatus(
        home=str(home),
        running=running,
        healthy=bool(running and url and is_healthy(url)),
        url=url,
        pid=(state or {}).get("pid") if running else None,
        log=(state or {}).get("log"),
    )


def terminate_tree(pid: int, grace: float = 10.0) -> None:
    """Stop `pid` and every process below it: SIGTERM, then SIGKILL after `grace` seconds.

    The process group is signalled too when `pid` leads its own group (start_new_session), so
    grandchildren that were re-parented still get the signal. Our own group is never signalled.
    """
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        group = None
    own_group = group is not None and group == pid and group != os.getpgid(0)

    def signal_all(procs: list[psutil.Process], sig: signal.Signals) -> None:
        if own_group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(sig)

    signal_all(tree, signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=grace)
    if not alive:
        return
    # Some processes (e.g. a runner with flow-run subprocesses) need a second, harder signal.
    with contextlib.suppress(psutil.NoSuchProcess):
        alive += [p for p in root.children(recursive=True) if p not in alive]
    log.warning("%d process(es) still alive %.1f s after SIGTERM: SIGKILL", len(alive), grace)
    signal_all(alive, signal.SIGKILL)
    _, alive = psutil.wait_procs(alive, timeout=5)
    if alive:
        raise AnonStoreError(f"could not stop processes {[p.pid for p in alive]} (pid {pid})")


def start_server(
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    home: str | Path | None = None,
    timeout: float = 90.0,
    ui: bool = True,
) -> ServerStatus:
    """Start `prefect server start` in its own process group and wait until it is healthy.

    Idempotent: a healthy server already running from `home` on the same address is returned
    as it is. On any failure the process tree is stopped and a one-line AnonStoreError raised.
    """
    home = resolve_home(home)
    home.mkdir(parents=True, exist_ok=True)
    url = api_url(host, port)
    state = _read_state(home)
    if _process(state) is not None:
        assert state is not None
        if state.get("url") != url:
            raise AnonStoreError(
                f"a server from {home} already runs at {state.get('url')} (pid {state['pid']}): "
                "stop it first"
            )
        _wait_healthy(home, state, None, timeout)
        return _status(home, state, running=True)
    _clear_state(home)
    if not port_free(host, port):
        raise AnonStoreError(f"port {port} on {host} is in use: choose another with --port")
    log_path = home / LOG_FILE
    command = [sys.executable, "-m", "prefect", "server", "start"]
    command += ["--host", host, "--port", str(port), "--analytics-off", "--no-background"]
    command += [] if ui else ["--no-ui"]
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            command,
            cwd=home,
            env=server_env(home),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() can signal the whole tree
        )
    state = {
        "pid": proc.pid,
        "create_time": psutil.Process(proc.pid).create_time(),
        "url": url,
        "host": host,
        "port": port,
        "log": str(log_path),
        "command": command,
    }
    _write_state(home, state)
    try:
        _wait_healthy(home, state, proc, timeout)
    except BaseException:
        terminate_tree(proc.pid, grace=5.0)
        proc.wait(timeout=5)
        _clear_state(home)
        raise
    log.info("Prefect server healthy at %s (pid %d, PREFECT_HOME %s)", url, proc.pid, home)
    return _status(home, state, running=True)


def _last_line(path: str) -> str:
    try:
        lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:200] if lines else ""


def _wait_healthy(
    home: Path, state: dict[str, Any], proc: subprocess.Popen | None, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AnonStoreError(
                f"the Prefect server exited with code {proc.returncode} before it was healthy: "
                f"{_last_line(state['log'])} (log: {state['log']})"
            )
        if proc is None and _process(state) is None:
            raise AnonStoreError(f"the Prefect server from {home} died (log: {state['log']})")
        if is_healthy(state["url"], timeout=2.0):
            return
        if time.monotonic() > deadline:
            raise AnonStoreError(
                f"the Prefect server at {state['url']} was not healthy after {timeout:.0f} s "
                f"(log: {state['log']})"
            )
        time.sleep(0.25)


def stop_server(*, home: str | Path | None = None, grace: float = 10.0) -> ServerStatus:
    """Stop the server started from `home` (SIGTERM, SIGKILL after `grace` s); no-op if none."""
    home = resolve_home(home)
    state = _read_state(home)
    proc = _process(state)
    if proc is not None:
        terminate_tree(proc.pid, grace=grace)
        log.info("stopped the Prefect server (pid %d)", proc.pid)
    _clear_state(home)
    return _status(home, state, running=False)


def server_status(*, home: str | Path | None = None) -> ServerStatus:
    """Whether the server started from `home` runs and answers its health check."""
    home = resolve_home(home)
    state = _read_state(home)
    return _status(home, state, running=_process(state) is not None)


def local_api_url(home: str | Path | None = None) -> str | None:
    """The API URL of the healthy local server started from `home`, if there is one."""
    status = server_status(home=home)
    return status.url if status.healthy else None
