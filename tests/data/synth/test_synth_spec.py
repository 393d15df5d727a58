"""Labels, splits, segments and seeds of the synthetic benchmark (no rendering)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pipeline.data import manifest
from pipeline.data.synth import (
    ACTIONS,
    ANOMALY_TYPES,
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    SCALES,
    SPLITS,
    SynthConfig,
    make_video_spec,
    make_video_specs,
)
from pipeline.errors import ConfigError


@pytest.fixture(scope="module")
def default_specs():
    return make_video_specs(SynthConfig(scale="default"))


def test_splits_match_the_manifest_module():
    assert SPLITS == manifest.SPLITS
    for scale in SCALES.values():
        assert set(scale.counts) == set(SPLITS)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scale": "huge"},
        {"frame_size": 63},
        {"frame_size": 16},
        {"crf": 60},
        {"fps": 0},
        {"splits": ("train", "nope")},
        {"splits": ()},
        {"workers": 0},
        {"trimmed_frames": 8},
        {"seed": -1},
    ],
)
def test_bad_config_is_refused_with_config_error(kwargs):
    with pytest.raises(ConfigError):
        SynthConfig(**kwargs)


def test_config_round_trips_through_dict():
    cfg = SynthConfig(scale="tiny", seed=3, splits=("train", "pretrain"), workers=1)
    assert SynthConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.selected_splits == ("pretrain", "train")  # canonical order


def test_default_scale_sizes(default_specs):
    counts = Counter(s.split for s in default_specs)
    assert counts["test"] >= 1000
    assert counts["pretrain"] == 1500
    assert {s.num_frames for s in default_specs if s.kind == "trimmed"} == {48}
    assert {s.num_frames for s in default_specs if s.kind != "trimmed"} == {192}
    assert len({s.video_id for s in default_specs}) == len(default_specs)
    assert len({s.seed for s in default_specs}) == len(default_specs)


def test_specs_are_deterministic_and_seeded():
    a = make_video_spec(SynthConfig(seed=1), "train", 7)
    assert a == make_video_spec(SynthConfig(seed=1), "train", 7)
    others = [make_video_spec(SynthConfig(seed=2), "train", i) for i in range(20)]
    assert all(o.seed != a.seed for o in others)
    firsts = [make_video_spec(SynthConfig(seed=s), "train", 0).attributes for s in range(10)]
    assert len(set(firsts)) > 1


def test_a_video_does_not_depend_on_which_splits_are_generated():
    full = [s for s in make_video_specs(SynthConfig(scale="small")) if s.split == "pretrain"]
    only = make_video_specs(SynthConfig(scale="small", splits=("pretrain",)))
    assert full == only


def test_trimmed_splits_are_balanced_over_actions(default_specs):
    for split in ("pretrain", "train", "val", "test", "privacy_train", "privacy_test"):
        actions = Counter(s.action for s in default_specs if s.split == split)
        assert set(actions) == set(range(len(ACTIONS)))
        assert max(actions.values()) - min(actions.values()) <= 1


def test_tiny_scale_holds_every_action_and_anomaly_type():
    specs = make_video_specs(SynthConfig(scale="tiny"))
    assert {s.action for s in specs if s.kind == "trimmed"} == set(range(len(ACTIONS)))
    anomaly_labels = {seg.label for s in specs if s.kind == "anomaly" for seg in s.segments}
    assert anomaly_labels == set(range(len(ANOMALY_TYPES)))
    for split in SPLITS:
        assert 2 <= sum(s.split == split for s in specs) <= 6
    bias = [s for s in specs if s.split == "bias_train"]
    assert {s.attrs["gender"] for s in bias} == {0, 1}


def test_attributes_are_uniform_and_independent_of_the_action(default_specs):
    pool = [s for s in default_specs if s.split in ("pretrain", "train", "test")]
    for name, (values, _) in ATTRIBUTES.items():
        freq = np.bincount([s.attrs[name] for s in pool], minlength=len(values)) / len(pool)
        assert np.all(np.abs(freq - 1 / len(values)) < 0.03), (name, freq)
    # Gender rate per action stays near 1/2 outside the bias splits.
    for a in range(len(ACTIONS)):
        g = [s.attrs["gender"] for s in pool if s.action == a]
        assert 0.4 < np.mean(g) < 0.6


def test_bias_train_ties_gender_to_action(default_specs):
    bias = [s for s in default_specs if s.split == "bias_train"]
    assert {s.action for s in bias} == set(range(len(ACTIONS)))
    for s in bias:
        assert s.attrs["gender"] == (0 if s.action < 5 else 1)


def test_bias_test_is_balanced(default_specs):
    pairs = Counter((s.action, s.attrs["gender"]) for s in default_specs if s.split == "bias_test")
    assert set(pairs) == {(a, g) for a in range(len(ACTIONS)) for g in (0, 1)}
    assert len(set(pairs.values())) == 1


def test_untrimmed_segments(default_specs):
    specs = [s for s in default_specs if s.kind == "untrimmed"]
    n_segments = Counter(len(s.segments) for s in specs)
    assert set(n_segments) <= {1, 2, 3} and len(n_segments) >= 2
    for s in specs:
        assert s.action == -1 and s.anomalous == -1
        prev_end = 0
        for seg in s.segments:
            assert 32 <= seg.end - seg.start <= 64
            assert seg.start >= prev_end and seg.end <= s.num_frames
            assert 0 <= seg.label < len(ACTIONS)
            prev_end = seg.end
        assert len({seg.label for seg in s.segments}) == len(s.segments)
    assert {seg.label for s in specs for seg in s.segments} == set(range(len(ACTIONS)))


def test_anomaly_videos(default_specs):
    specs = [s for s in default_specs if s.kind == "anomaly"]
    assert 0.4 < np.mean([s.anomalous for s in specs]) < 0.6
    for s in specs:
        assert s.action == -1
        assert len(s.segments) == s.anomalous
        for seg in s.segments:
            assert 16 <= seg.end - seg.start <= 48
            assert seg.start > 0 and seg.end <= s.num_frames
    labels = Counter(seg.label for s in specs for seg in s.segments)
    assert set(labels) == set(range(len(ANOMALY_TYPES)))


def test_with_attributes_and_with_action():
    spec = make_video_spec(SynthConfig(), "train", 0)
    other = spec.with_attributes(hat=1 - spec.attrs["hat"])
    assert other.seed == spec.seed and other.attrs["hat"] != spec.attrs["hat"]
    assert spec.with_action(3).action == 3
    with pytest.raises(ConfigError):
        spec.with_attributes(skin=9)
    with pytest.raises(ConfigError):
        spec.with_attributes(height=1)
    with pytest.raises(ConfigError):
        make_video_spec(SynthConfig(), "tad_train", 0).with_action(1)


def test_manifest_row_has_every_column():
    row = make_video_spec(SynthConfig(), "tad_test", 1).manifest_row("videos/x.mp4", 25.0)
    assert {f"attr_{n}" for n in ATTRIBUTE_NAMES} <= set(row)
    assert row["kind"] == "untrimmed" and row["segments"] and row["action"] == -1
