"""evaluate_protocol(): one evaluation over several raw stores, one per protocol (Table 1)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError
from pipeline.probes.baselines import BASELINES, FIT_SPLIT, FeatureTransform, fit_baseline
from pipeline.probes.evaluate import (
    PROBES,
    SUMMARY_KEYS,
    EvalConfig,
    MethodInput,
    ProgressFn,
    count_units,
    evaluate,
)
from pipeline.probes.features import ProbeFeatures, load_features
from pipeline.probes.report import (
    REPORT_JSON,
    REPORT_MD,
    ReportFiles,
    protocol_markdown,
    protocol_table,
)

log = logging.getLogger(__name__)

PROTOCOLS: dict[str, str] = {
    "action": "action",
    "detection": "tad",
    "anomaly": "anomaly",
    "privacy": "privacy",
    "bias": "bias",
}
"""Protocol (a [stores] key) -> the probe of pipeline.probes.evaluate.PROBES it runs; in the
column order of the paper's Table 1."""
HEADLINE_METRIC: dict[str, str] = {
    "action": "action_top1",
    "detection": "tad_map",
    "anomaly": "anomaly_auc",
    "privacy": "privacy_cmap_mlp",
    "bias": "gender_gap",
}
"""Protocol -> the SUMMARY_KEYS entry of its Table 1 column."""
METHOD_KINDS: dict[str, frozenset[str]] = {
    "adapter": frozenset({"kind", "adapter"}),
    "baseline": frozenset({"kind", "baseline", "fit_on"}),
    "stores": frozenset({"kind", "stores"}),
}
"""Method kind -> the keys its [methods] table may hold."""
KIND_VALUES = {
    "adapter": "the adapter directory",
    "baseline": "one of " + ", ".join(BASELINES),
    "stores": "a table protocol = store",
}
"""Method kind -> what its own key holds (for the message when it is missing)."""
RAW_METHOD = "raw"
PROTOCOL_FORMAT = "anon-store.protocol-report"
PROTOCOL_VERSION = 1
SECTIONS = ("stores", "methods", "evaluate")
EVALUATE_KEYS = ("seeds", "fast")

assert set(PROTOCOLS.values()) <= set(PROBES)


@dataclass(frozen=True)
class MethodSpec:
    """One [methods] entry: an adapter, a baseline fitted once, or per-protocol stores."""

    name: str
    kind: str
    """One of METHOD_KINDS: adapter, baseline or stores."""
    adapter: str | None = None
    baseline: str | None = None
    fit_on: str | None = None
    """The protocol whose raw store (its privacy_train split) a baseline is fitted on."""
    stores: dict[str, str] = field(default_factory=dict)
    """Protocol -> store of a "stores" method; the method is left out of other protocols."""

    def covers(self, protocol: str) -> bool:
        return self.kind != "stores" or protocol in self.stores

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, {})}


@dataclass(frozen=True)
class ProtocolSpec:
    """A protocol file: the raw store of each protocol, the methods, evaluation settings."""

    path: str
    """The TOML file (relative paths in it are resolved against its directory)."""
    stores: dict[str, str]
    """Protocol -> raw store (resolved path or URL), in PROTOCOLS order."""
    methods: tuple[MethodSpec, ...] = ()
    """Besides "raw", which is always the reference; in the file's order."""
    seeds: tuple[int, ...] | None = None
    fast: bool | None = None

    @property
    def method_names(self) -> list[str]:
        return [RAW_METHOD, *(m.name for m in self.methods)]

    def inputs(self) -> list[str]:
        """Every store and adapter the protocol reads (an output must not replace one)."""
        paths = list(self.stores.values())
        for method in self.methods:
            paths += list(method.stores.values()) + ([method.adapter] if method.adapter else [])
        return paths

    def eval_config(
        self, *, seeds: tuple[int, ...] | None = None, fast: bool | None = None, workers: int = 1
    ) -> EvalConfig:
        """The EvalConfig: ``seeds`` / ``fast`` (the command line) override the file's."""
        chosen = seeds if seeds is not None else (self.seeds or EvalConfig.seeds)
        small = fast if fast is not None else bool(self.fast)
        make = EvalConfig.fast if small else EvalConfig
        return make(seeds=tuple(chosen), workers=workers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "stores": dict(self.stores),
            "methods": {m.name: m.to_dict() for m in self.methods},
            "evaluate": {
                k: v for k, v in (("seeds", self.seeds), ("fast", self.fast)) if v is not None
            },
        }


