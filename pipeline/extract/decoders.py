"""Decode worker processes: videos decoded and cut into uint8 clips (PreparedClips) off the
process that runs the encoder, handed over through shared memory, consumed in job order."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.data.clips import (
    ClipSampling,
    PreparedClips,
    frames_used,
    prepare_image,
    prepare_video,
)
from pipeline.data.decode import decode_image, decode_video
from pipeline.data.prefetch import lower_this_thread_priority
from pipeline.errors import VideoError, VideoTooShortError
from pipeline.extract.slots import (
    SLOTS_BEYOND_LOOK_AHEAD,
    FrameSlots,
    SlotRef,
    slot_bytes,
    write_frames,
)
from store_schema import IMAGE_KIND

log = logging.getLogger(__name__)

LOOK_AHEAD_PER_WORKER = 4
"""Videos in flight per worker: enough that one long video does not starve the encoder while
the others' results wait their turn, few enough to bound memory (each is a few MB of uint8)."""


def default_decode_workers(device: str = "cuda") -> int:
    """With a GPU encoder: cores - 2 (the feeding thread and the commits keep one core each
    busy), at least 1. With a CPU encoder: one per core, at low priority: they fill the gaps the
    encoder's threads leave (`small` benchmark, tiny encoder, 2 cores: 1 worker 535-618 clips/s,
    2 workers 709-726)."""
    cores = os.cpu_count() or 1
    return cores if device == "cpu" else max(1, cores - 2)


@dataclass(frozen=True)
class DecodeJob:
    """One video (or image) to decode and prepare: everything a worker process needs."""

    path: str
    kind: str
    video_key: str
    expected_frames: int
    """The manifest's frame count (<= 0: unknown); decoding fewer fails the video."""
    with_windows: bool
    augmented: bool
    """Images only: augmented crops (training splits) rather than the one centre crop."""


def prepare_job(job: DecodeJob, sampling: ClipSampling) -> PreparedClips | VideoError:
    """Decode and prepare one job; a VideoError is returned (not raised) for the caller to
    record against the video."""
    try:
        if job.kind == IMAGE_KIND:
            image = decode_image(job.path)
            return prepare_image(image, sampling, video_key=job.video_key, augmented=job.augmented)
        expected = job.expected_frames
        frames = decode_video(
            job.path,
            expected_frames=expected if expected > 0 else None,
            keep=_frames_used(expected, sampling, job),
        )
        if expected > 0:
            frames = frames[:expected]
        return prepare_video(
            frames, sampling, video_key=job.video_key, with_windows=job.with_windows
        )
    except VideoError as error:
        return error


def _frames_used(expected: int, sampling: ClipSampling, job: DecodeJob) -> np.ndarray | None:
    """The frames sampling will read, when the frame count is known (decoding fewer frames than
    that fails the video): only those are converted to RGB."""
    if expected <= 0:
        return None
    try:
        return frames_used(
            expected, sampling, video_key=job.video_key, with_windows=job.with_windows
        )
    except VideoTooShortError:
        return None  # decode it all and let sampling report it, as for any video


WATCH_SECONDS = 1.0
"""How often a decode worker checks that the process it decodes for is still alive."""


def _init_worker(nice: int, owner: int) -> None:
    """One torch thread per process: the processes are the parallelism (threads per process
    would multiply into hundreds of OpenMP threads fighting the encoder's). A watchdog ends
    the worker once `owner` (the extracting process) is gone: killed (SIGKILL, out of memory),
    it cannot shut the pool down, and the workers, holding both ends of their queues and the
    forkserver's lifeline, would otherwise wait forever."""
    torch.set_num_threads(1)
    lower_this_thread_priority(nice)
    threading.Thread(target=_watch, args=(owner,), name="owner-watch", daemon=True).start()


