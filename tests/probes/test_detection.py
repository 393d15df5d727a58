"""Temporal action detection: targets, decoding and NMS; perfect window scores give mAP 1.0,
random ones a low mAP; the trained detector finds planted actions."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.probes.detection import (
    DetectorConfig,
    decode_video,
    evaluate_detections,
    tad_probe,
    temporal_nms,
    window_targets,
)

from .synthetic import WINDOW, untrimmed


def test_window_targets_label_windows_by_their_centre():
    starts = np.array([0, 8, 16, 24, 32])  # centres 8, 16, 24, 32, 40
    classes, offsets = window_targets(starts, WINDOW, np.array([[10, 30, 2]]))
    assert classes.tolist() == [0, 3, 3, 0, 0]
    assert offsets[1].tolist() == pytest.approx([6 / 16, 14 / 16])
    assert offsets[0].tolist() == [0, 0]


def test_temporal_nms_keeps_the_best_of_overlapping_segments():
    segs = np.array([[0, 10], [1, 10], [20, 30], [0, 9]], dtype=float)
    keep = temporal_nms(segs, np.array([0.5, 0.9, 0.8, 0.1]), iou=0.5)
    assert keep.tolist() == [1, 2]


def _perfect(videos):
    """Detections decoded from window scores made from the ground truth itself."""
    out = []
    for v in range(len(videos)):
        rows = videos.video_windows(v)
        starts = videos.window_start[rows]
        classes, offsets = window_targets(starts, WINDOW, videos.video_segments(v))
        probs = np.eye(5)[classes]
        out.append(decode_video(probs, offsets, starts, WINDOW, int(videos.num_frames[v])))
    return out


def test_perfect_window_scores_give_map_one():
    videos = untrimmed(10, np.random.default_rng(0))
    result = evaluate_detections(_perfect(videos), videos, (0.3, 0.5, 0.7, 0.95))
    assert result["map@0.3"] == 1.0 and result["map@0.7"] == 1.0 and result["map@0.95"] == 1.0
    assert result["mean_map"] == 1.0


def test_random_window_scores_give_a_low_map():
    rng = np.random.default_rng(1)
    videos = untrimmed(10, rng)
    out = []
    for v in range(len(videos)):
        rows = videos.video_windows(v)
        probs = rng.dirichlet(np.ones(5), len(rows))
        offsets = rng.uniform(0, 3, (len(rows), 2))
        out.append(
            decode_video(probs, offsets, videos.window_start[rows], WINDOW, 192, DetectorConfig())
        )
    result = evaluate_detections(out, videos, (0.3, 0.5, 0.7))
    assert result["mean_map"] < 0.25


def test_decoding_clips_segments_to_the_video():
    probs = np.array([[0.0, 1.0]])
    det = decode_video(probs, np.array([[10.0, 10.0]]), np.array([0]), WINDOW, 50)
    assert det["start"].tolist() == [0] and det["end"].tolist() == [50]


def test_detector_learns_planted_actions():
    rng = np.random.default_rng(2)
    train, test = untrimmed(24, rng), untrimmed(12, rng)
    config = DetectorConfig(hidden=32, epochs=40)
    result = tad_probe(train, test, 4, WINDOW, seed=0, config=config)
    assert result["map@0.3"] > 0.6
    assert 0 <= result["mean_map"] <= 1
    noise = untrimmed(24, rng, signal=0.0), untrimmed(12, rng, signal=0.0)
    assert tad_probe(*noise, 4, WINDOW, seed=0, config=config)["map@0.3"] < 0.3
