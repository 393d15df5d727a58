"""Fixtures for the adapter tests: small synthetic latent data with planted structure."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from pipeline.aam.trainer import LatentTrainingData


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


@pytest.fixture
def planted() -> Callable[..., LatentTrainingData]:
    """Factory: planted(num_videos=40, clips=4, static=4, dim=16, num_actions=4, seed=0)."""
    return _planted
