"""Fixtures for the adapter tests: small synthetic latent data with planted structure."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from pipeline.aam.sampler import ClipSampler
from pipeline.aam.trainer import LatentTrainingData, compute_losses


def _planted(
    num_videos: int = 40,
    clips: int = 4,
    static: int = 4,
    dim: int = 16,
    num_actions: int = 4,
    seed: int = 0,
) -> LatentTrainingData:
    """Action in dims 0-3 of normal clips only; a per-video identity in dims 8-15 of every clip.

    Static clips carry the identity (plus augmentation-like noise) and no action, like a frame
    repeated into a clip: the privacy loss can find only the identity there.
    """
    g = torch.Generator().manual_seed(seed)
    actions = torch.arange(num_videos) % num_actions
    identity = torch.randn(num_videos, 1, dim - 8, generator=g)
    clip_features = 0.3 * torch.randn(num_videos, clips, dim, generator=g)
    clip_features[..., :4] += 3.0 * torch.eye(num_actions, 4)[actions][:, None, :]
    clip_features[..., 8:] += identity
    static_features = 0.5 * torch.randn(num_videos, static, dim, generator=g)
    static_features[..., 8:] += identity
    return LatentTrainingData(clip_features, static_features, actions)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The adapter tests use tiny tensors: on a shared 2-core machine a second intra-op thread
    only adds contention (measured: these tests took 6x longer under load with 2 threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def planted() -> Callable[..., LatentTrainingData]:
    """Factory: planted(num_videos=40, clips=4, static=4, dim=16, num_actions=4, seed=0)."""
    return _planted


def _mean_losses(
    adapter, heads, data, config, *, batch_size: int | None = None, seed: int = 123, draws: int = 8
) -> dict[str, float]:
    """compute_losses averaged over ``draws`` seeded batches (default: all videos), no grad."""
    sampler = ClipSampler(
        data.num_videos,
        4,
        4,
        batch_size=batch_size or data.num_videos,
        seed=seed,
        partners=config.w_swap > 0,
    )
    totals: dict[str, float] = {}
    with torch.no_grad():
        for _ in range(draws):
            losses = compute_losses(adapter, heads, data, next(sampler.epoch()), config)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v) / draws
    return totals


@pytest.fixture
def mean_losses() -> Callable[..., dict[str, float]]:
    """mean_losses(adapter, heads, data, config, *, batch_size=None, seed=123, draws=8)."""
    return _mean_losses


# The store builder lives with the sanitize tests; pytest does not put tests/ on sys.path for
# --import-mode=importlib, so add it (as tests/interop/conftest.py does).
if str(Path(__file__).parents[1]) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parents[1]))


def write_planted_store(
    path: Path,
    *,
    videos: int = 300,
    dim: int = 16,
    clips: int = 4,
    static: int = 4,
    videos_per_chunk: int = 20,
    failed: tuple[int, ...] = (3, 11),
) -> Path:
    """A complete raw store holding planted features (see _planted), 80% train / 10% val /
    10% test interleaved, with failed videos (NaN features) that training must skip."""
    import numpy as np
    import zarr
    from sanitize.stores import make_raw_store

    make_raw_store(
        path,
        videos=videos,
        clips=clips,
        static=static,
        dim=dim,
        videos_per_chunk=videos_per_chunk,
        failed=failed,
        untrimmed=False,
    )
    data = _planted(num_videos=videos, clips=clips, static=static, dim=dim, num_actions=4)
    group = zarr.open_group(str(path), mode="r+")
    ok = np.asarray(group["status"][:]) == 1
    clip_features = data.clip_features.numpy().copy()
    static_features = data.static_features.numpy().copy()
    clip_features[~ok] = np.nan
    static_features[~ok] = np.nan
    group["clip_features"][:] = clip_features
    group["static_features"][:] = static_features
    group["action"][:] = data.actions.numpy().astype(np.int16)  # make_raw_store's v % 4 too
    names = ("train",) * 8 + ("val", "test")
    group["split"][:] = np.array([names[v % 10] for v in range(videos)], dtype=object)
    return path


@pytest.fixture
def planted_store(tmp_path: Path) -> Callable[..., Path]:
    """Factory: planted_store(name="planted.zarr", **write_planted_store kwargs) -> store path."""

    def make(name: str = "planted.zarr", **kwargs) -> Path:
        return write_planted_store(tmp_path / name, **kwargs)

    return make
