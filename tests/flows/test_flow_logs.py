"""The library's log records (pipeline.*) reach the flow run's logs on a real Prefect server."""

from __future__ import annotations

import logging
import threading
import time

import pytest

pytestmark = pytest.mark.integration


def _run_logs(flow_run_id, until, timeout: float = 60.0) -> list:
    """The flow run's logs on the server, read until `until(logs)` holds (logs are sent in
    batches, seconds after the run) or `timeout` seconds passed."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
            if until(logs) or time.monotonic() > deadline:
                return logs
            time.sleep(0.5)


def test_sanitize_flow_forwards_pipeline_info_records(prefect_api, raw_store, tmp_path):
    from flows.sanitize_store import sanitize_store
    from pipeline.aam.from_store import TrainAAMConfig, train_aam
    from pipeline.aam.trainer import TrainConfig

    adapter = tmp_path / "adapter"
    train_aam(str(raw_store), adapter, TrainAAMConfig(training=TrainConfig(epochs=1)))
    level_before = logging.getLogger("pipeline").level
    state = sanitize_store(
        input=str(raw_store),
        adapter=str(adapter),
        output=str(tmp_path / "clean.zarr"),
        workers=1,
        return_state=True,
    )
    assert state.is_completed()

    def sanitizing(logs: list) -> bool:
        return any(
            log.name.startswith("pipeline.")
            and log.level == logging.INFO
            and "sanitizing raw.zarr into clean.zarr" in log.message
            for log in logs
        )

    logs = _run_logs(state.state_details.flow_run_id, sanitizing)
    assert sanitizing(logs), [(log.name, log.message) for log in logs]
    assert logging.getLogger("pipeline").level == level_before  # restored after the run
    assert not any(
        type(h).__name__ == "_LibraryLogHandler" for h in logging.getLogger("pipeline").handlers
    )


def test_records_from_threads_without_a_run_context_reach_the_run(prefect_api):
    from prefect import flow

    from flows.runtime import forward_library_logs

    @flow(name="library-thread-logs")
    def logs_from_a_thread() -> None:
        with forward_library_logs():
            worker = threading.Thread(
                target=lambda: logging.getLogger("pipeline.test").info("from a library thread")
            )
            worker.start()
            worker.join()

    state = logs_from_a_thread(return_state=True)
    assert state.is_completed()
    logs = _run_logs(
        state.state_details.flow_run_id,
        lambda logs: any(log.message == "from a library thread" for log in logs),
    )
    assert [log.name for log in logs if log.message == "from a library thread"] == [
        "pipeline.test"
    ], [(log.name, log.message) for log in logs]
