"""Running sanitize tasks on a local dask scheduler or a distributed cluster, with progress."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dask
import numpy as np
from dask.callbacks import Callback

from pipeline.errors import ConfigError, StoreError
from pipeline.threads import torch_threads

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = "10s"
"""How long to try reaching a distributed scheduler before giving up (nothing is written yet)."""

OnResult = Callable[[int, int], None]
"""Called with (chunks written, bytes written) as each task finishes."""


class _TaskCallback(Callback):
    def __init__(self, keys: set, on_result: OnResult) -> None:
        super().__init__()
        self._keys = keys
        self._on_result = on_result

    def _posttask(self, key, result, dsk, state, worker_id) -> None:
        if key in self._keys:
            chunks, nbytes = np.asarray(result).reshape(-1)[:2]
            self._on_result(int(chunks), int(nbytes))


def run_local(
    tasks: Sequence[Any], scheduler: str, workers: int | None, on_result: OnResult
) -> None:
    """Compute `tasks` with the threads, processes or synchronous scheduler."""
    if not tasks:
        return
    workers = workers or os.cpu_count() or 1
    keys = {task.key for task in tasks}
    kwargs: dict[str, Any] = {"scheduler": scheduler}
    if scheduler != "synchronous":
        kwargs["num_workers"] = workers
    with torch_threads(1), _TaskCallback(keys, on_result):
        dask.compute(*tasks, optimize_graph=False, **kwargs)


@contextlib.contextmanager
def connect(address: str) -> Iterator[Any]:
    """A distributed Client on `address`, closed afterwards (the cluster keeps running)."""
    try:
        from distributed import Client
    except ImportError as error:  # pragma: no cover - distributed is a dependency
        raise ConfigError(f"scheduler {address} needs dask.distributed: {error}") from None
    try:
        client = Client(address, set_as_default=False, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as error:
        raise StoreError(f"cannot connect to the dask scheduler at {address}: {error}") from None
    try:
        yield client
    finally:
        client.close()


def run_distributed(client: Any, tasks: Sequence[Any], on_result: OnResult) -> None:
    """Compute `tasks` on a distributed cluster, reporting each as it completes."""
    from distributed import as_completed

    if not tasks:
        return
    futures = client.compute(list(tasks), optimize_graph=False)
    try:
        for future in as_completed(futures, loop=client.loop):
            chunks, nbytes = np.asarray(future.result()).reshape(-1)[:2]
            on_result(int(chunks), int(nbytes))
    except BaseException:
        client.cancel(futures)
        raise