# ---------------------------------------------------------------- reading the file


def read_protocol(path: str | Path) -> ProtocolSpec:
    """Parse and check a protocol file; every problem is one ConfigError naming file and key."""
    file = Path(path).expanduser().absolute()
    document = _load_toml(file)
    where = _Where(file)
    unknown = [k for k in document if k not in SECTIONS]
    if unknown:
        raise where.error(unknown[0], f"unknown section; expected {', '.join(SECTIONS)}")
    stores = _read_stores(document.get("stores"), where)
    methods = _read_methods(document.get("methods", {}), stores, where)
    seeds, fast = _read_evaluate(document.get("evaluate", {}), where)
    return ProtocolSpec(str(file), stores, methods, seeds, fast)


@dataclass(frozen=True)
class _Where:
    """The file being read: turns a key and a message into the one-line ConfigError."""

    file: Path

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.file}: {key}: {message}")

    def location(self, key: str, value: object) -> str:
        """A store or adapter path of the file: relative ones resolve against the file's
        directory; URLs stay as they are; a local path must exist."""
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a path or URL string, got {value!r}")
        if "://" in value and not value.startswith("file://"):
            return value
        local = Path(value.removeprefix("file://")).expanduser()
        resolved = Path(os.path.normpath(self.file.parent / local))  # absolute `local` wins
        if not resolved.exists():
            raise self.error(key, f"{resolved} does not exist")
        return str(resolved)


def _load_toml(file: Path) -> dict[str, Any]:
    try:
        text = file.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{file}: protocol file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file}: cannot read the protocol file ({error})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{file}: not valid TOML: {error}") from None


def _table(value: object, key: str, where: _Where) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error(key, f"expected a table, got {type(value).__name__}")
    return value


def _read_stores(value: object, where: _Where) -> dict[str, str]:
    if value is None:
        raise where.error("stores", "missing: name the raw store of at least one protocol")
    table = _table(value, "stores", where)
    if not table:
        raise where.error("stores", "empty: name the raw store of at least one protocol")
    for name in table:
        if name not in PROTOCOLS:
            raise where.error(
                f"stores.{name}", f"unknown protocol; expected one of {', '.join(PROTOCOLS)}"
            )
    return {p: where.location(f"stores.{p}", table[p]) for p in PROTOCOLS if p in table}


def _read_methods(
    value: object, stores: Mapping[str, str], where: _Where
) -> tuple[MethodSpec, ...]:
    table = _table(value, "methods", where)
    return tuple(_read_method(name, entry, stores, where) for name, entry in table.items())


def _read_method(name: str, entry: object, stores: Mapping[str, str], where: _Where) -> MethodSpec:
    key = f"methods.{name}"
    if name == RAW_METHOD:
        raise where.error(key, "the name 'raw' is reserved: the raw stores are always evaluated")
    entry = _table(entry, key, where)
    kind = entry.get("kind") or next((k for k in METHOD_KINDS if k in entry), None)
    if not isinstance(kind, str) or kind not in METHOD_KINDS:
        found = kind if "kind" in entry else f"keys {', '.join(entry) or 'none'}"
        raise where.error(
            key, f"unknown method kind ({found}); expected one of {', '.join(METHOD_KINDS)}"
        )
    extra = [k for k in entry if k not in METHOD_KINDS[kind]]
    if extra:
        allowed = ", ".join(sorted(METHOD_KINDS[kind] - {"kind"}))
        raise where.error(f"{key}.{extra[0]}", f"not a key of {kind} methods ({allowed})")
    if kind not in entry:
        raise where.error(key, f"needs `{kind}` ({KIND_VALUES[kind]})")
    if kind == "adapter":
        return MethodSpec(name, kind, adapter=where.location(f"{key}.adapter", entry["adapter"]))
    if kind == "baseline":
        return _read_baseline(name, entry, stores, where)
    return MethodSpec(name, kind, stores=_read_method_stores(key, entry["stores"], stores, where))


