"""tune(): train every trial of a search (in worker processes or on dask), score, choose, report.

Layout of the output directory:
    search.json             what the search is (a rerun must match it, or pass overwrite)
    raw.json                the raw features' scores (the utility bar, the privacy to beat)
    trials/<id>/adapter/    each trial's adapter (train_aam's output, resumable checkpoint)
    trials/<id>/result.json its params and scores, written last: the trial is done
    tune.json, tune.md      every trial sorted by privacy, the frontier, the chosen trial
    frontier.png            privacy vs val action top-1
    chosen/                 a copy of the chosen trial's adapter (what `sanitize --adapter` takes)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

import pipeline
from pipeline.aam.checkpoint import replace_directory
from pipeline.aam.from_store import setting_differences, usable_rows
from pipeline.aam.tune.config import TuneConfig
from pipeline.aam.tune.execute import Unit, dask_client, execute, worker_count
from pipeline.aam.tune.report import SELECTED_ON, sorted_by_privacy, write_reports
from pipeline.aam.tune.scoring import ScoringPlan, plan_scoring
from pipeline.aam.tune.select import pareto_front, select_trial
from pipeline.aam.tune.trials import trial_list
from pipeline.aam.tune.worker import (
    ADAPTER_DIR,
    RESULT_FILE,
    ReferenceJob,
    TrialJob,
    write_json,
)
from pipeline.errors import ConfigError, StoreError
from pipeline.probes.measurable import MIN_RAW_MARGIN, is_measurable
from pipeline.store.reader import FeatureStore, open_store

log = logging.getLogger(__name__)

SEARCH_FILE = "search.json"
RAW_FILE = "raw.json"
TRIALS_DIR = "trials"
CHOSEN_DIR = "chosen"
SEARCH_FORMAT = "anon-store.tune"
OWNED = (SEARCH_FILE, RAW_FILE, TRIALS_DIR, CHOSEN_DIR, "tune.json", "tune.md", "frontier.png")
"""What a search writes in its output directory (and what overwrite removes)."""
UTILITY_METRIC = "val action top-1 of a linear probe (fitted on train, as evaluate's)"

ProgressFn = Callable[..., None]
"""progress(trials_done, trials_total, **fields), as pipeline.cli_progress.progress_bar yields."""


@dataclass(frozen=True)
class TuneResult:
    """What the search found and where it wrote it."""

    output: str
    chosen: dict[str, Any]
    """The chosen trial's record (params, utility, privacy, ...)."""
    chosen_dir: str
    qualified: bool
    """False: no trial was within the tolerance; the chosen one has the best utility."""
    reason: str
    privacy_source: str
    """"attacker" or "proxy"."""
    raw: dict[str, Any]
    trials: list[dict[str, Any]]
    """Finished trials, lowest privacy first."""
    failed: list[dict[str, Any]]
    frontier: list[str]
    ran: list[str]
    """Trials run by this search (trained, resumed, or only scored when their adapter was
    finished); the others were complete already."""
    report_json: str
    report_markdown: str
    plot: str
    seconds: float


def _check_store(store: FeatureStore, config: TuneConfig) -> None:
    if int(store.group["static_features"].shape[1]) < 2:
        raise StoreError(f"{store.location} lacks static clips (training needs >= 2 per video)")
    for split in (config.train_split, config.val_split):
        if len(usable_rows(store, split)) == 0:
            raise StoreError(
                f"{store.location} has no usable videos with an action label in split '{split}'"
            )


