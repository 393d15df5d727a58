"""Reused shared-memory frame slots: what fits is written and copied out intact, what does not
fit is refused untouched, and closing removes every segment for good."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.data.clips import ClipSampling
from pipeline.extract.slots import FrameSlots, slot_bytes, write_frames


def test_frames_that_fit_come_back_equal_and_the_slot_is_reused() -> None:
    frames = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    slots = FrameSlots(2, frames.nbytes)
    try:
        first = slots.take()
        assert first is not None
        assert write_frames(slots.ref(first), frames)
        copy = slots.copy_out(first, tuple(frames.shape))
        assert torch.equal(copy, frames)
        slots.give_back(first)
        other = torch.zeros_like(frames)
        second, third = slots.take(), slots.take()
        assert slots.take() is None  # both slots in use
        assert first in (second, third)
        assert write_frames(slots.ref(first), other)
        assert torch.equal(copy, frames)  # a copy: the slot's reuse does not touch it
    finally:
        slots.close()


def test_frames_too_large_or_empty_are_refused() -> None:
    slots = FrameSlots(1, 100)
    try:
        ref = slots.ref(0)
        assert not write_frames(ref, torch.zeros(101, dtype=torch.uint8))
        assert not write_frames(ref, torch.zeros(0, dtype=torch.uint8))
        assert write_frames(ref, torch.ones(100, dtype=torch.uint8))
    finally:
        slots.close()


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="POSIX shared memory in /dev/shm")
def test_close_removes_every_segment() -> None:
    slots = FrameSlots(3, 64)
    names = [slots.ref(i).name.lstrip("/") for i in range(3)]
    assert all((Path("/dev/shm") / name).exists() for name in names)
    ref = slots.ref(0)
    slots.close()
    assert not any((Path("/dev/shm") / name).exists() for name in names)
    # A worker still busy with a job of the ended extraction writes nothing and says so.
    assert not write_frames(ref, torch.ones(8, dtype=torch.uint8))
    assert not (Path("/dev/shm") / names[0]).exists()


def test_a_slot_holds_every_frame_of_a_videos_normal_clips(tiny_benchmark: Path) -> None:
    from pipeline.data.manifest import read_manifest
    from pipeline.extract.decoders import DecodeJob, prepare_job

    sampling = ClipSampling(frames_per_clip=8, size=32, clips_per_video=3, static_clips=2)
    manifest = read_manifest(tiny_benchmark / "manifest.parquet")
    row, path = manifest.table.to_pylist()[0], manifest.video_paths()[0]
    job = DecodeJob(str(path), row["kind"], row["video_id"], row["num_frames"], False, False)
    prepared = prepare_job(job, sampling)
    assert 0 < prepared.frames.nbytes <= slot_bytes(sampling)
