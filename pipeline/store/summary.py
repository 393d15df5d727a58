"""A JSON-able summary of a store for `anon-store inspect`, logs and Prefect artifacts."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from pipeline.store.reader import FeatureStore
from store_schema import VIDEO_FAILED, VIDEO_OK, VIDEO_PENDING


def summarize(store: FeatureStore) -> dict[str, Any]:
    """Kind, status, provenance, counts per split and status, array shapes, size on disk."""
    meta = store.meta
    videos = store.videos
    status = videos["status"]
    splits = Counter(str(s) for s in videos["split"])
    ok_splits = Counter(str(s) for s in videos["split"][status == VIDEO_OK])
    reasons = Counter(str(r).split(":", 1)[0] for r in videos["failure_reason"] if r)
    encoder = meta.get("encoder") or {}
    return {
        "location": str(store.location),
        "kind": meta.get("kind"),
        "status": meta.get("status"),
        "store_id": meta.get("store_id"),
        "provenance": meta.get("provenance"),
        "created_at": meta.get("created_at"),
        "completed_at": meta.get("completed_at"),
        "producer": meta.get("producer"),
        "encoder": {
            key: encoder.get(key)
            for key in ("name", "source", "family", "pooling", "hidden_size", "weights_sha256")
        },
        "sampling": meta.get("sampling"),
        "dataset": {
            key: (meta.get("dataset") or {}).get(key) for key in ("name", "manifest_sha256")
        },
        "adapter": (meta.get("adapter") or {}).get("sha256"),
        "input_store_id": meta.get("input_store_id"),
        "videos": {
            "total": len(status),
            "ok": int((status == VIDEO_OK).sum()),
            "failed": int((status == VIDEO_FAILED).sum()),
            "pending": int((status == VIDEO_PENDING).sum()),
            "failure_reasons": dict(reasons),
        },
        "splits": {
            split: {"videos": n, "ok": ok_splits.get(split, 0)}
            for split, n in sorted(splits.items())
        },
        "windows": int(np.asarray(videos["window_count"]).sum()),
        "arrays": {
            name: {
                "shape": list(store.group[name].shape),
                "dtype": str(store.group[name].dtype),
                "chunks": list(store.group[name].chunks),
                "dims": list(store.group[name].metadata.dimension_names or ()),
            }
            for name in sorted(store.group.array_keys())
            if name.endswith("_features")
        },
        "size_bytes": store.size_bytes(),
        "version": meta.get("version"),
        "input_version": meta.get("input_version"),
        "history_entries": len(meta.get("history") or []),
        "audit": meta.get("audit"),  # written by `anon-store audit` (store_schema OPTIONAL_ATTRS)
        "audit_state": audit_state(meta),
        "published": meta.get("published"),
    }


def audit_state(meta: dict[str, Any]) -> str:
    """none | current | stale (the store changed since its audit)."""
    audit = meta.get("audit")
    if not isinstance(audit, dict):
        return "none"
    same_store = audit.get("store_id") == meta.get("store_id")
    same_version = audit.get("store_version") == meta.get("version")
    return "current" if same_store and same_version else "stale"


def history_lines(meta: dict[str, Any]) -> list[str]:
    """One line per history entry: version, date, operation, details (for `anon-store history`)."""
    lines = []
    for entry in meta.get("history") or []:
        details = ", ".join(
            f"{key}={value}"
            for key, value in entry.items()
            if key not in ("version", "op", "at", "anon_store") and value is not None
        )
        lines.append(
            f"v{entry.get('version')}  {entry.get('at')}  {entry.get('op')}"
            + (f"  {details}" if details else "")
        )
    return lines