def _watch(owner: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # alive, owned by someone else (cannot happen for our parent)
            continue


_PICKLED_FIELDS = ("clip_rows", "window_rows", "static", "static_theta")
"""PreparedClips tensors that travel pickled in the result pipe as numpy arrays. A torch tensor
would go through a new shared-memory file whose descriptor the consumer fetches from the worker
over a socket (tiny encoder, 2 cores: 2.4-2.6 CPU ms per clip with all five as tensors, 2.2-2.3
with these pickled). The frames, 19 MB per video at 224 px (pickled, the consumer spent 23 ms per
video copying them), go into a reused slot (pipeline.extract.slots), or a file of their own when
they do not fit."""


@dataclass(frozen=True)
class _InSlot:
    """A worker's result whose frames are in its job's slot (pipeline.extract.slots)."""

    prepared: PreparedClips
    """Frames replaced by an empty array."""
    shape: tuple[int, ...]


def _run_job(
    job: DecodeJob, sampling: ClipSampling, slot: SlotRef | None = None
) -> PreparedClips | _InSlot | VideoError:
    """prepare_job in a worker process: the frames into `slot` when they fit (else through a
    shared-memory file of their own), the small tensors as numpy arrays (_PICKLED_FIELDS)."""
    prepared = prepare_job(job, sampling)
    if isinstance(prepared, VideoError):
        return prepared
    arrays = {name: getattr(prepared, name) for name in _PICKLED_FIELDS}
    prepared = dataclasses.replace(
        prepared, **{k: None if v is None else v.numpy() for k, v in arrays.items()}
    )
    if slot is not None and write_frames(slot, prepared.frames):
        shape = tuple(prepared.frames.shape)
        return _InSlot(dataclasses.replace(prepared, frames=np.empty(0, np.uint8)), shape)
    return prepared


def _as_tensors(
    result: PreparedClips | _InSlot | VideoError, slots: FrameSlots, slot: int | None
) -> PreparedClips | VideoError:
    """A worker's result with its numpy arrays back as tensors (no copy) and its frames copied
    out of its slot, which is free again (a view would dangle once the slot is reused or the
    extraction ends, whatever a caller keeps)."""
    frames = None
    if isinstance(result, _InSlot):
        assert slot is not None
        frames = slots.copy_out(slot, result.shape)
        result = result.prepared
    slots.give_back(slot)
    if isinstance(result, VideoError) or isinstance(result.clip_rows, torch.Tensor):
        return result
    arrays = {name: getattr(result, name) for name in _PICKLED_FIELDS}
    tensors = {k: None if v is None else torch.from_numpy(v) for k, v in arrays.items()}
    return dataclasses.replace(result, **tensors, **({} if frames is None else {"frames": frames}))


_POOLS: dict[tuple[int, int, int], ProcessPoolExecutor] = {}
"""(owner pid, workers, nice) -> pool: a forked child never reuses its parent's pool."""
_POOLS_LOCK = threading.Lock()


def _process_pool(workers: int, nice: int) -> ProcessPoolExecutor:
    """The decode processes for (workers, nice), started once per process and kept for the next
    extraction (starting them costs ~2 s; shutdown_decoders() or the interpreter's exit stops
    them). ``forkserver`` with this module preloaded: every worker forks from a clean server
    that has torch imported already, never from this process (no inherited CUDA context or
    thread pools); ``spawn`` where forkserver does not exist."""
    with _POOLS_LOCK:
        key = (os.getpid(), workers, nice)
        pool = _POOLS.get(key)
        if pool is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([__name__])
            else:
                context = multiprocessing.get_context("spawn")
            pool = ProcessPoolExecutor(
                workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(nice, os.getpid()),
            )
            _POOLS[key] = pool
        return pool


def shutdown_decoders() -> None:
    """Stop every kept decode process of this process."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


def _discard(pool: ProcessPoolExecutor) -> None:
    with _POOLS_LOCK:
        for key, kept in list(_POOLS.items()):
            if kept is pool:
                del _POOLS[key]
    pool.shutdown(wait=False, cancel_futures=True)


class DecodePool:
    """`workers` decode processes (0: decode inline in this process) that prepare jobs ahead of
    the consumer. Results come back in job order (so batches, and thus the stored bits, do not
    depend on the number of workers) while up to ``LOOK_AHEAD_PER_WORKER`` jobs per worker are
    in flight, finishing in any order. Frames come back through reused shared-memory slots
    (pipeline.extract.slots), the small arrays pickled (_PICKLED_FIELDS). One pool serves every
    shard of an extraction, so decoding runs on across shard boundaries."""

    def __init__(
        self, workers: int, sampling: ClipSampling, *, nice: int = 0, help_out: bool = False
    ) -> None:
        self.workers = workers
        self.sampling = sampling
        self.help_out = help_out
        """While the oldest job is not ready, prepare a job no worker has started here instead
        of waiting (for CPU encoders: the consumer's core would idle otherwise; a GPU's feeder
        must stay free to pick the result up)."""
        self.helped = 0
        """Jobs prepared in this process by help_out."""
        self.via_slots = 0
        """Results whose frames came back through a reused slot (pipeline.extract.slots)."""
        self._pool = _process_pool(workers, nice) if workers > 0 else None

    def prepared(
        self, jobs: Iterable[tuple[int, DecodeJob]]
    ) -> Iterator[tuple[int, PreparedClips | VideoError]]:
        """(key, prepared or error) of every (key, job), in order."""
        if self._pool is None:
            for key, job in jobs:
                yield key, prepare_job(job, self.sampling)
            return
        depth = LOOK_AHEAD_PER_WORKER * self.workers
        slots = FrameSlots(depth + SLOTS_BEYOND_LOOK_AHEAD, slot_bytes(self.sampling))
        queue: deque[_Queued] = deque()
        jobs = iter(jobs)
        try:
            for key, job in jobs:
                queue.append(self._submit(key, job, slots))
                if len(queue) >= depth:
                    yield self._next(queue, slots)
            while queue:
                yield self._next(queue, slots)
        except BrokenProcessPool as error:
            # A worker died (killed, out of memory) or the processes could not start at all
            # (e.g. a __main__ they cannot re-import): the jobs are deterministic, so the rest
            # is decoded here, slower but complete.
            log.warning("decode worker processes failed (%s): decoding inline", error)
            _discard(self._pool)
            self._pool = None
            while queue:
                key, job, future, slot = queue.popleft()
                yield key, _finished(future, slots, slot) or prepare_job(job, self.sampling)
            for key, job in jobs:
                yield key, prepare_job(job, self.sampling)
        finally:
            for _, _, future, _ in queue:
                future.cancel()
            slots.close()

    def _submit(self, key: int, job: DecodeJob, slots: FrameSlots) -> _Queued:
        assert self._pool is not None
        slot = slots.take()
        ref = None if slot is None else slots.ref(slot)
        return key, job, self._pool.submit(_run_job, job, self.sampling, ref), slot

    def _next(
        self, queue: deque[_Queued], slots: FrameSlots
    ) -> tuple[int, PreparedClips | VideoError]:
        """The oldest job's result; the job leaves the queue only once it has one (a broken
        pool leaves it there to be redone)."""
        if self.help_out:
            self._help(queue, slots)
        key, _, future, slot = queue[0]
        raw = future.result()
        self.via_slots += isinstance(raw, _InSlot)
        result = _as_tensors(raw, slots, slot)
        queue.popleft()
        return key, result

    def _help(self, queue: deque[_Queued], slots: FrameSlots) -> None:
        """Until the oldest job is done: take the oldest job still waiting for a worker
        (cancelling its future succeeds only then) and prepare it here. The result is the same
        (prepare_job is deterministic), and it is consumed in its turn."""
        while not queue[0][2].done():
            for position, (key, job, future, slot) in enumerate(queue):
                if future.cancel():
                    done: Future = Future()
                    done.set_result(prepare_job(job, self.sampling))
                    slots.give_back(slot)
                    queue[position] = (key, job, done, None)
                    self.helped += 1
                    break
            else:
                return  # every job is with a worker: wait


_Queued = tuple[int, DecodeJob, Future, int | None]
"""A job in flight: its key, the job, its future and the slot its frames may come back in."""


def _finished(
    future: Future, slots: FrameSlots, slot: int | None
) -> PreparedClips | VideoError | None:
    """A future's result if it has one (e.g. prepared here by help_out), else None."""
    if future.done() and not future.cancelled() and future.exception() is None:
        return _as_tensors(future.result(), slots, slot)
    return None
