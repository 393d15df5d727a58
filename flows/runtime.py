"""What the flows share: which failures are worth a retry, and the task runner for shards."""

from __future__ import annotations

from typing import Any

from prefect.task_runners import ThreadPoolTaskRunner

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
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        assert n_workers is not None
        return DaskTaskRunner(cluster_kwargs=local_cluster_kwargs(n_workers))
    return ThreadPoolTaskRunner(max_workers=1)
