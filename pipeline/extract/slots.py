"""Reused shared-memory slots that decode processes write a video's frames into: made once per
extraction by the extracting process, named in each job, copied out as each result arrives."""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass
from multiprocessing.shared_memory import SharedMemory

import numpy as np
import torch

from pipeline.data.clips import ClipSampling

SLOTS_BEYOND_LOOK_AHEAD = 1
"""A spare beyond one slot per job in flight (a result's slot is free again once its frames are
copied out, before the next job is submitted)."""


def slot_bytes(sampling: ClipSampling) -> int:
    """Room for the unique frames of a video's normal clips (uint8, size x size x 3 each); a
    video whose windows add frames beyond that hands its frames over the old way."""
    return sampling.clips_per_video * sampling.frames_per_clip * 3 * sampling.size**2


@dataclass(frozen=True)
class SlotRef:
    """What a decode process needs to write into one slot."""

    name: str
    nbytes: int


class FrameSlots:
    """`count` shared-memory segments of `nbytes` each, owned by this process, handed to jobs
    one at a time (take / give_back) and unlinked by close()."""

    def __init__(self, count: int, nbytes: int) -> None:
        self.nbytes = nbytes
        self._segments: list[SharedMemory] = []
        self._free: deque[int] = deque()
        try:
            for _ in range(count):
                self._segments.append(SharedMemory(create=True, size=max(1, nbytes)))
        except BaseException:
            self.close()
            raise
        self._free.extend(range(count))

    def take(self) -> int | None:
        """A free slot, or None when every slot is in use (the job then hands over the old way)."""
        return self._free.popleft() if self._free else None

    def give_back(self, slot: int | None) -> None:
        if slot is not None:
            self._free.append(slot)

    def ref(self, slot: int) -> SlotRef:
        return SlotRef(self._segments[slot].name, self.nbytes)

    def copy_out(self, slot: int, shape: tuple[int, ...]) -> torch.Tensor:
        """A copy of the uint8 frames a worker wrote into `slot`."""
        view = np.ndarray(shape, dtype=np.uint8, buffer=self._segments[slot].buf)
        frames = torch.from_numpy(view).clone()
        del view
        return frames

    def close(self) -> None:
        """Unlink every segment (its memory is freed once nothing maps it any more)."""
        for segment in self._segments:
            segment.close()
            with contextlib.suppress(FileNotFoundError):
                segment.unlink()
        self._segments = []
        self._free.clear()


def write_frames(ref: SlotRef, frames: torch.Tensor) -> bool:
    """In a decode process: copy `frames` (uint8, contiguous) into the slot; False if they do
    not fit or the slot is gone (its extraction ended), and nothing was written. The slot is
    mapped for this write only: a kept worker holding mappings would keep an ended extraction's
    segments in memory (up to ~1 GB of /dev/shm at 224 px with 14 workers)."""
    if not 0 < frames.nbytes <= ref.nbytes:
        return False
    try:
        segment = SharedMemory(name=ref.name)
    except FileNotFoundError:
        return False
    try:
        target = np.ndarray(tuple(frames.shape), dtype=np.uint8, buffer=segment.buf)
        target[...] = frames.numpy()
        del target  # no export of the buffer may outlive the write (close() refuses otherwise)
    finally:
        segment.close()
    return True
