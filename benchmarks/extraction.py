"""Extraction throughput side by side: encoder alone, the extract pipeline, a naive loop.

- encoder alone: the frozen encoder on clips already decoded and preprocessed in memory (up to
  MAX_CLIPS_IN_MEMORY of them, from videos spread over the manifest), in
  batches of ExtractConfig.batch_size - the limit extraction can reach;
- pipeline: ``pipeline.extract.extract`` into a new store (decode in worker threads, sample,
  encode in full batches across videos, write);
- naive: what reference scripts do - decode one video, encode one clip per forward pass, write
  one .npy per video. Measured on the first few videos only (it is slow; clips/s is a rate).
Variants alternate within each repetition; medians of clips/s are reported.

CPU budget (what limits the pipeline where the encoder runs on the CPU): CPU time per clip of the
encoder alone, of decoding and sampling alone (one thread), and of the pipeline (its decode
processes included); with every core busy the pipeline cannot beat encoder-alone clips/s by more
than the ratio of their CPU costs (`cpu_ceiling`), so extract_vs_encoder is bounded by it.
`extract_vs_ceiling` compares the pipeline with the most the work itself allows: the encoder's
and decoding's CPU per clip, done with the cores the encoder alone keeps busy,
ceiling clips/s = encoder-alone clips/s x encoder ms / (encoder ms + decode-and-sample ms).
Both overhead (copies, writing) and idle cores count against it.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import process_tree_cpu
from pipeline.data.clips import sample_video
from pipeline.data.decode import decode_video
from pipeline.data.manifest import read_manifest
from pipeline.encoders.registry import load_encoder
from pipeline.extract import ExtractConfig, extract
from pipeline.extract.plan import WINDOWED_KINDS, sampling_for
from pipeline.heap import large_buffers_in_heap
from pipeline.threads import torch_threads


def _jobs(manifest_path: Path) -> list[tuple[Path, bool, str]]:
    """(path, with windows, video id) of every video of the manifest, in manifest order."""
    manifest = read_manifest(manifest_path)
    kinds = manifest.table.column("kind").to_pylist()
    ids = manifest.table.column("video_id").to_pylist()
    windowed = [kind in WINDOWED_KINDS for kind in kinds]
    return list(zip(manifest.video_paths(), windowed, ids, strict=True))


def _sample(job: tuple[Path, bool, str], sampling: Any) -> Any:
    """One video decoded and sampled on this thread."""
    path, with_windows, video_id = job
    return sample_video(decode_video(path), sampling, video_key=video_id, with_windows=with_windows)


MAX_CLIPS_IN_MEMORY = 2048
"""Clips the encoder-alone rate is measured on (1.6 GB of float32 at 64 px): every clip of the
`small` benchmark (9,020) no longer fit in 24 GiB. Taken from videos spread evenly over the
manifest, so the mix of normal, static and window clips is the pipeline's."""


def _clips_in_memory(
    manifest_path: Path,
    encoder: Any,
    config: ExtractConfig,
    max_clips: int = MAX_CLIPS_IN_MEMORY,
) -> torch.Tensor:
    """Float clips as the encoder consumes them, from evenly spaced videos, at most `max_clips`."""
    sampling = sampling_for(encoder, config)
    jobs = _jobs(manifest_path)
    parts: list[torch.Tensor] = []
    held = 0
    for position in _spread(len(jobs)):
        sampled = _sample(jobs[position], sampling)
        for part in (sampled.clips, sampled.static.contiguous(), sampled.windows):
            part = part[: max_clips - held]
            if len(part):
                parts.append(part.clone())
                held += len(part)
        if held >= max_clips:
            break
    return torch.cat(parts)


def _spread(count: int) -> list[int]:
    """0..count-1 in an order whose every prefix is spread over the whole range (bit reversal),
    so a prefix of the manifest's videos covers each split and kind."""
    bits = max(1, (count - 1).bit_length())
    order = (int(f"{i:0{bits}b}"[::-1], 2) for i in range(1 << bits))
    return [i for i in order if i < count]


