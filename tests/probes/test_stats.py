"""Means and t confidence intervals over seeds."""

from __future__ import annotations

import json
import math

import pytest

from pipeline.probes.stats import mean_ci, summarize, summarize_runs


def test_t_interval_by_hand():
    mean, half = mean_ci([1.0, 2.0, 3.0])
    # sd 1, sem 1/sqrt(3), t_{0.975, 2} = 4.302653
    assert mean == 2.0
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    _, half90 = mean_ci([1.0, 2.0, 3.0], confidence=0.9)
    assert half90 == pytest.approx(2.919986 / math.sqrt(3), rel=1e-5)


def test_one_value_has_no_interval_and_nan_is_left_out():
    assert mean_ci([0.5])[0] == 0.5 and math.isnan(mean_ci([0.5])[1])
    assert mean_ci([1.0, math.nan, 3.0])[0] == 2.0
    assert all(math.isnan(v) for v in mean_ci([]))


def test_summaries_are_json_safe():
    s = summarize([0.5, math.nan, 0.7], [0, 1, 2])
    assert s["mean"] == pytest.approx(0.6) and s["n"] == 2
    assert s["values"] == [0.5, None, 0.7] and s["seeds"] == [0, 1, 2]
    json.dumps(s, allow_nan=False)
    runs = summarize_runs([{"a": 1.0}, {"a": 2.0, "b": 3.0}], [0, 1])
    assert runs["a"]["mean"] == 1.5 and runs["b"]["n"] == 1
