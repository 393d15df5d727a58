"""Temporal action detection (an unseen task): a small anchor-free detector over the window
features of untrimmed videos, decoded with per-class temporal NMS and scored by mAP over tIoU."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.probes.features import VideoSet
from pipeline.probes.metrics import detection_map, temporal_iou
from pipeline.probes.train import Standardizer, seeded, window_sequences

TIOU_THRESHOLDS = (0.3, 0.5, 0.7)


@dataclass(frozen=True)
class DetectorConfig:
    """The detector: temporal convolutions over the sequence of windows of a video, then a
    classification head (background + actions) and a boundary head per window."""

    hidden: int = 128
    layers: int = 2
    kernel: int = 3
    dropout: float = 0.1
    epochs: int = 80
    batch_videos: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-2
    reg_weight: float = 1.0
    """Weight of the boundary (1 - tIoU) loss on foreground windows."""
    min_score: float = 1e-3
    """Class scores below this make no candidate segment."""
    nms_iou: float = 0.5
    """Per-class temporal NMS threshold."""
    max_detections: int = 100
    """Detections kept per video (highest scores)."""
    tiou_thresholds: tuple[float, ...] = TIOU_THRESHOLDS


def window_centres(starts: np.ndarray, window_length: int) -> np.ndarray:
    return np.asarray(starts, dtype=np.float64) + window_length / 2.0


def window_targets(
    starts: np.ndarray, window_length: int, segments: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window training targets of one video.

    A window is foreground for the segment its centre falls in (the shortest such segment when
    segments overlap): class = action + 1 (0 = background), and its boundary targets are the
    distances from the centre to the segment's start and end, in window lengths.
    Returns (classes int [W], offsets float32 [W, 2], zeros for background).
    """
    centres = window_centres(starts, window_length)
    classes = np.zeros(len(centres), dtype=np.int64)
    offsets = np.zeros((len(centres), 2), dtype=np.float32)
    best_len = np.full(len(centres), np.inf)
    for start, end, label in np.asarray(segments).reshape(-1, 3):
        inside = (centres >= start) & (centres < end) & (end - start < best_len)
        classes[inside] = label + 1
        offsets[inside, 0] = (centres[inside] - start) / window_length
        offsets[inside, 1] = (end - centres[inside]) / window_length
        best_len[inside] = end - start
    return classes, offsets


