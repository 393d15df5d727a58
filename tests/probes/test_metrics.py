"""AP, detection mAP and tIoU against hand-computed answers (and sklearn where it applies)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from pipeline.probes.metrics import (
    average_precision,
    column_average_precision,
    detection_average_precision,
    detection_map,
    interpolated_average_precision,
    roc_auc,
    temporal_iou,
)


def test_average_precision_by_hand():
    # ranks: + - + -  -> precision at the positives 1/1 and 2/3 -> AP = (1 + 2/3) / 2
    assert average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    assert average_precision([0.1, 0.2, 0.3], [1, 0, 0]) == pytest.approx(1 / 3)
    assert math.isnan(average_precision([0.1, 0.2], [0, 0]))


def test_constant_scorer_gets_the_positive_rate():
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 0])
    assert average_precision(np.zeros(8), labels) == pytest.approx(labels.mean())


def test_average_precision_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.integers(0, 5, 50).astype(float)  # many ties
        labels = rng.integers(0, 2, 50)
        labels[0] = 1
        assert average_precision(scores, labels) == pytest.approx(
            average_precision_score(labels, scores)
        )


def test_column_average_precision_leaves_out_unknown_rows():
    scores = np.array([[0.9, 0.1], [0.1, 0.9], [0.8, 0.2]])
    labels = np.array([[1, 0], [0, 1], [0, 0]])
    known = np.array([[True, True], [True, True], [False, True]])
    ap = column_average_precision(scores, labels, known)
    assert ap.tolist() == pytest.approx([1.0, 1.0])


def test_temporal_iou():
    ious = temporal_iou(np.array([0, 10]), np.array([[0, 10], [5, 15], [10, 20], [2, 4]]))
    assert ious.tolist() == pytest.approx([1.0, 5 / 15, 0.0, 0.2])


def test_interpolated_average_precision_uses_the_precision_envelope():
    # precision 1, 0.5, 2/3 at recall 0.5, 0.5, 1 -> envelope 1 then 2/3 -> 0.5 + 0.5 * 2/3
    ap = interpolated_average_precision(np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0]))
    assert ap == pytest.approx(0.5 + 1 / 3)


def test_detection_ap_greedy_matching_by_hand():
    gt_video = np.array([0, 0])
    gt = np.array([[0, 10], [20, 30]])
    pred_video = np.array([0, 0, 0, 0])
    pred = np.array([[0, 10], [1, 10], [21, 31], [50, 60]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    # tIoU 0.5: TP (exact), FP (duplicate of a matched GT), TP (IoU 9/11), FP
    ap = detection_average_precision(pred_video, pred, scores, gt_video, gt, [0.5, 0.85])
    assert ap[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # tIoU 0.85: only the exact one matches (IoU 0.9 of the duplicate is taken by then)
    assert ap[1] == pytest.approx(0.5)


def test_detection_ap_matches_the_highest_iou_unmatched_ground_truth():
    gt = np.array([[0, 10], [8, 18]])
    pred = np.array([[7, 17], [0, 10]])
    ap = detection_average_precision(
        np.zeros(2), pred, np.array([0.9, 0.8]), np.zeros(2), gt, [0.5]
    )
    assert ap[0] == pytest.approx(1.0)  # first takes [8, 18] (IoU 9/11), second the other


def test_detection_ap_respects_videos():
    ap = detection_average_precision(
        np.array([1]),
        np.array([[0, 10]]),
        np.array([1.0]),
        np.array([0]),
        np.array([[0, 10]]),
        [0.5],
    )
    assert ap[0] == 0.0


def test_detection_map_averages_classes_present_in_ground_truth():
    gt = {
        "video": np.array([0, 0]),
        "start": np.array([0.0, 20.0]),
        "end": np.array([10.0, 30.0]),
        "label": np.array([0, 2]),
    }
    pred = {
        "video": np.array([0, 0, 0]),
        "start": np.array([0.0, 20.0, 40.0]),
        "end": np.array([10.0, 30.0, 50.0]),
        "label": np.array([0, 1, 1]),
        "score": np.array([1.0, 1.0, 0.5]),
    }
    maps, per_class = detection_map(pred, gt, [0.5])
    assert sorted(per_class) == [0, 2]  # class 1 has no ground truth: not averaged
    assert per_class[0][0] == 1.0 and per_class[2][0] == 0.0
    assert maps[0] == pytest.approx(0.5)


def test_roc_auc_and_one_class():
    assert roc_auc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert math.isnan(roc_auc(np.array([0.1, 0.9]), np.array([1, 1])))