def _read_baseline(
    name: str, entry: Mapping[str, Any], stores: Mapping[str, str], where: _Where
) -> MethodSpec:
    key = f"methods.{name}"
    baseline = entry["baseline"]
    if baseline not in BASELINES:
        raise where.error(
            f"{key}.baseline",
            f"unknown baseline {baseline!r}; expected one of {', '.join(BASELINES)}",
        )
    fit_on = entry.get("fit_on", "privacy")  # the privacy store is the one with person labels
    if fit_on not in stores:
        raise where.error(
            f"{key}.fit_on",
            f"{fit_on!r} is not a protocol with a store; [stores] has {', '.join(stores)}",
        )
    return MethodSpec(name, "baseline", baseline=baseline, fit_on=fit_on)


def _read_method_stores(
    key: str, value: object, stores: Mapping[str, str], where: _Where
) -> dict[str, str]:
    table = _table(value, f"{key}.stores", where)
    if not table:
        raise where.error(f"{key}.stores", "empty: name a store for at least one protocol")
    for protocol in table:
        if protocol not in stores:
            why = "unknown protocol" if protocol not in PROTOCOLS else "no raw store in [stores]"
            raise where.error(
                f"{key}.stores.{protocol}", f"{why}; [stores] has {', '.join(stores)}"
            )
    return {p: where.location(f"{key}.stores.{p}", table[p]) for p in PROTOCOLS if p in table}


def _read_evaluate(value: object, where: _Where) -> tuple[tuple[int, ...] | None, bool | None]:
    table = _table(value, "evaluate", where)
    unknown = [k for k in table if k not in EVALUATE_KEYS]
    if unknown:
        raise where.error(
            f"evaluate.{unknown[0]}", f"unknown setting; expected {', '.join(EVALUATE_KEYS)}"
        )
    seeds = table.get("seeds")
    if seeds is not None and (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
    ):
        raise where.error("evaluate.seeds", f"expected a non-empty list of integers, got {seeds!r}")
    fast = table.get("fast")
    if fast is not None and not isinstance(fast, bool):
        raise where.error("evaluate.fast", f"expected true or false, got {fast!r}")
    return (tuple(seeds) if seeds is not None else None), fast


def check_evaluate_inputs(
    input: str | None,
    protocol: str | None,
    methods: Mapping[str, bool],
    spell: Callable[[str], str] = lambda name: f"--{name}",
) -> None:
    """Exactly one of a raw store (``input``) and a protocol file; ``methods`` (option name ->
    given) are refused with a protocol, whose file names its methods. ``spell`` writes an
    option's name as the caller's user types it (CLI flag or flow parameter)."""
    if (input is None) == (protocol is None):
        raise ConfigError(
            f"give exactly one of {spell('input')} (a raw store) and {spell('protocol')} "
            "(a protocol file naming one raw store per protocol)"
        )
    given = [spell(name) for name, value in methods.items() if value]
    if protocol is not None and given:
        raise ConfigError(
            f"{', '.join(given)} cannot be combined with {spell('protocol')}: "
            "name the methods in the protocol file's [methods]"
        )


# ---------------------------------------------------------------- the encoder


def check_encoders(spec: ProtocolSpec) -> dict[str, Any]:
    """The encoder all raw stores share (their metadata's), or a ConfigError naming two that
    differ: features of different encoders cannot share a method (adapter, baseline)."""
    from pipeline.store.reader import open_store

    encoders = {p: open_store(store).encoder for p, store in spec.stores.items()}
    first, reference = next(iter(encoders.items()))
    for protocol, encoder in encoders.items():
        if any(encoder.get(k) != reference.get(k) for k in ("weights_sha256", "hidden_size")):
            raise ConfigError(
                f"stores use different encoders: {first} ({_encoder_label(reference)}) vs "
                f"{protocol} ({_encoder_label(encoder)}); every protocol's store must be "
                "extracted with the same encoder"
            )
    return reference


