"""The evaluation report: report.json (every number with its seeds), report.md, and the
privacy-utility plot."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pipeline.probes.measurable import MIN_RAW_MARGIN, weak_raw_probes

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PLOT_PNG = "privacy_utility.png"

HEADLINE_COLUMNS: tuple[tuple[str, str, str, bool], ...] = (
    ("privacy cMAP (static, MLP)", "privacy_mlp_static", "cmap_person", False),
    ("privacy cMAP (normal clips)", "privacy_mlp_clip", "cmap_person", False),
    ("linear", "privacy_linear_static", "cmap_person", False),
    ("action top-1", "action", "top1", True),
    ("TAD mAP", "tad", "mean_map", True),
    ("anomaly AUC", "anomaly", "auc", True),
    ("gender gap", "bias", "gap", False),
)
"""(column, probe, metric, higher is better): the layout of METHOD.md's headline table."""

PRIVACY_SETTINGS = (
    ("privacy_mlp_static", "MLP", "static clips"),
    ("privacy_mlp_clip", "MLP", "normal clips"),
    ("privacy_linear_static", "linear", "static clips"),
    ("privacy_linear_clip", "linear", "normal clips"),
    ("privacy_mlp_frame", "MLP", "static clips, frame labels"),
    ("privacy_linear_frame", "linear", "static clips, frame labels"),
)

DASH = "–"


@dataclass(frozen=True)
class ReportFiles:
    """A report written to a directory: its data (as in report.json) and the file paths."""

    data: dict[str, Any]
    output_dir: Path

    @property
    def json_path(self) -> Path:
        return self.output_dir / REPORT_JSON

    @property
    def markdown_path(self) -> Path:
        return self.output_dir / REPORT_MD

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        path = Path(directory)
        return cls(json.loads((path / REPORT_JSON).read_text()), path)


@dataclass(frozen=True)
class EvalReport(ReportFiles):
    """What `evaluate` wrote: the report data (as in report.json) and the file paths."""

    @property
    def summary(self) -> dict[str, dict[str, float | None]]:
        return self.data["summary"]

    @property
    def methods(self) -> dict[str, Any]:
        return self.data["methods"]

    @property
    def plot_path(self) -> Path:
        return self.output_dir / PLOT_PNG

    def metric(self, method: str, probe: str, name: str) -> dict[str, Any] | None:
        """{mean, ci, values, seeds, ...} of one metric, None where it was not measured."""
        return _metric(self.data, method, probe, name)

    def headline_table(self) -> str:
        return headline_table(self.data)

    def markdown(self) -> str:
        return report_markdown(self.data)


def _metric(data: Mapping[str, Any], method: str, probe: str, name: str) -> dict | None:
    return (
        data["methods"]
        .get(method, {})
        .get("probes", {})
        .get(probe, {})
        .get("metrics", {})
        .get(name)
    )


def fmt(entry: Mapping[str, Any] | None, scale: float = 100.0, digits: int = 1) -> str:
    """Format as "mean ± CI" (percent by default), "mean ± ?" with no interval, "–" if absent."""
    if entry is None or entry.get("mean") is None:
        return DASH
    mean = f"{entry['mean'] * scale:.{digits}f}"
    ci = entry.get("ci")
    return f"{mean} ± {ci * scale:.{digits}f}" if ci is not None else f"{mean} ± ?"


def _relative(entry: Mapping | None, ref: Mapping | None) -> str:
    if entry is None or ref is None or entry.get("mean") is None or not ref.get("mean"):
        return ""
    change = (entry["mean"] - ref["mean"]) / ref["mean"] * 100
    return f" ({change:+.1f}%)"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _main_methods(data: Mapping[str, Any]) -> list[str]:
    return [m for m in data["methods_order"] if m not in data.get("ablations", [])]


def headline_table(data: Mapping[str, Any], methods: list[str] | None = None) -> str:
    """The markdown headline table (percent, mean ± CI over seeds; relative change vs raw for
    the privacy columns), shaped like METHOD.md's."""
    methods = _main_methods(data) if methods is None else methods
    raw = data["raw_method"]
    rows = []
    for method in methods:
        row = [method]
        for _, probe, metric, _ in HEADLINE_COLUMNS:
            entry = _metric(data, method, probe, metric)
            cell = fmt(entry)
            if probe.startswith("privacy") and method != raw:
                cell += _relative(entry, _metric(data, raw, probe, metric))
            row.append(cell)
        rows.append(row)
    return _table(["method", *[c[0] for c in HEADLINE_COLUMNS]], rows)


