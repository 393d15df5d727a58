"""Dask clusters for the scale-out stages: an existing scheduler, or a local one per run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline.errors import ConfigError


def check_cluster_args(dask_address: str | None, n_workers: int | None) -> None:
    if dask_address and n_workers:
        raise ConfigError("give dask_address (an existing cluster) or n_workers, not both")
    if n_workers is not None and n_workers <= 0:
        raise ConfigError(f"n_workers must be positive, got {n_workers}")
    if dask_address and "://" not in dask_address:
        raise ConfigError(f"dask_address must look like tcp://host:8786, got {dask_address!r}")


def local_cluster_kwargs(n_workers: int) -> dict[str, Any]:
    """A LocalCluster of `n_workers` processes with one thread each: torch runs its own threads
    inside a task (and a GPU host runs one worker per GPU), so dask adds processes, not threads."""
    return {
        "n_workers": n_workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
    }


@contextmanager
def dask_scheduler(dask_address: str | None, n_workers: int | None) -> Iterator[str | None]:
    """Yield a scheduler address: `dask_address` as given, a LocalCluster of `n_workers` started
    for the duration (and shut down after), or None when neither is given (no dask)."""
    check_cluster_args(dask_address, n_workers)
    if dask_address:
        yield dask_address
        return
    if not n_workers:
        yield None
        return
    import dask
    from distributed import LocalCluster

    # Non-daemonic worker processes: extraction starts its decode processes inside them, which
    # a daemonic process may not do (it would decode inline, on one core).
    with (
        dask.config.set({"distributed.worker.daemon": False}),
        LocalCluster(**local_cluster_kwargs(n_workers)) as cluster,
    ):
        yield cluster.scheduler_address
