"""Local servers for the tests (a Prefect API, a moto S3 endpoint) on ports nobody else holds.

Picking a free port (bind to port 0, read the number, close) and then starting a server on it
races with every other process on the machine doing the same: in between, the port can be
taken, and the server fails to bind. `start_on_free_port` runs the start again on a new port when
that happened (and only then: any other failure is raised at once). A server that can bind port
0 itself never races: `start_moto_server` does that.
"""

from __future__ import annotations

import errno
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

HOST = "127.0.0.1"
ATTEMPTS = 5

_TAKEN = re.compile(
    r"address already in use"  # errno 98 as Python, uvicorn and werkzeug word it
    r"|\beaddrinuse\b"
    r"|\bport \d+ on \S+ is in use\b",  # pipeline.orchestration.server.start_server's check
    re.IGNORECASE,
)


class PortTakenError(OSError):
    """The server could not listen on its port: another process holds it."""

    def __init__(self, port: int, detail: str) -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} was taken: {detail}")
        self.port = port


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def port_taken(error: BaseException) -> bool:
    """True if `error` (or one it was raised from) says the port was already in use."""
    for item in _chain(error):
        if isinstance(item, OSError) and item.errno == errno.EADDRINUSE:
            return True
        if _TAKEN.search(str(item)):
            return True
    return False


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (it may be taken a moment later: see above)."""
    from pipeline.orchestration.server import free_port as pick

    return pick(host)


def start_on_free_port(
    start: Callable[[int], T],
    *,
    host: str = HOST,
    attempts: int = ATTEMPTS,
    taken: Callable[[BaseException], bool] = port_taken,
) -> T:
    """`start(port)` on a free port; on a new free port again (up to `attempts` times in all)
    when it failed because the port got taken in the meantime."""
    for attempt in range(1, attempts + 1):
        port = free_port(host)
        try:
            return start(port)
        except Exception as error:
            if attempt == attempts or not taken(error):
                raise
            log.warning("port %d got taken (%s): starting again on another one", port, error)
    raise AssertionError("unreachable")


def start_prefect_server(home: Path, *, timeout: float = 120.0, **kwargs):
    """`prefect server start` (pipeline.orchestration.server.start_server) from `home` on a free
    port, on another one if the chosen port got taken before the server bound it. Returns its
    ServerStatus; stop it with stop_server(home=home)."""
    from pipeline.errors import AnonStoreError
    from pipeline.orchestration.server import LOG_FILE, start_server

    home = Path(home)
    log_path = home / LOG_FILE

    def start(port: int):
        offset = log_path.stat().st_size if log_path.exists() else 0
        try:
            return start_server(port=port, home=home, ui=False, timeout=timeout, **kwargs)
        except AnonStoreError as error:
            # The server exited before it was healthy: was it its bind that failed? (The log is
            # appended to by every try: only this try's part counts.)
            written = ""
            if log_path.exists():
                with open(log_path, "rb") as f:
                    f.seek(offset)
                    written = f.read().decode(errors="replace")
            if _TAKEN.search(written):
                raise PortTakenError(port, str(error)) from error
            raise

    return start_on_free_port(start)


def start_moto_server(host: str = HOST):
    """A moto S3 server in a thread of this process, listening on a port the kernel picked for
    it (port 0: no race). Returns (server, endpoint URL); call server.stop() when done."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    server.start()
    bound_host, port = server.get_host_and_port()
    return server, f"http://{bound_host}:{port}"