def encoder_alone(encoder: Any, clips: torch.Tensor, batch_size: int) -> float:
    """Clips/s of the encoder on clips already decoded and preprocessed in memory: the limit
    (with the heap setting extraction encodes under)."""
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    with large_buffers_in_heap():
        started = time.perf_counter()
        for start in range(0, len(clips), batch_size):
            encoder.encode(clips[start : start + batch_size])
        return len(clips) / (time.perf_counter() - started)


def decode_and_sample(manifest_path: Path, encoder: Any, config: ExtractConfig) -> int:
    """Decode and sample every video on this thread, keeping nothing; returns the clip count."""
    sampling = sampling_for(encoder, config)
    clips = 0
    for job in _jobs(manifest_path):
        sampled = _sample(job, sampling)
        clips += len(sampled.clips) + len(sampled.static) + len(sampled.windows)
    return clips


def _cpu_ms(seconds: float, clips: int) -> float:
    return 1e3 * seconds / clips


def pipeline_run(manifest: Path, encoder_dir: str, config: ExtractConfig) -> tuple[float, int]:
    """Clips/s of the whole extract pipeline (decode, sample, encode, write) into a new store."""
    out = Path(tempfile.mkdtemp()) / "raw.zarr"
    try:
        result = extract(manifest, encoder_dir, out, config)
        return result.clips_encoded / result.seconds, result.clips_encoded
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def naive_loop(
    manifest_path: Path, encoder: Any, config: ExtractConfig, max_videos: int | None = None
) -> float:
    """Clips/s as reference scripts do it: decode a video, one clip per forward, one file each
    (over the first `max_videos` videos)."""
    sampling = sampling_for(encoder, config)
    jobs = _jobs(manifest_path)[:max_videos]
    out = Path(tempfile.mkdtemp())
    clips = 0
    started = time.perf_counter()
    try:
        for job in jobs:
            sampled = _sample(job, sampling)
            video_id = job[2]
            rows = []
            for group in (sampled.clips, sampled.static, sampled.windows):
                for clip in group:
                    rows.append(encoder.encode(clip[None].contiguous())[0].numpy())
            np.save(out / f"{video_id}.npy", np.stack(rows))
            clips += len(rows)
        return clips / (time.perf_counter() - started)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(
    manifest: Path,
    encoder_dir: str,
    repetitions: int = 3,
    *,
    naive_videos: int | None = 3,
    config: ExtractConfig | None = None,
) -> dict[str, Any]:
    """Median clips/s of each variant over `repetitions`, measured alternately in one process."""
    config = config or ExtractConfig(splits=None)
    encoder = load_encoder(encoder_dir, device=config.device, precision=config.precision)
    clips = _clips_in_memory(manifest, encoder, config)
    # Warm-up, untimed: the first passes over new shapes run several times slower (allocator,
    # oneDNN primitives), and the first extract() pays one-time imports.
    encoder_alone(encoder, clips, config.batch_size)
    pipeline_run(manifest, encoder_dir, config)
    alone, whole, naive = [], [], []
    cpu: dict[str, list[float]] = {"encoder_alone": [], "decode_and_sample": [], "pipeline": []}
    for _ in range(repetitions):
        started = time.process_time()
        alone.append(encoder_alone(encoder, clips, config.batch_size))
        cpu["encoder_alone"].append(_cpu_ms(time.process_time() - started, len(clips)))
        started = process_tree_cpu()
        rate, encoded = pipeline_run(manifest, encoder_dir, config)
        whole.append(rate)
        cpu["pipeline"].append(_cpu_ms(process_tree_cpu() - started, encoded))
        naive.append(naive_loop(manifest, encoder, config, naive_videos))
        with torch_threads(1):
            started = time.process_time()
            sampled = decode_and_sample(manifest, encoder, config)
            cpu["decode_and_sample"].append(_cpu_ms(time.process_time() - started, sampled))
    cpu_ms = {name: statistics.median(values) for name, values in cpu.items()}
    result = {
        "clips": len(clips),
        "batch_size": config.batch_size,
        "decode_workers": config.workers,
        "device": str(encoder.device),
        "precision": encoder.precision,
        "naive_videos": naive_videos,
        "encoder_alone_clips_per_s": statistics.median(alone),
        "pipeline_clips_per_s": statistics.median(whole),
        "naive_clips_per_s": statistics.median(naive),
        "all": {"encoder_alone": alone, "pipeline": whole, "naive": naive},
        "cpu_ms_per_clip": cpu_ms,
        "cpu_ceiling": cpu_ms["encoder_alone"] / cpu_ms["pipeline"],
        "cores_busy": {
            "encoder_alone": cpu_ms["encoder_alone"] * statistics.median(alone) / 1e3,
            "pipeline": cpu_ms["pipeline"] * statistics.median(whole) / 1e3,
        },
    }
    result["extract_vs_encoder"] = (
        result["pipeline_clips_per_s"] / result["encoder_alone_clips_per_s"]
    )
    result["extract_vs_naive"] = result["pipeline_clips_per_s"] / result["naive_clips_per_s"]
    essential = cpu_ms["encoder_alone"] + cpu_ms["decode_and_sample"]
    result["ceiling_clips_per_s"] = (
        result["encoder_alone_clips_per_s"] * cpu_ms["encoder_alone"] / essential
    )
    result["extract_vs_ceiling"] = result["pipeline_clips_per_s"] / result["ceiling_clips_per_s"]
    return result


