"""What the flows share: which failures are worth a retry, the task runner for shards, the
parameter types of the CLI's choices, and the library's logs in the run logs."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from prefect.context import get_run_context
from prefect.exceptions import MissingContextError
from prefect.logging.handlers import APILogHandler
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import Field

from pipeline.cli_choices import ADDRESS_PATTERN, DEVICE_PATTERN, SANITIZE_SCHEDULER_PATTERN
from pipeline.errors import AdapterError, ConfigError, EncoderError, ManifestError
from pipeline.orchestration.cluster import check_cluster_args, local_cluster_kwargs

PERMANENT_ERRORS = (ConfigError, ManifestError, EncoderError, AdapterError)
"""Failures caused by the inputs: retrying cannot help. Everything else (S3 or NFS hiccups, a
worker lost mid-shard, StoreError for an unreachable bucket) is retried; every retried task is
idempotent because stores are written shard by shard and resume."""


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry unless the failure is one of PERMANENT_ERRORS."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception:  # the state carries no readable exception: be conservative and retry
        return True
    return not isinstance(error, PERMANENT_ERRORS)


def shard_task_runner(dask_address: str | None = None, n_workers: int | None = None) -> Any:
    """The task runner that runs shard tasks.

    - dask_address: DaskTaskRunner on an existing cluster (e.g. one worker per GPU);
    - n_workers: DaskTaskRunner on a LocalCluster of that many single-thread processes;
    - neither: one shard at a time in this process (the encoder batches across a shard's
      videos already; running shards side by side in threads would only contend for it).
    """
    check_cluster_args(dask_address, n_workers)
    if dask_address or n_workers:
        import dask
        from prefect_dask import DaskTaskRunner

        # Non-daemonic local workers: extraction starts its decode processes inside them.
        dask.config.set({"distributed.worker.daemon": False})

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        assert n_workers is not None
        return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(n_workers))
    return ThreadPoolTaskRunner(max_workers=1)


# ---------------------------------------------------------------- parameter types

Device = Annotated[str, Field(pattern=rf"^({DEVICE_PATTERN})$")]
"""auto | cpu | cuda | cuda:N, as the CLI's --device."""
Address = Annotated[str, Field(pattern=rf"^({ADDRESS_PATTERN})$")]
"""A dask scheduler address (tcp://host:8786), as tune's --scheduler."""
SanitizeScheduler = Annotated[str, Field(pattern=rf"^({SANITIZE_SCHEDULER_PATTERN})$")]
"""threads | processes | synchronous | a dask address, as sanitize's --scheduler."""


# ---------------------------------------------------------------- library logs

LIBRARY_LOGGERS = ("pipeline", "store_schema")
"""The library's loggers, forwarded to the run's logs. Prefect's own setting for this,
PREFECT_LOGGING_EXTRA_LOGGERS, attaches its API handler to the named loggers when a process sets
up logging; but it leaves their level at the root's WARNING, and records logged in threads the
library starts (no run context there) are dropped with a warning each."""


class _LibraryLogHandler(APILogHandler):
    """Prefect's API log handler for the library's loggers. A record logged where no run
    context is set (a thread the library started) is sent in the context of the run that
    installed the handler: that run's logs, through that run's API settings."""

    def __init__(self) -> None:
        super().__init__()
        self._context = contextvars.copy_context()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            get_run_context()
        except MissingContextError:
            self._context.copy().run(super().emit, record)
            return
        super().emit(record)


@contextmanager
def forward_library_logs(level: int = logging.INFO) -> Iterator[None]:
    """Send the library's log records (pipeline.*, store_schema.*) at `level` and above to the
    current flow or task run's logs, as Prefect does for the loggers named in the setting
    PREFECT_LOGGING_EXTRA_LOGGERS, in whatever process the run executes (a flow called in
    Python, a served deployment, a dask worker). Where Prefect already attached its handler
    (the setting names the logger) or an enclosing run did, only the level is lowered.
    """
    get_run_context()  # MissingContextError outside a flow or task run
    installed: list[tuple[logging.Logger, logging.Handler | None, int]] = []
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        handler = None
        if not any(isinstance(h, APILogHandler) for h in logger.handlers):
            handler = _LibraryLogHandler()
            logger.addHandler(handler)
        installed.append((logger, handler, logger.level))
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)
    try:
        yield
    finally:
        for logger, handler, previous in installed:
            if handler is not None:
                logger.removeHandler(handler)
            logger.setLevel(previous)
