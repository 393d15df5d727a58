"""Privacy attackers: MLP and linear multi-label classifiers of attribute values, trained on the
privacy split (validation carved from privacy_train), scored by AP on privacy_test."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.data.manifest import PRESENCE_VALUES
from pipeline.probes.action import holdout
from pipeline.probes.features import DatasetSpec, VideoSet
from pipeline.probes.metrics import column_average_precision
from pipeline.probes.train import Standardizer, seeded, split_rng

ATTACKER_KINDS = ("mlp", "linear")
ATTACK_SOURCES = ("static", "clip")
"""Items an attacker sees: every static clip, or every normal (motion) clip, of each video."""
FRAME_SOURCE = "frame"
"""Static clips scored against the labels of their frames (frame-level labels, PA-HMDB51's
protocol); run besides the video-level settings when privacy_test has such labels."""


@dataclass(frozen=True)
class AttackerConfig:
    """Attacker training (reference: MLP D -> D -> A, binary cross-entropy, AdamW 1e-3)."""

    hidden: int | None = None
    """Hidden width of the MLP; None = D, as in the reference."""
    lr: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 256
    max_epochs: int = 200
    patience: int = 10
    """Stop after this many epochs without a better validation mAP; the best epoch is kept."""
    val_fraction: float = 0.2
    """Part of the privacy_train VIDEOS held out for early stopping (all clips of a video go to
    the same side, or near-identical static clips would leak across)."""


@dataclass(frozen=True)
class IndicatorColumns:
    """The binary targets: one column per (attribute, value), i.e. one-hot of each attribute."""

    attribute: tuple[str, ...]
    value: tuple[int, ...]

    @classmethod
    def of(cls, dataset: DatasetSpec, names: list[str] | None = None) -> IndicatorColumns:
        """Every value of every attribute, except that a presence attribute (values exactly
        "no", "yes", e.g. VISPR's) has its "yes" column only: multi-label privacy is scored as
        in the paper, cMAP = mean over attributes of the AP of their presence."""
        names = list(dataset.attributes) if names is None else names
        cols = [
            (n, v)
            for n in names
            for v in range(len(dataset.attributes[n].values))
            if not (dataset.attributes[n].values == PRESENCE_VALUES and v == 0)
        ]
        return cls(tuple(c[0] for c in cols), tuple(c[1] for c in cols))

    def __len__(self) -> int:
        return len(self.attribute)

    def encode(self, videos: VideoSet) -> tuple[np.ndarray, np.ndarray]:
        """(targets float32 [V, A], known bool [V, A]); unknown attribute values are masked."""
        return self.encode_labels(videos.attributes, len(videos))

    def encode_labels(
        self, labels: dict[str, np.ndarray], count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The same for attribute values per item: name -> int [count] (-1 unknown)."""
        targets = np.zeros((count, len(self)), dtype=np.float32)
        known = np.zeros((count, len(self)), dtype=bool)
        for j, (name, value) in enumerate(zip(self.attribute, self.value, strict=True)):
            values = labels.get(name, np.full(count, -1))
            targets[:, j] = values == value
            known[:, j] = values >= 0
        return targets, known

    def encode_static_frames(self, videos: VideoSet) -> tuple[np.ndarray, np.ndarray]:
        """(targets, known) [V * S, A] for every static clip, in attack_items order: the label
        of the clip's frame for attributes with frame-level labels, the video's otherwise."""
        v, s = videos.static.shape[:2]
        labels = {
            name: videos.static_attributes[name].reshape(v * s)
            if name in videos.static_attributes
            else np.repeat(values, s)
            for name, values in videos.attributes.items()
        }
        return self.encode_labels(labels, v * s)


def attack_items(videos: VideoSet, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D], owning video [N]): each static or normal clip is one item (images have
    no normal clips: none of their items for source "clip")."""
    clips = {"static": videos.static, "clip": videos.clip}[source]
    v, m, d = clips.shape
    owner = np.repeat(np.arange(v), m)
    if source == "clip":
        has = np.repeat(videos.has_clips, m)
        return clips.reshape(v * m, d)[has], owner[has]
    return clips.reshape(v * m, d), owner


def build_attacker(kind: str, dim: int, outputs: int, hidden: int | None = None) -> nn.Module:
    if kind == "linear":
        return nn.Linear(dim, outputs)
    if kind == "mlp":
        width = hidden or dim
        return nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, outputs))
    raise ValueError(f"unknown attacker kind {kind!r}; expected one of {ATTACKER_KINDS}")


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (loss * known).sum() / known.sum().clamp_min(1)


@torch.no_grad()
def _scores(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    out = torch.sigmoid(model(x)).numpy()
    model.train()
    return out


def train_attacker(
    kind: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    known_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    known_val: np.ndarray,
    seed: int,
    config: AttackerConfig = AttackerConfig(),
) -> tuple[nn.Module, float, int]:
    """Train with AdamW on minibatches; keep the epoch with the best validation mean AP.

    Returns (model in eval mode, best validation mAP, epochs run).
    """
    with seeded(seed) as gen:
        model = build_attacker(kind, x_train.shape[1], y_train.shape[1], config.hidden)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        xt, yt = torch.as_tensor(x_train), torch.as_tensor(y_train)
        kt = torch.as_tensor(known_train, dtype=torch.float32)
        xv = torch.as_tensor(x_val)
        best_map, best_state, since, epochs = -math.inf, copy.deepcopy(model.state_dict()), 0, 0
        for epoch in range(1, config.max_epochs + 1):
            epochs = epoch
            order = torch.randperm(len(xt), generator=gen)
            for start in range(0, len(order), config.batch_size):
                batch = order[start : start + config.batch_size]
                loss = masked_bce(model(xt[batch]), yt[batch], kt[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
            val_ap = column_average_precision(_scores(model, xv), y_val, known_val)
            val_map = (
                float(val_ap[np.isfinite(val_ap)].mean()) if np.isfinite(val_ap).any() else math.nan
            )
            if not math.isfinite(val_map):  # a validation part without positives: keep training
                best_state = copy.deepcopy(model.state_dict())
            elif val_map > best_map:
                best_map, best_state, since = val_map, copy.deepcopy(model.state_dict()), 0
            else:
                since += 1
                if since >= config.patience:
                    break
        model.load_state_dict(best_state)
    return model.eval(), best_map if math.isfinite(best_map) else math.nan, epochs


def attack(
    train: VideoSet,
    test: VideoSet,
    dataset: DatasetSpec,
    *,
    kind: str,
    source: str,
    seed: int,
    config: AttackerConfig = AttackerConfig(),
) -> dict[str, float]:
    """Train one attacker on ``train`` (privacy_train) and score it on ``test`` (privacy_test).

    Metrics: ap_<attr> (mean AP over the attribute's value indicators), chance_<attr> (the same
    for a constant scorer = positive rate), cmap_person / chance_person (mean over ALL person
    value indicators: the headline), cmap_context / chance_context (scene etc.), val_map, epochs.
    Indicators without a positive in privacy_test have no AP and are left out of every mean.
    ``source`` "frame": the attacker is trained as for "static" and scored on every static clip
    of privacy_test against the label of its own frame (IndicatorColumns.encode_static_frames).
    """
    frame_level = source == FRAME_SOURCE
    source = "static" if frame_level else source
    columns = IndicatorColumns.of(dataset)
    fit_idx, val_idx = holdout(len(train), config.val_fraction, split_rng(seed, "attacker"))
    fit, val = train.subset(fit_idx), train.subset(val_idx)
    x_fit, owner_fit = attack_items(fit, source)
    x_val, owner_val = attack_items(val, source)
    x_test, owner_test = attack_items(test, source)
    scaler = Standardizer.fit(x_fit)
    y_fit, k_fit = columns.encode(fit)
    y_val, k_val = columns.encode(val)
    y_test, k_test = columns.encode(test)
    model, val_map, epochs = train_attacker(
        kind,
        scaler(x_fit),
        y_fit[owner_fit],
        k_fit[owner_fit],
        scaler(x_val),
        y_val[owner_val],
        k_val[owner_val],
        seed,
        config,
    )
    scores = _scores(model, torch.as_tensor(scaler(x_test)))
    labels, known = y_test[owner_test], k_test[owner_test]
    if frame_level:
        labels, known = columns.encode_static_frames(test)
    ap = column_average_precision(scores, labels, known)
    chance = column_average_precision(np.zeros_like(scores), labels, known)
    return {
        **attribute_metrics(ap, chance, columns, dataset),
        "val_map": val_map,
        "epochs": float(epochs),
    }


def attribute_metrics(
    ap: np.ndarray, chance: np.ndarray, columns: IndicatorColumns, dataset: DatasetSpec
) -> dict[str, float]:
    """Per-attribute and per-role means of per-indicator AP and chance AP."""
    attr = np.asarray(columns.attribute)
    out: dict[str, float] = {}

    def mean(values: np.ndarray, rows: np.ndarray) -> float:
        vals = values[rows & np.isfinite(ap)]
        return float(vals.mean()) if len(vals) else math.nan

    for name in dataset.attributes:
        rows = attr == name
        out[f"ap_{name}"] = mean(ap, rows)
        out[f"chance_{name}"] = mean(chance, rows)
    for role, names in (
        ("person", dataset.person_attributes),
        ("context", dataset.context_attributes),
    ):
        rows = np.isin(attr, names)
        out[f"cmap_{role}"] = mean(ap, rows)
        out[f"chance_{role}"] = mean(chance, rows)
    return out
