"""The synthetic renderer: attributes are visible, actions are told apart by motion only."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.data.synth import (
    ACTIONS,
    ANOMALY_TYPES,
    ATTRIBUTES,
    SynthConfig,
    make_video_spec,
    render_video,
)
from pipeline.data.synth.motion import build_tracks
from pipeline.data.synth.render import ARM_AMPLITUDE, ARM_CENTRE

CFG = SynthConfig(scale="tiny")
# These move the start (as little as needed) so that the whole path stays inside the frame band.
FITTED_ACTIONS = {ACTIONS.index(a) for a in ("rise", "sink", "approach", "retreat")}


def _spec(split="train", index=0, config=CFG):
    return make_video_spec(config, split, index)


def _tracks(spec, size=64):
    seq = np.random.SeedSequence(spec.seed)
    state_rng, _, motion_rng = (np.random.default_rng(s) for s in seq.spawn(3))
    return build_tracks(spec, size, state_rng, motion_rng)


def test_render_shape_dtype_and_determinism():
    spec = _spec()
    a, b = render_video(spec), render_video(spec)
    assert a.frames.shape == (32, 64, 64, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames)
    assert a.labels["action"] == spec.action and "attr_skin" in a.labels
    big = render_video(spec, frame_size=96)
    assert big.frames.shape == (32, 96, 96, 3)


def _changed_pixels(a: np.ndarray, b: np.ndarray) -> float:
    """Mean number of pixels per frame whose colour changed by more than 40 in some channel."""
    diff = np.abs(a.astype(int) - b.astype(int)).max(axis=-1) > 40
    return float(diff.sum(axis=(1, 2)).mean())


@pytest.mark.parametrize("name", list(ATTRIBUTES))
def test_every_attribute_value_is_clearly_visible(name):
    values = ATTRIBUTES[name][0]
    for index in range(3):
        spec = _spec("test", index)
        base = render_video(spec).frames
        for value in range(len(values)):
            if value == spec.attrs[name]:
                continue
            other = render_video(spec.with_attributes(**{name: value})).frames
            changed = _changed_pixels(base, other)
            # The hat is the smallest attribute: dozens of pixels at 64 px, every frame.
            assert changed > 25, (name, index, values[value], changed)
            if name != "scene":  # a person attribute leaves the background alone
                same = (base == other).all(axis=-1).mean()
                assert same > 0.5


def test_one_frame_does_not_tell_the_action():
    for index in range(4):
        spec = _spec("test", index)
        first = {a: render_video(spec.with_action(a)).frames[0] for a in range(len(ACTIONS))}
        ref = first[0]
        for a, frame in first.items():
            if a not in FITTED_ACTIONS:  # same start state, whatever the action
                assert np.array_equal(frame, ref), ACTIONS[a]
            else:  # same look, perhaps moved or scaled a little
                assert np.abs(frame.astype(int) - ref).mean() < 20, ACTIONS[a]


def _pose_stats(action: int, n: int = 150):
    """Per-frame pose values pooled over n videos of ``action`` (default scale: 48 frames)."""
    cfg = SynthConfig()
    arm, y, log_s, x = [], [], [], []
    for i in range(n):
        t = _tracks(make_video_spec(cfg, "pretrain", i).with_action(action))
        arm.append(ARM_CENTRE + ARM_AMPLITUDE * np.sin(t.arm_ph))
        y.append(t.y)
        log_s.append(t.log_s)
        x.append(t.x % 64)
    return {k: np.concatenate(v) for k, v in {"arm": arm, "y": y, "log_s": log_s, "x": x}.items()}


def test_pose_distribution_of_single_frames_does_not_depend_on_the_action():
    ref = _pose_stats(ACTIONS.index("sway"))
    for name in ("wave", "walk_right", "rise", "approach"):
        stats = _pose_stats(ACTIONS.index(name))
        for key, tol in (("arm", 0.12), ("y", 2.5), ("log_s", 0.05), ("x", 4.0)):
            assert abs(stats[key].mean() - ref[key].mean()) < tol, (name, key)
            assert abs(stats[key].std() - ref[key].std()) < tol, (name, key)


def test_motion_directions():
    spec = _spec()
    walk = _tracks(spec.with_action(ACTIONS.index("walk_right")))
    assert np.all(np.diff(walk.x) >= 0) and walk.x[-1] - walk.x[0] > 20
    left = _tracks(spec.with_action(ACTIONS.index("walk_left")))
    assert left.x[-1] - left.x[0] < -20
    rise = _tracks(spec.with_action(ACTIONS.index("rise")))
    assert rise.y[-1] < rise.y[0] - 10
    sink = _tracks(spec.with_action(ACTIONS.index("sink")))
    assert sink.y[-1] > sink.y[0] + 10
    grow = _tracks(spec.with_action(ACTIONS.index("approach")))
    shrink = _tracks(spec.with_action(ACTIONS.index("retreat")))
    assert grow.log_s[-1] - grow.log_s[0] > 0.2 and shrink.log_s[-1] - shrink.log_s[0] < -0.2


def test_every_action_moves_within_any_eight_frames():
    for action in range(len(ACTIONS)):
        frames = render_video(_spec("test", 1).with_action(action)).frames.astype(np.int16)
        for t in range(len(frames) - 8):
            window = np.abs(frames[t + 1 : t + 9] - frames[t]).max(axis=(1, 2, 3))
            assert window.max() > 40, (ACTIONS[action], t)


def test_actions_give_different_videos():
    spec = _spec("test", 2)
    videos = [render_video(spec.with_action(a)).frames for a in range(len(ACTIONS))]
    for a in range(len(ACTIONS)):
        for b in range(a + 1, len(ACTIONS)):
            assert np.abs(videos[a][-8:].astype(int) - videos[b][-8:]).mean() > 0.3


def _motion_energy(frames: np.ndarray) -> np.ndarray:
    """Mean absolute difference between consecutive frames (one value per frame pair)."""
    return np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))


def test_untrimmed_videos_move_more_inside_segments():
    inside, outside = [], []
    for index in range(3):
        spec = _spec("tad_train", index)
        energy = _motion_energy(render_video(spec).frames)
        mask = np.zeros(len(energy), bool)
        for seg in spec.segments:
            mask[seg.start : seg.end - 1] = True
        inside.append(energy[mask].mean())
        outside.append(energy[~mask].mean())
    assert np.mean(inside) > 2 * np.mean(outside)


def test_anomaly_events():
    cfg = SynthConfig()
    for index in range(2 * len(ANOMALY_TYPES)):
        spec = make_video_spec(cfg, "anomaly_train", index)
        t = _tracks(spec)
        if not spec.segments:
            assert np.all(t.tilt == 0) and np.all(t.ox == 0)
            continue
        seg = spec.segments[0]
        inside = np.zeros(spec.num_frames, bool)
        inside[seg.start : seg.end] = True
        kind = ANOMALY_TYPES[seg.label]
        if kind == "fall":
            assert np.abs(t.tilt[inside]).max() == pytest.approx(np.pi / 2)
            assert np.all(t.tilt[~inside] == 0)
        elif kind == "erratic":
            assert np.abs(t.ox[inside]).mean() > 1 and np.all(t.ox[~inside] == 0)
        else:
            speed = np.abs(np.diff(t.x))
            assert speed[seg.start : seg.end - 1].mean() > 2 * speed[~inside[:-1]].mean()
        frames = render_video(spec).frames
        assert frames.shape == (spec.num_frames, 64, 64, 3)
