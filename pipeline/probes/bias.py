"""Gender bias: an action head trained on bias_train, accuracy per attribute value on bias_test."""

from __future__ import annotations

import math

import numpy as np

from pipeline.probes.action import LinearProbeConfig, fit_action_head, labelled
from pipeline.probes.features import VideoSet


def bias_probe(
    train: VideoSet,
    test: VideoSet,
    attribute: str,
    value_names: tuple[str, ...],
    num_classes: int,
    seed: int,
    config: LinearProbeConfig = LinearProbeConfig(),
) -> dict[str, float]:
    """{accuracy, gap, acc_<value>...} of one seed.

    The weight decay is chosen on a seeded hold-out of bias_train (bias_test never guides any
    choice). gap = max - min accuracy over the attribute's values present in bias_test, i.e.
    |acc_g0 - acc_g1| for a binary attribute.
    """
    fitted = fit_action_head(train, None, num_classes, seed, config, stream="bias")
    test = labelled(test)
    correct = fitted.probabilities(test).argmax(axis=1) == test.action
    values = test.attributes[attribute]
    out: dict[str, float] = {"accuracy": float(correct.mean()) if len(correct) else math.nan}
    per_value = []
    for index, name in enumerate(value_names):
        rows = values == index
        acc = float(correct[rows].mean()) if rows.any() else math.nan
        out[f"acc_{name}"] = acc
        if rows.any():
            per_value.append(acc)
    out["gap"] = float(np.max(per_value) - np.min(per_value)) if len(per_value) >= 2 else math.nan
    return out
