"""Run-ahead work: decode and sample upcoming videos in worker threads while the encoder runs."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

log = logging.getLogger(__name__)

Job = TypeVar("Job")
Result = TypeVar("Result")


def lower_this_thread_priority(nice: int) -> None:
    """Give the calling thread (only) at least niceness `nice` (Linux; never raises a priority).

    On Linux setpriority(PRIO_PROCESS, thread id) applies to one thread; elsewhere the call would
    reach the whole process, so it is skipped.
    """
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as error:  # e.g. a sandbox forbidding it: run at normal priority
        log.debug("could not lower the priority of decode thread %d: %s", tid, error)


def run_ahead(
    fn: Callable[[Job], Result],
    jobs: Iterable[Job],
    *,
    workers: int,
    depth: int | None = None,
    nice: int = 0,
) -> Iterator[tuple[Job, Result]]:
    """Yield (job, fn(job)) in job order, computing up to `depth` jobs ahead in `workers` threads.

    The bounded look-ahead caps memory at `depth` decoded videos while keeping the consumer (the
    encoder) fed. PyAV decoding and torch preprocessing release the GIL, so threads overlap with
    the encoder. With workers == 0 everything runs inline (useful for debugging and profiling).
    `nice` > 0 lowers the worker threads' scheduling priority (Linux), so that on cores they
    share with a CPU encoder they fill its gaps instead of preempting its threads.
    """
    if workers <= 0:
        for job in jobs:
            yield job, fn(job)
        return
    depth = depth or 2 * workers
    queue: deque[tuple[Job, Future[Result]]] = deque()
    with ThreadPoolExecutor(
        max_workers=workers,
        thread_name_prefix="decode",
        initializer=lower_this_thread_priority,
        initargs=(nice,),
    ) as pool:
        try:
            for job in jobs:
                queue.append((job, pool.submit(fn, job)))
                if len(queue) >= depth:
                    done_job, future = queue.popleft()
                    yield done_job, future.result()
            while queue:
                done_job, future = queue.popleft()
                yield done_job, future.result()
        finally:
            for _, future in queue:
                future.cancel()
