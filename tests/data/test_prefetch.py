"""run_ahead: results in job order, a bounded look-ahead, lower-priority worker threads."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from pipeline.data.prefetch import run_ahead


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_results_come_in_job_order(workers: int) -> None:
    out = list(run_ahead(lambda x: x * x, range(20), workers=workers))
    assert out == [(x, x * x) for x in range(20)]


def test_look_ahead_is_bounded() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def job(x: int) -> int:
        with lock:
            started.append(x)
        return x

    for consumed, (x, _) in enumerate(run_ahead(job, range(30), workers=2, depth=4)):
        with lock:
            ahead = len(started) - consumed
        assert ahead <= 4, (x, started)


LOWEST_PRIORITY = 19
"""The highest niceness Linux gives; setpriority clamps anything above it."""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority: Linux")
def test_workers_run_at_lower_priority_and_the_caller_does_not() -> None:
    """Measured against the caller's own niceness: the suite may itself run under `nice`."""

    def priority(_: int) -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    caller = priority(0)
    lower = min(caller + 7, LOWEST_PRIORITY)  # == caller only when run at niceness 19 already
    seen = [p for _, p in run_ahead(priority, range(8), workers=2, nice=lower)]
    assert seen == [lower] * 8
    assert priority(0) == caller
    # nice=0 leaves the workers as they are
    assert [p for _, p in run_ahead(priority, range(4), workers=2)] == [caller] * 4
    # a niceness the workers already have (or exceed) never raises their priority
    assert [p for _, p in run_ahead(priority, range(4), workers=2, nice=caller)] == [caller] * 4
    if caller > 1:
        higher = [p for _, p in run_ahead(priority, range(4), workers=2, nice=caller - 1)]
        assert higher == [caller] * 4
