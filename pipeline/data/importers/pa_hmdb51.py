"""PA-HMDB51: frame-level privacy attributes of HMDB51 videos, one JSON file per action."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.data.importers._common import (
    VIDEO_SUFFIXES,
    FileIndex,
    ImportResult,
    Tally,
    as_dir,
    find_files,
    finish,
    json_line,
    load_json,
    probe_videos,
    split_map,
)
from pipeline.data.importers.hmdb51 import HMDB51_CLASSES
from pipeline.data.importers.vispr import BINARY, PAPER_ATTRIBUTES
from pipeline.data.manifest import ATTR_PREFIX, ATTRIBUTE_SEGMENTS, AttributeInfo, DatasetInfo
from pipeline.errors import ConfigError, ManifestError

CODES: dict[str, tuple[str, ...]] = {
    "skin_color": ("unidentifiable", "white", "brown-yellow", "black"),
    "relationship": ("unidentifiable", "identifiable"),
    "face": ("invisible", "partial", "complete"),
    "nudity": ("none", "partial", "semi"),
    "gender": ("unidentifiable", "male", "female"),
}
"""PA-HMDB51's attributes and the names of their codes."""
ORDINAL = ("face", "nudity", "relationship")
"""Attributes whose codes are ordered: the video-level code is the largest seen (codes mode)."""
LABEL_SETS = ("binary", "codes")
FACE_READINGS = ("common", "fine")
# VISPR attribute -> (PA-HMDB51 attribute, the codes that make a frame positive).
_BINARY_COMMON: dict[str, tuple[str, frozenset[int]]] = {
    "a4_gender": ("gender", frozenset({1, 2})),
    "a9_face_complete": ("face", frozenset({2})),
    "a10_face_partial": ("face", frozenset({1, 2})),
    "a12_semi_nudity": ("nudity", frozenset({1, 2})),
    "a17_color": ("skin_color", frozenset({1, 2, 3})),
    "a64_rel_personal": ("relationship", frozenset({1})),
}
_PROTOCOL = {"test": "privacy_test"}
_PLAIN = {"test": "test"}