def _encoder_label(encoder: Mapping[str, Any]) -> str:
    sha = encoder.get("weights_sha256")
    return f"{encoder.get('name', 'unnamed')} {str(sha)[:12] if sha else 'no sha256'}"


def _check_adapters(spec: ProtocolSpec, encoder: Mapping[str, Any]) -> None:
    """Load every adapter once before any probe runs: one made for another encoder (or
    feature size) fails now, not after the first protocols' minutes."""
    from pipeline.aam.checkpoint import load_adapter

    for method in spec.methods:
        if method.adapter is not None:
            load_adapter(
                method.adapter,
                expect_encoder=encoder if encoder.get("weights_sha256") else None,
                expect_dim=encoder.get("hidden_size"),
            )


# ---------------------------------------------------------------- evaluating


@dataclass(frozen=True)
class ProtocolReport(ReportFiles):
    """What evaluate_protocol wrote: report.json's data and the directory (sub-reports in
    DIR/<protocol>/)."""

    def sub_report_dir(self, protocol: str) -> Path:
        return self.output_dir / self.data["protocols"][protocol]["report_dir"]

    def table(self) -> str:
        """The Table 1 markdown: one row per method, one column per protocol."""
        return protocol_table(self.data)

    def markdown(self) -> str:
        return protocol_markdown(self.data)

    def values(self) -> dict[str, dict[str, float | None]]:
        """{method: {protocol: mean of its Table 1 metric}} (fractions; None: not measured)."""
        out: dict[str, dict[str, float | None]] = {}
        for method in self.data["methods_order"]:
            out[method] = {}
            for protocol, entry in self.data["protocols"].items():
                cell = entry["methods"].get(method, {}).get(HEADLINE_METRIC[protocol])
                out[method][protocol] = None if cell is None else cell["mean"]
        return out


def evaluate_protocol(
    spec: ProtocolSpec,
    output_dir: str | Path,
    config: EvalConfig = EvalConfig(),
    progress: ProgressFn | None = None,
) -> ProtocolReport:
    """Evaluate every method on every protocol's raw store, then write report.json and
    report.md (Table 1) into ``output_dir`` and each protocol's full report into
    ``output_dir/<protocol>/``.

    Each protocol runs its probe only (``config.probes`` is replaced), with the same seeds for
    every method. Baselines are fitted once, on their ``fit_on`` protocol's store, and applied to
    every protocol's store; adapters are applied in memory, as sanitize would.
    """
    out = Path(output_dir)
    encoder = check_encoders(spec)
    _check_adapters(spec, encoder)
    fitted = _fit_baselines(spec)
    plans = {p: _methods_for(spec, p, fitted) for p in spec.stores}
    configs = {p: dataclasses.replace(config, probes=(PROTOCOLS[p],)) for p in spec.stores}
    bar = _Progress(progress, {p: count_units(configs[p]) * len(plans[p]) for p in plans})
    reports = {}
    for protocol, methods in plans.items():
        log.info("protocol %s: %s on %s", protocol, ", ".join(methods), spec.stores[protocol])
        reports[protocol] = evaluate(
            methods, out / protocol, configs[protocol], ablations=[], progress=bar.tick(protocol)
        )
        bar.finished(protocol)
    data = _report_data(spec, encoder, config, reports)
    return _write(data, out)