def _privacy_table(data: Mapping[str, Any], methods: list[str]) -> str:
    rows = []
    for method in methods:
        for probe, attacker, items in PRIVACY_SETTINGS:
            m = data["methods"][method]["probes"].get(probe)
            if m is None or "metrics" not in m:
                continue
            get = m["metrics"].get
            rows.append(
                [
                    method,
                    attacker,
                    items,
                    fmt(get("cmap_person")),
                    fmt(get("chance_person")),
                    fmt(get("leakage_person")),
                    fmt(get("cmap_context")),
                    fmt(get("chance_context")),
                ]
            )
    header = [
        "method",
        "attacker",
        "items",
        "person cMAP",
        "chance",
        "leakage %",
        "context cMAP",
        "context chance",
    ]
    return _table(header, rows)


def _attribute_table(data: Mapping[str, Any], methods: list[str], probe: str) -> str:
    attributes = data["dataset"]["attributes"]
    names = list(attributes)
    header = ["method", *[f"{n} ({attributes[n]['role']})" for n in names]]
    rows = []
    chance_row = None
    for method in methods:
        m = data["methods"][method]["probes"].get(probe)
        if m is None or "metrics" not in m:
            continue
        rows.append([method, *[fmt(m["metrics"].get(f"ap_{n}")) for n in names]])
        if chance_row is None:
            chance_row = ["chance", *[fmt(m["metrics"].get(f"chance_{n}")) for n in names]]
    if not rows:
        return "_not measured_"
    return _table(header, [chance_row, *rows] if chance_row else rows)


def _bias_table(data: Mapping[str, Any], methods: list[str]) -> str:
    raw = data["raw_method"]
    rows, value_keys = [], None
    for method in methods:
        m = data["methods"][method]["probes"].get("bias")
        if m is None or "metrics" not in m:
            continue
        value_keys = value_keys or [k for k in m["metrics"] if k.startswith("acc_")]
        gap = m["metrics"].get("gap")
        rows.append(
            [
                method,
                fmt(m["metrics"].get("accuracy")),
                *[fmt(m["metrics"].get(k)) for k in value_keys],
                fmt(gap)
                + (_relative(gap, _metric(data, raw, "bias", "gap")) if method != raw else ""),
            ]
        )
    if not rows:
        skipped = data["methods"][raw]["probes"].get("bias", {}).get("skipped")
        return f"_not measured{': ' + skipped if skipped else ''}_"
    header = ["method", "accuracy", *[f"accuracy {k[4:]}" for k in value_keys or []], "gap"]
    return _table(header, rows)


def _tad_table(data: Mapping[str, Any], methods: list[str]) -> str:
    rows = []
    for method in methods:
        m = data["methods"][method]["probes"].get("tad")
        if m is None or "metrics" not in m:
            continue
        keys = [k for k in m["metrics"] if k.startswith("map@")]
        rows.append([method, *[fmt(m["metrics"][k]) for k in keys], fmt(m["metrics"]["mean_map"])])
    if not rows:
        return "_not measured_"
    return _table(["method", *[f"mAP@{k[4:]}" for k in keys], "mean"], rows)


def _skipped(data: Mapping[str, Any]) -> list[str]:
    lines = []
    for method in data["methods_order"]:
        for probe, result in data["methods"][method]["probes"].items():
            if "skipped" in result:
                lines.append(f"- {method} / {probe}: skipped ({result['skipped']})")
    return lines


def _unmeasured_notes(data: Mapping[str, Any]) -> list[str]:
    """A warning per privacy setting whose raw attacker is too near chance to read a cut."""
    raw = data["methods"].get(data["raw_method"], {})
    weak = weak_raw_probes(raw.get("probes", {}))
    if not weak:
        return []
    lines = [
        f"**Unmeasured**: on these settings the raw features' attacker is less than "
        f"{100 * MIN_RAW_MARGIN:.0f} points of cMAP above chance, so a method's cut and leakage "
        "there are noise, not protection (the features may not carry the attributes for this "
        "attacker, or the privacy split is too small to show them):",
        "",
    ]
    lines += [f"- {probe}: raw {100 * margin:+.1f} over chance" for probe, margin in weak.items()]
    return [*lines, ""]


