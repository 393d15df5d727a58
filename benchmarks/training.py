"""AAM training side by side: cached latents vs re-encoding, and the loader's overhead.

- ``train_cached_vs_reencode``: one epoch of adapter training over the cached latents of a raw
  store (what anon-store does) vs the same epoch when every step decodes its videos and encodes
  the clips it needs with the frozen encoder (what training without a feature store costs).
  Both run the same adapter step (``pipeline.aam.trainer.compute_losses``, AdamW) on the same
  videos; the re-encode variant decodes ahead in worker threads (run_ahead), as extraction does,
  and encodes only the 2 normal + 2 static clips each video contributes. Ratio = seconds per
  re-encoded epoch / seconds per cached epoch.
- ``train_loader_efficiency``: an epoch of the real trainer (``train_adapter``: its sampler,
  feature gathering and loss bookkeeping; timed between its per-epoch progress callbacks, which
  excludes validation) vs pure compute: the same number of steps of the same maths on batches
  gathered into memory beforehand. Ratio = compute seconds / epoch seconds (1 = no loader
  overhead; >= 0.91 meets the "overhead <= 10%" target).
Adapter steps run with ONE torch thread: its GEMMs ([64 x 128] x [128 x 128]) are too small to
split, and on a shared 2-core machine two intra-op threads made each step 10-60x slower (threads
spinning at barriers while other jobs hold the cores; measured: an 8-step epoch 0.10 s with one
thread, 1.1-6.8 s with two). The encoder keeps torch's default threads.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import median, rnd, timed
from pipeline.threads import torch_threads


def _fresh(dim: int, data: Any, config: Any) -> tuple[Any, list, Any]:
    from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter
    from pipeline.aam.heads import create_heads
    from pipeline.aam.trainer import _adamw

    torch.manual_seed(0)
    adapter = AnonymizingAdapter(AdapterConfig(dim=dim))
    heads = create_heads(config.heads, dim, [data])
    return adapter, heads, _adamw([adapter, *heads], config.lr, config.weight_decay)


def _step(adapter, heads, opt, data, sample, config) -> float:
    from pipeline.aam.trainer import compute_losses

    losses = compute_losses(adapter, heads, data, sample, config)
    opt.zero_grad(set_to_none=True)
    losses["total"].backward()
    opt.step()
    return float(losses["total"].detach())


def cached_epoch(data: Any, config: Any) -> int:
    """One epoch over in-memory latents (the trainer's own sampler and step); returns steps."""
    from pipeline.aam.sampler import ClipSampler

    adapter, heads, opt = _fresh(data.dim, data, config)
    k, s = data.clip_features.shape[1], data.static_features.shape[1]
    sampler = ClipSampler(
        data.num_videos, k, s, config.batch_size, seed=config.seed, partners=config.w_swap > 0
    )
    steps = 0
    for sample in sampler.epoch():
        _step(adapter, heads, opt, data, sample, config)
        steps += 1
    return steps


def reencode_epoch(
    data: Any, videos: list[tuple[Path, str, bool]], encoder: Any, sampling: Any, config: Any
) -> int:
    """The same epoch, but each step decodes its videos and encodes its clips again."""
    from pipeline.aam.sampler import ClipSampler, StepSample
    from pipeline.aam.trainer import LatentTrainingData
    from pipeline.data.clips import sample_video
    from pipeline.data.decode import decode_video
    from pipeline.data.prefetch import run_ahead

    adapter, heads, opt = _fresh(data.dim, data, config)
    k, s = data.clip_features.shape[1], data.static_features.shape[1]
    sampler = ClipSampler(
        data.num_videos, k, s, config.batch_size, seed=config.seed, partners=config.w_swap > 0
    )
    samples = list(sampler.epoch())  # the sampler's draws are cheap; the videos are not

    def load(job: tuple[int, int]) -> Any:
        step, row = job
        sample = samples[step]
        path, key, windows = videos[int(sample.videos[row])]
        clips = sample_video(decode_video(path), sampling, video_key=key, with_windows=windows)
        return torch.cat([clips.clips[sample.clips[row]], clips.static[sample.static_pair[row]]])

    jobs = [(step, row) for step, sample in enumerate(samples) for row in range(len(sample.videos))]
    pending: list[torch.Tensor] = []
    step = 0
    for (job_step, _), clips in run_ahead(load, jobs, workers=2):
        pending.append(clips)
        if len(pending) < len(samples[job_step].videos):
            continue
        sample = samples[step]
        b = len(sample.videos)
        features = encoder.encode(torch.cat(pending)).reshape(b, 4, -1)
        pending = []
        batch = LatentTrainingData(
            clip_features=features[:, :2],
            static_features=features[:, 2:],
            actions=data.actions[sample.videos],
        )
        pair = torch.tensor([[0, 1]]).expand(b, 2)
        with torch_threads(1):
            _step(
                adapter,
                heads,
                opt,
                batch,
                StepSample(torch.arange(b), pair, pair, partner=sample.partner),
                config,
            )
        step += 1
    return step


def cached_vs_reencode(
    raw_store: Path, manifest_path: Path, encoder: Any, repetitions: int, batch_size: int
) -> dict[str, Any]:
    from pipeline.aam.from_store import load_split
    from pipeline.aam.trainer import TrainConfig
    from pipeline.data.manifest import read_manifest
    from pipeline.extract import ExtractConfig
    from pipeline.extract.plan import WINDOWED_KINDS, sampling_for
    from pipeline.store.reader import open_store

    store = open_store(raw_store, kind="raw")
    data = load_split(store, "train")
    rows = store.rows("train")
    rows = rows[store.videos["action"][rows] >= 0]
    manifest = read_manifest(manifest_path)
    by_id = {
        video_id: (path, kind in WINDOWED_KINDS)
        for video_id, path, kind in zip(
            manifest.video_ids,
            manifest.video_paths(),
            manifest.table.column("kind").to_pylist(),
            strict=True,
        )
    }
    ids = [str(v) for v in store.videos["video_id"][rows]]
    videos = [(by_id[v][0], v.split("~")[0], by_id[v][1]) for v in ids]
    sampling = sampling_for(encoder, ExtractConfig())
    config = TrainConfig(batch_size=batch_size)
    cached, reencoded = [], []
    steps = 0
    for _ in range(repetitions):
        with torch_threads(1):
            seconds, steps = timed(lambda: cached_epoch(data, config))
        cached.append(seconds)
        seconds, _ = timed(lambda: reencode_epoch(data, videos, encoder, sampling, config))
        reencoded.append(seconds)
    return {
        "train_videos": data.num_videos,
        "steps_per_epoch": steps,
        "batch_size": batch_size,
        "cached_epoch_s": rnd(median(cached), 4),
        "reencode_epoch_s": rnd(median(reencoded), 4),
        "train_cached_vs_reencode": median(reencoded) / median(cached),
    }


def _trainer_epochs(train: Any, val: Any, config: Any) -> list[float]:
    """Seconds of each joint epoch of train_adapter but the first and last (the last holds the
    only validation), from its progress callbacks."""
    import time

    from pipeline.aam.adapter import AdapterConfig
    from pipeline.aam.trainer import train_adapter

    stamps: list[float] = []
    train_adapter(
        train,
        val,
        config,
        AdapterConfig(dim=train.dim),
        progress=lambda done, total: stamps.append(time.perf_counter()),
    )
    return [b - a for a, b in itertools.pairwise(stamps[:-1])]


def _pure_compute(train: Any, config: Any, epochs: int) -> list[float]:
    """Seconds per epoch of the trainer's step (compute_losses + AdamW) alone, on the epoch's
    batches gathered beforehand (each batch its own data, indexed by the identity sample)."""
    import time

    from pipeline.aam.sampler import ClipSampler, StepSample
    from pipeline.aam.trainer import LatentTrainingData

    adapter, heads, opt = _fresh(train.dim, train, config)
    k, s = train.clip_features.shape[1], train.static_features.shape[1]
    sampler = ClipSampler(
        train.num_videos, k, s, config.batch_size, seed=config.seed, partners=config.w_swap > 0
    )
    batches = []
    for sample in sampler.epoch():
        v = sample.videos
        gathered = LatentTrainingData(
            clip_features=train.clip_features[v[:, None], sample.clips].contiguous(),
            static_features=train.static_features[v[:, None], sample.static_pair].contiguous(),
            actions=train.actions[v],
        )
        pair = torch.tensor([[0, 1]]).expand(len(v), 2)
        # partner holds batch positions: the gathered batch keeps the sample's order
        identity = StepSample(torch.arange(len(v)), pair, pair, partner=sample.partner)
        batches.append((gathered, identity))
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        for gathered, identity in batches:
            _step(adapter, heads, opt, gathered, identity, config)
        seconds.append(time.perf_counter() - started)
    return seconds


@contextlib.contextmanager
def _random_raw_store(videos: int, dim: int) -> Iterator[Any]:
    """A temporary raw store of random features (5 clips, 10 static clips per video) written
    through the store writer: the same arrays and dtypes train_aam loads."""
    from benchmarks.sanitize_vs_copy import build_store
    from pipeline.store.reader import open_store

    work = Path(tempfile.mkdtemp(prefix="anon-store-bench-train-"))
    try:
        build_store(work / "raw.zarr", videos, dim, 5, 10, seed=0, windows=False)
        yield open_store(work / "raw.zarr", kind="raw")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def latent_data(videos: int, dim: int) -> Any:
    """The train split of a random raw store, in memory."""
    from pipeline.aam.from_store import load_split

    with _random_raw_store(videos, dim) as store:
        return load_split(store, "train")


def _streaming_epochs(store: Any, val: Any, config: Any) -> list[float]:
    """Trainer epochs over the train split streamed from the store (pipeline.aam.streaming)
    within half the memory the split would take."""
    from pipeline.aam.from_store import usable_rows
    from pipeline.aam.streaming import StreamingSplit, plan_stream

    rows = usable_rows(store, "train")
    group = store.group
    row_bytes = (group["clip_features"].shape[1] + group["static_features"].shape[1]) * 4
    row_bytes *= store.feature_dim
    plan = plan_stream(
        chunk_rows=int(group["clip_features"].chunks[0]),
        row_bytes=row_bytes,
        batch_size=config.batch_size,
        budget_bytes=len(rows) * row_bytes // 2,
    )
    return _trainer_epochs(StreamingSplit(store, rows, plan), val, config)


def loader_efficiency(videos: int, dim: int, repetitions: int) -> dict[str, Any]:
    """In-memory trainer epochs vs pure compute; the streaming loader, when present, as a third
    variant (its efficiency is reported, the ratio stays the in-memory one)."""
    from pipeline.aam.from_store import load_split
    from pipeline.aam.trainer import LatentTrainingData, TrainConfig

    with _random_raw_store(videos, dim) as store:
        train = load_split(store, "train")
        n = min(128, train.num_videos)
        val = LatentTrainingData(
            train.clip_features[:n], train.static_features[:n], train.actions[:n]
        )
        epochs = repetitions + 2
        config = TrainConfig(epochs=epochs, val_every=epochs, head_warmup_epochs=0)
        epoch, compute, streamed = [], [], []
        streaming_error = None
        with torch_threads(1):
            for _ in range(2):  # alternate twice so load drift hits every variant alike
                epoch += _trainer_epochs(train, val, config)
                compute += _pure_compute(train, config, repetitions)
                if streaming_error is None:
                    try:
                        streamed += _streaming_epochs(store, val, config)
                    except Exception as error:  # the streaming loader is new: report, go on
                        streaming_error = f"{type(error).__name__}: {error}"
    e, c = median(epoch), median(compute)
    result = {
        "train_videos": train.num_videos,
        "batch_size": config.batch_size,
        "torch_threads": 1,
        "epoch_s": rnd(e, 4),
        "pure_compute_s": rnd(c, 4),
        "loader_overhead": rnd(e / c - 1, 3),
        "train_loader_efficiency": c / e,
    }
    if streamed and streaming_error is None:
        result["streaming_epoch_s"] = rnd(median(streamed), 4)
        result["streaming_efficiency"] = rnd(c / median(streamed))
    else:
        result["streaming"] = f"unavailable: {streaming_error}"
    return result


def epoch_seconds(videos: int, dim: int, repetitions: int) -> float:
    """Median seconds of one trainer epoch over `videos` random-feature videos (growth)."""
    from pipeline.aam.trainer import TrainConfig

    train = latent_data(videos, dim)
    config = TrainConfig()
    with torch_threads(1):
        return median([timed(lambda: cached_epoch(train, config))[0] for _ in range(repetitions)])
