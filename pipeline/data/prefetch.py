"""Run-ahead work: decode and sample upcoming videos in worker threads while the encoder runs."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def run_ahead(
    fn: Callable[[Job], Result], jobs: Iterable[Job], *, workers: int, depth: int | None = None
) -> Iterator[tuple[Job, Result]]:
    """Yield (job, fn(job)) in job order, computing up to `depth` jobs ahead in `workers` threads.

    The bounded look-ahead caps memory at `depth` decoded videos while keeping the consumer (the
    encoder) fed. PyAV decoding and torch preprocessing release the GIL, so threads overlap with
    the encoder. With workers == 0 everything runs inline (useful for debugging and profiling).
    """
    if workers <= 0:
        for job in jobs:
            yield job, fn(job)
        return
    depth = depth or 2 * workers
    queue: deque[tuple[Job, Future[Result]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
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
