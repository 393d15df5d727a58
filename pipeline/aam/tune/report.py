"""The search's report: tune.json, tune.md (trials sorted by privacy) and frontier.png."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipeline.aam.trainer import epochs_label
from pipeline.aam.tune.scoring import SHORT_METRICS
from pipeline.aam.tune.space import SEARCHED_WEIGHTS
from pipeline.aam.tune.worker import write_json

JSON_FILE = "tune.json"
MARKDOWN_FILE = "tune.md"
PLOT_FILE = "frontier.png"
SELECTED_ON = "the worse (higher) of static clips and normal clips"
KINDS = {"static": "static clips", "clip": "normal clips"}
WEIGHTS = SEARCHED_WEIGHTS
"""The loss weights in the table: the searched ones."""


def _privacy_key(record: dict[str, Any]) -> tuple[int, float, int]:
    privacy = record.get("privacy")
    missing = privacy is None or not math.isfinite(privacy)
    return (int(missing), 0.0 if missing else float(privacy), int(record.get("order", 0)))


def sorted_by_privacy(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished trials, lowest privacy first (unknown privacy last), then trial order."""
    return sorted(records, key=_privacy_key)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "-"
    return str(value)


def _weight(value: Any) -> str:
    return "-" if value is None else f"{float(value):g}"


def _videos(privacy: dict[str, Any]) -> str:
    """Which videos privacy was measured on: the rule, then the counts (raw's record)."""
    counts = privacy.get("counts") or {}
    text = privacy["videos"]
    if "attack_fit_videos" in counts:
        text += (
            f"; seed {privacy['seed']}: {counts['attack_fit_videos']} video(s) to fit the "
            f"attacker (its early stopping on a part of them), {counts['attack_val_videos']} "
            "to score it"
        )
    elif "videos" in counts:
        text += f" ({counts['videos']})"
    return text


def _sources(record: dict[str, Any]) -> tuple[str, str]:
    by = record.get("privacy_by_source") or {}
    return _fmt((by.get("static") or {}).get("value")), _fmt((by.get("clip") or {}).get("value"))


