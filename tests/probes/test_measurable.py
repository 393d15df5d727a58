"""Which attacker settings a cut can be read on: raw cMAP far enough above chance."""

from __future__ import annotations

import math

from pipeline.probes.evaluate import _leakage
from pipeline.probes.measurable import MIN_RAW_MARGIN, measurability, weak_raw_probes
from pipeline.probes.report import _unmeasured_notes


def _entry(cmap: float, chance: float, raw: float | None, leakage: float | None = None) -> dict:
    entry = {"cmap_person": {"mean": cmap}, "chance_person": {"mean": chance}}
    if raw is not None:
        entry["raw_cmap_person"] = {"mean": raw}
    if leakage is not None:
        entry["leakage_person"] = {"mean": leakage}
    return entry


def test_measurability_splits_settings_by_the_raw_margin():
    results = {
        "mlp_static": _entry(0.40, 0.33, 0.70, leakage=0.19),
        "linear_static": _entry(0.45, 0.33, 0.60, leakage=0.44),
        "mlp_clip": _entry(0.36, 0.33, 0.35, leakage=1.5),  # 0.02 above chance: noise
        "linear_clip": {"skipped": "no normal clips"},
    }
    readable = measurability(results)
    assert readable.measured == ("mlp_static", "linear_static")
    assert readable.unmeasured == ("mlp_clip",)
    assert readable.max_leakage == 0.44  # the noise ratio 1.5 is not a figure
    assert math.isclose(readable.max_unmeasured_excess, 0.03)
    # just above / below the margin; without a raw run a setting is in neither list
    above = measurability({"s": _entry(0.4, 0.3, 0.301 + MIN_RAW_MARGIN, leakage=0.2)})
    below = measurability({"s": _entry(0.4, 0.3, 0.299 + MIN_RAW_MARGIN, leakage=0.2)})
    assert above.measured == ("s",) and below.unmeasured == ("s",)
    assert measurability({"s": _entry(0.4, 0.3, None)}).measured == ()
    assert measurability({"s": _entry(0.4, 0.3, None)}).unmeasured == ()


def test_leakage_is_not_a_number_when_raw_features_are_at_or_below_chance():
    run = {"cmap_person": 0.40, "chance_person": 0.33}
    assert math.isnan(_leakage(run, {"cmap_person": 0.31, "chance_person": 0.33}))  # sign flip
    assert math.isnan(_leakage(run, {"cmap_person": 0.33, "chance_person": 0.33}))
    assert math.isclose(_leakage(run, {"cmap_person": 0.47, "chance_person": 0.33}), 0.5)


def test_report_names_the_settings_where_raw_features_barely_leak():
    def probe(cmap: float) -> dict:
        return {"metrics": {"cmap_person": {"mean": cmap}, "chance_person": {"mean": 0.33}}}

    raw = {"privacy_mlp_static": probe(0.60), "privacy_mlp_clip": probe(0.35), "action": {}}
    assert set(weak_raw_probes(raw)) == {"privacy_mlp_clip"}
    data = {"raw_method": "raw", "methods": {"raw": {"probes": raw}}}
    notes = "\n".join(_unmeasured_notes(data))
    assert "privacy_mlp_clip: raw +2.0 over chance" in notes and "mlp_static" not in notes
    strong = {"raw_method": "raw", "methods": {"raw": {"probes": {"privacy_x": probe(0.6)}}}}
    assert _unmeasured_notes(strong) == []
