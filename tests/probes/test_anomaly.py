"""Anomaly probe: the MIL ranking loss against a direct computation, frame scores from windows,
a high AUC on planted anomalies and ~0.5 on noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.probes.anomaly import AnomalyConfig, anomaly_probe, frame_scores, mil_ranking_loss

from .synthetic import WINDOW, untrimmed

FAST = AnomalyConfig(hidden=32, hidden2=16, steps=400, batch_videos=8, lr=3e-3)


def test_mil_ranking_loss_matches_a_direct_computation():
    rng = np.random.default_rng(0)
    a = torch.tensor(rng.uniform(size=(3, 5)))
    n = torch.tensor(rng.uniform(size=(2, 5)))
    a_len, n_len = [5, 3, 4], [2, 5]
    a_mask = torch.tensor([[i < k for i in range(5)] for k in a_len])
    n_mask = torch.tensor([[i < k for i in range(5)] for k in n_len])
    l1, l2 = 0.3, 0.2
    hinge, smooth, sparse = [], [], []
    for i, k in enumerate(a_len):
        bag = a[i, :k].tolist()
        for j, m in enumerate(n_len):
            hinge.append(max(0.0, 1 - max(bag) + max(n[j, :m].tolist())))
        smooth.append(sum((bag[t] - bag[t + 1]) ** 2 for t in range(k - 1)))
        sparse.append(sum(bag))
    expected = np.mean(hinge) + l1 * np.mean(smooth) + l2 * np.mean(sparse)
    got = mil_ranking_loss(a, a_mask, n, n_mask, l1, l2)
    assert float(got) == pytest.approx(expected)


def test_frame_scores_average_the_covering_windows():
    scores = frame_scores(np.array([1.0, 3.0]), np.array([0, 8]), 16, 30)
    assert scores[:8].tolist() == [1.0] * 8
    assert scores[8:16].tolist() == [2.0] * 8
    assert scores[16:24].tolist() == [3.0] * 8
    assert scores[24:].tolist() == [3.0] * 6  # no window: the nearest one


def test_frame_labels_come_from_the_segments_of_anomalous_videos():
    videos = untrimmed(4, np.random.default_rng(1), anomaly=True)
    labels = videos.frame_labels(0)
    start, end, _ = videos.video_segments(0)[0]
    assert labels.sum() == end - start and labels[start:end].all()
    assert not videos.frame_labels(1).any()


def test_planted_anomalies_are_found_and_noise_is_at_chance():
    rng = np.random.default_rng(2)
    train, test = untrimmed(20, rng, anomaly=True), untrimmed(12, rng, anomaly=True)
    assert anomaly_probe(train, test, WINDOW, seed=0, config=FAST)["auc"] > 0.9
    aucs = [
        anomaly_probe(
            untrimmed(20, rng, anomaly=True, signal=0.0),
            untrimmed(12, rng, anomaly=True, signal=0.0),
            WINDOW, seed=s, config=FAST,
        )["auc"]
        for s in range(3)
    ]  # fmt: skip
    assert abs(np.mean(aucs) - 0.5) < 0.1
