"""Generate the benchmark on disk: mp4 files per split, manifest.parquet and benchmark.json."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.data.manifest import (
    MANIFEST_FILENAME,
    AttributeInfo,
    DatasetInfo,
    read_manifest,
    write_manifest,
)
from pipeline.data.synth.config import SynthConfig
from pipeline.data.synth.encode import write_mp4
from pipeline.data.synth.render import render_video
from pipeline.data.synth.spec import VideoSpec, make_video_specs
from pipeline.data.synth.worlds import get_world
from pipeline.errors import ConfigError
from pipeline.heap import large_buffers_in_heap

log = logging.getLogger(__name__)

SUMMARY_FILENAME = "benchmark.json"
VIDEOS_DIRNAME = "videos"
GENERATOR_ID = "anon-store.synth"
SUMMARY_FORMAT = 1

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class BenchmarkSummary:
    """What generate_benchmark wrote (also stored as benchmark.json in the output directory)."""

    out_dir: Path
    """The benchmark directory."""
    manifest_path: Path
    """out_dir / manifest.parquet."""
    config: SynthConfig
    """The configuration it was generated with."""
    counts: dict[str, int]
    """Videos per split (generated splits only)."""
    kinds: dict[str, int]
    """Videos per kind (trimmed, untrimmed, anomaly)."""
    total_frames: int
    """Frames over all videos."""
    bytes_on_disk: int
    """Size of the mp4 files plus the manifest."""
    seconds: float
    """Wall time of the generation."""
    manifest_sha256: str
    """Manifest.sha256 of the written manifest (content hash; equal for equal configs)."""

    @property
    def num_videos(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """benchmark.json content (with status "complete")."""
        return {
            "generator": GENERATOR_ID,
            "format": SUMMARY_FORMAT,
            "status": "complete",
            "config": self.config.to_dict(),
            "dataset": json.loads(dataset_info(self.config.world).to_json()),
            "manifest": MANIFEST_FILENAME,
            "manifest_sha256": self.manifest_sha256,
            "num_videos": self.num_videos,
            "counts": self.counts,
            "kinds": self.kinds,
            "total_frames": self.total_frames,
            "bytes_on_disk": self.bytes_on_disk,
            "seconds": round(self.seconds, 3),
        }


def dataset_info(world: str = "default") -> DatasetInfo:
    """Class and attribute names of one world of the benchmark (stored in the manifest)."""
    w = get_world(world)
    return DatasetInfo(
        name=w.dataset_name,
        actions=w.actions,
        attributes={
            name: AttributeInfo(values=values, role=role)
            for name, (values, role) in w.attributes.items()
        },
        anomaly_types=w.anomaly_types,
    )


def video_relpath(spec: VideoSpec) -> str:
    """Path of a video's file relative to the benchmark directory."""
    return f"{VIDEOS_DIRNAME}/{spec.split}/{spec.video_id}.mp4"


def read_benchmark_summary(out_dir: str | os.PathLike[str]) -> BenchmarkSummary:
    """The summary of a complete benchmark in ``out_dir`` (raises ConfigError otherwise)."""
    out = Path(out_dir)
    doc = _read_summary_json(out)
    if doc is None or doc.get("status") != "complete":
        raise ConfigError(f"{out}: no complete synthetic benchmark ({SUMMARY_FILENAME} missing)")
    return BenchmarkSummary(
        out_dir=out,
        manifest_path=out / doc.get("manifest", MANIFEST_FILENAME),
        config=SynthConfig.from_dict(doc["config"]),
        counts=dict(doc["counts"]),
        kinds=dict(doc["kinds"]),
        total_frames=int(doc["total_frames"]),
        bytes_on_disk=int(doc["bytes_on_disk"]),
        seconds=float(doc["seconds"]),
        manifest_sha256=str(doc.get("manifest_sha256", "")),
    )


