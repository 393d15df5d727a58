"""Small shared training pieces: seeding, standardisation, an L2 softmax head fitted by LBFGS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.probes.features import VideoSet


@contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """Seed torch for the block without touching the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield torch.Generator().manual_seed(int(seed))


def split_rng(seed: int, stream: str) -> np.random.Generator:
    """A numpy RNG for one probe and seed; the same (seed, stream) gives the same draws for every
    method, so methods are compared on the same clips and the same validation parts (paired)."""
    return np.random.default_rng([int(seed), *stream.encode()])


@dataclass(frozen=True)
class Standardizer:
    """Per-dimension z-scoring with statistics of the probe's training items only.

    The scale has a floor relative to the typical scale: after a projection (LEACE) some
    directions carry ~zero variance and must not be blown up into noise-sized features.
    """

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(axis=0)
        std = x.std(axis=0)
        floor = max(float(np.median(std)) * 1e-3, 1e-8)
        return cls(mean.astype(np.float32), np.maximum(std, floor).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.mean) / self.scale).astype(np.float32)


def fit_softmax_linear(
    x: np.ndarray, y: np.ndarray, num_classes: int, l2: float, max_iter: int = 100
) -> nn.Linear:
    """Multinomial logistic regression: mean cross-entropy + l2/2 * ||W||^2, full-batch LBFGS.

    Convex with a unique optimum for l2 > 0, so it starts from zero and needs no seed.
    """
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    head = nn.Linear(xt.shape[1], num_classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.LBFGS(
        head.parameters(),
        lr=1.0,
        max_iter=max_iter,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        history_size=20,
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(head(xt), yt) + 0.5 * l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head.eval()


@torch.no_grad()
def softmax_scores(head: nn.Module, x: np.ndarray) -> np.ndarray:
    """Softmax probabilities of x [..., D] -> [..., C]."""
    return torch.softmax(head(torch.as_tensor(x, dtype=torch.float32)), dim=-1).numpy()


def window_sequences(
    videos: VideoSet, scaler: Standardizer
) -> tuple[torch.Tensor, torch.Tensor, list[np.ndarray]]:
    """Padded [V, T, D] features, mask [V, T], and each video's window rows (by start)."""
    rows = [videos.video_windows(v) for v in range(len(videos))]
    t = max((len(r) for r in rows), default=0)
    x = np.zeros((len(videos), max(t, 1), videos.window_features.shape[1]), dtype=np.float32)
    mask = np.zeros((len(videos), max(t, 1)), dtype=bool)
    for v, r in enumerate(rows):
        x[v, : len(r)] = scaler(videos.window_features[r])
        mask[v, : len(r)] = True
    return torch.as_tensor(x), torch.as_tensor(mask), rows
