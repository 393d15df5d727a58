"""The search space, the trial list and the selection rule of `anon-store tune` (no training)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from pipeline.aam.presets import PRESETS
from pipeline.aam.tune import (
    SearchSpace,
    TuneConfig,
    WeightRange,
    pareto_front,
    select_trial,
    trial_list,
)
from pipeline.aam.tune.scoring import attack_split
from pipeline.aam.tune.space import SEARCHED_WEIGHTS, scrambled_halton
from pipeline.errors import ConfigError


def test_trial_list_is_deterministic_and_starts_with_the_presets():
    config = TuneConfig(trials=12, seed=3)
    trials = trial_list(config)
    assert trials == trial_list(TuneConfig(trials=12, seed=3))
    assert [t.trial_id for t in trials[: len(PRESETS)]] == [f"preset-{n}" for n in PRESETS]
    assert [t.origin for t in trials] == ["preset"] * len(PRESETS) + ["sample"] * (
        12 - len(PRESETS)
    )
    assert len({t.trial_id for t in trials}) == 12
    other = trial_list(TuneConfig(trials=12, seed=4))
    assert [t.settings for t in other[len(PRESETS) :]] != [
        t.settings for t in trials[len(PRESETS) :]
    ]
    assert [t.settings for t in other[: len(PRESETS)]] == [
        t.settings for t in trials[: len(PRESETS)]
    ]


def test_preset_trials_resolve_to_the_presets_settings():
    config = TuneConfig(trials=len(PRESETS))
    for trial in trial_list(config):
        preset = PRESETS[trial.preset]
        params = trial.params(config)
        for key, value in {**preset.adapter, **preset.training}.items():
            if key in params:
                assert params[key] == value, (trial.trial_id, key)
        resolved = trial.train_config(config, None)
        assert resolved.training.seed == config.seed
        assert getattr(resolved.training, "preset", trial.preset) == trial.preset


def test_a_longer_search_starts_with_the_shorter_one_and_epochs_can_be_capped():
    short, long = trial_list(TuneConfig(trials=4)), trial_list(TuneConfig(trials=9))
    assert long[:4] == short
    assert [t.trial_id for t in trial_list(TuneConfig(trials=1))] == ["preset-recommended"]
    assert all(t.origin == "sample" for t in trial_list(TuneConfig(trials=3, presets=False)))
    capped = TuneConfig(trials=6, max_epochs=2)
    assert {t.params(capped)["epochs"] for t in trial_list(capped)} == {2}


def test_samples_stay_in_their_ranges_and_reach_zero_for_the_extensions():
    config = TuneConfig(trials=64, presets=False, seed=1)
    space = config.space
    params = [t.params(config) for t in trial_list(config)]
    for name in SEARCHED_WEIGHTS:
        rng: WeightRange = getattr(space, name)
        values = np.array([p[name] for p in params])
        nonzero = values[values > 0]
        assert nonzero.min() >= rng.low * 0.999 and nonzero.max() <= rng.high * 1.001, name
        zeros = (values == 0).mean()
        assert abs(zeros - rng.zero) < 0.1, (name, zeros)
        # log-uniform: about half of the non-zero draws below the geometric middle
        middle = math.sqrt(rng.low * rng.high)
        assert 0.3 < (nonzero < middle).mean() < 0.7, name
    assert {p["arch"] for p in params} == set(space.archs)
    assert {p["epochs"] for p in params} == set(space.epochs)


def test_w_class_is_searched_like_the_other_extension_weights():
    assert "w_class" in SEARCHED_WEIGHTS
    assert SearchSpace().w_class == WeightRange(1.0, 100.0, zero=0.5)
    config = TuneConfig(trials=40, presets=False, seed=2)
    values = [t.params(config)["w_class"] for t in trial_list(config)]
    assert values == [t.settings["w_class"] for t in trial_list(config)]  # what trains is drawn
    assert 0 in values and any(v > 0 for v in values)
    assert trial_list(config) == trial_list(TuneConfig(trials=40, presets=False, seed=2))


def test_attack_split_cuts_privacy_train_by_video_deterministically():
    rng = np.random.default_rng(0)
    ids = np.array([f"v{i:03d}" for i in range(100)])
    fit, val = attack_split(ids, seed=0)
    assert len(val) == 30 and len(fit) == 70  # 70/30 of the videos
    assert set(fit).isdisjoint(val) and sorted([*fit, *val]) == list(range(100))
    assert all(np.array_equal(a, b) for a, b in zip(attack_split(ids, 0), (fit, val), strict=True))
    assert not np.array_equal(attack_split(ids, 1)[1], val)  # seeded
    # row order does not matter: the same videos land on the attack-val side
    shuffled = rng.permutation(ids)
    assert set(shuffled[attack_split(shuffled, 0)[1]]) == set(ids[val])
    # every row (clip) of one video on the same side
    rows = rng.permutation(np.repeat(ids[:20], 4))
    fit_rows, val_rows = attack_split(rows, seed=3)
    assert sorted([*fit_rows, *val_rows]) == list(range(80))
    assert set(rows[fit_rows]).isdisjoint(rows[val_rows])
    assert len(set(rows[val_rows])) == 6
    # tiny splits keep one video on each side
    assert [len(x) for x in attack_split(np.array(["a", "b"]), 0)] == [1, 1]
    assert [len(x) for x in attack_split(ids, 0, val_fraction=0.5)] == [50, 50]
    # ids as a zarr store returns them (numpy StringDType): the same split
    as_store = ids.astype(np.dtypes.StringDType())
    from_store = attack_split(as_store, 0)
    assert all(np.array_equal(a, b) for a, b in zip(from_store, (fit, val), strict=True))


def test_scrambled_halton_is_a_seeded_prefix_stable_sequence():
    a = scrambled_halton(50, 7, seed=0)
    assert a.shape == (50, 7) and ((a >= 0) & (a < 1)).all()
    np.testing.assert_array_equal(scrambled_halton(20, 7, seed=0), a[:20])
    assert not np.allclose(scrambled_halton(50, 7, seed=1), a)
    # even coverage: every tenth of every axis gets 3-7 of 50 points
    counts = [np.bincount((a[:, j] * 10).astype(int), minlength=10) for j in range(7)]
    assert min(c.min() for c in counts) >= 3 and max(c.max() for c in counts) <= 7


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"trials": 0}, "trials must be at least 1"),
        ({"workers": 2, "scheduler": "tcp://h:8786"}, "not both"),
        ({"scheduler": "localhost"}, "tcp://"),
        ({"privacy": "maybe"}, "privacy must be one of"),
        ({"training": {"seed": 3}}, "may not set seed"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"attack_val_fraction": 1.0}, "attack_val_fraction"),
        ({"val_split": "privacy_test"}, "tune never reads privacy_test"),
        ({"privacy_train_split": "privacy_test"}, "tune never reads privacy_test"),
    ],
)
def test_config_errors_are_one_line(changes, message):
    with pytest.raises(ConfigError, match=message) as caught:
        TuneConfig(**changes)
    assert "\n" not in str(caught.value)


def test_search_identity_ignores_what_does_not_change_the_trials():
    base = TuneConfig()
    same = dataclasses.replace(base, trials=50, tolerance=2.0, workers=3, device="cuda")
    assert same.search_identity() == base.search_identity()
    assert dataclasses.replace(base, seed=1).search_identity() != base.search_identity()
    space = SearchSpace(epochs=(10,))
    assert dataclasses.replace(base, space=space).search_identity() != base.search_identity()


def _record(trial_id, utility, privacy, order, status="done"):
    return {
        "trial_id": trial_id,
        "utility": utility,
        "privacy": privacy,
        "order": order,
        "status": status,
    }


RECORDS = [
    _record("a", 0.95, 0.60, 0),
    _record("b", 0.895, 0.40, 1),
    _record("c", 0.85, 0.30, 2),
    _record("d", 0.89, 0.40, 3),  # as private as b, lower utility: b wins the tie
    _record("e", None, None, 4, status="failed"),
    _record("f", 0.97, None, 5),  # privacy unknown: never the most private
]


def test_selection_takes_the_most_private_trial_within_the_tolerance():
    chosen = select_trial(RECORDS, raw_utility=0.90, tolerance_points=1.0)
    assert chosen.trial_id == "b" and chosen.qualified
    assert chosen.bar == pytest.approx(0.89)
    assert "within 1 point" in chosen.reason
    # a looser tolerance lets the most private one in
    assert select_trial(RECORDS, 0.90, 5.0).trial_id == "c"


def test_selection_ties_go_to_higher_utility_then_to_the_earlier_trial():
    tied = [_record("x", 0.9, 0.5, 1), _record("y", 0.9, 0.5, 0), _record("z", 0.91, 0.5, 2)]
    assert select_trial(tied, 0.9, 1.0).trial_id == "z"
    assert select_trial(tied[:2], 0.9, 1.0).trial_id == "y"


def test_selection_without_a_qualifying_trial_takes_the_best_utility_and_says_so():
    chosen = select_trial(RECORDS, raw_utility=0.99, tolerance_points=1.0)
    assert chosen.trial_id == "f" and not chosen.qualified
    assert "no trial qualified" in chosen.reason
    assert select_trial(RECORDS[:4], None, 1.0).trial_id == "a"
    with pytest.raises(ConfigError, match="no trial finished"):
        select_trial([RECORDS[4]], 0.9, 1.0)


def test_pareto_front_keeps_the_trials_nothing_beats_on_both_counts():
    assert pareto_front(RECORDS) == ["a", "b", "c"]


def test_tune_warns_when_the_attacker_finds_nothing_in_the_raw_features():
    from pipeline.aam.tune.run import weak_attacker_warning

    def raw(static: float, clip: float) -> dict:
        by = {"static": {"value": static, "chance": 0.33}, "clip": {"value": clip, "chance": 0.33}}
        return {"privacy_by_source": by}

    warning = weak_attacker_warning(raw(0.35, 0.34), "attacker")
    assert warning is not None and "+0.020 cMAP over chance" in warning
    assert weak_attacker_warning(raw(0.60, 0.34), "attacker") is None  # one kind leaks: ranks
    assert weak_attacker_warning(raw(0.35, 0.34), "proxy") is None  # not cMAP
    assert weak_attacker_warning({"privacy_by_source": {}}, "attacker") is None