def markdown(summary: dict[str, Any]) -> str:
    """The report as markdown: how it selected, then one row per trial (raw first)."""
    raw, chosen, privacy = summary["raw"], summary["chosen"], summary["privacy"]
    frontier = set(summary["frontier"])
    bar = chosen.get("bar")
    lines = [
        f"# anon-store tune: {summary['store']['location']}",
        "",
        f"- utility: {summary['utility']['metric']}",
        f"- privacy ({privacy['source']}: {privacy['reason']}): {privacy['metric']}, "
        f"{privacy['selected_on']}; lower is better",
        f"- privacy videos: {_videos(privacy)}",
        *([f"- **warning**: {privacy['warning']}"] if privacy.get("warning") else []),
        f"- rule: lowest privacy among the trials within {summary['tolerance_points']:g} "
        f"point(s) of the raw features' val top-1 ({_fmt(raw.get('utility'))}"
        + (f", bar {bar:.3f}" if bar is not None else "")
        + "); if none, the best utility",
        f"- chosen: **{chosen['trial_id']}** ({chosen['reason']}), copied to `chosen/`",
        "- chance: "
        + ", ".join(
            f"{KINDS[kind]} {_fmt(v.get('chance'))}" for kind, v in raw["privacy_by_source"].items()
        ),
        f"- {len(summary['trials'])} trial(s) finished, {len(summary['failed'])} failed; "
        f"{summary['trial_seconds']:.0f} s of trials in all, {summary['seconds']:.0f} s this "
        "run; frontier (*) = not beaten on both utility and privacy",
        "",
        "| trial | arch | epochs | "
        + " | ".join(WEIGHTS)
        + " | val top-1 | vs raw (pts) | privacy | static | normal clips | qualifies | frontier "
        "| seconds |",
        "|---" * (11 + len(WEIGHTS)) + "|",
    ]
    static, clip = _sources(raw)
    lines.append(
        "| raw features |" + " |" * (2 + len(WEIGHTS)) + f" {_fmt(raw.get('utility'))} | | "
        f"{_fmt(raw.get('privacy'))} | {static} | {clip} | | | {_fmt(raw.get('seconds'), 1)} |"
    )
    for r in summary["trials"]:
        p = r["params"]
        name = r["trial_id"]
        name = f"**{name}** (chosen)" if name == chosen["trial_id"] else name
        utility = r.get("utility")
        delta = "-"
        if utility is not None and raw.get("utility") is not None:
            delta = f"{100 * (utility - raw['utility']):+.1f}"
        ok = "-" if bar is None or utility is None else ("yes" if utility >= bar - 1e-9 else "no")
        static, clip = _sources(r)
        lines.append(
            f"| {name} | {p['arch']} | {epochs_label(p['epochs'])} | "
            + "".join(f"{_weight(p.get(k))} | " for k in WEIGHTS)
            + f"{_fmt(utility)} | {delta} | {_fmt(r.get('privacy'))} | {static} | {clip} | {ok} | "
            f"{'*' if r['trial_id'] in frontier else ''} | {_fmt(r.get('seconds'), 1)} |"
        )
    for r in summary["failed"]:
        lines.append(f"\nfailed: {r['trial_id']}: {r.get('error')}")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> Path:
    """Privacy (x) vs val action top-1 (y): every trial, the frontier, raw, the chosen one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = [r for r in summary["trials"] if r.get("privacy") is not None]
    frontier = [r for r in trials if r["trial_id"] in set(summary["frontier"])]
    fig, ax = plt.subplots(figsize=(7, 5))
    ax.scatter(
        [r["privacy"] for r in trials],
        [r["utility"] for r in trials],
        color="tab:blue",
        s=25,
        label="trials",
        zorder=2,
    )
    for r in trials:
        label = r["trial_id"].removeprefix("sample-").removeprefix("preset-")
        ax.annotate(
            label,
            (r["privacy"], r["utility"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    front = sorted(frontier, key=lambda r: r["privacy"])
    if front:
        ax.step(
            [r["privacy"] for r in front],
            [r["utility"] for r in front],
            where="post",
            color="tab:orange",
            marker="o",
            markerfacecolor="none",
            label="Pareto frontier",
            zorder=1,
        )
    raw = summary["raw"]
    if raw.get("privacy") is not None and raw.get("utility") is not None:
        ax.scatter(
            [raw["privacy"]],
            [raw["utility"]],
            marker="*",
            s=180,
            color="black",
            label="raw features",
            zorder=3,
        )
    bar = summary["chosen"].get("bar")
    if bar is not None:
        ax.axhline(
            bar,
            color="grey",
            linestyle="--",
            linewidth=1,
            label=f"raw - {summary['tolerance_points']:g} pt",
        )
    chosen = next((r for r in trials if r["trial_id"] == summary["chosen"]["trial_id"]), None)
    if chosen is not None:
        ax.scatter(
            [chosen["privacy"]],
            [chosen["utility"]],
            s=220,
            facecolors="none",
            edgecolors="red",
            linewidths=2,
            label=f"chosen: {chosen['trial_id']}",
            zorder=4,
        )
    source = summary["privacy"]["source"]
    ax.set_xlabel(
        f"privacy: {SHORT_METRICS[source]}, worse of static / normal clips (lower is better)"
    )
    ax.set_ylabel("val action top-1 (linear probe)")
    ax.set_title(f"tune: {summary['store']['location']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(output: Path, summary: dict[str, Any]) -> tuple[Path, Path, Path]:
    """tune.json, tune.md and frontier.png in ``output``; returns their paths."""
    json_path, md_path = output / JSON_FILE, output / MARKDOWN_FILE
    write_json(json_path, summary)
    md_path.write_text(markdown(summary))
    return json_path, md_path, plot(summary, output / PLOT_FILE)