def generate_benchmark(
    out_dir: str | os.PathLike[str],
    config: SynthConfig | None = None,
    progress: ProgressFn | None = None,
) -> BenchmarkSummary:
    """Render and encode every video of ``config`` into ``out_dir``; write the manifest last.

    ``out_dir`` must be new, empty, or a previous benchmark (whose videos, manifest and summary
    are replaced; other files are left alone). ``progress(done, total)`` is called as videos are
    finished. The same config gives the same manifest and the same decoded frames, whatever the
    number of workers.
    """
    config = config or SynthConfig()
    out = Path(out_dir)
    t0 = time.perf_counter()
    _prepare_out_dir(out)
    specs = make_video_specs(config)
    summary_file = out / SUMMARY_FILENAME
    # Marks the directory as a benchmark before anything else, so that an interrupted run can be
    # regenerated into the same place.
    _write_json(
        summary_file,
        {
            "generator": GENERATOR_ID,
            "format": SUMMARY_FORMAT,
            "status": "incomplete",
            "config": config.to_dict(),
        },
    )
    for split in config.selected_splits:
        (out / VIDEOS_DIRNAME / split).mkdir(parents=True, exist_ok=True)

    workers = min(config.resolved_workers(len(specs)), max(1, len(specs)))
    log.info("generating %d synthetic videos into %s with %d worker(s)", len(specs), out, workers)
    sizes = _render_all(specs, out, config, workers, progress)

    rows = [s.manifest_row(video_relpath(s), config.fps) for s in specs]
    manifest_path = write_manifest(out / MANIFEST_FILENAME, rows, dataset_info(config.world))
    sha = read_manifest(manifest_path, check_files=False).sha256
    counts = Counter(s.split for s in specs)
    kinds = Counter(s.kind for s in specs)
    summary = BenchmarkSummary(
        out_dir=out,
        manifest_path=manifest_path,
        config=config,
        counts={split: counts[split] for split in config.selected_splits},
        kinds=dict(sorted(kinds.items())),
        total_frames=sum(s.num_frames for s in specs),
        bytes_on_disk=sum(sizes) + manifest_path.stat().st_size,
        seconds=time.perf_counter() - t0,
        manifest_sha256=sha,
    )
    _write_json(summary_file, summary.to_dict())
    log.info(
        "synthetic benchmark: %d videos, %.1f MB, %.1f s",
        summary.num_videos,
        summary.bytes_on_disk / 1e6,
        summary.seconds,
    )
    return summary


def _prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if _read_summary_json(out) is None:
            raise ConfigError(
                f"{out} is not empty and holds no synthetic benchmark; choose a new or empty "
                "directory"
            )
        log.info("replacing the previous synthetic benchmark in %s", out)
        shutil.rmtree(out / VIDEOS_DIRNAME, ignore_errors=True)
        (out / MANIFEST_FILENAME).unlink(missing_ok=True)
        (out / SUMMARY_FILENAME).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _read_summary_json(out: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((out / SUMMARY_FILENAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("generator") != GENERATOR_ID:
        return None
    return doc


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def _render_all(
    specs: Sequence[VideoSpec],
    out: Path,
    config: SynthConfig,
    workers: int,
    progress: ProgressFn | None,
) -> list[int]:
    """Render and encode all specs; returns the file size of each (in spec order)."""
    total = len(specs)
    sizes = [0] * total
    if progress:
        progress(0, total)
    # Chunks amortise the inter-process overhead but stay small enough for a smooth progress bar.
    chunk = max(1, min(32, math.ceil(total / (8 * workers))))
    jobs = [list(range(i, min(i + chunk, total))) for i in range(0, total, chunk)]
    done = 0
    if workers <= 1:
        for job in jobs:
            for i, size in _render_chunk([specs[i] for i in job], job, str(out), config):
                sizes[i] = size
            done += len(job)
            if progress:
                progress(done, total)
        return sizes
    # spawn, not fork: the parent may hold threads (torch, prefect) that fork would copy badly.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending = {
            pool.submit(_render_chunk, [specs[i] for i in job], job, str(out), config)
            for job in jobs
        }
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                results = future.result()
                for i, size in results:
                    sizes[i] = size
                done += len(results)
            if progress:
                progress(done, total)
    return sizes


def _render_chunk(
    specs: list[VideoSpec], indices: list[int], out: str, config: SynthConfig
) -> list[tuple[int, int]]:
    """Worker: render and write some videos; returns (index, file size) pairs."""
    results = []
    # A video's frames and the renderers' temporaries are MBs each: reused from the heap instead
    # of page-faulted in again for every video (2.5x faster camera sampling, see pipeline.heap).
    with large_buffers_in_heap():
        for i, spec in zip(indices, specs, strict=True):
            video = render_video(spec, frame_size=config.frame_size)
            size = write_mp4(
                Path(out) / video_relpath(spec),
                video.frames,
                fps=config.fps,
                crf=config.crf,
                preset=config.preset,
            )
            results.append((i, size))
    return results
