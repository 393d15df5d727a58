"""Decode worker processes: errors cross the process boundary intact, a dead worker falls back to
inline decoding with the same results, and workers never outlive a killed extraction."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from pipeline.data.clips import ClipSampling
from pipeline.errors import CorruptVideoError, TruncatedVideoError
from pipeline.extract.decoders import DecodeJob, DecodePool, _process_pool, prepare_job


def _jobs(tiny_benchmark: Path, count: int = 6) -> list[tuple[int, DecodeJob]]:
    from pipeline.data.manifest import read_manifest

    manifest = read_manifest(tiny_benchmark / "manifest.parquet")
    rows = manifest.table.to_pylist()[:count]
    paths = manifest.video_paths()[:count]
    return [
        (i, DecodeJob(str(p), r["kind"], r["video_id"], r["num_frames"], False, False))
        for i, (r, p) in enumerate(zip(rows, paths, strict=True))
    ]


def test_video_errors_survive_pickling() -> None:
    for error in (CorruptVideoError("/x/a.mp4", "bad packet"), TruncatedVideoError("b.mp4")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert (copy.path, copy.reason, copy.detail, str(copy)) == (
            error.path, error.reason, error.detail, str(error),
        )  # fmt: skip


def _same(a, b) -> bool:
    fields = ("frames", "clip_rows", "window_rows", "static", "static_theta")
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in fields)


def test_processes_match_inline_and_survive_a_dead_worker(tiny_benchmark: Path) -> None:
    sampling = ClipSampling(frames_per_clip=8, size=32, static_clips=3)
    jobs = _jobs(tiny_benchmark)
    inline = [p for _, p in DecodePool(0, sampling).prepared(jobs)]
    pool = DecodePool(1, sampling)
    first = list(pool.prepared(jobs))
    assert [k for k, _ in first] == list(range(len(jobs)))
    assert all(_same(a, b) for (_, a), b in zip(first, inline, strict=True))
    assert pool.via_slots == len(jobs)  # every video's frames came back through a reused slot
    # A worker killed mid-run (out of memory, say): the rest is decoded inline, nothing lost.
    executor = _process_pool(1, 0)
    stream = DecodePool(1, sampling).prepared(jobs)
    key, _ = next(stream)
    for process in list(executor._processes.values()):
        process.kill()
    rest = list(stream)
    assert [key] + [k for k, _ in rest] == list(range(len(jobs)))
    assert all(_same(a, b) for (_, a), b in zip(rest, inline[1:], strict=True))


def test_the_consumer_prepares_waiting_jobs_itself_with_the_same_results(
    tiny_benchmark: Path,
) -> None:
    sampling = ClipSampling(frames_per_clip=8, size=32, static_clips=3)
    jobs = _jobs(tiny_benchmark, count=12)
    inline = [p for _, p in DecodePool(0, sampling).prepared(jobs)]
    pool = DecodePool(1, sampling, help_out=True)
    # One worker, 4 jobs in flight: the first result is not back when the consumer asks, so
    # it takes the jobs still waiting for the worker instead of idling.
    helped = list(pool.prepared(jobs))
    assert [k for k, _ in helped] == list(range(len(jobs)))
    assert all(_same(a, b) for (_, a), b in zip(helped, inline, strict=True))
    assert pool.helped > 0
    default = DecodePool(1, sampling)  # off unless asked (a GPU's feeder must not be busy)
    assert all(_same(a, b) for (_, a), b in zip(default.prepared(jobs), inline, strict=True))
    assert default.helped == 0


def test_errors_come_back_from_the_workers(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    job = DecodeJob(str(tmp_path / "broken.mp4"), "trimmed", "broken", 30, False, False)
    sampling = ClipSampling(frames_per_clip=8, size=32)
    ((_, result),) = DecodePool(1, sampling).prepared([(0, job)])
    assert isinstance(result, CorruptVideoError) and result.path.endswith("broken.mp4")
    assert isinstance(prepare_job(job, sampling), CorruptVideoError)


@pytest.mark.skipif(sys.platform != "linux", reason="process ancestry checked on Linux")
def test_workers_do_not_outlive_a_killed_extraction(
    tiny_benchmark: Path, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    script = (
        "import sys\n"
        "from pipeline.extract import ExtractConfig, extract\n"
        "if __name__ == '__main__':\n"
        "    extract(sys.argv[1], sys.argv[2], sys.argv[3],\n"
        "            ExtractConfig(workers=2, batch_size=2, videos_per_chunk=2))\n"
    )
    (tmp_path / "run.py").write_text(script)
    manifest = tiny_benchmark / "manifest.parquet"
    args = [sys.executable, str(tmp_path / "run.py"), str(manifest), str(tiny_encoder_dir)]
    process = subprocess.Popen(
        [*args, str(tmp_path / "raw.zarr")], cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )  # fmt: skip
    parent = psutil.Process(process.pid)
    children: list[psutil.Process] = []
    deadline = time.monotonic() + 60
    while len(children) < 3 and time.monotonic() < deadline:  # forkserver + 2 workers
        time.sleep(0.2)
        children = parent.children(recursive=True)
    assert len(children) >= 3, "the decode processes never started"
    process.send_signal(signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"decode processes outlived the extraction: {alive}"