class WindowDetector(nn.Module):
    """[B, T, D] window features -> class logits [B, T, C+1], boundary distances [B, T, 2]."""

    def __init__(self, dim: int, num_classes: int, config: DetectorConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = dim
        for _ in range(config.layers):
            layers += [
                nn.Conv1d(width, config.hidden, config.kernel, padding=config.kernel // 2),
                nn.ReLU(),
                nn.Dropout(config.dropout),
            ]
            width = config.hidden
        self.body = nn.Sequential(*layers)
        self.cls = nn.Conv1d(width, num_classes + 1, 1)
        self.reg = nn.Conv1d(width, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x.transpose(1, 2))
        return self.cls(h).transpose(1, 2), F.softplus(self.reg(h)).transpose(1, 2)


def iou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - tIoU of segments given as (distance to start, distance to end) from the same centre."""
    inter = torch.minimum(pred[:, 0], target[:, 0]) + torch.minimum(pred[:, 1], target[:, 1])
    union = torch.maximum(pred[:, 0], target[:, 0]) + torch.maximum(pred[:, 1], target[:, 1])
    return (1 - inter / union.clamp_min(1e-6)).mean()


def temporal_nms(segments: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while len(order):
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        order = rest[temporal_iou(segments[i], segments[rest]) <= iou]
    return np.asarray(keep, dtype=np.int64)


def decode_video(
    probabilities: np.ndarray,
    offsets: np.ndarray,
    starts: np.ndarray,
    window_length: int,
    num_frames: int,
    config: DetectorConfig = DetectorConfig(),
) -> dict[str, np.ndarray]:
    """Detections of one video: every (window, action) with score >= min_score proposes the
    segment centre - d_start .. centre + d_end (offsets in window lengths), then per-class NMS.

    ``probabilities`` is [W, C+1] with column 0 = background. Returns start, end, label, score.
    """
    centres = window_centres(starts, window_length)
    seg_start = np.clip(centres - offsets[:, 0] * window_length, 0, num_frames)
    seg_end = np.clip(centres + offsets[:, 1] * window_length, 0, num_frames)
    out: dict[str, list[np.ndarray]] = {"start": [], "end": [], "label": [], "score": []}
    for c in range(1, probabilities.shape[1]):
        rows = np.flatnonzero((probabilities[:, c] >= config.min_score) & (seg_end > seg_start))
        if len(rows) == 0:
            continue
        segs = np.stack([seg_start[rows], seg_end[rows]], axis=1)
        keep = temporal_nms(segs, probabilities[rows, c], config.nms_iou)
        out["start"].append(segs[keep, 0])
        out["end"].append(segs[keep, 1])
        out["label"].append(np.full(len(keep), c - 1))
        out["score"].append(probabilities[rows[keep], c])
    result = {k: np.concatenate(v) if v else np.zeros(0) for k, v in out.items()}
    top = np.argsort(-result["score"], kind="stable")[: config.max_detections]
    return {k: v[top] for k, v in result.items()}


def ground_truth(videos: VideoSet) -> dict[str, np.ndarray]:
    return {
        "video": videos.segment_video,
        "start": videos.segment_start.astype(np.float64),
        "end": videos.segment_end.astype(np.float64),
        "label": videos.segment_label,
    }


def evaluate_detections(
    per_video: list[dict[str, np.ndarray]], videos: VideoSet, thresholds: tuple[float, ...]
) -> dict[str, float]:
    """{map@t for each t, mean_map} of per-video detections against the split's segments."""
    preds = {
        k: np.concatenate([d[k] for d in per_video]) if per_video else np.zeros(0)
        for k in ("start", "end", "label", "score")
    }
    preds["video"] = (
        np.concatenate([np.full(len(d["score"]), v) for v, d in enumerate(per_video)])
        if per_video
        else np.zeros(0, dtype=np.int64)
    )
    maps, _ = detection_map(preds, ground_truth(videos), thresholds)
    out = {f"map@{t:g}": float(m) for t, m in zip(thresholds, maps, strict=True)}
    out["mean_map"] = float(np.mean(maps)) if len(maps) else math.nan
    return out


def train_detector(
    train: VideoSet, num_classes: int, window_length: int, seed: int, config: DetectorConfig
) -> tuple[WindowDetector, Standardizer]:
    scaler = Standardizer.fit(train.window_features)
    x, mask, rows = window_sequences(train, scaler)
    classes = np.zeros(mask.shape, dtype=np.int64)
    offsets = np.zeros((*mask.shape, 2), dtype=np.float32)
    for v, r in enumerate(rows):
        c, o = window_targets(train.window_start[r], window_length, train.video_segments(v))
        classes[v, : len(r)], offsets[v, : len(r)] = c, o
    ct, ot = torch.as_tensor(classes), torch.as_tensor(offsets)
    with seeded(seed) as gen:
        model = WindowDetector(x.shape[-1], num_classes, config)
        opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        for _ in range(config.epochs):
            order = torch.randperm(len(x), generator=gen)
            for start in range(0, len(order), config.batch_videos):
                b = order[start : start + config.batch_videos]
                logits, pred = model(x[b])
                m = mask[b]
                loss = F.cross_entropy(logits[m], ct[b][m])
                fg = m & (ct[b] > 0)
                if fg.any():
                    loss = loss + config.reg_weight * iou_loss(pred[fg], ot[b][fg])
                opt.zero_grad()
                loss.backward()
                opt.step()
    return model.eval(), scaler


@torch.no_grad()
def detect(
    model: WindowDetector,
    scaler: Standardizer,
    videos: VideoSet,
    window_length: int,
    config: DetectorConfig,
) -> list[dict[str, np.ndarray]]:
    x, _, rows = window_sequences(videos, scaler)
    logits, offsets = model(x)
    probs = torch.softmax(logits, dim=-1).numpy()
    offsets = offsets.numpy()
    return [
        decode_video(
            probs[v, : len(r)],
            offsets[v, : len(r)],
            videos.window_start[r],
            window_length,
            int(videos.num_frames[v]),
            config,
        )
        for v, r in enumerate(rows)
    ]


def tad_probe(
    train: VideoSet,
    test: VideoSet,
    num_classes: int,
    window_length: int,
    seed: int,
    config: DetectorConfig = DetectorConfig(),
) -> dict[str, float]:
    """Train on tad_train, detect on tad_test: {map@0.3, map@0.5, map@0.7, mean_map}."""
    model, scaler = train_detector(train, num_classes, window_length, seed, config)
    detections = detect(model, scaler, test, window_length, config)
    return evaluate_detections(detections, test, config.tiou_thresholds)
