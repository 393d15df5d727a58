"""Label-using baselines on cached features: LEACE (closed-form linear erasure) and INLP.

Both are fitted on privacy_train with the PERSON attribute labels (one-hot of every person
attribute's values) and then applied to every split's clip, static and window features. A
baseline is a FeatureTransform: raw ProbeFeatures in, transformed ProbeFeatures out. FittedLeace /
FittedInlp hold a fitted eraser / projection, to fit on one store and apply to others.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from concept_erasure import LeaceEraser, LeaceFitter

from pipeline.errors import ConfigError
from pipeline.probes.attacker import IndicatorColumns, attack_items
from pipeline.probes.features import ProbeFeatures, VideoSet

log = logging.getLogger(__name__)

FeatureTransform = Callable[[ProbeFeatures], ProbeFeatures]
"""A method given as a function of the raw features (fitted on them if it needs fitting)."""

FIT_SPLIT = "privacy_train"


def person_targets(features: ProbeFeatures, videos: VideoSet) -> tuple[np.ndarray, np.ndarray]:
    """(one-hot of all person attributes [V, A], videos whose person attributes are all known)."""
    columns = IndicatorColumns.of(features.dataset, features.dataset.person_attributes)
    if len(columns) == 0:
        raise ConfigError("the dataset has no person attribute: nothing for a baseline to erase")
    targets, known = columns.encode(videos)
    return targets, known.all(axis=1)


def fit_items(
    features: ProbeFeatures, parts: tuple[str, ...], split: str = FIT_SPLIT
) -> tuple[np.ndarray, np.ndarray]:
    """(x [N, D], z [N, A]): every clip of ``parts`` ("static", "clip") of the fit split's
    videos with fully known person attributes, each labelled with its video's one-hot."""
    if not features.has(split):
        raise ConfigError(f"fitting a baseline needs the {split} split, which the store lacks")
    videos = features[split]
    targets, ok = person_targets(features, videos)
    known = videos.subset(np.flatnonzero(ok))
    xs, zs = [], []
    for part in parts:
        x, owner = attack_items(known, part)  # the attacker's items: images have no normal clips
        xs.append(x)
        zs.append(targets[ok][owner])
    return np.concatenate(xs), np.concatenate(zs)


@dataclass(frozen=True)
class LeaceConfig:
    parts: tuple[str, ...] = ("static", "clip")
    """Clips the eraser is fitted on (each clip is one sample)."""
    constrain_cov_trace: bool = False
    """concept-erasure's default (True) may blend in an orthogonal projection that keeps the
    covariance trace from growing, which voids LEACE's guarantee; we erase once, exactly."""


def fit_leace(features: ProbeFeatures, config: LeaceConfig = LeaceConfig()) -> LeaceEraser:
    x, z = fit_items(features, config.parts)
    fitter = LeaceFitter(
        x.shape[1], z.shape[1], dtype=torch.float64, constrain_cov_trace=config.constrain_cov_trace
    )
    fitter.update(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(z, dtype=torch.float64))
    return fitter.eraser


@dataclass(frozen=True, eq=False)
class FittedLeace:
    """A fitted LEACE eraser as a FeatureTransform: applies to any store of the same encoder
    (fitted once on one store's privacy_train, applied to others); a plain value, so it can be
    sent to evaluate's worker processes."""

    eraser: LeaceEraser
    parts: tuple[str, ...] = LeaceConfig.parts
    provenance: dict[str, Any] = field(default_factory=dict)
    """Added to the result's source (e.g. fit_store: the store it was fitted on)."""

    @classmethod
    def fit(
        cls, features: ProbeFeatures, config: LeaceConfig = LeaceConfig(), **provenance: Any
    ) -> FittedLeace:
        return cls(fit_leace(features, config), tuple(config.parts), dict(provenance))

    def __call__(self, raw: ProbeFeatures) -> ProbeFeatures:
        def erase(x: np.ndarray, part: str) -> np.ndarray:
            with torch.no_grad():
                return self.eraser(torch.as_tensor(x, dtype=torch.float64)).numpy()

        return raw.map_features(
            erase,
            transform="leace",
            fit_split=FIT_SPLIT,
            fit_parts=list(self.parts),
            **self.provenance,
        )


def leace_method(raw: ProbeFeatures, config: LeaceConfig = LeaceConfig()) -> ProbeFeatures:
    """LEACE fitted on privacy_train person labels, applied to every feature of every split."""
    return FittedLeace.fit(raw, config)(raw)


