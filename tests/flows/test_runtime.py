"""Retry policy and task-runner choice shared by the flows."""

from __future__ import annotations

import pytest
from prefect import flow, task
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.extract_features import extract_shard_task, shard_cache_key
from flows.runtime import retry_transient, shard_task_runner
from pipeline.errors import ConfigError, EncoderError, StoreError
from pipeline.orchestration.extract_shards import ExtractionJob


@pytest.mark.parametrize(
    ("error", "retried"),
    [(OSError("reset by peer"), True), (StoreError("cannot reach"), True),
     (ConfigError("bad"), False), (EncoderError("not a model"), False)],
)  # fmt: skip
def test_only_transient_failures_are_retried(error, retried):
    assert retry_transient(None, None, Failed(data=error)) is retried


def test_shard_task_runner_choice():
    from prefect_dask import DaskTaskRunner

    single = shard_task_runner()
    assert isinstance(single, ThreadPoolTaskRunner) and single._max_workers == 1
    assert shard_task_runner(dask_address="tcp://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"
    local = shard_task_runner(n_workers=3)
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 3
    assert local.cluster_kwargs["threads_per_worker"] == 1
    with pytest.raises(ConfigError, match="not both"):
        shard_task_runner(dask_address="tcp://h:8786", n_workers=2)
    with pytest.raises(ConfigError, match="tcp://"):
        shard_task_runner(dask_address="h:8786")


def test_shard_tasks_retry_persist_and_cache_by_content_and_store():
    assert extract_shard_task.retries == 2 and extract_shard_task.persist_result
    job = ExtractionJob("m", "e", "o", {}, "f" * 64, "store-1", 3, (0, 1, 2), "created", 30)
    key = shard_cache_key(None, {"job": job, "shard": 1})
    assert key == shard_cache_key(None, {"job": job, "shard": 1})
    assert key != shard_cache_key(None, {"job": job, "shard": 2})
    other_store = ExtractionJob(**{**job.__dict__, "store_id": "store-2"})
    assert key != shard_cache_key(None, {"job": other_store, "shard": 1})
    other_inputs = ExtractionJob(**{**job.__dict__, "fingerprint": "a" * 64})
    assert key != shard_cache_key(None, {"job": other_inputs, "shard": 1})


@pytest.mark.integration
def test_retry_condition_in_a_real_flow(prefect_api):
    attempts = {"io": 0, "config": 0}

    @task(retries=2, retry_delay_seconds=0, retry_condition_fn=retry_transient, persist_result=True)
    def flaky(kind: str) -> str:
        attempts[kind] += 1
        if kind == "io" and attempts[kind] < 3:
            raise OSError("connection reset")
        if kind == "config":
            raise ConfigError("bad value")
        return "ok"

    @flow
    def run(kind: str) -> str:
        return flaky(kind)

    assert run("io") == "ok" and attempts["io"] == 3
    with pytest.raises(ConfigError):
        run("config")
    assert attempts["config"] == 1
