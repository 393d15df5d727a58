"""Ranking metrics: average precision (attributes), detection mAP over tIoU, and ROC AUC."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Non-interpolated AP: sum over distinct score thresholds of (R_k - R_{k-1}) * P_k.

    Tied scores form one threshold (as in sklearn's average_precision_score), so a constant
    scorer gets exactly the positive rate: the chance level. NaN when there is no positive.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    positives = int(labels.sum())
    if positives == 0:
        return math.nan
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def column_average_precision(
    scores: np.ndarray, labels: np.ndarray, known: np.ndarray | None = None
) -> np.ndarray:
    """AP of every column of [N, A] scores (rows with unknown labels left out per column)."""
    out = np.full(scores.shape[1], math.nan)
    for j in range(scores.shape[1]):
        rows = slice(None) if known is None else known[:, j]
        out[j] = average_precision(scores[rows, j], labels[rows, j])
    return out


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC, NaN where only one class is present."""
    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        return math.nan
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64).ravel()))


def temporal_iou(segment: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """tIoU of one [start, end) segment with each row of [N, 2] segments."""
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    start, end = float(segment[0]), float(segment[1])
    inter = np.clip(np.minimum(end, segments[:, 1]) - np.maximum(start, segments[:, 0]), 0, None)
    union = (end - start) + (segments[:, 1] - segments[:, 0]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def interpolated_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under the precision envelope (ActivityNet's interpolated_prec_rec)."""
    p = np.r_[0.0, precision, 0.0]
    r = np.r_[0.0, recall, 1.0]
    for i in range(len(p) - 2, -1, -1):
        p[i] = max(p[i], p[i + 1])
    idx = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[idx] - r[idx - 1]) * p[idx]))


def detection_average_precision(
    pred_video: np.ndarray,
    pred_segments: np.ndarray,
    pred_scores: np.ndarray,
    gt_video: np.ndarray,
    gt_segments: np.ndarray,
    tiou_thresholds: Sequence[float],
) -> np.ndarray:
    """AP of ONE class at each tIoU threshold, as ActivityNet/THUMOS evaluate detection.

    Predictions are sorted by score (all videos together); each one is matched greedily to the
    unmatched ground-truth segment of its video with the highest tIoU, if that tIoU reaches the
    threshold (true positive), otherwise it is a false positive. AP is the area under the
    interpolated precision-recall curve. Returns NaN per threshold when there is no ground truth.
    """
    thresholds = np.asarray(tiou_thresholds, dtype=np.float64)
    n_gt = len(gt_video)
    if n_gt == 0:
        return np.full(len(thresholds), math.nan)
    if len(pred_video) == 0:
        return np.zeros(len(thresholds))
    order = np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable")
    gt_segments = np.asarray(gt_segments, dtype=np.float64).reshape(-1, 2)
    gt_video = np.asarray(gt_video)
    gt_by_video = {int(v): np.flatnonzero(gt_video == v) for v in np.unique(gt_video)}
    tp = np.zeros((len(thresholds), len(order)))
    matched = np.zeros((len(thresholds), n_gt), dtype=bool)
    for rank, i in enumerate(order):
        rows = gt_by_video.get(int(pred_video[i]))
        if rows is None:
            continue
        ious = temporal_iou(pred_segments[i], gt_segments[rows])
        by_iou = np.argsort(-ious, kind="stable")
        for t, threshold in enumerate(thresholds):
            for j in by_iou:
                if ious[j] < threshold:
                    break
                if matched[t, rows[j]]:
                    continue
                matched[t, rows[j]] = True
                tp[t, rank] = 1
                break
    ap = np.zeros(len(thresholds))
    for t in range(len(thresholds)):
        tp_cum = np.cumsum(tp[t])
        fp_cum = np.cumsum(1 - tp[t])
        ap[t] = interpolated_average_precision(tp_cum / (tp_cum + fp_cum), tp_cum / n_gt)
    return ap


def detection_map(
    predictions: dict[str, np.ndarray],
    ground_truth: dict[str, np.ndarray],
    tiou_thresholds: Sequence[float],
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """mAP over the classes present in the ground truth, at each tIoU threshold.

    Both tables are dicts of equal-length arrays: video, start, end, label (+ score for
    predictions). Returns (mAP per threshold, {class: AP per threshold}).
    """
    per_class = {}
    for c in np.unique(ground_truth["label"]):
        p = predictions["label"] == c
        g = ground_truth["label"] == c
        per_class[int(c)] = detection_average_precision(
            predictions["video"][p],
            np.stack([predictions["start"][p], predictions["end"][p]], axis=1),
            predictions["score"][p],
            ground_truth["video"][g],
            np.stack([ground_truth["start"][g], ground_truth["end"][g]], axis=1),
            tiou_thresholds,
        )
    if not per_class:
        return np.full(len(tiou_thresholds), math.nan), per_class
    return np.mean(np.stack(list(per_class.values())), axis=0), per_class
