"""evaluate(): every probe, over several seeds, for every method (store or transform of raw)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError
from pipeline.probes.action import LinearProbeConfig, action_probe, labelled
from pipeline.probes.anomaly import AnomalyConfig, anomaly_probe
from pipeline.probes.attacker import (
    ATTACK_SOURCES,
    ATTACKER_KINDS,
    FRAME_SOURCE,
    AttackerConfig,
    attack,
)
from pipeline.probes.bias import bias_probe
from pipeline.probes.detection import DetectorConfig, tad_probe
from pipeline.probes.features import ProbeFeatures, load_features
from pipeline.probes.measurable import MIN_RAW_MARGIN, weak_raw_probes
from pipeline.probes.report import EvalReport, write_report
from pipeline.probes.stats import finite_or_none, summarize, summarize_runs
from pipeline.store.reader import FeatureStore
from pipeline.threads import torch_threads

log = logging.getLogger(__name__)

PROBES = ("action", "privacy", "tad", "anomaly", "bias")
PROBE_SPLITS = (
    "train", "val", "test", "privacy_train", "privacy_test", "bias_train", "bias_test",
    "tad_train", "tad_test", "anomaly_train", "anomaly_test",
)  # fmt: skip
"""The splits the probes read (a store's pretrain split is never loaded)."""
REPORT_FORMAT = "anon-store.eval-report"
REPORT_VERSION = 1

MethodInput = str | Path | FeatureStore | ProbeFeatures | Callable[[ProbeFeatures], ProbeFeatures]
"""A store (url, path or opened), features already loaded, or a transform of the raw features."""
ProgressFn = Callable[..., None]
"""progress(done, total, **fields), as pipeline.cli_progress.progress_bar yields."""

SUMMARY_KEYS: dict[str, tuple[str, str]] = {
    "action_top1": ("action", "top1"),
    "privacy_cmap_mlp": ("privacy_mlp_static", "cmap_person"),
    "privacy_cmap_mlp_motion": ("privacy_mlp_clip", "cmap_person"),
    "privacy_cmap_linear": ("privacy_linear_static", "cmap_person"),
    "privacy_chance": ("privacy_mlp_static", "chance_person"),
    "tad_map": ("tad", "mean_map"),
    "anomaly_auc": ("anomaly", "auc"),
    "gender_gap": ("bias", "gap"),
}
"""Summary entry -> (probe, metric): fractions in [0, 1]; cMAP numbers are person attributes."""


@dataclass(frozen=True)
class EvalConfig:
    """What `evaluate` runs and how; every probe is repeated for each seed."""

    seeds: tuple[int, ...] = (0, 1, 2)
    """Probe seeds (>= 3 for a meaningful interval); the same seeds serve every method, so
    methods are compared on the same clip draws and validation parts."""
    probes: tuple[str, ...] = PROBES
    """Subset of PROBES to run."""
    attackers: tuple[str, ...] = ATTACKER_KINDS
    attack_sources: tuple[str, ...] = ATTACK_SOURCES
    bias_attribute: str = "gender"
    confidence: float = 0.95
    threads: int | None = 1
    """torch threads while probing (None = torch's default); the probe models are tiny."""
    workers: int = 1
    """Methods evaluated side by side in worker processes (1 = all in this process). Probes are
    seeded, so the numbers do not depend on it. Needs methods that can be sent to a process:
    store paths, ProbeFeatures, transforms such as BASELINES and adapter_transform (not an open
    FeatureStore or a lambda)."""
    action: LinearProbeConfig = field(default_factory=LinearProbeConfig)
    attacker: AttackerConfig = field(default_factory=AttackerConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    anomaly: AnomalyConfig = field(default_factory=AnomalyConfig)

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ConfigError("evaluation needs at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"evaluation seeds must be distinct, got {list(self.seeds)}")
        unknown = [p for p in self.probes if p not in PROBES]
        if unknown:
            raise ConfigError(f"unknown probe(s) {unknown}; expected some of {', '.join(PROBES)}")
        bad = [k for k in self.attackers if k not in ATTACKER_KINDS]
        bad += [s for s in self.attack_sources if s not in ATTACK_SOURCES]
        if bad:
            raise ConfigError(
                f"unknown attacker setting(s) {bad}; kinds {ATTACKER_KINDS}, "
                f"sources {ATTACK_SOURCES}"
            )
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if len(self.seeds) < 3:
            log.warning("only %d probe seed(s): intervals will be wide or missing", len(self.seeds))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def fast(cls, seeds: tuple[int, ...] = (0, 1, 2), **changes: Any) -> EvalConfig:
        """Small training budgets for smoke and end-to-end tests (numbers are rougher)."""
        return cls(
            seeds=seeds,
            action=LinearProbeConfig(weight_decays=(1e-3, 1e-1), max_iter=50),
            attacker=AttackerConfig(lr=1e-2, max_epochs=30, patience=5),
            detector=DetectorConfig(hidden=32, epochs=15),
            anomaly=AnomalyConfig(hidden=32, hidden2=16, steps=100, batch_videos=8),
            **changes,
        )


@dataclass(frozen=True)
class _Unit:
    """One probe setting of one method: runs once per seed."""

    key: str
    run: Callable[[int], dict[str, float]]
    skipped: str | None = None


def _units(features: ProbeFeatures, config: EvalConfig) -> list[_Unit]:
    """The probe settings to run on ``features``, with the reason where data is missing."""
    ds, splits = features.dataset, features.splits
    n_actions = max(len(ds.actions), _max_label(features) + 1)
    units: list[_Unit] = []

    def missing(*names: str) -> str | None:
        absent = [s for s in names if not features.has(s)]
        return f"no videos in split(s) {', '.join(absent)}" if absent else None

    def unlabelled(*names: str) -> str | None:
        bare = [s for s in names if not len(labelled(splits[s]))]
        return f"no labelled videos with normal clips in {', '.join(bare)}" if bare else None

    if "action" in config.probes:
        why = missing("train", "test") or unlabelled("train", "test")
        run = partial(_action, features, n_actions, config)
        units.append(_Unit("action", run, why))
    if "privacy" in config.probes:
        why = missing("privacy_train", "privacy_test")
        if why is None and not ds.attributes:
            why = "the dataset has no attributes"
        for kind in config.attackers:
            for source in config.attack_sources:
                reason = why
                if (
                    reason is None
                    and source == "static"
                    and not splits["privacy_train"].static.size
                ):
                    reason = "the store has no static clips"
                if reason is None and source == "clip":
                    bare = [
                        s
                        for s in ("privacy_train", "privacy_test")
                        if not splits[s].has_clips.any()
                    ]
                    if bare:
                        reason = f"no normal clips in {', '.join(bare)} (images have none)"
                run = partial(_attack, features, kind, source, config)
                units.append(_Unit(f"privacy_{kind}_{source}", run, reason))
            if why is None and splits["privacy_test"].static_attributes:
                run = partial(_attack, features, kind, FRAME_SOURCE, config)
                units.append(_Unit(f"privacy_{kind}_{FRAME_SOURCE}", run))
    if "tad" in config.probes:
        why = missing("tad_train", "tad_test")
        if why is None and not (
            splits["tad_train"].num_windows and len(splits["tad_train"].segment_video)
        ):
            why = "tad_train has no windows or no action segments"
        run = partial(_tad, features, n_actions, config)
        units.append(_Unit("tad", run, why))
    if "anomaly" in config.probes:
        why = missing("anomaly_train", "anomaly_test")
        if why is None:
            train = splits["anomaly_train"]
            if not ({0, 1} <= set(train.anomalous.tolist()) and train.num_windows):
                why = "anomaly_train needs windows and both anomalous and normal videos"
        run = partial(_anomaly, features, config)
        units.append(_Unit("anomaly", run, why))
    if "bias" in config.probes:
        why = missing("bias_train", "bias_test") or unlabelled("bias_train", "bias_test")
        if why is None and config.bias_attribute not in ds.attributes:
            why = f"the dataset has no attribute {config.bias_attribute!r}"
        run = partial(_bias, features, n_actions, config)
        units.append(_Unit("bias", run, why))
    return units


def _action(f: ProbeFeatures, n: int, config: EvalConfig, seed: int) -> dict[str, float]:
    val = f.splits.get("val")
    return action_probe(f["train"], val, f["test"], n, seed, config.action)


def _attack(
    f: ProbeFeatures, kind: str, source: str, config: EvalConfig, seed: int
) -> dict[str, float]:
    return attack(
        f["privacy_train"], f["privacy_test"], f.dataset,
        kind=kind, source=source, seed=seed, config=config.attacker,
    )  # fmt: skip


def _tad(f: ProbeFeatures, n: int, config: EvalConfig, seed: int) -> dict[str, float]:
    return tad_probe(f["tad_train"], f["tad_test"], n, f.window_length, seed, config.detector)


def _anomaly(f: ProbeFeatures, config: EvalConfig, seed: int) -> dict[str, float]:
    return anomaly_probe(
        f["anomaly_train"], f["anomaly_test"], f.window_length, seed, config.anomaly
    )


def _bias(f: ProbeFeatures, n: int, config: EvalConfig, seed: int) -> dict[str, float]:
    attr = config.bias_attribute
    values = f.dataset.attributes[attr].values
    return bias_probe(f["bias_train"], f["bias_test"], attr, values, n, seed, config.action)


def _max_label(features: ProbeFeatures) -> int:
    """Largest action index in any split (trimmed labels and tad_* segment labels)."""
    labels = [v.action for v in features.splits.values()]
    labels += [features[s].segment_label for s in ("tad_train", "tad_test") if features.has(s)]
    return int(max((x.max() for x in labels if len(x)), default=-1))


def run_probes(
    features: ProbeFeatures | Sequence[ProbeFeatures],
    config: EvalConfig,
    *,
    method: str = "",
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Every probe setting over every seed: {key: {metrics, runs, seconds} or {skipped}}.

    ``features`` may be one ProbeFeatures per seed (e.g. adapters trained with different seeds):
    probe seed i then runs on features i, so the spread covers adapter and probe seeds together.
    """
    variants = [features] if isinstance(features, ProbeFeatures) else list(features)
    if len(variants) not in (1, len(config.seeds)):
        raise ConfigError(
            f"method {method!r} has {len(variants)} feature sets for {len(config.seeds)} seeds"
        )
    per_variant = [_units(v, config) for v in variants]
    results: dict[str, dict[str, Any]] = {}
    for position, unit in enumerate(per_variant[0]):
        if unit.skipped:
            log.info("%s: %s skipped (%s)", method, unit.key, unit.skipped)
            results[unit.key] = {"skipped": unit.skipped}
            for _ in config.seeds:
                if progress:
                    progress(unit.key)
            continue
        runs, started = [], time.perf_counter()
        for index, seed in enumerate(config.seeds):
            runs.append(per_variant[index % len(variants)][position].run(seed))
            if progress:
                progress(unit.key)
        results[unit.key] = {
            "metrics": summarize_runs(runs, config.seeds, config.confidence),
            "runs": [
                {"seed": int(s), **{k: finite_or_none(v) for k, v in r.items()}}
                for s, r in zip(config.seeds, runs, strict=True)
            ],
            "seconds": round(time.perf_counter() - started, 3),
        }
        log.info("%s: %s done in %.1f s", method, unit.key, results[unit.key]["seconds"])
    return results


def _resolve_all(
    name: str, value: MethodInput | Sequence[MethodInput], raw: ProbeFeatures | None
) -> list[ProbeFeatures]:
    """One ProbeFeatures, or one per seed when the method is given as a list of stores."""
    if isinstance(value, list | tuple):
        return [_resolve(name, item, raw) for item in value]
    return [_resolve(name, value, raw)]


def _resolve(name: str, value: MethodInput, raw: ProbeFeatures | None) -> ProbeFeatures:
    if isinstance(value, ProbeFeatures):
        return value
    if isinstance(value, FeatureStore | str | Path):
        return load_features(value, PROBE_SPLITS)
    if callable(value):
        if raw is None:
            raise ConfigError(f"method {name!r} is a transform, but there are no raw features")
        out = value(raw)
        if not isinstance(out, ProbeFeatures):
            raise ConfigError(f"transform of method {name!r} did not return ProbeFeatures")
        return dataclasses.replace(out, source={**out.source, "method_of": "raw"})
    raise ConfigError(f"method {name!r}: cannot evaluate a {type(value).__name__}")


def _check_against_raw(name: str, features: ProbeFeatures, raw: ProbeFeatures) -> dict[str, Any]:
    """Notes on how a method's videos relate to raw's (probes stay valid either way)."""
    notes: dict[str, Any] = {}
    same = set(features.splits) == set(raw.splits) and all(
        np.array_equal(features[s].video_id, raw[s].video_id) for s in raw.splits
    )  # only PROBE_SPLITS are loaded, so a store without pretrain still matches
    notes["same_videos_as_raw"] = bool(same)
    if not same:
        log.warning(
            "method %s does not hold the same videos as raw: comparisons are unpaired", name
        )
    made_from = features.source.get("input_store_id")
    if made_from and raw.source.get("store_id") and made_from != raw.source["store_id"]:
        notes["made_from_other_raw_store"] = True
        log.warning("method %s was sanitized from another raw store (%s)", name, made_from)
    return notes


def _add_leakage(methods: dict[str, dict[str, Any]], raw_method: str, config: EvalConfig) -> None:
    """leakage = (cMAP - chance) / (cMAP_raw - chance), per seed against raw's same-seed run."""
    raw_probes = methods[raw_method]["probes"]
    for result in methods.values():
        for key, probe in result["probes"].items():
            if not key.startswith("privacy_") or "runs" not in probe:
                continue
            raw_runs = raw_probes.get(key, {}).get("runs")
            if not raw_runs:
                continue
            raw_by_seed = {r["seed"]: r for r in raw_runs}
            values = []
            for run in probe["runs"]:
                ref = raw_by_seed.get(run["seed"])
                values.append(math.nan if ref is None else _leakage(run, ref))
            probe["metrics"]["leakage_person"] = summarize(
                values, [r["seed"] for r in probe["runs"]], config.confidence
            )


def _leakage(run: Mapping[str, float | None], raw: Mapping[str, float | None]) -> float:
    values = (run.get("cmap_person"), run.get("chance_person"))
    refs = (raw.get("cmap_person"), raw.get("chance_person"))
    if None in values or None in refs:
        return math.nan
    above = refs[0] - refs[1]
    if above < 1e-9:  # raw at or below chance: nothing to be a fraction of (the sign would flip)
        return math.nan
    return (values[0] - values[1]) / above


def summary_of(methods: Mapping[str, Mapping[str, Any]], part: str = "mean") -> dict[str, Any]:
    """{method: {summary key: value}} with ``part`` = "mean" (the summary) or "ci"."""
    out: dict[str, Any] = {}
    for name, result in methods.items():
        row = {}
        for key, (probe, metric) in SUMMARY_KEYS.items():
            entry = result["probes"].get(probe, {}).get("metrics", {}).get(metric)
            row[key] = None if entry is None else entry[part]
        out[name] = row
    return out


def evaluate(
    stores: Mapping[str, MethodInput | Sequence[MethodInput]],
    output_dir: str | Path,
    config: EvalConfig = EvalConfig(),
    *,
    raw_method: str = "raw",
    ablations: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> EvalReport:
    """Run every probe for every method and write report.json, report.md, privacy_utility.png.

    ``stores`` maps method names to a store (url / path / FeatureStore), loaded ProbeFeatures,
    or a transform of the raw features (e.g. ``BASELINES["leace"]``). ``stores[raw_method]``
    must be a store or features: it is the reference for leakage and for transforms.
    ``ablations``: methods reported in the ablation section rather than the headline table
    (default: names starting with "aam_").
    """
    if raw_method not in stores:
        raise ConfigError(f"no {raw_method!r} method among {list(stores)}: the raw store is needed")
    if callable(stores[raw_method]):
        raise ConfigError(f"method {raw_method!r} must be a store, not a transform")
    out = Path(output_dir)
    order = [raw_method, *[m for m in stores if m != raw_method]]
    raw = _resolve(raw_method, stores[raw_method], None)
    units_per_method = count_units(config, raw)
    total = units_per_method * len(order)
    done = 0
    if raw.source.get("kind") == "sanitized":
        log.warning(
            "the reference method %r is a sanitized store: leakage is relative to it", raw_method
        )
    methods: dict[str, dict[str, Any]] = {}
    workers = min(config.workers, len(order))
    if workers > 1:
        _check_sendable(stores)
        context = multiprocessing.get_context("spawn")  # no forked torch / thread state
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_worker, initargs=(stores[raw_method],)
        ) as pool:
            futures = {
                pool.submit(
                    _evaluate_in_worker, name, stores[name], name == raw_method, config
                ): name
                for name in order
            }
            for future in as_completed(futures):
                name = futures[future]
                methods[name] = future.result()
                done += units_per_method
                if progress:
                    progress(done, total, method=name, probe="all")
        methods = {name: methods[name] for name in order}
    else:
        for name in order:

            def tick(probe: str, method: str = name) -> None:
                nonlocal done
                done += 1
                if progress:
                    progress(done, total, method=method, probe=probe)

            methods[name] = _evaluate_method(
                name, stores[name], raw, name == raw_method, config, tick
            )
    _add_leakage(methods, raw_method, config)
    weak = weak_raw_probes(methods[raw_method]["probes"])
    if weak:
        log.warning(
            "the raw features' attacker is under %.2f cMAP above chance on %s: cuts there are "
            "noise, not protection (report.md lists them)",
            MIN_RAW_MARGIN,
            ", ".join(weak),
        )
    ablation_names = [
        m for m in order if (m in ablations if ablations is not None else m.startswith("aam_"))
    ]
    data = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "raw_method": raw_method,
        "methods_order": order,
        "ablations": ablation_names,
        "config": config.to_dict(),
        "summary": summary_of(methods, "mean"),
        "summary_ci": summary_of(methods, "ci"),
        "dataset": _dataset_json(raw),
        "methods": methods,
    }
    return write_report(data, out)


def _evaluate_method(
    name: str,
    value: MethodInput | Sequence[MethodInput],
    raw: ProbeFeatures,
    is_raw: bool,
    config: EvalConfig,
    tick: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every probe of one method: {source, notes, probes, seconds}."""
    started = time.perf_counter()
    variants = [raw] if is_raw else _resolve_all(name, value, raw)
    features = variants[0]
    notes = {} if is_raw else _check_against_raw(name, features, raw)
    if len(variants) > 1:
        notes["feature_sets"] = len(variants)
    log.info("evaluating %s (%s)", name, features.source.get("store") or "transform")
    with torch_threads(config.threads):
        probes = run_probes(variants, config, method=name, progress=tick)
    return {
        "source": _jsonable(features.source),
        "notes": notes,
        "probes": probes,
        "seconds": round(time.perf_counter() - started, 3),
    }


_WORKER_RAW: ProbeFeatures | None = None


def _init_worker(raw_input: MethodInput) -> None:
    """Resolve the raw method once per worker process (transforms of the other methods use it)."""
    global _WORKER_RAW
    _WORKER_RAW = _resolve("raw", raw_input, None)


def _evaluate_in_worker(
    name: str, value: MethodInput | Sequence[MethodInput], is_raw: bool, config: EvalConfig
) -> dict[str, Any]:
    assert _WORKER_RAW is not None, "worker not initialised"
    return _evaluate_method(name, value, _WORKER_RAW, is_raw, config)


def _check_sendable(stores: Mapping[str, Any]) -> None:
    for name, value in stores.items():
        if not _sendable(value):
            raise ConfigError(
                f"method {name!r} ({type(value).__name__}) cannot be sent to a worker process: "
                "evaluate it with workers=1, or pass a store path or a module-level transform"
            )


def _sendable(value: Any) -> bool:
    """Whether a method input survives the trip to a spawned process (by what it is)."""
    if isinstance(value, list | tuple):
        return all(_sendable(v) for v in value)
    if isinstance(value, str | Path | ProbeFeatures):
        return True
    if isinstance(value, FeatureStore):
        return False  # holds an open zarr group
    qualname = getattr(value, "__qualname__", type(value).__qualname__)
    return "<lambda>" not in qualname and "<locals>" not in qualname


def count_units(config: EvalConfig, features: ProbeFeatures | None = None) -> int:
    """Probe runs per method: exact given the features (frame-level settings depend on the
    store), else the settings every store has."""
    if features is not None:
        return len(_units(features, config)) * len(config.seeds)
    per_seed = 0
    for probe in config.probes:
        per_seed += len(config.attackers) * len(config.attack_sources) if probe == "privacy" else 1
    return per_seed * len(config.seeds)


def _dataset_json(features: ProbeFeatures) -> dict[str, Any]:
    ds = features.dataset
    return {
        "actions": list(ds.actions),
        "attributes": {
            n: {"values": list(a.values), "role": a.role} for n, a in ds.attributes.items()
        },
        "anomaly_types": list(ds.anomaly_types),
        "splits": {s: len(v) for s, v in features.splits.items()},
        "window_length": features.window_length,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