def import_pa_hmdb51(
    root: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    videos: str | os.PathLike[str] | None = None,
    labels: str = "binary",
    face_reading: str = "common",
    split_names: str = "protocol",
    allow_outside_root: bool = False,
) -> ImportResult:
    """PA-HMDB51: ``PrivacyAttributes/<action>.json`` under ``root``, the HMDB51 ``.avi`` files
    under ``videos`` (default ``root``; found by file name, class folders or not).

    Each JSON maps ``"<video>.avi"`` to ``{"skin_color": [[s, e, v], ...], "relationship": ...,
    "face": ..., "nudity": ..., "gender": ..., "review": ..., "note": ...}`` (``note`` may be
    missing): frames s..e INCLUSIVE (0-based) show code v, or each code of a list v. Each attribute
    is segmented on its own. Rows: one trimmed video per entry, action = the HMDB51 class of the
    file name (51 classes, alphabetical), split privacy_test (``split_names="protocol"``: all of
    PA-HMDB51 is a test set) or test ("plain"); ``attribute_segments`` keep the frame-level labels
    as [s, e + 1) clipped to the video.

    ``labels="binary"`` (default) maps to VISPR's attributes, positive where v != 0: gender ->
    a4_gender, face -> a10_face_partial, nudity -> a12_semi_nudity, skin_color -> a17_color,
    relationship -> a64_rel_personal, plus face == 2 -> a9_face_complete; ``face_reading="fine"``
    makes a10_face_partial face == 1 only. a65_rel_social has no PA-HMDB51 counterpart: -1. The
    video-level column is 1 when any frame is positive, 0 when labelled frames are all negative.
    ``labels="codes"`` keeps the attributes and codes (skin_color, relationship, face, nudity,
    gender with the names of ``CODES``); video-level: the largest code for face, nudity and
    relationship, the one non-zero code seen for gender and skin_color (0 when none, -1 when
    several: see the segments).
    Skipped and counted: videos not on disk, repeated entries, segments starting past the end
    (clipped ones are counted too); a video without any attribute keeps -1 everywhere.
    """
    root = as_dir(root, "PA-HMDB51 root")
    video_root = as_dir(videos, "HMDB51 video root") if videos is not None else root
    if labels not in LABEL_SETS:
        raise ConfigError(f"labels must be one of {', '.join(LABEL_SETS)}, got {labels!r}")
    if face_reading not in FACE_READINGS:
        raise ConfigError(
            f"face_reading must be one of {', '.join(FACE_READINGS)}, got {face_reading!r}"
        )
    names = split_map(split_names, _PROTOCOL, _PLAIN)
    binary = dict(_BINARY_COMMON)
    if face_reading == "fine":
        binary["a10_face_partial"] = ("face", frozenset({1}))
    files = _json_files(root)
    tally = Tally()
    index = FileIndex(video_root, VIDEO_SUFFIXES)
    rows: list[dict[str, Any]] = []
    raw: list[dict[str, list[tuple[int, int, tuple[int, ...], str]]]] = []
    seen: set[str] = set()
    for file in files:
        action = HMDB51_CLASSES.index(file.stem)
        doc, text = load_json(file, "PA-HMDB51 annotation")
        if not isinstance(doc, dict):
            raise ManifestError(f"{file}:1: expected an object mapping video names to labels")
        for video, entry in doc.items():
            where = f"{file}:{json_line(text, video)}"
            parsed = _entry(video, entry, file, text)
            if video in seen:
                tally.add("duplicate_row", where)
                continue
            seen.add(video)
            path = index.find(video, tally)
            if path is None:
                tally.add("missing_video", video)
                continue
            if not parsed:
                tally.add("no_attributes", video)
            rows.append(
                {"video_id": Path(path).stem, "path": path, "split": names["test"],
                 "kind": "trimmed", "action": action}
            )  # fmt: skip
            raw.append(parsed)

    probed = probe_videos([video_root / r["path"] for r in rows])
    for row, parsed, (num_frames, fps) in zip(rows, raw, probed, strict=True):
        row["num_frames"], row["fps"] = num_frames, fps
        if num_frames < 0:
            tally.add("unreadable", row["path"])
        clipped = {a: _clip(segs, num_frames, tally) for a, segs in parsed.items()}
        if labels == "binary":
            _binary_row(row, clipped, binary)
        else:
            _codes_row(row, clipped)
    if labels == "binary":
        attributes = {a: AttributeInfo(BINARY, "person") for a in PAPER_ATTRIBUTES}
    else:
        attributes = {a: AttributeInfo(v, "person") for a, v in CODES.items()}
    info = DatasetInfo(name="pa_hmdb51", actions=HMDB51_CLASSES, attributes=attributes)
    return finish(
        rows, video_root, out_manifest, info, tally,
        allow_outside_root=allow_outside_root, default_dir=root,
    )  # fmt: skip


def _json_files(root: Path) -> list[Path]:
    folders = [Path(d) for d, _, _ in os.walk(root) if Path(d).name == "PrivacyAttributes"]
    folder = sorted(folders, key=lambda p: (len(p.parts), str(p)))[0] if folders else root
    files = sorted(p for p in folder.glob("*.json") if not p.name.startswith("._"))
    if not files:
        found = find_files(root, r"[a-z_]+\.json", "PA-HMDB51 files (PrivacyAttributes/*.json)")
        raise ManifestError(f"{root}: no PrivacyAttributes folder (JSON files: {found[0]}, ...)")
    for file in files:
        if file.stem not in HMDB51_CLASSES:
            raise ManifestError(f"{file}: {file.stem!r} is not an HMDB51 class")
    return files


