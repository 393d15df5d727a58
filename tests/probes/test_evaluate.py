"""evaluate(): every probe for every method (stores, loaded features, transforms), the report
files, the summary, leakage against raw, and skipped probes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.probes.baselines import BASELINES
from pipeline.probes.evaluate import SUMMARY_KEYS, EvalConfig, evaluate
from pipeline.probes.report import EvalReport

from .store_helpers import write_store
from .synthetic import DATASET, features, trimmed, untrimmed

FAST = EvalConfig.fast()
PERSON_DIMS = [4, 5, 6, 7, 11]


def _scrub(x: np.ndarray, part: str) -> np.ndarray:
    """A perfect sanitizer of the planted data: person dims replaced by fixed noise."""
    out = x.copy()
    rng = np.random.default_rng(len(x))
    out[..., PERSON_DIMS] = rng.standard_normal((*x.shape[:-1], len(PERSON_DIMS)))
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    planted = features(0)
    raw = write_store(root / "raw.zarr", planted)
    sanitized = write_store(root / "sanitized.zarr", planted.map_features(_scrub), kind="sanitized")
    calls = []
    stores = {
        "raw": raw.url,
        "aam": sanitized.url,
        "leace": BASELINES["leace"],
        "aam_no_privacy_loss": planted,
    }
    result = evaluate(
        stores, root / "report", FAST, progress=lambda done, total, **kw: calls.append(done)
    )
    return result, calls


def test_report_files_are_written_and_parse(report):
    result, calls = report
    assert isinstance(result, EvalReport)
    data = json.loads(result.json_path.read_text())
    assert data["format"] == "anon-store.eval-report"
    assert result.markdown_path.read_text().startswith("# anon-store evaluation")
    assert result.plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert EvalReport.load(result.output_dir).summary == result.summary
    assert calls[-1] == len(calls)  # progress reached the total, one tick per probe run


def test_summary_has_every_key_as_fractions(report):
    result, _ = report
    assert list(result.summary) == ["raw", "aam", "leace", "aam_no_privacy_loss"]
    for method, row in result.summary.items():
        assert set(row) == set(SUMMARY_KEYS), method
        for key, value in row.items():
            assert value is not None and 0.0 <= value <= 1.0, (method, key, value)


def test_every_number_has_its_seeds(report):
    result, _ = report
    top1 = result.metric("raw", "action", "top1")
    assert top1["seeds"] == [0, 1, 2] and len(top1["values"]) == 3
    assert top1["mean"] == pytest.approx(np.mean(top1["values"]))
    assert top1["ci"] is not None
    runs = result.methods["raw"]["probes"]["privacy_mlp_static"]["runs"]
    assert [r["seed"] for r in runs] == [0, 1, 2]


def test_sanitized_methods_leak_less_and_keep_utility(report):
    s = report[0].summary
    assert s["raw"]["privacy_cmap_mlp"] - s["raw"]["privacy_chance"] > 0.3
    for method in ("aam", "leace"):
        assert s[method]["privacy_cmap_linear"] < s["raw"]["privacy_cmap_linear"] - 0.2, method
    assert s["aam"]["privacy_cmap_mlp"] - s["aam"]["privacy_chance"] < 0.1
    assert s["aam"]["action_top1"] > 0.9 and s["raw"]["action_top1"] > 0.9
    assert s["aam_no_privacy_loss"]["privacy_cmap_mlp"] == s["raw"]["privacy_cmap_mlp"]
    leak = report[0].metric("aam", "privacy_mlp_static", "leakage_person")
    assert leak["mean"] < 0.25
    assert report[0].metric("raw", "privacy_mlp_static", "leakage_person")["mean"] == 1.0


def test_markdown_shape(report):
    result, _ = report
    table = result.headline_table()
    header = table.splitlines()[0]
    for column in ("privacy cMAP (static, MLP)", "privacy cMAP (normal clips)", "linear",
                   "action top-1", "TAD mAP", "anomaly AUC", "gender gap"):  # fmt: skip
        assert column in header
    rows = [line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]]
    assert rows == ["raw", "aam", "leace"]  # the ablation goes to its own section
    md = result.markdown()
    assert "## Ablations" in md and "aam_no_privacy_loss" in md.split("## Ablations")[1]
    assert " ± " in table and "scene (context)" in md and "## Gender bias" in md


def test_missing_splits_are_skipped_not_failed(tmp_path):
    planted = features(1)
    trimmed_only = type(planted)(
        planted.dataset,
        {k: v for k, v in planted.splits.items() if not k.startswith(("tad", "anomaly"))},
    )
    config = EvalConfig(seeds=(0,), probes=("action", "tad", "anomaly"), action=FAST.action)
    result = evaluate({"raw": trimmed_only}, tmp_path, config)
    assert "skipped" in result.methods["raw"]["probes"]["tad"]
    assert result.summary["raw"]["tad_map"] is None
    assert result.summary["raw"]["action_top1"] > 0.9
    assert result.summary["raw"]["privacy_cmap_mlp"] is None
    json.loads(result.json_path.read_text())


def test_bad_calls_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="raw"):
        evaluate({"aam": features(0)}, tmp_path)
    with pytest.raises(ConfigError, match="transform"):
        evaluate({"raw": BASELINES["leace"]}, tmp_path)
    with pytest.raises(ConfigError, match="seed"):
        EvalConfig(seeds=())
    with pytest.raises(ConfigError, match="probe"):
        EvalConfig(probes=("nope",))


def test_tiny_splits_give_valid_reports(tmp_path):
    """Splits as small as the synthetic "tiny" scale: numbers may be missing, never invalid."""
    rng = np.random.default_rng(4)
    sizes = {"train": 6, "val": 2, "test": 6, "privacy_train": 4, "privacy_test": 4,
             "bias_train": 4, "bias_test": 4}  # fmt: skip
    splits = {name: trimmed(n, rng) for name, n in sizes.items()}
    splits.update(
        tad_train=untrimmed(3, rng, frames=96), tad_test=untrimmed(2, rng, frames=96),
        anomaly_train=untrimmed(6, rng, frames=96, anomaly=True),
        anomaly_test=untrimmed(2, rng, frames=96, anomaly=True),
    )  # fmt: skip
    tiny = type(features(0))(DATASET, splits)
    result = evaluate({"raw": tiny, "leace": BASELINES["leace"]}, tmp_path, EvalConfig.fast())
    json.loads(result.json_path.read_text())
    for row in result.summary.values():
        assert set(row) == set(SUMMARY_KEYS)
        assert all(v is None or 0.0 <= v <= 1.0 for v in row.values()), row


def test_a_method_with_one_feature_set_per_seed_pairs_them(tmp_path):
    """Adapter seeds: probe seed i runs on feature set i (raw here, scrubbed, raw)."""
    planted = features(0)
    scrubbed = planted.map_features(_scrub)
    config = EvalConfig.fast(probes=("privacy",), attackers=("linear",), attack_sources=("static",))
    result = evaluate({"raw": planted, "aam": [planted, scrubbed, planted]}, tmp_path / "r", config)
    raw_runs = result.methods["raw"]["probes"]["privacy_linear_static"]["runs"]
    aam_runs = result.methods["aam"]["probes"]["privacy_linear_static"]["runs"]
    assert aam_runs[0]["cmap_person"] == pytest.approx(raw_runs[0]["cmap_person"])
    assert aam_runs[2]["cmap_person"] == pytest.approx(raw_runs[2]["cmap_person"])
    assert aam_runs[1]["cmap_person"] < raw_runs[1]["cmap_person"] - 0.1
    assert result.methods["aam"]["notes"]["feature_sets"] == 3
    with pytest.raises(ConfigError, match="feature sets"):
        evaluate({"raw": planted, "aam": [planted, scrubbed]}, tmp_path / "r2", config)


def test_worker_processes_give_the_same_numbers(report, tmp_path):
    result, _ = report
    data = json.loads(result.json_path.read_text())
    stores = {name: data["methods"][name]["source"].get("store") for name in ("raw", "aam")}
    stores["leace"] = BASELINES["leace"]
    calls = []
    parallel = evaluate(
        stores, tmp_path / "parallel", dataclasses.replace(FAST, workers=2),
        progress=lambda done, total, **kw: calls.append((done, total)),
    )  # fmt: skip
    for name in stores:
        assert parallel.summary[name] == result.summary[name], name
    assert calls[-1][0] == calls[-1][1]  # progress reaches the total, one call per method
    assert list(json.loads(parallel.json_path.read_text())["methods"]) == list(stores)


def test_methods_that_cannot_reach_a_worker_are_refused_up_front(tmp_path):
    planted = features(0)
    stores = {"raw": planted, "odd": lambda raw: raw}
    with pytest.raises(ConfigError, match=r"odd.*workers=1"):
        evaluate(stores, tmp_path / "r", dataclasses.replace(FAST, workers=2))
    assert not (tmp_path / "r").exists()
