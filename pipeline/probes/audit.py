"""audit(): how private is a sanitized store? Attacker probes on its privacy split, recorded in it.

The attackers are those of `evaluate` (pipeline.probes.attacker): an MLP (D -> D -> A) and a
linear classifier of the person attributes, trained on every static clip (and, separately, every
normal clip) of the privacy train split and scored on the privacy test split by class-mean
average precision (cMAP) over the attribute values. Chance is the cMAP of a constant scorer (the
positive rate). Given the raw store, leakage = (cMAP - chance) / (cMAP_raw - chance) per seed: 1
means the sanitized store leaks as much as the raw one, 0 means it leaks nothing a probe finds.
A setting whose raw cMAP is less than MIN_RAW_MARGIN above chance is "unmeasured"
(pipeline.probes.measurable): its ratio is noise, so the summary's worst leakage leaves it out and
lists it, with how far above chance the sanitized store's attacker got there.

The figures go into the store's metadata under ``audit``, so a downstream team reads them before
deciding to use the store: ``pipeline.interop.read_audit(store)`` (None if never audited) or,
with plain zarr, ``json.loads(group.attrs["anon_store"]).get("audit")``.

Only that one key changes: the store keeps its status, fingerprint and store_id, and still
validates. An audit of a store made from another raw store than ``raw`` is refused unless
``allow_other_raw`` (leakage would compare unrelated features).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pipeline
from pipeline.errors import ConfigError, StoreError
from pipeline.probes.attacker import ATTACK_SOURCES, ATTACKER_KINDS, AttackerConfig
from pipeline.probes.evaluate import EvalConfig, _add_leakage, run_probes
from pipeline.probes.features import ProbeFeatures, load_features
from pipeline.probes.measurable import MIN_RAW_MARGIN, measurability, raw_margin
from pipeline.store.lock import StoreLock
from pipeline.store.reader import FeatureStore, open_store
from pipeline.store.writer import read_attrs, with_event, write_attrs
from pipeline.threads import torch_threads

log = logging.getLogger(__name__)

AUDIT_KEY = "audit"
"""Key of the audit inside the store's ``anon_store`` root attrs object."""
AUDIT_FORMAT = "anon-store.audit"
AUDIT_VERSION = 2
"""2: settings whose raw signal is too weak to read a cut are listed apart (unmeasured)."""
HEADLINE = "mlp_static"
"""The setting of the summary: the reference attacker (MLP on static clips, appearance only)."""


