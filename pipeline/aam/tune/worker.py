"""One unit of a search, run wherever a worker is: train a trial's adapter and score it.

Everything here is a plain value or an importable function, so it runs the same in this
process, in a spawned worker process or on a dask worker; torch uses one thread in each (a
tiny adapter gains nothing from more, and the result then does not depend on where it ran).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.aam.checkpoint import CONFIG_FILE, METRICS_FILE, MODEL_FILE
from pipeline.aam.from_store import TrainAAMConfig, train_aam
from pipeline.aam.tune.scoring import ScoringPlan, finite, raw_features, score
from pipeline.aam.tune.trials import Trial
from pipeline.errors import ConfigError
from pipeline.sanitize.in_memory import AdapterTransform
from pipeline.threads import torch_threads

ADAPTER_DIR = "adapter"
RESULT_FILE = "result.json"
RESULT_FORMAT = "anon-store.tune-trial"


@dataclass(frozen=True)
class TrialJob:
    """Train ``trial`` on ``input`` into ``directory``/adapter, score it, write result.json."""

    input: str
    directory: str
    trial: Trial
    order: int
    """Position in the trial list (the last tie-break of the selection)."""
    params: dict[str, Any]
    train: TrainAAMConfig
    plan: ScoringPlan
    threads: int = 1


@dataclass(frozen=True)
class ReferenceJob:
    """Score the raw features themselves (the utility bar and the privacy to beat)."""

    input: str
    path: str
    plan: ScoringPlan
    threads: int = 1


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically (temporary file, then rename): a reader sees all of it or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    """JSON types only; NaN and inf become null (JSON has neither)."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _training_identity(config: TrainAAMConfig) -> dict[str, Any]:
    training = dataclasses.asdict(config.training)
    training.pop("device", None)
    return _jsonable(training)


def _finished_adapter(adapter: Path, config: TrainAAMConfig) -> dict[str, Any] | None:
    """The selected record of a finished adapter trained with exactly ``config``, else None."""
    if not (adapter / MODEL_FILE).is_file():
        return None
    try:
        saved = json.loads((adapter / CONFIG_FILE).read_text())
        metrics = json.loads((adapter / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return None
    training = dict(saved.get("training") or {})
    training.pop("device", None)
    shape = saved.get("adapter") or {}
    try:
        wanted = dataclasses.asdict(config.adapter_config(int(shape["dim"])))
    except (KeyError, TypeError, ValueError, ConfigError):
        return None
    if training != _training_identity(config) or shape != _jsonable(wanted):
        return None
    return metrics.get("selected") or {}


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_trial(job: TrialJob) -> dict[str, Any]:
    """Train (or resume, or reuse a finished adapter), score, record; never raises for a
    failing trial: the record says ``status: failed`` and why, and is not written (a rerun
    tries again)."""
    started = time.perf_counter()
    directory = Path(job.directory)
    adapter = directory / ADAPTER_DIR
    base = {
        "format": RESULT_FORMAT,
        "version": 1,
        "trial_id": job.trial.trial_id,
        "origin": job.trial.origin,
        "preset": job.trial.preset,
        "order": job.order,
        "params": job.params,
    }
    try:
        with torch_threads(job.threads):
            selected = _finished_adapter(adapter, job.train)
            trained = selected is None
            if trained:
                config = dataclasses.replace(job.train, overwrite=True)  # a stale adapter only
                selected = train_aam(job.input, adapter, config).best
            train_seconds = time.perf_counter() - started
            features = AdapterTransform(str(adapter))(raw_features(job.input, job.plan))
            scores = score(features, job.plan)
    except Exception as error:  # one trial's failure must not end the search
        return {**base, "status": "failed", "error": _one_line(error)}
    record = {
        **base,
        "status": "done",
        "utility": finite(scores["utility"]),
        "privacy": finite(scores["privacy"]),
        "privacy_source": job.plan.source,
        "privacy_by_source": scores["privacy_by_source"],
        "privacy_videos": scores["privacy_videos"],
        "head_top1": finite((selected or {}).get("action_top1")),
        "selected_epoch": (selected or {}).get("epoch"),
        "trained_now": trained,
        "train_seconds": round(train_seconds, 3),
        "seconds": round(time.perf_counter() - started, 3),
        "adapter": f"trials/{job.trial.trial_id}/{ADAPTER_DIR}",
    }
    record = _jsonable(record)
    write_json(directory / RESULT_FILE, record)
    return record


def run_reference(job: ReferenceJob) -> dict[str, Any]:
    """Score the raw features; written to ``job.path``."""
    started = time.perf_counter()
    with torch_threads(job.threads):
        scores = score(raw_features(job.input, job.plan), job.plan)
    record = _jsonable(
        {
            "utility": finite(scores["utility"]),
            "privacy": finite(scores["privacy"]),
            "privacy_source": job.plan.source,
            "privacy_by_source": scores["privacy_by_source"],
            "privacy_videos": scores["privacy_videos"],
            "seconds": round(time.perf_counter() - started, 3),
        }
    )
    write_json(Path(job.path), record)
    return record


def run_unit(unit: TrialJob | ReferenceJob) -> dict[str, Any]:
    """The one function executors call (a process pool, a dask cluster, or a plain loop)."""
    if isinstance(unit, ReferenceJob):
        return run_reference(unit)
    return run_trial(unit)
