"""Choosing a trial: the lowest privacy among those within the utility tolerance of raw."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class Selection:
    """The chosen trial and why."""

    trial_id: str
    qualified: bool
    """True: within the tolerance of raw. False: none was, this is the best utility."""
    bar: float | None
    """The utility a trial needed (raw's minus the tolerance), as a fraction."""
    reason: str
    """One line for the report and the CLI."""


def _num(value: Any, worst: float) -> float:
    return float(value) if value is not None and math.isfinite(float(value)) else worst


def done(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials that finished with a utility (failed ones cannot be chosen)."""
    return [r for r in records if r.get("status") == "done" and r.get("utility") is not None]


def pareto_front(records: Sequence[dict[str, Any]]) -> list[str]:
    """Ids of the finished trials no other trial beats on both counts (utility at least as
    high and privacy at least as low, one strictly), in trial order; a trial without a privacy
    figure is not on it."""
    points = [
        (r["trial_id"], float(r["utility"]), _num(r.get("privacy"), math.inf))
        for r in done(records)
    ]
    points = [p for p in points if math.isfinite(p[2])]

    def beaten(u: float, p: float) -> bool:
        return any(u2 >= u and p2 <= p and (u2 > u or p2 < p) for _, u2, p2 in points)

    return [tid for tid, u, p in points if not beaten(u, p)]


def select_trial(
    records: Sequence[dict[str, Any]], raw_utility: float | None, tolerance_points: float
) -> Selection:
    """Lowest privacy among the trials whose val utility is at least raw's minus
    ``tolerance_points`` / 100; ties: higher utility, then the earlier trial (presets first).
    When none qualifies (or raw's utility is unknown): the highest utility; ties: lower
    privacy, then the earlier trial."""
    finished = done(records)
    if not finished:
        raise ConfigError("no trial finished: nothing to choose from")

    def order(r: dict[str, Any]) -> int:
        return int(r.get("order", 0))

    bar = None if raw_utility is None else raw_utility - tolerance_points / 100.0
    if bar is not None:
        eligible = [r for r in finished if r["utility"] >= bar - 1e-9]
        if eligible:
            best = min(
                eligible, key=lambda r: (_num(r.get("privacy"), math.inf), -r["utility"], order(r))
            )
            return Selection(
                best["trial_id"],
                True,
                bar,
                f"lowest privacy among the {len(eligible)} of {len(finished)} trials within "
                f"{tolerance_points:g} point(s) of the raw features' val top-1",
            )
    best = min(finished, key=lambda r: (-r["utility"], _num(r.get("privacy"), math.inf), order(r)))
    why = "raw utility unknown" if bar is None else f"none within {tolerance_points:g} point(s)"
    return Selection(
        best["trial_id"],
        False,
        bar,
        f"no trial qualified ({why} of the raw features' val top-1): chose the best utility",
    )
