"""Action probe: finds a planted linear class, sits at chance on noise; the bias probe's gap."""

from __future__ import annotations

import numpy as np

from pipeline.probes.action import LinearProbeConfig, action_probe, one_clip_per_video
from pipeline.probes.bias import bias_probe

from .synthetic import trimmed

FAST = LinearProbeConfig(weight_decays=(1e-3, 1e-1), max_iter=50)


def test_one_clip_per_video_takes_a_clip_of_each_video():
    clips = np.arange(5 * 3).reshape(5, 3, 1).astype(np.float32)
    picked = one_clip_per_video(clips, np.random.default_rng(0))[:, 0]
    assert all(picked[v] in clips[v, :, 0] for v in range(5))


def test_planted_action_is_found():
    rng = np.random.default_rng(0)
    train, val, test = trimmed(120, rng), trimmed(40, rng), trimmed(100, rng)
    result = action_probe(train, val, test, 4, seed=0, config=FAST)
    assert result["top1"] > 0.95
    assert result["weight_decay"] in FAST.weight_decays


def test_noise_is_at_chance():
    rng = np.random.default_rng(1)
    make = lambda n: trimmed(n, rng, action_signal=0.0)  # noqa: E731
    scores = [
        action_probe(make(120), make(40), make(200), 4, seed=s, config=FAST)["top1"]
        for s in range(3)
    ]
    assert abs(np.mean(scores) - 0.25) < 0.08


def test_action_probe_is_deterministic_per_seed_and_carves_val_when_missing():
    rng = np.random.default_rng(2)
    train, test = trimmed(60, rng), trimmed(40, rng)
    a = action_probe(train, None, test, 4, seed=3, config=FAST)
    b = action_probe(train, None, test, 4, seed=3, config=FAST)
    assert a == b


def test_bias_probe_measures_accuracy_per_gender():
    """Test videos of gender g1 carry no action signal: the head is right on g0 and at chance
    on g1, so the gap is about 1 - 1/4."""
    rng = np.random.default_rng(3)
    train = trimmed(160, rng)
    test = trimmed(300, rng)
    g1 = test.attributes["gender"] == 1
    clip = test.clip.copy()
    clip[g1, :, :4] = rng.standard_normal((int(g1.sum()), clip.shape[1], 4))
    test = test.replace(clip=clip)
    result = bias_probe(train, test, "gender", ("g0", "g1"), 4, seed=0, config=FAST)
    assert result["acc_g0"] > 0.95
    assert abs(result["acc_g1"] - 0.25) < 0.12
    assert result["gap"] == abs(result["acc_g0"] - result["acc_g1"])
    n0 = int((~g1).sum())
    assert result["accuracy"] == (result["acc_g0"] * n0 + result["acc_g1"] * (300 - n0)) / 300
