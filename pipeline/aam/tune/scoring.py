"""A trial's scores on the store's splits: val utility (linear action probe) and privacy.

Utility is `evaluate`'s action probe with the val split as its test: a linear head fitted on
one clip per TRAIN video (weight decay chosen on a part of train), top-1 of the softmax averaged
over every clip of each VAL video. The same probe scores the raw features, so "within 1 point of
raw" compares like with like, whatever head the adapter was co-trained with.

Privacy, the lower the better, is the WORSE of the two kinds of embeddings a sanitized store
hands out (its static clips and its normal clips): an attacker picks whichever leaks more.
- "attacker" (a labelled privacy_train split): the MLP attacker of `evaluate`/`audit` (D -> D
  -> A, one seed, a short budget), on static clips and on normal clips; privacy = the larger
  person cMAP (both have the same chance: the same videos and labels). It reads privacy_train
  ONLY: fitted on 70% of its videos (early stopping on a part of those), scored on the other
  30% (``attack_split``). privacy_test, where `evaluate` and `audit` score their attackers, is
  never read: an adapter selected on it would get an optimistic final report.
- "proxy" (no labelled privacy split): the trainer's label-free same-video retrieval on val,
  static and normal clips; privacy = the larger excess over chance ((M - 1) / (V M - 1) differs
  between the two, so raw fractions would not compare).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.aam.metrics import retrieval_chance, same_video_retrieval
from pipeline.aam.tune.config import TuneConfig
from pipeline.errors import ConfigError
from pipeline.probes.action import LinearProbeConfig, fit_action_head, holdout, labelled, top1
from pipeline.probes.attacker import AttackerConfig, attack
from pipeline.probes.features import DatasetSpec, ProbeFeatures, load_features
from pipeline.probes.train import split_rng
from pipeline.store.reader import FeatureStore, open_store

SOURCES = ("static", "clip")
"""The two kinds of embeddings scored: static clips and normal clips."""
SHORT_METRICS = {"attacker": "MLP attacker's person cMAP", "proxy": "val retrieval above chance"}


def attack_split(
    video_ids: np.ndarray, seed: int, val_fraction: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """(attack-fit rows, attack-val rows): the privacy_train split cut in two by video.

    Why: the final report (`evaluate`, `audit`) scores its attackers on privacy_test, so a
    search that picked the adapter by an attacker scored there would make that report
    optimistic for the chosen adapter. Tune's attacker therefore never sees privacy_test: it is
    fitted on one part of privacy_train and scored on the other.

    By video: every row with one video id (every clip of the video) goes to the same side, or
    near-identical clips of a video on both sides would let the attacker recognise the video
    instead of the person. ``val_fraction`` of the distinct ids (at least one, and at least one
    left to fit on, given two) are drawn for attack-val, seeded by ``seed``: the same split for
    every trial and the raw features, whatever order the rows come in. Index arrays, sorted.
    """
    # Python strings: a store's ids come back as StringDType, which numpy will not cast to str.
    ids = np.array([str(v) for v in video_ids])
    unique = np.unique(ids)  # sorted: the draw does not depend on the row order
    _, val = holdout(len(unique), val_fraction, split_rng(seed, "tune-attack-split"))
    held = np.isin(ids, unique[val])
    return np.flatnonzero(~held), np.flatnonzero(held)


@dataclass(frozen=True)
class ScoringPlan:
    """How every trial (and the raw features) is scored; a plain value sent to the workers."""

    source: str
    """"attacker" or "proxy"."""
    reason: str
    """Why this source (one line, for the report)."""
    train_split: str
    val_split: str
    privacy_train_split: str
    """The attacker's only split: fitted on a part of its videos, scored on the rest."""
    attack_val_fraction: float
    privacy_test_split: str
    """Never read: named in the report (the final report's attacker test split)."""
    seed: int
    probe: LinearProbeConfig
    attacker: AttackerConfig

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits the scores read (never ``privacy_test_split``)."""
        base = (self.train_split, self.val_split)
        if self.source == "attacker":
            return (*base, self.privacy_train_split)
        return base

    @property
    def privacy_videos(self) -> str:
        """Which videos privacy is measured on, in words (the report's line)."""
        if self.source == "proxy":
            return f"the {self.val_split} split's videos"
        val = round(100 * self.attack_val_fraction)
        return (
            f"{self.privacy_train_split} split {100 - val}/{val} by video (attacker fitted on "
            f"the {100 - val}%, scored on the {val}%), {self.privacy_test_split} untouched"
        )

    @property
    def metric(self) -> str:
        if self.source == "proxy":
            return f"same-video retrieval on {self.val_split}, above chance"
        return f"person cMAP of an MLP attacker within {self.privacy_train_split}"


def _privacy_split_problem(store: FeatureStore, config: TuneConfig) -> str | None:
    """Why the store has no labelled privacy split, or None when it has one."""
    split = config.privacy_train_split
    rows = store.rows(split)
    if len(rows) < 3:  # attack-val, and attack-fit with its early-stopping part
        return f"{len(rows)} usable video(s) in split {split}, the attacker needs at least 3"
    dataset = DatasetSpec.from_meta(store.meta.get("dataset") or {})
    person = [f"attr_{n}" for n in dataset.person_attributes if f"attr_{n}" in store.videos]
    if not person:
        return "the dataset declares no person attribute"
    if not any((store.videos[col][rows] >= 0).any() for col in person):
        return f"no person attribute is known in split {split}"
    return None


def plan_scoring(store: FeatureStore, config: TuneConfig) -> ScoringPlan:
    """Attacker or proxy, as ``config.privacy`` asks and the store allows; says why."""
    problem = _privacy_split_problem(store, config)
    if config.privacy == "proxy":
        source, reason = "proxy", "asked for (privacy=proxy)"
    elif problem is None:
        source, reason = "attacker", f"labelled {config.privacy_train_split} split"
    elif config.privacy == "attacker":
        raise ConfigError(
            f"{store.location}: no labelled privacy split for the attacker: {problem}"
        )
    else:
        source, reason = "proxy", f"no labelled privacy split ({problem})"
    return ScoringPlan(
        source=source,
        reason=reason,
        train_split=config.train_split,
        val_split=config.val_split,
        privacy_train_split=config.privacy_train_split,
        attack_val_fraction=config.attack_val_fraction,
        privacy_test_split=config.privacy_test_split,
        seed=config.seed,
        probe=config.probe,
        attacker=config.attacker,
    )


_FEATURES: dict[tuple[str, str, tuple[str, ...]], ProbeFeatures] = {}


def raw_features(store: str, plan: ScoringPlan) -> ProbeFeatures:
    """The raw features of the scored splits, read once per process (workers score many
    trials of one store); keyed by store id, so a replaced store is read again."""
    opened = open_store(store, kind="raw")
    key = (str(opened.location), opened.store_id, plan.splits)
    if key not in _FEATURES:
        _FEATURES.clear()
        _FEATURES[key] = load_features(opened, plan.splits)
    return _FEATURES[key]


def _num_classes(features: ProbeFeatures, plan: ScoringPlan) -> int:
    labels = [features[s].action for s in (plan.train_split, plan.val_split)]
    return max(len(features.dataset.actions), *(int(x.max(initial=-1)) + 1 for x in labels))


def _worst(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else math.nan


def _attacker_privacy(
    features: ProbeFeatures, plan: ScoringPlan
) -> tuple[dict[str, Any], dict[str, Any]]:
    pool = features[plan.privacy_train_split]
    fit_rows, val_rows = attack_split(pool.video_id, plan.seed, plan.attack_val_fraction)
    fit, val = pool.subset(fit_rows), pool.subset(val_rows)
    by_source = {}
    for source in SOURCES:
        if source == "static" and fit.static.shape[1] == 0:
            continue  # a store extracted without static clips
        metrics = attack(  # its early-stopping part is carved out of ``fit``
            fit,
            val,
            features.dataset,
            kind="mlp",
            source=source,
            seed=plan.seed,
            config=plan.attacker,
        )
        by_source[source] = {"value": metrics["cmap_person"], "chance": metrics["chance_person"]}
    videos = {
        "split": plan.privacy_train_split,
        "attack_fit_videos": len(fit),
        "attack_val_videos": len(val),
    }
    return by_source, videos


def _proxy_privacy(
    features: ProbeFeatures, plan: ScoringPlan
) -> tuple[dict[str, Any], dict[str, Any]]:
    val = features[plan.val_split]
    by_source = {}
    for source, clips in (("static", val.static), ("clip", val.clip)):
        if clips.shape[1] < 2:
            continue  # retrieval needs two clips of a video
        value = same_video_retrieval(torch.as_tensor(clips))
        by_source[source] = {"value": value, "chance": retrieval_chance(*clips.shape[:2])}
    return by_source, {"split": plan.val_split, "videos": len(val)}


def score(features: ProbeFeatures, plan: ScoringPlan) -> dict[str, Any]:
    """{utility, privacy, privacy_by_source: {static|clip: {value, chance}}, privacy_videos:
    {split, attack_fit_videos, attack_val_videos} (proxy: {split, videos}), probe_weight_decay}.

    ``features``: raw or adapted features of ``plan.splits``.
    """
    train, val = features[plan.train_split], labelled(features[plan.val_split])
    fitted = fit_action_head(train, None, _num_classes(features, plan), plan.seed, plan.probe)
    utility = top1(fitted.probabilities(val), val.action)
    if plan.source == "attacker":
        by_source, videos = _attacker_privacy(features, plan)
        privacy = _worst([v["value"] for v in by_source.values()])
    else:
        by_source, videos = _proxy_privacy(features, plan)
        privacy = _worst([v["value"] - v["chance"] for v in by_source.values()])
    return {
        "utility": utility,
        "privacy": privacy,
        "privacy_by_source": {
            k: {name: float(x) for name, x in v.items()} for k, v in by_source.items()
        },
        "privacy_videos": videos,
        "probe_weight_decay": float(fitted.weight_decay),
        "val_videos": len(val),
    }


def finite(value: Any) -> float | None:
    """A JSON-safe number: NaN and inf become None."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None
