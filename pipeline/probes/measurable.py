"""When an attacker's cut can be read at all: the raw features must leak measurably above chance.

Leakage = (cMAP - chance) / (cMAP_raw - chance) divides by what the raw features' attacker found
above chance. When that is a few points, the ratio is the attackers' noise amplified (a sanitized
cMAP 0.01 off moves it by 0.2-1.0) and its sign flips with the denominator's: a gate reading it
would pass or refuse at random. Such a setting is "unmeasured": its leakage is not a figure, and
the only thing the audit can say is how far above chance the sanitized store's own attacker got.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIN_RAW_MARGIN = 0.05
"""Smallest raw cMAP above chance (absolute, 0.05 = 5 points) for which a cut is read. Below
it the raw features' attacker found next to nothing: either the features do not carry the
attributes for that attacker, or the privacy split is too small to show it."""


def is_measurable(margin: float) -> bool:
    """Whether a raw cMAP this far above chance lets a cut be read (the one rule every reader
    of attacker figures applies: audit, publish, evaluate, tune)."""
    return margin >= MIN_RAW_MARGIN


def _mean(entry: Mapping[str, Any] | None) -> float | None:
    value = (entry or {}).get("mean")
    return None if value is None or not math.isfinite(float(value)) else float(value)


@dataclass(frozen=True)
class Measurability:
    """What an audit's attacker settings allow a reader (and the publish gate) to conclude."""

    max_leakage: float | None
    """Worst leakage over the settings whose raw signal is measurable (None: none is)."""
    measured: tuple[str, ...]
    """Settings with a raw cMAP at least MIN_RAW_MARGIN above chance."""
    unmeasured: tuple[str, ...]
    """Settings whose raw cMAP is below that: their leakage is not read."""
    max_unmeasured_excess: float | None
    """Largest sanitized cMAP - chance over the unmeasured settings (None: there are none)."""


def raw_margin(entry: Mapping[str, Any]) -> float | None:
    """Raw cMAP minus chance of one audit setting (means over seeds), None without the raw run."""
    raw, chance = _mean(entry.get("raw_cmap_person")), _mean(entry.get("chance_person"))
    return None if raw is None or chance is None else raw - chance


def measurability(results: Mapping[str, Mapping[str, Any]]) -> Measurability:
    """Split an audit's per-setting results (``audit`` record's ``results``) into measured and
    unmeasured settings; skipped settings and settings without a raw run are in neither."""
    measured: list[str] = []
    unmeasured: list[str] = []
    leakages: list[float] = []
    excess: list[float] = []
    for setting, entry in results.items():
        margin = None if "skipped" in entry else raw_margin(entry)
        if margin is None:
            continue
        if is_measurable(margin):
            measured.append(setting)
            leakage = _mean(entry.get("leakage_person"))
            if leakage is not None:
                leakages.append(leakage)
            continue
        unmeasured.append(setting)
        cmap, chance = _mean(entry.get("cmap_person")), _mean(entry.get("chance_person"))
        if cmap is not None and chance is not None:
            excess.append(cmap - chance)
    return Measurability(
        max_leakage=max(leakages) if leakages else None,
        measured=tuple(measured),
        unmeasured=tuple(unmeasured),
        max_unmeasured_excess=max(excess) if excess else None,
    )


def weak_raw_probes(raw_probes: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """{privacy probe: raw cMAP - chance} of the raw method's privacy probes whose cut cannot be
    read (``evaluate``'s per-method probes dict)."""
    weak: dict[str, float] = {}
    for name, probe in raw_probes.items():
        if not name.startswith("privacy_"):
            continue
        metrics = probe.get("metrics") or {}
        cmap, chance = _mean(metrics.get("cmap_person")), _mean(metrics.get("chance_person"))
        if cmap is not None and chance is not None and not is_measurable(cmap - chance):
            weak[name] = cmap - chance
    return weak