@dataclass(frozen=True)
class AuditConfig:
    """Which attackers run, on which split, how many times."""

    train_split: str = "privacy_train"
    """Split the attackers are trained on (a validation part is carved from it)."""
    test_split: str = "privacy_test"
    """Split the attackers are scored on."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """One attacker per seed and setting; figures are means with a t-interval."""
    attackers: tuple[str, ...] = ATTACKER_KINDS
    """mlp and / or linear."""
    sources: tuple[str, ...] = ATTACK_SOURCES
    """static (each static clip is an item) and / or clip (each normal clip)."""
    attacker: AttackerConfig = field(default_factory=AttackerConfig)
    confidence: float = 0.95
    threads: int | None = 1
    """torch threads while probing (the attackers are tiny models)."""

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"audit needs distinct seeds, got {list(self.seeds)}")
        if any(isinstance(s, bool) or not isinstance(s, int) for s in self.seeds):
            raise ConfigError(f"audit seeds must be integers, got {list(self.seeds)}")
        if not self.attackers or not set(self.attackers) <= set(ATTACKER_KINDS):
            raise ConfigError(f"attackers must be some of {ATTACKER_KINDS}, got {self.attackers}")
        if not self.sources or not set(self.sources) <= set(ATTACK_SOURCES):
            raise ConfigError(f"sources must be some of {ATTACK_SOURCES}, got {self.sources}")
        if self.train_split == self.test_split:
            raise ConfigError(f"train and test split are both {self.train_split!r}")
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence}")

    @classmethod
    def for_split(cls, privacy_split: str, **changes: Any) -> AuditConfig:
        """``"privacy"`` -> privacy_train / privacy_test; ``"a,b"`` -> train a, test b."""
        parts = [p.strip() for p in privacy_split.split(",")]
        if len(parts) == 1 and parts[0]:
            parts = [f"{parts[0]}_train", f"{parts[0]}_test"]
        if len(parts) != 2 or not all(parts):
            raise ConfigError(
                f"--privacy-split takes a prefix (privacy) or TRAIN,TEST, got {privacy_split!r}"
            )
        return cls(train_split=parts[0], test_split=parts[1], **changes)

    @classmethod
    def fast(cls, **changes: Any) -> AuditConfig:
        """Small attacker budgets (the numbers of EvalConfig.fast): rougher, for tests."""
        fast = EvalConfig.fast().attacker
        return cls(**{"attacker": fast, **changes})


@dataclass(frozen=True)
class AuditResult:
    """What audit() measured, as written into the store (``record``), and where."""

    store: str
    record: dict[str, Any]
    written: bool

    @property
    def summary(self) -> dict[str, Any]:
        return self.record["summary"]


ProgressFn = Callable[..., None]


def audit(
    sanitized: str | Path | FeatureStore,
    config: AuditConfig | None = None,
    *,
    raw: str | Path | FeatureStore | None = None,
    write: bool = True,
    allow_other_raw: bool = False,
    break_lock: bool = False,
    progress: ProgressFn | None = None,
) -> AuditResult:
    """Run the attackers on ``sanitized`` (and ``raw``, for leakage) and record the figures.

    Everything is checked before any attacker trains, and nothing is written unless every
    setting ran: the store is changed only by the final update of its ``audit`` attr (under the
    store's writer lock, so no other run writes it meanwhile).
    """
    config = config or AuditConfig()
    store = sanitized if isinstance(sanitized, FeatureStore) else open_store(sanitized)
    if store.kind != "sanitized":
        raise StoreError(
            f"{store.location} is a {store.kind} store: audit a sanitized store "
            "(give the raw store with --raw, for the leakage relative to it)"
        )
    features = _privacy_features(store, config)
    reference = None
    if raw is not None:
        raw_store = raw if isinstance(raw, FeatureStore) else open_store(raw)
        if raw_store.kind != "raw":
            raise StoreError(f"{raw_store.location} is a {raw_store.kind} store, not a raw store")
        made_from = store.meta.get("input_store_id")
        if made_from != raw_store.store_id and not allow_other_raw:
            raise StoreError(
                f"{store.location} was sanitized from store {made_from}, not from "
                f"{raw_store.location} ({raw_store.store_id}): leakage would compare unrelated "
                "features (pass allow_other_raw=True / --allow-other-raw to compare anyway)"
            )
        reference = (raw_store, _privacy_features(raw_store, config))
    eval_config = EvalConfig(
        seeds=tuple(config.seeds),
        probes=("privacy",),
        attackers=tuple(config.attackers),
        attack_sources=tuple(config.sources),
        confidence=config.confidence,
        threads=config.threads,
        attacker=config.attacker,
    )
    total = len(config.seeds) * len(config.attackers) * len(config.sources)
    total *= 2 if reference else 1
    done = 0

    def tick(method: str) -> Callable[[str], None]:
        def step(probe: str) -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total, method=method, probe=probe)

        return step

    methods: dict[str, dict[str, Any]] = {}
    with torch_threads(config.threads):
        if reference is not None:
            raw_probes = run_probes(reference[1], eval_config, method="raw", progress=tick("raw"))
            methods["raw"] = {"probes": raw_probes}
        probes = run_probes(features, eval_config, method="sanitized", progress=tick("sanitized"))
        methods["sanitized"] = {"probes": probes}
    if reference is not None:
        _add_leakage(methods, "raw", eval_config)
    skipped = {k: v["skipped"] for k, v in probes.items() if "skipped" in v}
    if len(skipped) == len(probes):
        reason = next(iter(skipped.values()), "no attacker setting")
        raise StoreError(f"{store.location}: the attackers cannot run: {reason}")
    record = _record(store, features, config, methods, reference[0] if reference else None)
    if write:
        _write(store, record, break_lock=break_lock)
    return AuditResult(store=str(store.location), record=record, written=write)


def _privacy_features(store: FeatureStore, config: AuditConfig) -> ProbeFeatures:
    """The two splits, renamed privacy_train / privacy_test (the names the attacker reads)."""
    available = store.splits()
    missing = [s for s in (config.train_split, config.test_split) if s not in available]
    if missing:
        raise StoreError(
            f"{store.location} has no split(s) {', '.join(missing)} "
            f"(it has: {', '.join(available)}); choose them with --privacy-split"
        )
    loaded = load_features(store, [config.train_split, config.test_split])
    empty = [s for s in (config.train_split, config.test_split) if not loaded.has(s)]
    if empty:
        raise StoreError(f"{store.location}: no usable videos in split(s) {', '.join(empty)}")
    if not loaded.dataset.person_attributes:
        raise StoreError(f"{store.location}: the dataset declares no person attribute to attack")
    splits = {
        "privacy_train": loaded[config.train_split],
        "privacy_test": loaded[config.test_split],
    }
    return dataclasses.replace(loaded, splits=splits)


def _record(
    store: FeatureStore,
    features: ProbeFeatures,
    config: AuditConfig,
    methods: dict[str, dict[str, Any]],
    raw: FeatureStore | None,
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for key, probe in methods["sanitized"]["probes"].items():
        setting = key.removeprefix("privacy_")
        if "skipped" in probe:  # e.g. static clips in a store extracted without them
            results[setting] = {"skipped": probe["skipped"]}
            continue
        metrics = probe["metrics"]
        entry = {
            name: metrics[name]
            for name in ("cmap_person", "chance_person", "leakage_person", "cmap_context")
            if name in metrics
        }
        entry["ap"] = {
            name: metrics[f"ap_{name}"]["mean"]
            for name in features.dataset.attributes
            if f"ap_{name}" in metrics
        }
        if raw is not None:
            raw_metrics = methods["raw"]["probes"].get(key, {}).get("metrics", {})
            entry["raw_cmap_person"] = raw_metrics.get("cmap_person")
            entry["raw_margin_person"] = raw_margin(entry)
        results[setting] = entry

    def mean(setting: str, metric: str) -> float | None:
        return (results.get(setting, {}).get(metric) or {}).get("mean")

    ran = [s for s, entry in results.items() if "skipped" not in entry]
    headline = HEADLINE if HEADLINE in ran else ran[0]
    readable = measurability(results)
    for setting in (*readable.measured, *readable.unmeasured):
        results[setting]["measured"] = setting in readable.measured
    if readable.unmeasured:
        log.warning(
            "audit: the raw features' attacker is under %.2f cMAP above chance on %s: no cut can "
            "be read there (the features may not carry the attributes for it, or the privacy "
            "split is too small to show them)",
            MIN_RAW_MARGIN,
            ", ".join(readable.unmeasured),
        )
    train, test = features["privacy_train"], features["privacy_test"]
    return {
        "format": AUDIT_FORMAT,
        "version": AUDIT_VERSION,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "producer": {"name": "anon-store", "version": pipeline.__version__},
        "store_id": store.store_id,
        "store_version": int(store.meta.get("version") or 0),
        "splits": {
            "train": config.train_split,
            "test": config.test_split,
            "train_videos": len(train),
            "test_videos": len(test),
        },
        "attributes": {
            "person": list(features.dataset.person_attributes),
            "context": list(features.dataset.context_attributes),
        },
        "seeds": [int(s) for s in config.seeds],
        "probe": {
            "attackers": list(config.attackers),
            "sources": list(config.sources),
            "metric": "cMAP: mean AP over the value indicators of the person attributes",
            "items": "every static / normal clip of a video is one item with the video's labels",
            "standardized": True,
            "confidence": config.confidence,
            "attacker": dataclasses.asdict(config.attacker),
        },
        "raw": None if raw is None else {"store_id": raw.store_id},
        "results": results,
        "summary": {
            "setting": headline,
            "cmap_person": mean(headline, "cmap_person"),
            "chance_person": mean(headline, "chance_person"),
            "raw_cmap_person": mean(headline, "raw_cmap_person"),
            "leakage_person": mean(headline, "leakage_person"),
            "max_leakage_person": readable.max_leakage,
            "min_raw_margin": MIN_RAW_MARGIN if raw is not None else None,
            "unmeasured_settings": list(readable.unmeasured),
            "max_unmeasured_excess": readable.max_unmeasured_excess,
        },
    }


def _write(store: FeatureStore, record: dict[str, Any], *, break_lock: bool) -> None:
    """Set the one ``audit`` attr; status, fingerprint and everything else stay as they are."""
    with StoreLock(store.location, break_lock=break_lock, command="anon-store audit"):
        group = store.location.open_group("r+")
        meta = read_attrs(group) or {}
        if meta.get("store_id") != store.store_id or meta.get("status") != "complete":
            raise StoreError(
                f"{store.location} changed while it was audited (now status "
                f"{meta.get('status')!r}, store {meta.get('store_id')}): rerun the audit"
            )
        summary = record["summary"]
        meta = with_event(
            {**meta, AUDIT_KEY: record},
            "audited",
            store_version=record["store_version"],
            setting=summary["setting"],
            cmap_person=summary["cmap_person"],
            leakage_person=summary["leakage_person"],
        )
        write_attrs(group, meta)
    log.info(
        "audit of %s recorded: cMAP %s (chance %s, leakage %s)",
        store.location.name,
        _fmt(record["summary"]["cmap_person"]),
        _fmt(record["summary"]["chance_person"]),
        _fmt(record["summary"]["leakage_person"]),
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def audit_table_rows(record: dict[str, Any]) -> list[tuple[str, ...]]:
    """(setting, cMAP, chance, raw cMAP, leakage) rows with intervals, for the CLI's table."""

    def cell(entry: dict[str, Any] | None) -> str:
        if not entry or entry.get("mean") is None:
            return "-"
        ci = entry.get("ci")
        return f"{entry['mean']:.3f}" + (f" ± {ci:.3f}" if ci is not None else "")

    rows = []
    for setting, entry in record["results"].items():
        if "skipped" in entry:
            rows.append((setting, f"skipped: {entry['skipped']}", "", "", ""))
            continue
        margin = entry.get("raw_margin_person")
        leakage = cell(entry.get("leakage_person"))
        if entry.get("measured") is False and margin is not None:
            leakage = f"unmeasured: raw {margin:+.3f} over chance"
        rows.append(
            (
                setting,
                cell(entry.get("cmap_person")),
                cell(entry.get("chance_person")),
                cell(entry.get("raw_cmap_person")),
                leakage,
            )
        )
    return rows