def _clear(output: Path) -> None:
    for name in OWNED:
        path = output / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _prepare(output: Path, identity: dict[str, Any], overwrite: bool) -> None:
    """Refuse an output made by another search (or holding other files) unless overwrite."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output} exists and is not a directory")
    search = output / SEARCH_FILE
    if search.exists():
        try:
            saved = json.loads(search.read_text())
        except (OSError, ValueError):
            saved = {}
        if saved != identity:
            if not overwrite:
                changed = ", ".join(setting_differences(saved, identity)) or "the search"
                raise ConfigError(
                    f"{output} holds a search with other settings (changed: {changed}): "
                    "pass --overwrite to start over"
                )
            _clear(output)
    elif output.exists() and any(output.iterdir()):
        if not overwrite:
            raise ConfigError(
                f"{output} already exists and holds no search: pass --overwrite to use it"
            )
        _clear(output)
    write_json(search, identity)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _complete(path: Path, job: TrialJob) -> dict[str, Any] | None:
    """A trial's finished record when it matches the job (params, privacy source), else None."""
    try:
        record = json.loads((path / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    if (
        record.get("status") != "done"
        or record.get("params") != _json(job.params)
        or record.get("privacy_source") != job.plan.source
        or not (path / ADAPTER_DIR / "model.safetensors").is_file()
    ):
        return None
    return {**record, "order": job.order}


def _reference(path: Path, plan: ScoringPlan) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("privacy_source") == plan.source else None


ADAPTER_FILES = ("model.safetensors", "config.json", "metrics.json")


def _same_files(source: Path, target: Path) -> bool:
    try:
        return all((source / n).read_bytes() == (target / n).read_bytes() for n in ADAPTER_FILES)
    except OSError:
        return False


def _copy_adapter(source: Path, target: Path) -> None:
    """Replace ``target`` with a copy of the adapter directory ``source`` in one rename (left
    alone when it is that copy already: a rerun does not touch it)."""
    if _same_files(source, target):
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        for name in ADAPTER_FILES:
            shutil.copy2(source / name, tmp / name)
        replace_directory(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _run(
    url: str,
    out: Path,
    jobs: list[TrialJob],
    plan: ScoringPlan,
    config: TuneConfig,
    client: Any,
    progress: ProgressFn | None,
    say: Callable[[str], None],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    """Run the raw reference and every unfinished trial: (raw record, trial records by id,
    the ids of the trials run now)."""
    say(f"privacy measured by the {plan.source}: {plan.reason}; {plan.privacy_videos}")
    records: dict[str, dict[str, Any]] = {}
    units: list[Unit] = []
    raw = _reference(out / RAW_FILE, plan)
    if raw is None:
        units.append(ReferenceJob(url, str(out / RAW_FILE), plan))
    for job in jobs:
        record = _complete(Path(job.directory), job)
        if record is None:
            units.append(job)
        else:
            records[job.trial.trial_id] = record
    pending = [u.trial.trial_id for u in units if isinstance(u, TrialJob)]
    where = (
        f"on {config.scheduler}"
        if config.scheduler
        else f"in {worker_count(config, len(units))} worker process(es)"
    )
    say(
        f"{len(records)} of {len(jobs)} trials already complete; "
        + (f"running {len(pending)} {where}" if pending else "nothing to train")
    )
    if progress is not None:
        progress(len(records), len(jobs))

    def on_done(unit: Unit, record: dict[str, Any]) -> None:
        nonlocal raw
        if isinstance(unit, ReferenceJob):
            raw = record
            return
        records[unit.trial.trial_id] = record
        if record["status"] == "done":
            say(
                f"{unit.trial.trial_id}: val top-1 {_fmt(record['utility'])}, privacy "
                f"{_fmt(record['privacy'])} ({record['seconds']:.1f} s)"
            )
        else:
            say(f"{unit.trial.trial_id} failed: {record['error']}")
        if progress is not None:
            done = sum(1 for j in jobs if j.trial.trial_id in records)
            progress(done, len(jobs), trial=unit.trial.trial_id)

    execute(units, config, client, on_done)
    assert raw is not None
    return raw, records, pending


def tune(
    input: str | Path,
    output: str | Path,
    config: TuneConfig | None = None,
    *,
    progress: ProgressFn | None = None,
    notify: Callable[[str], None] | None = None,
) -> TuneResult:
    """Search the adapter's loss weights, architecture and epochs on a raw store; choose the
    trial with the lowest privacy among those within the utility tolerance of raw on val.

    Resumable: trials whose result.json is complete are not run again; unfinished ones resume
    from their checkpoint. ``notify(message)`` hears one line per decision (privacy source,
    trials reused, each trial finished).
    """
    started = time.perf_counter()
    config = config or TuneConfig()

    def say(message: str) -> None:
        if notify is not None:
            notify(message)

    store = open_store(input, kind="raw")
    _check_store(store, config)
    plan = plan_scoring(store, config)
    trials = trial_list(config)
    out = Path(output).absolute()
    identity = {
        "format": SEARCH_FORMAT,
        "version": 1,
        "store": {"store_id": store.store_id, "fingerprint": store.meta.get("fingerprint")},
        "search": _json(config.search_identity()),
        "privacy_source": plan.source,
    }
    budget = config.memory_budget_bytes or int(psutil.virtual_memory().available * 0.5)
    url = store.location.url
    jobs = [
        TrialJob(
            input=url,
            directory=str(out / TRIALS_DIR / trial.trial_id),
            trial=trial,
            order=i,
            params=trial.params(config),
            train=trial.train_config(config, budget),
            plan=plan,
        )
        for i, trial in enumerate(trials)
    ]  # built before anything is written: a trial that cannot be configured fails here
    with dask_client(config.scheduler) as client:  # reached before anything is written
        _prepare(out, identity, config.overwrite)
        raw, records, ran = _run(url, out, jobs, plan, config, client, progress, say)
    ordered = [records[j.trial.trial_id] for j in jobs]
    failed = [r for r in ordered if r.get("status") != "done"]
    finished = [r for r in ordered if r.get("status") == "done"]
    if not finished:
        raise ConfigError(
            f"every trial failed; the first: {failed[0]['trial_id']}: {failed[0].get('error')}"
        )
    weak = weak_attacker_warning(raw, plan.source)
    if weak:
        log.warning("%s", weak)
        say(weak)
    selection = select_trial(finished, raw.get("utility"), config.tolerance)
    frontier = pareto_front(finished)
    chosen = records[selection.trial_id]
    chosen_dir = out / CHOSEN_DIR
    _copy_adapter(out / chosen["adapter"], chosen_dir)
    summary = {
        "format": SEARCH_FORMAT,
        "version": 1,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "producer": {"name": "anon-store", "version": pipeline.__version__},
        "store": {"location": store.location.name, "store_id": store.store_id},
        "search": identity["search"],
        "trials_requested": config.trials,
        "utility": {"metric": UTILITY_METRIC, "split": config.val_split},
        "privacy": {
            "source": plan.source,
            "reason": plan.reason,
            "metric": plan.metric,
            "selected_on": SELECTED_ON,
            "videos": plan.privacy_videos,
            "splits_read": list(plan.splits),
            "seed": plan.seed,
            "untouched": plan.privacy_test_split,
            "counts": raw.get("privacy_videos"),
            "warning": weak,
        },
        "tolerance_points": config.tolerance,
        "raw": raw,
        "chosen": {
            "trial_id": selection.trial_id,
            "qualified": selection.qualified,
            "reason": selection.reason,
            "bar": selection.bar,
            "params": chosen["params"],
            "utility": chosen["utility"],
            "privacy": chosen["privacy"],
            "adapter": CHOSEN_DIR,
        },
        "frontier": frontier,
        "trials": sorted_by_privacy(finished),
        "failed": failed,
        "trial_seconds": round(sum(float(r.get("seconds") or 0) for r in finished), 3),
        "memory_budget_bytes": budget,
        "seconds": round(time.perf_counter() - started, 3),
    }
    json_path, md_path, plot_path = write_reports(out, summary)
    return TuneResult(
        output=str(out),
        chosen=chosen,
        chosen_dir=str(chosen_dir),
        qualified=selection.qualified,
        reason=selection.reason,
        privacy_source=plan.source,
        raw=raw,
        trials=summary["trials"],
        failed=failed,
        frontier=frontier,
        ran=ran,
        report_json=str(json_path),
        report_markdown=str(md_path),
        plot=str(plot_path),
        seconds=summary["seconds"],
    )


def weak_attacker_warning(raw: dict[str, Any], source: str) -> str | None:
    """A warning when the attacker finds next to nothing in the RAW features (every clip kind
    under MIN_RAW_MARGIN above chance): it then cannot rank the trials, and the selection's
    privacy side is noise. None otherwise (and for the proxies, which are not cMAP)."""
    if source != "attacker":
        return None
    margins = [
        float(v["value"]) - float(v["chance"])
        for v in (raw.get("privacy_by_source") or {}).values()
        if v.get("value") is not None and v.get("chance") is not None
    ]
    if not margins or is_measurable(max(margins)):
        return None
    return (
        f"the attacker reaches at most {max(margins):+.3f} cMAP over chance on the RAW features "
        f"(under {MIN_RAW_MARGIN:.2f}): it cannot rank the trials, so the choice among them is "
        "noise on the privacy side; use more labelled privacy videos, or --privacy proxy"
    )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
