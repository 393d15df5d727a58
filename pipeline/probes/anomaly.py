"""Anomaly detection (an unseen task): a window scorer trained with the multiple-instance ranking
loss of Sultani et al. (2018) from video-level labels only, scored by frame-level ROC AUC."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from pipeline.probes.features import VideoSet
from pipeline.probes.metrics import roc_auc
from pipeline.probes.train import Standardizer, seeded, window_sequences


@dataclass(frozen=True)
class AnomalyConfig:
    """Scorer MLP (D -> hidden -> hidden2 -> 1, sigmoid) and the MIL ranking objective."""

    hidden: int = 128
    hidden2: int = 32
    dropout: float = 0.6
    """Sultani et al. use 60% dropout: the bags are tiny and the labels weak."""
    steps: int = 1000
    """Optimiser steps (Sultani et al. ran 20,000 with 30 + 30 videos per batch)."""
    batch_videos: int = 16
    """Anomalous and normal videos drawn per step (each)."""
    lr: float = 1e-3
    weight_decay: float = 1e-3
    lambda_smooth: float = 8e-5
    lambda_sparse: float = 8e-5


class WindowScorer(nn.Module):
    def __init__(self, dim: int, config: AnomalyConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.hidden2),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden2, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


def mil_ranking_loss(
    abnormal: torch.Tensor,
    abnormal_mask: torch.Tensor,
    normal: torch.Tensor,
    normal_mask: torch.Tensor,
    lambda_smooth: float = 8e-5,
    lambda_sparse: float = 8e-5,
) -> torch.Tensor:
    """MIL ranking loss over bags of window scores in [0, 1].

    abnormal [Ba, T] / normal [Bn, T] with validity masks. Hinge: mean over all (abnormal,
    normal) bag pairs of max(0, 1 - max_i s_a,i + max_i s_n,i). Temporal smoothness
    sum_i (s_a,i - s_a,i+1)^2 and sparsity sum_i s_a,i apply to the abnormal bags (mean over them).
    """
    neg = torch.tensor(-math.inf, dtype=abnormal.dtype)
    top_a = torch.where(abnormal_mask, abnormal, neg).amax(dim=1)
    top_n = torch.where(normal_mask, normal, neg).amax(dim=1)
    hinge = torch.relu(1 - top_a[:, None] + top_n[None, :]).mean()
    pair = abnormal_mask[:, 1:] & abnormal_mask[:, :-1]
    smooth = ((abnormal[:, 1:] - abnormal[:, :-1]).pow(2) * pair).sum(dim=1).mean()
    sparse = (abnormal * abnormal_mask).sum(dim=1).mean()
    return hinge + lambda_smooth * smooth + lambda_sparse * sparse


def frame_scores(
    window_scores: np.ndarray, starts: np.ndarray, window_length: int, num_frames: int
) -> np.ndarray:
    """Score of each frame: the mean score of the windows covering it (nearest window where none
    does)."""
    total = np.zeros(num_frames)
    count = np.zeros(num_frames)
    for score, start in zip(window_scores, starts, strict=True):
        lo, hi = max(int(start), 0), min(int(start) + window_length, num_frames)
        total[lo:hi] += score
        count[lo:hi] += 1
    if len(window_scores) and (count == 0).any():
        centres = np.asarray(starts) + window_length / 2
        empty = np.flatnonzero(count == 0)
        nearest = np.abs(empty[:, None] + 0.5 - centres[None, :]).argmin(axis=1)
        total[empty], count[empty] = np.asarray(window_scores)[nearest], 1
    return np.divide(total, count, out=np.zeros(num_frames), where=count > 0)


def train_scorer(
    train: VideoSet, seed: int, config: AnomalyConfig
) -> tuple[WindowScorer, Standardizer]:
    """Fit on anomaly_train windows using only each video's 'anomalous' flag."""
    scaler = Standardizer.fit(train.window_features)
    x, mask, _ = window_sequences(train, scaler)
    abnormal = np.flatnonzero(train.anomalous == 1)
    normal = np.flatnonzero(train.anomalous == 0)
    if len(abnormal) == 0 or len(normal) == 0:
        raise ValueError("anomaly training needs both anomalous and normal videos")
    with seeded(seed) as gen:
        model = WindowScorer(x.shape[-1], config)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        abnormal_t, normal_t = torch.as_tensor(abnormal), torch.as_tensor(normal)
        for _ in range(config.steps):
            a = abnormal_t[torch.randint(len(abnormal), (config.batch_videos,), generator=gen)]
            n = normal_t[torch.randint(len(normal), (config.batch_videos,), generator=gen)]
            loss = mil_ranking_loss(
                model(x[a]), mask[a], model(x[n]), mask[n],
                config.lambda_smooth, config.lambda_sparse,
            )  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval(), scaler


@torch.no_grad()
def video_frame_scores(
    model: WindowScorer, scaler: Standardizer, videos: VideoSet, window_length: int
) -> list[np.ndarray]:
    x, _, rows = window_sequences(videos, scaler)
    scores = model(x).numpy()
    return [
        frame_scores(
            scores[v, : len(r)], videos.window_start[r], window_length, int(videos.num_frames[v])
        )
        for v, r in enumerate(rows)
    ]


def frame_auc(frame_score_list: list[np.ndarray], videos: VideoSet) -> float:
    """Frame-level ROC AUC over all frames of all videos together (as on UCF-Crime)."""
    labels = [videos.frame_labels(v) for v in range(len(videos))]
    if not labels:
        return math.nan
    return roc_auc(np.concatenate(frame_score_list), np.concatenate(labels))


def anomaly_probe(
    train: VideoSet,
    test: VideoSet,
    window_length: int,
    seed: int,
    config: AnomalyConfig = AnomalyConfig(),
) -> dict[str, float]:
    """Train on anomaly_train (video labels only), {auc} on anomaly_test frames."""
    model, scaler = train_scorer(train, seed, config)
    return {"auc": frame_auc(video_frame_scores(model, scaler, test, window_length), test)}