def report_markdown(data: Mapping[str, Any]) -> str:
    """The whole report.md."""
    seeds = data["config"]["seeds"]
    conf = round(data["config"]["confidence"] * 100)
    main, ablations = _main_methods(data), list(data.get("ablations", []))
    raw = data["raw_method"]
    parts = [
        "# anon-store evaluation",
        "",
        f"Created {data['created_at']}. Numbers are percent, mean ± {conf}% CI (t-distribution) "
        f"over {len(seeds)} probe seed(s) {list(seeds)}. Privacy cMAP is the attacker's mean AP "
        "over the value indicators of PERSON attributes on privacy_test (lower is better); "
        "everything else: higher is better except the gender gap.",
        "",
        "## Headline",
        "",
        headline_table(data, main),
        "",
        "## Privacy attackers",
        "",
        "Leakage = (cMAP - chance) / (cMAP_raw - chance), per seed against raw's same-seed run. "
        "Context attributes (the scene) are not counted as private.",
        "",
        _privacy_table(data, data["methods_order"]),
        "",
        *_unmeasured_notes(data),
    ]
    for probe, title in (
        ("privacy_mlp_static", "MLP attacker, static clips"),
        ("privacy_mlp_clip", "MLP attacker, normal clips"),
        ("privacy_linear_static", "linear attacker, static clips"),
    ):
        parts += [
            f"### Per-attribute AP: {title}",
            "",
            _attribute_table(data, data["methods_order"], probe),
            "",
        ]
    parts += ["## Temporal action detection", "", _tad_table(data, data["methods_order"]), ""]
    parts += ["## Gender bias", "", _bias_table(data, data["methods_order"]), ""]
    parts += ["## Ablations", ""]
    if ablations:
        others = [m for m in main if m != raw]
        reference = ["aam"] if "aam" in others else others[:1]
        parts += [headline_table(data, [raw, *reference, *ablations]), ""]
    else:
        parts += ["_no ablation methods evaluated_", ""]
    skipped = _skipped(data)
    if skipped:
        parts += ["## Not measured", "", *skipped, ""]
    parts += ["## Sources", ""]
    for method in data["methods_order"]:
        source = data["methods"][method]["source"]
        desc = source.get("store") or source.get("transform") or "features"
        extra = f", transform {source['transform']}" if source.get("transform") else ""
        parts.append(f"- {method}: {desc}{extra} (store_id {source.get('store_id', DASH)})")
    return "\n".join(parts) + "\n"


def plot_privacy_utility(data: Mapping[str, Any], path: Path) -> None:
    """Attacker cMAP (MLP, static clips) against action top-1, one point per method with CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    chance = None
    for method in data["methods_order"]:
        x = _metric(data, method, "action", "top1")
        y = _metric(data, method, "privacy_mlp_static", "cmap_person")
        if x is None or y is None or x["mean"] is None or y["mean"] is None:
            continue
        ax.errorbar(
            100 * x["mean"],
            100 * y["mean"],
            xerr=100 * (x["ci"] or 0),
            yerr=100 * (y["ci"] or 0),
            fmt="o",
            capsize=3,
            label=method,
        )
        ax.annotate(
            method,
            (100 * x["mean"], 100 * y["mean"]),
            textcoords="offset points",
            xytext=(5, 5),
            fontsize=8,
        )
        c = _metric(data, method, "privacy_mlp_static", "chance_person")
        chance = chance if chance is not None else (c or {}).get("mean")
    if chance is not None and math.isfinite(chance):
        ax.axhline(100 * chance, linestyle="--", color="grey", linewidth=1, label="chance")
    ax.set_xlabel("action top-1 (%) - higher is better")
    ax.set_ylabel("attacker cMAP, person attrs (%) - lower is better")
    ax.set_title("privacy vs utility (MLP attacker, static clips)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(data: dict[str, Any], output_dir: Path) -> EvalReport:
    """Write report.json, report.md and privacy_utility.png into ``output_dir``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    data["files"] = {"json": REPORT_JSON, "markdown": REPORT_MD, "plot": PLOT_PNG}
    (output_dir / REPORT_JSON).write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    (output_dir / REPORT_MD).write_text(report_markdown(data))
    plot_privacy_utility(data, output_dir / PLOT_PNG)
    return EvalReport(data, output_dir)


