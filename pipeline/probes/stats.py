"""Seeds and confidence intervals: every probe number is a mean over seeds with a t-interval."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the two-sided t confidence interval of the mean.

    Non-finite values are left out; with fewer than two values the half-width is NaN (an
    interval from one seed would claim a precision nobody measured).
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan
    sem = float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * sem


def finite_or_none(value: Any) -> float | None:
    """JSON-safe float: NaN and inf become None (null)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def summarize(
    values: Sequence[float], seeds: Sequence[int], confidence: float = 0.95
) -> dict[str, Any]:
    """{mean, ci, confidence, std, n, values, seeds} of one metric over seeds (JSON-safe)."""
    mean, half = mean_ci(values, confidence)
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return {
        "mean": finite_or_none(mean),
        "ci": finite_or_none(half),
        "confidence": confidence,
        "std": finite_or_none(np.std(finite, ddof=1)) if len(finite) > 1 else None,
        "n": len(finite),
        "values": [finite_or_none(v) for v in values],
        "seeds": [int(s) for s in seeds],
    }


def summarize_runs(
    runs: Sequence[Mapping[str, float]], seeds: Sequence[int], confidence: float = 0.95
) -> dict[str, dict[str, Any]]:
    """Per-metric summaries of per-seed metric dicts (a metric missing in a run counts as NaN)."""
    names = list(dict.fromkeys(k for run in runs for k in run))
    return {
        name: summarize([run.get(name, math.nan) for run in runs], seeds, confidence)
        for name in names
    }
