"""Action recognition (the seen task): a linear head on one random clip per video, tested on the
softmax averaged over every clip of a video; weight decay chosen on a validation split."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.probes.features import VideoSet
from pipeline.probes.train import Standardizer, fit_softmax_linear, softmax_scores, split_rng


@dataclass(frozen=True)
class LinearProbeConfig:
    """The linear action head (also used by the bias probe)."""

    weight_decays: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1)
    """L2 strengths tried; the one with the best validation top-1 is kept."""
    max_iter: int = 100
    """LBFGS iterations (full batch)."""
    val_fraction: float = 0.2
    """Part of the training videos held out for model selection when there is no val split."""


def one_clip_per_video(clips: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[V, K, D] -> [V, D]: one uniformly drawn clip of each video."""
    pick = rng.integers(0, clips.shape[1], size=clips.shape[0])
    return clips[np.arange(clips.shape[0]), pick]


def video_probabilities(head: Any, clips: np.ndarray, scaler: Standardizer) -> np.ndarray:
    """[V, K, D] -> [V, C]: softmax averaged over the K clips of each video."""
    return softmax_scores(head, scaler(clips)).mean(axis=1)


def top1(probabilities: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        return math.nan
    return float((probabilities.argmax(axis=1) == labels).mean())


def holdout(n: int, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) index arrays: a random ``fraction`` of n (at least one each when n >= 2)."""
    order = rng.permutation(n)
    k = min(max(round(n * fraction), 1), n - 1) if n >= 2 else 0
    return np.sort(order[k:]), np.sort(order[:k])


def _better(score: float, best: float) -> bool:
    """Strictly better, a number always beating NaN (ties keep the earlier, weaker decay)."""
    return math.isfinite(score) and (not math.isfinite(best) or score > best)


def labelled(videos: VideoSet) -> VideoSet:
    """The videos an action head can use: with an action label and normal clips (not images)."""
    return videos.subset(np.flatnonzero((videos.action >= 0) & videos.has_clips))


@dataclass(frozen=True)
class FittedActionHead:
    head: Any
    scaler: Standardizer
    weight_decay: float
    val_top1: float

    def probabilities(self, videos: VideoSet) -> np.ndarray:
        return video_probabilities(self.head, videos.clip, self.scaler)


def fit_action_head(
    train: VideoSet,
    val: VideoSet | None,
    num_classes: int,
    seed: int,
    config: LinearProbeConfig = LinearProbeConfig(),
    stream: str = "action",
) -> FittedActionHead:
    """Fit on one random clip per training video for each weight decay; keep the best on val.

    Without a val split, ``config.val_fraction`` of the training videos is held out (seeded).
    """
    rng = split_rng(seed, stream)
    train = labelled(train)
    if val is None or len(labelled(val)) == 0:
        fit_idx, val_idx = holdout(len(train), config.val_fraction, rng)
        train, val = train.subset(fit_idx), train.subset(val_idx)
    else:
        val = labelled(val)
    x = one_clip_per_video(train.clip, rng)
    scaler = Standardizer.fit(x)
    best: FittedActionHead | None = None
    for wd in config.weight_decays:
        head = fit_softmax_linear(scaler(x), train.action, num_classes, wd, config.max_iter)
        acc = top1(video_probabilities(head, val.clip, scaler), val.action)
        if best is None or _better(acc, best.val_top1):
            best = FittedActionHead(head, scaler, wd, acc)
    assert best is not None, "weight_decays must not be empty"
    return best


def action_probe(
    train: VideoSet,
    val: VideoSet | None,
    test: VideoSet,
    num_classes: int,
    seed: int,
    config: LinearProbeConfig = LinearProbeConfig(),
) -> dict[str, float]:
    """{top1, val_top1, weight_decay} of one seed."""
    fitted = fit_action_head(train, val, num_classes, seed, config)
    test = labelled(test)
    return {
        "top1": top1(fitted.probabilities(test), test.action),
        "val_top1": fitted.val_top1,
        "weight_decay": fitted.weight_decay,
    }
