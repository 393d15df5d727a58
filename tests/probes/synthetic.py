"""Synthetic probe features with planted structure (known answers), shared by the probe tests."""

from __future__ import annotations

import numpy as np

from pipeline.probes.features import AttributeSpec, DatasetSpec, ProbeFeatures, VideoSet

DATASET = DatasetSpec(
    actions=("a0", "a1", "a2", "a3"),
    attributes={
        "skin": AttributeSpec("skin", ("s0", "s1", "s2", "s3"), "person"),
        "gender": AttributeSpec("gender", ("g0", "g1"), "person"),
        "hat": AttributeSpec("hat", ("none", "hat"), "person"),
        "scene": AttributeSpec("scene", ("x0", "x1", "x2"), "context"),
    },
    anomaly_types=("fall",),
)
WINDOW = 16
STRIDE = 8


def trimmed(
    n: int,
    rng: np.random.Generator,
    *,
    dim: int = 16,
    clips: int = 4,
    static: int = 3,
    action_signal: float = 3.0,
    attribute_signal: float = 3.0,
    xor_attribute: bool = False,
    noise: float = 1.0,
) -> VideoSet:
    """Trimmed videos: the action in dims 0-3 of normal clips; skin in dims 4-7 and scene in
    dims 8-10 of every clip; gender either linear (dim 11) or as the XOR of the signs of dims
    12 and 13 (not linearly decodable); hat carries no signal at all."""
    action = rng.integers(0, 4, n)
    attrs = {
        "skin": rng.integers(0, 4, n),
        "gender": rng.integers(0, 2, n),
        "hat": rng.integers(0, 2, n),
        "scene": rng.integers(0, 3, n),
    }
    appearance = np.zeros((n, dim))
    appearance[:, 4:8] = attribute_signal * np.eye(4)[attrs["skin"]]
    appearance[:, 8:11] = attribute_signal * np.eye(3)[attrs["scene"]]
    if xor_attribute:
        a = rng.choice([-1.0, 1.0], n)
        b = np.where(attrs["gender"] == 1, a, -a)  # gender = [sign(d12) == sign(d13)]
        appearance[:, 12] = attribute_signal * a
        appearance[:, 13] = attribute_signal * b
    else:
        appearance[:, 11] = attribute_signal * (2 * attrs["gender"] - 1)
    motion = np.zeros((n, dim))
    motion[:, :4] = action_signal * np.eye(4)[action]
    clip = appearance[:, None] + motion[:, None] + noise * rng.standard_normal((n, clips, dim))
    stat = appearance[:, None] + noise * rng.standard_normal((n, static, dim))
    return VideoSet(
        video_id=np.array([f"v{i}" for i in range(n)]),
        clip=clip.astype(np.float32),
        static=stat.astype(np.float32),
        action=action,
        attributes=attrs,
    )


def untrimmed(
    n: int,
    rng: np.random.Generator,
    *,
    dim: int = 16,
    frames: int = 192,
    signal: float = 3.0,
    anomaly: bool = False,
) -> VideoSet:
    """Untrimmed videos with windows (16 frames, stride 8). Detection: 1-2 action segments per
    video, each window's dims 0-3 carry the one-hot of the action its centre lies in. Anomaly:
    even videos hold one abnormal event, windows centred in it carry ``signal`` in dim 0."""
    starts = np.arange(0, frames - WINDOW + 1, STRIDE)
    feats, w_video, w_start = [], [], []
    s_video, s_start, s_end, s_label, anomalous = [], [], [], [], []
    for v in range(n):
        segs = []
        if anomaly:
            anomalous.append(1 if v % 2 == 0 else 0)
            if v % 2 == 0:
                lo = int(rng.integers(16, frames - 64))
                segs.append((lo, lo + int(rng.integers(24, 48)), 0))
        else:
            lo = int(rng.integers(0, 40))
            for _ in range(int(rng.integers(1, 3))):
                length = int(rng.integers(32, 64))
                if lo + length > frames:
                    break
                segs.append((lo, lo + length, int(rng.integers(0, 4))))
                lo += length + int(rng.integers(16, 32))
        x = rng.standard_normal((len(starts), dim))
        centres = starts + WINDOW / 2
        for a, b, label in segs:
            inside = (centres >= a) & (centres < b)
            x[inside, 0 if anomaly else label] += signal
            s_video.append(v)
            s_start.append(a)
            s_end.append(b)
            s_label.append(label)
        feats.append(x)
        w_video.append(np.full(len(starts), v))
        w_start.append(starts)
    return VideoSet(
        video_id=np.array([f"u{i}" for i in range(n)]),
        clip=rng.standard_normal((n, 4, dim)).astype(np.float32),
        static=rng.standard_normal((n, 3, dim)).astype(np.float32),
        action=np.full(n, -1),
        attributes={name: np.full(n, -1) for name in DATASET.attributes},
        anomalous=np.array(anomalous) if anomaly else np.full(n, -1),
        num_frames=np.full(n, frames),
        window_features=np.concatenate(feats).astype(np.float32),
        window_video=np.concatenate(w_video),
        window_start=np.concatenate(w_start),
        segment_video=np.array(s_video, dtype=np.int64),
        segment_start=np.array(s_start, dtype=np.int64),
        segment_end=np.array(s_end, dtype=np.int64),
        segment_label=np.array(s_label, dtype=np.int64),
    )


def features(seed: int = 0, *, scale: int = 1, dim: int = 16) -> ProbeFeatures:
    """A whole small benchmark: every split the probes read, with planted answers."""
    rng = np.random.default_rng(seed)
    splits = {
        "train": trimmed(80 * scale, rng, dim=dim),
        "val": trimmed(30 * scale, rng, dim=dim),
        "test": trimmed(60 * scale, rng, dim=dim),
        "privacy_train": trimmed(80 * scale, rng, dim=dim),
        "privacy_test": trimmed(60 * scale, rng, dim=dim),
        "bias_train": trimmed(60 * scale, rng, dim=dim),
        "bias_test": trimmed(40 * scale, rng, dim=dim),
        "tad_train": untrimmed(12 * scale, rng, dim=dim),
        "tad_test": untrimmed(8 * scale, rng, dim=dim),
        "anomaly_train": untrimmed(12 * scale, rng, dim=dim, anomaly=True),
        "anomaly_test": untrimmed(8 * scale, rng, dim=dim, anomaly=True),
    }
    return ProbeFeatures(DATASET, splits, WINDOW, {"store": "synthetic"})