PROTOCOL_COLUMNS: dict[str, tuple[str, str, float, str]] = {
    "action": ("action top-1 (%)", "action_top1", 100.0, ""),
    "detection": ("detection mAP (%)", "tad_map", 100.0, ""),
    "anomaly": ("anomaly AUC (%)", "anomaly_auc", 100.0, ""),
    "privacy": ("privacy cMAP (%)", "privacy_cmap_mlp", 100.0, "MLP attacker, static clips"),
    "bias": ("gender gap (points)", "gender_gap", 100.0, ""),
}
"""Protocol -> (column, summary key, scale, setting): the paper's Table 1 layout, in order."""


def _protocol_cell(data: Mapping[str, Any], protocol: str, method: str) -> str:
    _, key, scale, _ = PROTOCOL_COLUMNS[protocol]
    methods = data["protocols"][protocol]["methods"]
    if method not in methods:
        return DASH  # a method given by stores for other protocols only
    entry = methods[method].get(key)
    cell = fmt(entry, scale)
    raw = data["raw_method"]
    if protocol == "privacy" and method != raw:
        cell += _relative(entry, methods.get(raw, {}).get(key))
    return cell


def _protocol_header(data: Mapping[str, Any], protocol: str) -> str:
    title, _, scale, setting = PROTOCOL_COLUMNS[protocol]
    if protocol != "privacy":
        return title
    chance = data["protocols"][protocol]["methods"].get(data["raw_method"], {})
    mean = (chance.get("privacy_chance") or {}).get("mean")
    extra = f"; chance {mean * scale:.1f}" if mean is not None else ""
    return f"{title[:-1]}, {setting}{extra})"


def protocol_table(data: Mapping[str, Any]) -> str:
    """Table 1 of a protocol report: one row per method, one column per protocol with a store
    (mean ± CI half-width over seeds; privacy also with its change relative to raw)."""
    protocols = [p for p in PROTOCOL_COLUMNS if p in data["protocols"]]
    header = ["method", *[_protocol_header(data, p) for p in protocols]]
    rows = [
        [method, *[_protocol_cell(data, p, method) for p in protocols]]
        for method in data["methods_order"]
    ]
    return _table(header, rows)


def protocol_markdown(data: Mapping[str, Any]) -> str:
    """The whole report.md of a protocol report (evaluate --protocol)."""
    seeds = data["config"]["seeds"]
    conf = round(data["config"]["confidence"] * 100)
    encoder = data["encoder"]
    sha = encoder.get("weights_sha256")
    parts = [
        "# anon-store evaluation over several stores",
        "",
        f"Created {data['created_at']} from {data['protocol']['path']}. Numbers are percent "
        f"(the gender gap: points), mean ± {conf}% CI (t-distribution) over {len(seeds)} probe "
        f"seed(s) {list(seeds)}, the same for every method. Each protocol is measured on its own "
        "raw store; privacy cMAP is the MLP attacker's mean AP over person attributes on the "
        "static clips of privacy_test (lower is better; in parentheses: its change from raw), "
        "the gender gap: lower is better; everything else: higher is better. "
        f"{DASH}: not measured.",
        "",
        protocol_table(data),
        "",
        f"Encoder: {encoder.get('name', DASH)} (weights {str(sha)[:12] if sha else DASH}, "
        f"hidden size {encoder.get('hidden_size', DASH)}), shared by every store.",
        "",
        "## Protocols",
        "",
    ]
    for protocol, entry in data["protocols"].items():
        parts.append(
            f"- {protocol} (probe {entry['probe']}): {entry['store']}; full report "
            f"[{entry['report_markdown']}]({entry['report_markdown']})"
        )
    parts += ["", "## Methods", ""]
    methods = data["protocol"]["methods"]
    for name in data["methods_order"]:
        parts.append(f"- {name}: {_method_line(methods.get(name))}")
    return "\n".join(parts) + "\n"


def _method_line(method: Mapping[str, Any] | None) -> str:
    if method is None:
        return "each protocol's raw store (the reference)"
    if method["kind"] == "adapter":
        return f"adapter {method['adapter']}, applied in memory"
    if method["kind"] == "baseline":
        return f"{method['baseline']} fitted once on the {method['fit_on']} store's privacy_train"
    stores = ", ".join(f"{p}: {s}" for p, s in method["stores"].items())
    return f"stores ({stores})"
