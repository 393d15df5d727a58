"""Attackers: a linearly planted attribute is found (and gone after LEACE / INLP); an XOR-planted
attribute is found by the MLP and missed by the linear attacker; chance is the positive rate."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.probes.action import LinearProbeConfig, action_probe
from pipeline.probes.attacker import AttackerConfig, IndicatorColumns, attack, masked_bce
from pipeline.probes.baselines import inlp_method, leace_method
from pipeline.probes.features import ProbeFeatures

from .synthetic import DATASET, trimmed

FAST = AttackerConfig(lr=1e-2, max_epochs=40, patience=8, batch_size=256)
PROBE = LinearProbeConfig(weight_decays=(1e-3, 1e-1), max_iter=50)


def _privacy(seed: int, n_train: int = 240, n_test: int = 160, **kwargs) -> ProbeFeatures:
    rng = np.random.default_rng(seed)
    splits = {
        "privacy_train": trimmed(n_train, rng, **kwargs),
        "privacy_test": trimmed(n_test, rng, **kwargs),
        "train": trimmed(100, rng, **kwargs),
        "test": trimmed(60, rng, **kwargs),
    }
    return ProbeFeatures(DATASET, splits)


def _attack(f: ProbeFeatures, kind: str, source: str = "static", seed: int = 0) -> dict:
    return attack(
        f["privacy_train"], f["privacy_test"], f.dataset,
        kind=kind, source=source, seed=seed, config=FAST,
    )  # fmt: skip


def test_indicator_columns_are_one_hot_with_unknowns_masked():
    columns = IndicatorColumns.of(DATASET, ["gender", "skin"])
    assert columns.attribute == ("gender",) * 2 + ("skin",) * 4
    videos = trimmed(3, np.random.default_rng(0))
    videos.attributes["gender"][:] = [0, 1, -1]
    videos.attributes["skin"][:] = [3, 0, 1]
    targets, known = columns.encode(videos)
    assert targets[:, :2].tolist() == [[1, 0], [0, 1], [0, 0]]
    assert known[:, :2].tolist() == [[True, True], [True, True], [False, False]]
    assert targets[:, 2:].sum(axis=1).tolist() == [1, 1, 1]


def test_masked_bce_ignores_unknown_entries():
    import torch

    logits = torch.tensor([[0.0, 50.0]])
    targets = torch.tensor([[1.0, 0.0]])
    loss = masked_bce(logits, targets, torch.tensor([[1.0, 0.0]]))
    assert float(loss) == pytest.approx(float(torch.log(torch.tensor(2.0))))


def test_linear_attribute_is_found_then_erased_by_leace():
    raw = _privacy(0)
    before = _attack(raw, "linear")
    assert before["ap_skin"] > 0.9 and before["ap_gender"] > 0.9 and before["ap_scene"] > 0.9
    assert before["ap_hat"] < 0.6  # hat carries no signal
    assert before["chance_person"] == pytest.approx(
        (4 * 0.25 + 2 * 0.5 + 2 * 0.5) / 8, abs=0.03
    )  # mean positive rate over the 8 person value indicators
    erased = leace_method(raw)
    for kind in ("linear", "mlp"):
        after = _attack(erased, kind)
        leakage = (after["cmap_person"] - after["chance_person"]) / (
            before["cmap_person"] - before["chance_person"]
        )
        assert leakage < 0.15, kind  # near chance: raw sits ~0.45 above it
        assert after["ap_scene"] > 0.9  # context attributes are not erased
    # motion features of the seen task survive: the action is read from the erased clips as
    # well as from the raw ones (only the person directions were removed)
    assert erased.feature_dim == raw.feature_dim
    top1 = {
        name: action_probe(f["train"], None, f["test"], len(DATASET.actions), seed=0, config=PROBE)[
            "top1"
        ]
        for name, f in (("raw", raw), ("erased", erased))
    }
    assert top1["raw"] > 0.9 and top1["erased"] >= top1["raw"] - 0.05, top1


def test_inlp_removes_linear_person_information():
    raw = _privacy(1)
    before = _attack(raw, "linear")
    after = _attack(inlp_method(raw), "linear")
    leakage = (after["cmap_person"] - after["chance_person"]) / (
        before["cmap_person"] - before["chance_person"]
    )
    assert leakage < 0.15
    assert after["ap_scene"] > 0.85


def test_mlp_finds_an_xor_attribute_the_linear_attacker_misses():
    f = _privacy(2, xor_attribute=True)
    mlp = _attack(f, "mlp")
    linear = _attack(f, "linear")
    assert mlp["ap_gender"] > 0.85
    assert linear["ap_gender"] < 0.6
    assert mlp["ap_skin"] > 0.9 and linear["ap_skin"] > 0.9


def test_attacker_on_normal_clips_and_determinism():
    f = _privacy(3, n_train=120, n_test=80)
    a = _attack(f, "mlp", source="clip", seed=5)
    b = _attack(f, "mlp", source="clip", seed=5)
    assert a == b
    assert a["ap_skin"] > 0.8