VIT_S_224 = {
    "image_size": 224, "patch_size": 16, "num_frames": 16, "tubelet_size": 2,
    "hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
    "intermediate_size": 1536,
}  # fmt: skip
"""A VideoMAE of ViT-S size at 224 px (1,568 tokens per clip): encoding dominates on a CPU."""


def run_encoder_224(
    manifest: Path,
    work: Path,
    repetitions: int,
    *,
    videos: int = 3,
    model: dict[str, int] | None = None,
) -> dict[str, Any]:
    """extract_vs_encoder with a random ViT-S VideoMAE at 224 px on the first `videos` training
    videos (2 normal + 2 static clips each: a forward costs about a second per clip on 2 cores),
    encoder alone vs pipeline, alternately."""
    from transformers import VideoMAEConfig, VideoMAEModel

    from pipeline.data.manifest import write_manifest

    torch.manual_seed(0)
    encoder_dir = work / "videomae-vit-s-224"
    VideoMAEModel(VideoMAEConfig(**(model or VIT_S_224))).save_pretrained(encoder_dir)
    source = read_manifest(manifest).select("train")
    subset = write_manifest(
        manifest.parent / "encoder-224.parquet", source.table.slice(0, videos), source.info
    )
    config = ExtractConfig(splits=None, clips_per_video=2, static_clips=2, batch_size=4)
    encoder = load_encoder(str(encoder_dir), device=config.device, precision=config.precision)
    clips = _clips_in_memory(subset, encoder, config)
    # Warm-up, untimed, for both (as run() does): the first pipeline run also starts the decode
    # processes (~2 s of a ~10 s run).
    encoder_alone(encoder, clips[: config.batch_size], config.batch_size)
    pipeline_run(subset, str(encoder_dir), config)
    alone, whole = [], []
    for _ in range(repetitions):
        alone.append(encoder_alone(encoder, clips, config.batch_size))
        whole.append(pipeline_run(subset, str(encoder_dir), config)[0])
    result = {
        "encoder": "random VideoMAE, ViT-S size (384 wide, 12 layers), 16 x 224 x 224",
        "clips": len(clips),
        "encoder_alone_clips_per_s": statistics.median(alone),
        "pipeline_clips_per_s": statistics.median(whole),
        "all": {"encoder_alone": alone, "pipeline": whole},
    }
    result["extract_vs_encoder_224"] = (
        result["pipeline_clips_per_s"] / result["encoder_alone_clips_per_s"]
    )
    return result
