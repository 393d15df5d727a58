"""Markdown renderings of store summaries and metrics for Prefect artifacts."""

from __future__ import annotations

from typing import Any


def store_summary_markdown(summary: dict[str, Any]) -> str:
    """A short markdown table of a store summary (pipeline.store.summary.summarize)."""
    encoder = summary.get("encoder") or {}
    videos = summary.get("videos") or {}
    rows = [
        ("location", summary.get("location")),
        ("kind / status", f"{summary.get('kind')} / {summary.get('status')}"),
        ("store id", summary.get("store_id")),
        (
            "encoder",
            f"{encoder.get('name')} ({encoder.get('family')}, D={encoder.get('hidden_size')})",
        ),
        ("videos", f"{videos.get('total')} ({videos.get('ok')} ok, {videos.get('failed')} failed)"),
        ("size", f"{(summary.get('size_bytes') or 0) / 1e6:.1f} MB"),
    ]
    lines = ["| field | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines)