def _fit_baselines(spec: ProtocolSpec) -> dict[str, FeatureTransform]:
    """Each baseline method fitted once on its fit_on store's privacy_train (loaded once)."""
    loaded: dict[str, ProbeFeatures] = {}
    fitted = {}
    for method in spec.methods:
        if method.kind != "baseline":
            continue
        assert method.baseline is not None and method.fit_on is not None
        store = spec.stores[method.fit_on]
        if store not in loaded:
            loaded[store] = load_features(store, [FIT_SPLIT])
        try:
            fitted[method.name] = fit_baseline(
                method.baseline, loaded[store], fit_store=store, fit_protocol=method.fit_on
            )
        except ConfigError as error:
            raise ConfigError(f"method {method.name!r} (fit on {store}): {error}") from None
        log.info("%s: %s fitted on %s of %s", method.name, method.baseline, FIT_SPLIT, store)
    return fitted


def _methods_for(
    spec: ProtocolSpec, protocol: str, fitted: Mapping[str, FeatureTransform]
) -> dict[str, MethodInput]:
    """evaluate()'s ``stores`` for one protocol: raw first, then the methods covering it."""
    from pipeline.sanitize.in_memory import adapter_transform

    methods: dict[str, MethodInput] = {RAW_METHOD: spec.stores[protocol]}
    for method in spec.methods:
        if not method.covers(protocol):
            continue
        if method.kind == "adapter":
            assert method.adapter is not None
            methods[method.name] = adapter_transform(method.adapter)
        elif method.kind == "baseline":
            methods[method.name] = fitted[method.name]
        else:
            methods[method.name] = method.stores[protocol]
    return methods


class _Progress:
    """One bar over every protocol: each protocol's evaluate() progress, shifted by the runs of
    the protocols before it; totals are estimates until evaluate() reports its own."""

    def __init__(self, progress: ProgressFn | None, estimates: Mapping[str, int]) -> None:
        self.progress = progress
        self.totals = dict(estimates)
        self.offset = 0

    def tick(self, protocol: str) -> ProgressFn | None:
        if self.progress is None:
            return None
        report = self.progress

        def tick(done: int, total: int, **fields: Any) -> None:
            self.totals[protocol] = total
            report(self.offset + done, sum(self.totals.values()), protocol=protocol, **fields)

        return tick

    def finished(self, protocol: str) -> None:
        self.offset += self.totals[protocol]


def _report_data(
    spec: ProtocolSpec, encoder: Mapping[str, Any], config: EvalConfig, reports: Mapping[str, Any]
) -> dict[str, Any]:
    protocols = {}
    for protocol, report in reports.items():
        probe = PROTOCOLS[protocol]
        keys = [k for k, (of, _) in SUMMARY_KEYS.items() if _probe_of(of) == probe]
        summary, ci = report.data["summary"], report.data["summary_ci"]
        protocols[protocol] = {
            "probe": probe,
            "store": spec.stores[protocol],
            "headline": HEADLINE_METRIC[protocol],
            "report_dir": protocol,
            "report_json": f"{protocol}/{REPORT_JSON}",
            "report_markdown": f"{protocol}/{REPORT_MD}",
            "methods": {
                m: {k: {"mean": summary[m][k], "ci": ci[m][k]} for k in keys}
                for m in report.data["methods_order"]
            },
        }
    config_dict = config.to_dict()
    config_dict.pop("probes")  # per protocol: its own probe
    return {
        "format": PROTOCOL_FORMAT,
        "version": PROTOCOL_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "protocol": spec.to_dict(),
        "encoder": dict(encoder),
        "config": config_dict,
        "raw_method": RAW_METHOD,
        "methods_order": spec.method_names,
        "protocols": protocols,
    }


def _probe_of(summary_probe: str) -> str:
    """The PROBES entry a SUMMARY_KEYS probe key belongs to ("privacy_mlp_static" -> privacy)."""
    return next(p for p in PROBES if summary_probe == p or summary_probe.startswith(f"{p}_"))


def _write(data: dict[str, Any], out: Path) -> ProtocolReport:
    out.mkdir(parents=True, exist_ok=True)
    data["files"] = {"json": REPORT_JSON, "markdown": REPORT_MD}
    (out / REPORT_JSON).write_text(json.dumps(data, indent=1, allow_nan=False, default=str) + "\n")
    (out / REPORT_MD).write_text(protocol_markdown(data))
    return ProtocolReport(data, out)
