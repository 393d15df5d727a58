"""A generic CSV: one row per video or image, with labels as integers or class names."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

from pipeline.data.importers._common import (
    ImportResult,
    log,
    out_path,
    plain_summary,
    probe_images,
    probe_videos,
    relative,
    result_of,
)
from pipeline.data.manifest import (
    ATTR_PREFIX,
    ATTRIBUTE_SEGMENTS,
    KINDS,
    MANIFEST_FILENAME,
    SPLITS,
    AttributeInfo,
    DatasetInfo,
    Manifest,
    read_manifest,
    write_manifest,
)
from pipeline.errors import ManifestError

_OPTIONAL = ("kind", "fps", "num_frames", "segments", "anomalous", ATTRIBUTE_SEGMENTS)


def import_csv(
    csv_path: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
    allow_outside_root: bool = False,
) -> Manifest:
    """A generic CSV with a header row: video_id, path, split, action, optional attr_<name>,
    kind, fps, num_frames, segments, anomalous, attribute_segments.

    Paths are relative to the CSV's directory (or absolute). ``action`` and ``attr_*`` cells are
    integer labels, or else class names (then the sorted distinct names become the label names
    and -1 still means none); an empty ``attr_*`` cell means unknown (-1). Empty or absent
    fps / num_frames are probed; ``kind`` = image rows (jpg / png / webp) get fps 0 and
    num_frames 1 (-1 when the image does not open).
    ``segments``: a JSON list of {"start", "end", "label"} (frames, [start, end)); the label is
    an action (integer, or a class name when the action column has names) for untrimmed rows and
    an anomaly type (integers, or names: the sorted names become the anomaly types) for anomaly
    rows. ``anomalous``: -1, 0 or 1 (empty: the manifest's default). ``attribute_segments``: a
    JSON list of {"attribute", "start", "end", "value"}, attribute = an ``attr_`` column's name
    (with or without the prefix), value as in that column. An empty cell is no segments.
    The manifest goes to ``out_manifest`` (default: ``manifest.parquet`` next to the CSV).
    """
    csv_file = Path(csv_path)
    if not csv_file.is_file():
        raise ManifestError(f"{csv_file}: CSV file not found")
    try:
        with open(csv_file, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            records = []
            for r in reader:
                rec = {k.strip(): (v or "").strip() for k, v in r.items() if k is not None}
                records.append((reader.line_num, rec))
    except (UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f"{csv_file}: not a readable UTF-8 CSV ({e})") from None
    allowed = {"video_id", "path", "split", "action", *_OPTIONAL}
    for col in ("video_id", "path", "split", "action"):
        if col not in header:
            raise ManifestError(f"{csv_file}: column {col!r}: missing (have: {', '.join(header)})")
    for col in header:
        if col not in allowed and not col.startswith(ATTR_PREFIX):
            raise ManifestError(f"{csv_file}: column {col!r}: unknown column")
    if not records:
        raise ManifestError(f"{csv_file}: no rows")

    def fail(line: int, rec: dict[str, str], col: str, problem: str) -> None:
        raise ManifestError(
            f"{csv_file}:{line} (video_id {rec.get('video_id')!r}), column {col!r}: {problem}"
        )

    label_cols = ["action", *(c for c in header if c.startswith(ATTR_PREFIX))]
    # JSON cells first: segment labels and values take part in the label names.
    segs: dict[int, list[dict[str, Any]]] = {}
    asegs: dict[int, list[dict[str, Any]]] = {}
    extra: dict[str, list[tuple[int, dict[str, str], Any]]] = {c: [] for c in label_cols}
    anomaly_labels: list[tuple[int, dict[str, str], Any]] = []
    for line, rec in records:
        kind = rec.get("kind") or "trimmed"
        segs[line] = _json_list(fail, line, rec, "segments", ("start", "end", "label"))
        if segs[line] and kind not in ("untrimmed", "anomaly"):
            fail(line, rec, "segments", f"a {kind} row has no segments (only untrimmed, anomaly)")
        for s in segs[line]:
            target = anomaly_labels if kind == "anomaly" else extra["action"]
            target.append((line, rec, s["label"]))
        asegs[line] = _json_list(
            fail, line, rec, ATTRIBUTE_SEGMENTS, ("attribute", "start", "end", "value")
        )
        for s in asegs[line]:
            attr = str(s["attribute"])
            attr = attr[len(ATTR_PREFIX) :] if attr.startswith(ATTR_PREFIX) else attr
            if ATTR_PREFIX + attr not in header:
                fail(line, rec, ATTRIBUTE_SEGMENTS, f"attribute {attr!r} has no attr_ column")
            s["attribute"] = attr
            extra[ATTR_PREFIX + attr].append((line, rec, s["value"]))

    names: dict[str, tuple[str, ...] | None] = {}
    for col in label_cols:
        values = [(ln, r, r[col]) for ln, r in records if r[col] != ""]
        values += [(ln, r, str(v)) for ln, r, v in extra[col]]
        names[col] = _label_names(fail, col, values)
    anomaly_names = _label_names(fail, "segments", [(ln, r, str(v)) for ln, r, v in anomaly_labels])

    out = Path(out_manifest) if out_manifest is not None else csv_file.with_name(MANIFEST_FILENAME)
    if out.is_dir():
        out = out / MANIFEST_FILENAME
    out_dir = out.parent.absolute()
    rows: list[dict[str, Any]] = []
    to_probe: list[int] = []
    images: list[int] = []
    seen: dict[str, int] = {}

    def label(col: str, line: int, rec: dict[str, str], value: Any, where: str) -> int:
        text = str(value)
        if names[col] is None:
            return int(text)
        if _is_int(text):
            if int(text) >= 0:
                fail(line, rec, where, f"integer label {text} where {col} has class names")
            return -1
        return names[col].index(text)

    for line, rec in records:
        row: dict[str, Any] = {"video_id": rec["video_id"], "split": rec["split"]}
        if not rec["video_id"]:
            fail(line, rec, "video_id", "empty video_id")
        if rec["video_id"] in seen:
            fail(line, rec, "video_id", f"duplicate video_id, also on line {seen[rec['video_id']]}")
        seen[rec["video_id"]] = line
        if rec["split"] not in SPLITS:
            fail(line, rec, "split", f"unknown split {rec['split']!r}")
        if rec.get("kind"):
            if rec["kind"] not in KINDS:
                fail(line, rec, "kind", f"unknown kind {rec['kind']!r}")
            row["kind"] = rec["kind"]
        raw = Path(rec["path"])
        if not rec["path"]:
            fail(line, rec, "path", "empty path")
        # normpath: "meta/../clips/a.mp4" must become "clips/a.mp4" (lexically, like the CSV means)
        full = Path(
            os.path.normpath(raw if raw.is_absolute() else csv_file.parent.absolute() / raw)
        )
        if not full.is_file():
            fail(line, rec, "path", f"video file not found: {full}")
        row["path"] = relative(full, out_dir, allow_outside_root)
        for col in label_cols:
            cell = rec[col]
            if cell == "":
                if col == "action":
                    fail(line, rec, col, "empty (use -1 for no action)")
                row[col] = -1
            else:
                row[col] = label(col, line, rec, cell, col)
        for col, conv in (("fps", float), ("num_frames", int)):
            cell = rec.get(col, "")
            if cell:
                try:
                    row[col] = conv(cell)
                except ValueError:
                    fail(line, rec, col, f"not a number: {cell!r}")
        if rec.get("anomalous"):
            if rec["anomalous"] not in ("-1", "0", "1"):
                fail(line, rec, "anomalous", f"expected -1, 0 or 1, got {rec['anomalous']!r}")
            row["anomalous"] = int(rec["anomalous"])
        if segs[line]:
            anomaly = row.get("kind") == "anomaly"
            row["segments"] = [
                {
                    "start": s["start"],
                    "end": s["end"],
                    "label": (
                        _anomaly_label(fail, line, rec, s["label"], anomaly_names)
                        if anomaly
                        else label("action", line, rec, s["label"], "segments")
                    ),
                }
                for s in segs[line]
            ]
        if asegs[line]:
            row[ATTRIBUTE_SEGMENTS] = [
                {
                    "attribute": s["attribute"],
                    "start": s["start"],
                    "end": s["end"],
                    "value": label(
                        ATTR_PREFIX + s["attribute"], line, rec, s["value"], ATTRIBUTE_SEGMENTS
                    ),
                }
                for s in asegs[line]
            ]
        if row.get("kind") == "image":
            row.setdefault("fps", 0.0)
            if "num_frames" not in row:
                images.append(len(rows))
        elif "fps" not in row or "num_frames" not in row:
            to_probe.append(len(rows))
        rows.append(row)

    probed = probe_videos([out_dir / rows[i]["path"] for i in to_probe])
    for i, (num_frames, fps) in zip(to_probe, probed, strict=True):
        rows[i].setdefault("num_frames", num_frames)
        rows[i].setdefault("fps", fps)
    readable = probe_images([out_dir / rows[i]["path"] for i in images])
    for i, ok in zip(images, readable, strict=True):
        rows[i]["num_frames"] = 1 if ok else -1

    def label_names(col: str) -> tuple[str, ...]:
        if names[col] is not None:
            return names[col]
        top = max((r[col] for r in rows), default=-1)
        for r in rows:
            if col == "action" and r.get("kind") != "anomaly":
                top = max([top, *(s["label"] for s in r.get("segments", []))])
            elif col != "action":
                attr = col[len(ATTR_PREFIX) :]
                own = [s["value"] for s in r.get(ATTRIBUTE_SEGMENTS, []) if s["attribute"] == attr]
                top = max([top, *own])
        return tuple(str(i) for i in range(top + 1))

    if anomaly_names is None:
        top = max((int(v) for _, _, v in anomaly_labels), default=-1)
        anomaly_names = tuple(str(i) for i in range(top + 1))
    attributes = {
        col[len(ATTR_PREFIX) :]: AttributeInfo(
            label_names(col), "context" if col == "attr_scene" else "person"
        )
        for col in label_cols[1:]
    }
    info = DatasetInfo(
        name=name or csv_file.parent.absolute().name,
        actions=label_names("action"),
        attributes=attributes,
        anomaly_types=anomaly_names,
    )
    written = write_manifest(
        out, rows, info, allow_outside_root=allow_outside_root, check_files=True
    )
    manifest = read_manifest(written, allow_outside_root=allow_outside_root)
    log.info("%s", plain_summary(manifest, written))
    return manifest


def run(
    source: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
    allow_outside_root: bool = False,
) -> ImportResult:
    """The registry's entry: :func:`import_csv` with an ImportResult."""
    manifest = import_csv(source, out_manifest, name=name, allow_outside_root=allow_outside_root)
    default = out_path(out_manifest, Path(source).absolute().parent)
    return result_of(manifest, default)


def _json_list(
    fail: Any, line: int, rec: dict[str, str], col: str, keys: tuple[str, ...]
) -> list[dict[str, Any]]:
    """A JSON cell: a list of objects with exactly ``keys``; start / end integers."""
    cell = rec.get(col, "")
    if not cell:
        return []
    try:
        items = json.loads(cell)
    except ValueError as e:
        fail(line, rec, col, f"not JSON ({e})")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        fail(line, rec, col, f"expected a JSON list of {{{', '.join(keys)}}} objects")
    for item in items:
        if set(item) != set(keys):
            fail(line, rec, col, f"{json.dumps(item)}: expected the keys {', '.join(keys)}")
        for key in ("start", "end"):
            if not isinstance(item[key], int) or isinstance(item[key], bool):
                fail(line, rec, col, f"{json.dumps(item)}: {key} must be an integer frame")
        for key in set(keys) - {"start", "end"}:
            if not isinstance(item[key], int | str) or isinstance(item[key], bool):
                fail(line, rec, col, f"{json.dumps(item)}: {key} must be an integer or a name")
    return items


def _label_names(
    fail: Any, col: str, values: list[tuple[int, dict[str, str], str]]
) -> tuple[str, ...] | None:
    """None when every value is an integer label, else the sorted class names (-1 allowed)."""
    if all(_is_int(v) for _, _, v in values):
        return None
    numeric = [(ln, r, v) for ln, r, v in values if _is_int(v) and int(v) >= 0]
    if numeric:
        ln, r, v = numeric[0]
        fail(ln, r, col, f"mixes class names and integer labels ({v!r})")
    return tuple(sorted({v for _, _, v in values if not _is_int(v)}))


def _anomaly_label(
    fail: Any, line: int, rec: dict[str, str], value: Any, names: tuple[str, ...] | None
) -> int:
    if names is None:
        return int(value)
    if _is_int(str(value)):
        fail(line, rec, "segments", f"integer label {value} where the anomaly types have names")
    return names.index(str(value))


_INT = re.compile(r"^[+-]?\d+$")


def _is_int(value: str) -> bool:
    return bool(_INT.match(value))