def _entry(
    video: str, entry: Any, file: Path, text: str
) -> dict[str, list[tuple[int, int, tuple[int, ...], str]]]:
    """attribute -> [(start, end inclusive, codes, file:line)] of one video; a bad one names it
    (the line is the attribute's, in the video's entry)."""
    where = f"{file}:{json_line(text, video)}"
    if not isinstance(entry, dict):
        raise ManifestError(f"{where}: video {video!r}: expected an object of attributes")
    out: dict[str, list[tuple[int, int, tuple[int, ...], str]]] = {}
    for attr, codes in CODES.items():
        if attr not in entry:
            continue
        segs = entry[attr]
        where = f"{file}:{json_line(text, attr, after=video)}"
        if not isinstance(segs, list):
            raise ManifestError(f"{where}: video {video!r}, {attr}: expected a list of [s, e, v]")
        out[attr] = []
        for seg in segs:
            ok = isinstance(seg, list) and len(seg) == 3
            ok = ok and all(_is_int(x) for x in seg[:2]) and 0 <= seg[0] <= seg[1]
            values = seg[2] if ok and isinstance(seg[2], list) else [seg[2]] if ok else []
            ok = ok and bool(values) and all(_is_int(v) for v in values)
            if not ok:
                raise ManifestError(
                    f"{where}: video {video!r}, {attr}: {seg!r} is not [start, end, value] "
                    "(0 <= start <= end, inclusive frames)"
                )
            bad = [v for v in values if not 0 <= v < len(codes)]
            if bad:
                raise ManifestError(
                    f"{where}: video {video!r}, {attr}: code {bad[0]} is not one of "
                    f"0..{len(codes) - 1} ({', '.join(codes)})"
                )
            out[attr].append((seg[0], seg[1], tuple(dict.fromkeys(values)), where))
    return out


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _clip(
    segs: list[tuple[int, int, tuple[int, ...], str]], num_frames: int, tally: Tally
) -> list[tuple[int, int, tuple[int, ...]]]:
    """Inclusive [s, e] -> [s, e + 1), clipped to the video; segments past its end dropped."""
    out = []
    for s, e, values, where in segs:
        end = e + 1
        if num_frames >= 0 and s >= num_frames:
            tally.add("segment_past_end", where)
            continue
        if num_frames >= 0 and end > num_frames:
            tally.add("segment_clipped", where)
            end = num_frames
        out.append((s, end, values))
    return out


def _binary_row(
    row: dict[str, Any],
    clipped: dict[str, list[tuple[int, int, tuple[int, ...]]]],
    binary: dict[str, tuple[str, frozenset[int]]],
) -> None:
    segments: dict[tuple[str, int, int, int], None] = {}
    for attr in PAPER_ATTRIBUTES:
        row[ATTR_PREFIX + attr] = -1
        if attr not in binary or binary[attr][0] not in clipped:
            continue
        source, positive = binary[attr]
        for s, e, values in clipped[source]:
            value = int(any(v in positive for v in values))
            segments[(attr, s, e, value)] = None
        values = [v for (a, _, _, v) in segments if a == attr]
        row[ATTR_PREFIX + attr] = max(values) if values else -1
    row[ATTRIBUTE_SEGMENTS] = [
        {"attribute": a, "start": s, "end": e, "value": v} for a, s, e, v in segments
    ]


def _codes_row(
    row: dict[str, Any], clipped: dict[str, list[tuple[int, int, tuple[int, ...]]]]
) -> None:
    segments: dict[tuple[str, int, int, int], None] = {}
    for attr in CODES:
        row[ATTR_PREFIX + attr] = -1
        if attr not in clipped:
            continue
        seen: set[int] = set()
        for s, e, values in clipped[attr]:
            for v in values:
                segments[(attr, s, e, v)] = None
                seen.add(v)
        if not seen:
            continue
        if attr in ORDINAL:
            row[ATTR_PREFIX + attr] = max(seen)
        else:
            nonzero = sorted(seen - {0})
            if not nonzero:
                row[ATTR_PREFIX + attr] = 0
            elif len(nonzero) == 1:
                row[ATTR_PREFIX + attr] = nonzero[0]  # else -1: mixed, see the segments
    row[ATTRIBUTE_SEGMENTS] = [
        {"attribute": a, "start": s, "end": e, "value": v} for a, s, e, v in segments
    ]