@dataclass(frozen=True)
class InlpConfig:
    parts: tuple[str, ...] = ("static", "clip")
    max_iterations: int = 10
    """At most this many rounds of fit-a-linear-classifier-then-project-out-its-directions."""
    min_r2: float = 0.01
    """Stop once the round's classifier explains less than this share of the held-out variance
    of the person indicators (INLP's "until the classifier is at chance")."""
    ridge: float = 1e-2
    """Ridge strength of each round's least-squares classifier (relative to the mean variance)."""
    holdout_fraction: float = 0.2
    """Videos of the fit split held out for the stopping test."""
    seed: int = 0


def _held_out_r2(x: np.ndarray, z: np.ndarray, w: np.ndarray) -> float:
    residual = z - x @ w
    total = float(((z - z.mean(axis=0)) ** 2).sum())
    return 1.0 - float((residual**2).sum()) / total if total > 0 else 0.0


def fit_inlp(features: ProbeFeatures, config: InlpConfig = InlpConfig()) -> np.ndarray:
    """Projection matrix P [D, D] of INLP (Ravfogel et al. 2020), with one ridge least-squares
    classifier of all person indicators per round instead of one SVM per attribute (same idea,
    closed form, fast): each round removes the span of its weight vectors from the features,
    until a fresh classifier no longer predicts the held-out videos' indicators."""
    videos = features[FIT_SPLIT] if features.has(FIT_SPLIT) else None
    if videos is None:
        raise ConfigError(f"fitting a baseline needs the {FIT_SPLIT} split, which the store lacks")
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(videos))
    k = max(1, round(len(videos) * config.holdout_fraction))
    held = dataclasses.replace(features, splits={FIT_SPLIT: videos.subset(np.sort(order[:k]))})
    kept = dataclasses.replace(features, splits={FIT_SPLIT: videos.subset(np.sort(order[k:]))})
    x, z = fit_items(kept, config.parts)
    xh, zh = fit_items(held, config.parts)
    mean, zmean = x.astype(np.float64).mean(axis=0), z.mean(axis=0)
    xc, zc = x - mean, z - zmean
    xhc, zhc = xh - mean, zh - zmean
    d = x.shape[1]
    projection = np.eye(d)
    lam = config.ridge * float(np.mean(xc.var(axis=0))) * len(x)
    for _ in range(config.max_iterations):
        xp = xc @ projection
        w = np.linalg.solve(xp.T @ xp + lam * np.eye(d), xp.T @ zc)  # [D, A]
        if _held_out_r2(xhc @ projection, zhc, w) < config.min_r2:
            break
        q, r = np.linalg.qr(w)
        q = q[:, np.abs(np.diag(r)) > 1e-10]
        if q.shape[1] == 0:
            break
        projection = projection @ (np.eye(d) - q @ q.T)
    return projection


@dataclass(frozen=True, eq=False)
class FittedInlp:
    """A fitted INLP projection [D, D] as a FeatureTransform (see FittedLeace)."""

    projection: np.ndarray
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls, features: ProbeFeatures, config: InlpConfig = InlpConfig(), **provenance: Any
    ) -> FittedInlp:
        return cls(fit_inlp(features, config), dict(provenance))

    def __call__(self, raw: ProbeFeatures) -> ProbeFeatures:
        projection = self.projection

        def project(x: np.ndarray, part: str) -> np.ndarray:
            return x.astype(np.float64) @ projection

        removed = round(projection.shape[0] - float(np.trace(projection)))
        return raw.map_features(
            project, transform="inlp", fit_split=FIT_SPLIT, removed_rank=removed, **self.provenance
        )


def inlp_method(raw: ProbeFeatures, config: InlpConfig = InlpConfig()) -> ProbeFeatures:
    """INLP fitted on privacy_train person labels, applied to every feature of every split."""
    return FittedInlp.fit(raw, config)(raw)


BASELINES: dict[str, FeatureTransform] = {"leace": leace_method, "inlp": inlp_method}
"""Baselines by name, for `--baselines leace,inlp`."""

FITTERS: dict[str, Callable[..., FeatureTransform]] = {
    "leace": FittedLeace.fit,
    "inlp": FittedInlp.fit,
}
"""Baselines by name as fit(features, **provenance) -> transform, to fit once on one store and
apply to others (evaluate --protocol); the same names as BASELINES."""


def fit_baseline(name: str, features: ProbeFeatures, **provenance: Any) -> FeatureTransform:
    """Baseline ``name`` fitted on ``features``' privacy_train person labels (default config)."""
    if name not in FITTERS:
        raise ConfigError(f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}")
    return FITTERS[name](features, **provenance)
