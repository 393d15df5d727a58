"""tune() end to end on tiny real stores: outputs, chosen adapter, resume, refusals, dask."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
from aam.tune_helpers import WITH_PRIVACY, fast_config, write_tune_store

from pipeline.aam.checkpoint import load_adapter
from pipeline.aam.tune import tune
from pipeline.errors import ConfigError
from pipeline.probes.measurable import MIN_RAW_MARGIN

TRIAL_IDS = ["preset-recommended", "preset-reference", "sample-000"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return write_tune_store(tmp_path_factory.mktemp("tune") / "raw.zarr")


@pytest.fixture(scope="module")
def tuned(store, tmp_path_factory):
    """3 tiny trials (the two presets and one sample) on 2 spawned worker processes."""
    out = tmp_path_factory.mktemp("tuned") / "tuned"
    return tune(str(store), out, fast_config(workers=2)), out


def _mtimes(out: Path) -> dict[str, int]:
    files = [p for p in (out / "trials").rglob("*") if p.is_file()]
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in files}


def test_outputs_report_the_attacker_and_mark_frontier_and_chosen(tuned):
    result, out = tuned
    for name in ("tune.json", "tune.md", "frontier.png", "search.json", "raw.json"):
        assert (out / name).is_file(), name
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((out / "tune.json").read_text())
    assert report["privacy"]["source"] == result.privacy_source == "attacker"
    assert sorted(r["trial_id"] for r in report["trials"]) == sorted(TRIAL_IDS)
    privacy = [r["privacy"] for r in report["trials"]]
    assert privacy == sorted(privacy)
    assert report["chosen"]["trial_id"] == result.chosen["trial_id"]
    assert set(report["frontier"]) <= set(TRIAL_IDS) and result.chosen["trial_id"]
    for r in report["trials"]:
        assert set(r["privacy_by_source"]) == {"static", "clip"}
        assert r["privacy"] == max(v["value"] for v in r["privacy_by_source"].values())
        assert 0 <= r["utility"] <= 1 and r["seconds"] > 0
        saved = json.loads((out / "trials" / r["trial_id"] / "result.json").read_text())
        assert saved["params"] == r["params"] and saved["privacy_source"] == "attacker"
    markdown = (out / "tune.md").read_text()
    assert "attacker" in markdown and f"**{result.chosen['trial_id']}** (chosen)" in markdown
    assert "raw features" in markdown and "| w_class |" in markdown
    assert "privacy_train split 70/30 by video" in markdown
    assert "privacy_test untouched" in markdown
    # the warning that the attacker cannot rank trials appears exactly when raw barely leaks
    margin = max(v["value"] - v["chance"] for v in report["raw"]["privacy_by_source"].values())
    assert (report["privacy"]["warning"] is None) == (margin >= MIN_RAW_MARGIN)
    assert ("**warning**" in markdown) == (report["privacy"]["warning"] is not None)


def test_the_report_says_which_videos_the_attacker_used(tuned, store):
    from pipeline.store.reader import open_store

    result, out = tuned
    privacy = json.loads((out / "tune.json").read_text())["privacy"]
    assert privacy["splits_read"] == ["train", "val", "privacy_train"]
    assert privacy["untouched"] == "privacy_test"
    assert privacy["videos"].startswith("privacy_train split 70/30 by video")
    counts = privacy["counts"]
    usable = len(open_store(str(store)).rows("privacy_train"))
    assert counts["split"] == "privacy_train"
    assert counts["attack_fit_videos"] + counts["attack_val_videos"] == usable
    assert counts["attack_val_videos"] == round(0.3 * usable)
    for r in result.trials:  # every trial scored on the same videos as the raw features
        assert r["privacy_videos"] == counts == result.raw["privacy_videos"]


def test_the_attacker_never_reads_privacy_test(store, tmp_path, monkeypatch):
    """Without a privacy_test split (its videos renamed to test) tune still uses the attacker,
    and every score is the same to the bit: the privacy_test videos never counted."""
    import pipeline.probes.features as features_module
    from pipeline.aam.tune.scoring import plan_scoring, raw_features, score
    from pipeline.store.reader import open_store

    names = tuple("test" if n == "privacy_test" else n for n in WITH_PRIVACY)
    bare = write_tune_store(tmp_path / "bare.zarr", names=names)
    assert "privacy_test" not in open_store(str(bare)).splits()
    read = []
    real = features_module._load_split

    def spy(opened, split):
        read.append(split)
        return real(opened, split)

    monkeypatch.setattr(features_module, "_load_split", spy)
    config = fast_config()
    scores = []
    for path in (store, bare):
        plan = plan_scoring(open_store(str(path), kind="raw"), config)
        assert plan.source == "attacker" and "privacy_test" not in plan.splits
        scores.append(score(raw_features(str(path), plan), plan))
    assert read and "privacy_test" not in read
    assert scores[0]["privacy_by_source"] == scores[1]["privacy_by_source"]
    assert scores[0]["privacy_videos"] == scores[1]["privacy_videos"]
    assert scores[0]["privacy"] == scores[1]["privacy"] and math.isfinite(scores[0]["privacy"])


def test_chosen_is_the_chosen_trials_adapter_and_sanitize_accepts_it(tuned, store, tmp_path):
    from pipeline.sanitize import SanitizeConfig, sanitize
    from store_schema import validate

    result, out = tuned
    loaded = load_adapter(out / "chosen")
    trial = out / result.chosen["adapter"]
    assert loaded.adapter_hash == load_adapter(trial).adapter_hash
    assert loaded.config["training"]["epochs"] == result.chosen["params"]["epochs"] == 2
    sanitized = tmp_path / "sanitized.zarr"
    sanitize(str(store), out / "chosen", str(sanitized), SanitizeConfig(scheduler="synchronous"))
    assert validate(str(sanitized)) == []


def test_a_trial_gives_the_same_adapter_and_scores_in_this_process(tuned, store, tmp_path):
    result, out = tuned
    alone = tune(str(store), tmp_path / "alone", fast_config(trials=1, workers=1))
    [mine] = alone.trials
    theirs = next(r for r in result.trials if r["trial_id"] == mine["trial_id"])
    for key in ("utility", "privacy", "privacy_by_source", "params"):
        assert mine[key] == theirs[key], key
    a = tmp_path / "alone" / mine["adapter"] / "model.safetensors"
    assert a.read_bytes() == (out / theirs["adapter"] / "model.safetensors").read_bytes()
    assert alone.raw == {**result.raw, "seconds": alone.raw["seconds"]}


def test_a_rerun_trains_only_unfinished_trials(tuned, store, tmp_path, monkeypatch):
    import pipeline.aam.tune.worker as worker

    _, first = tuned
    out = tmp_path / "tuned"
    shutil.copytree(first, out)
    shutil.rmtree(out / "trials" / "sample-000")  # as if killed before it started
    (out / "trials" / "preset-reference" / "result.json").unlink()  # killed while scoring
    before = _mtimes(out)
    chosen = (out / "chosen" / "model.safetensors").stat().st_mtime_ns
    calls = []
    real = worker.train_aam

    def counting(store, output, config, **kwargs):
        calls.append(Path(output).parent.name)
        return real(store, output, config, **kwargs)

    monkeypatch.setattr(worker, "train_aam", counting)
    again = tune(str(store), out, fast_config(workers=1))
    assert calls == ["sample-000"] and again.ran == ["preset-reference", "sample-000"]
    after = _mtimes(out)
    assert {k: v for k, v in after.items() if k in before} == before
    assert (out / "trials" / "preset-reference" / "result.json").is_file()
    assert (out / "chosen" / "model.safetensors").stat().st_mtime_ns == chosen
    # a rerun of a finished search trains nothing; growing it trains only the new trials
    calls.clear()
    assert tune(str(store), out, fast_config(workers=1)).ran == []
    grown = tune(str(store), out, fast_config(trials=4, workers=1))
    assert calls == ["sample-001"] and grown.ran == ["sample-001"] and len(grown.trials) == 4


def test_a_search_with_other_settings_is_refused_unless_overwrite(tuned, store):
    _, out = tuned
    with pytest.raises(ConfigError, match=r"other settings .*seed.* pass --overwrite") as caught:
        tune(str(store), out, fast_config(seed=1))
    assert "\n" not in str(caught.value)
    changed = dataclasses.replace(fast_config(), max_epochs=1)
    with pytest.raises(ConfigError, match="max_epochs"):
        tune(str(store), out, changed)


def test_an_output_holding_other_files_is_refused(store, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no search"):
        tune(str(store), out, fast_config(trials=1))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_trials_run_on_a_dask_cluster(tuned, store, tmp_path):
    from distributed import LocalCluster

    result, _ = tuned
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:  # fmt: skip
        on_dask = tune(
            str(store),
            tmp_path / "dask",
            fast_config(trials=2, workers=None, scheduler=cluster.scheduler_address),
        )
    by_id = {r["trial_id"]: r for r in result.trials}
    assert len(on_dask.trials) == 2
    for r in on_dask.trials:
        assert (r["utility"], r["privacy"]) == (
            by_id[r["trial_id"]]["utility"],
            by_id[r["trial_id"]]["privacy"],
        )
