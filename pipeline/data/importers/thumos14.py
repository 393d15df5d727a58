"""THUMOS14 temporal action detection: per-class annotation files in seconds, untrimmed videos."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
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
    lines,
    parse_list,
    probe_videos,
    split_map,
)
from pipeline.data.manifest import DatasetInfo
from pipeline.errors import ManifestError

SPLITS = ("val", "test")
KNOWN_BAD = ("video_test_0000270", "video_test_0001496")
"""Test videos with wrong annotations, dropped unless ``keep_bad``."""
AMBIGUOUS = "Ambiguous"
_CLASS_FILE = re.compile(r"(\w+)_(val|test)\.txt", re.IGNORECASE)
_INDEX_FILE = re.compile(r"class[ _]?index_detection\.txt", re.IGNORECASE)
_VIDEO = re.compile(r"video_(validation|test)_\d+")
_PROTOCOL = {"val": "tad_train", "test": "tad_test"}
_PLAIN = {"val": "val", "test": "test"}


@dataclass(frozen=True)
class _Segment:
    start: float  # seconds
    end: float
    cls: str
    where: str  # file:line


def import_thumos14(
    root: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    annotations: str | os.PathLike[str] | None = None,
    splits: str = "val,test",
    split_names: str = "protocol",
    keep_bad: bool = False,
    allow_outside_root: bool = False,
) -> ImportResult:
    """THUMOS14: ``<Class>_val.txt`` / ``<Class>_test.txt`` lines "video start end" (seconds).

    The annotation files are searched recursively under ``annotations`` (default ``root``),
    e.g. ``TH14_Temporal_annotations_validation/annotation/`` and
    ``TH14_Temporal_Annotations_Test/annotations/annotation/``; fields are split on any
    whitespace. Classes: the 20 names of ``Class Index_Detection.txt`` when found (else those of
    the annotation files) in alphabetical order. Every annotated video with at least one action
    segment becomes an untrimmed row (action -1) with its segments in frames: each video's own fps
    (probed; THUMOS mixes 30 and ~25 fps) converts seconds, start = round(s * fps), end =
    round(e * fps), clipped to the video. CliffDiving segments stay also Diving segments (two
    labels, same interval). Left out and counted: Ambiguous segments (not actions), videos with
    only Ambiguous segments (video_test_0001292), the wrongly annotated video_test_0000270 and
    video_test_0001496 (unless ``keep_bad``), videos not on disk, videos whose fps cannot be read,
    segments past the end. Splits: validation -> tad_train and test -> tad_test
    (``split_names="protocol"``: the detector trains on validation), or val / test ("plain").
    """
    root = as_dir(root, "THUMOS14 root")
    ann_root = as_dir(annotations, "THUMOS14 annotation folder") if annotations else root
    wanted = parse_list(splits, SPLITS, "splits")
    names = split_map(split_names, _PROTOCOL, _PLAIN)
    class_files = _class_files(ann_root)
    classes = _classes(ann_root, class_files)
    videos: dict[str, list[_Segment]] = {}
    for (cls, split), file in class_files.items():
        if split not in wanted:
            continue
        prefix = "video_validation_" if split == "val" else "video_test_"
        for lineno, parts in lines(file, "annotation file"):
            where = f"{file}:{lineno}"
            if len(parts) != 3:
                raise ManifestError(f"{where}: expected '<video> <start> <end>' (seconds)")
            video, start, end = parts[0], _seconds(parts[1], where), _seconds(parts[2], where)
            if not _VIDEO.fullmatch(video) or not video.startswith(prefix):
                raise ManifestError(f"{where}: {video!r} is not a {prefix}NNNNNNN video")
            videos.setdefault(video, []).append(_Segment(start, end, cls, where))
    if not videos:
        raise ManifestError(f"{ann_root}: the annotation files list no videos")

    tally = Tally()
    index = FileIndex(root, VIDEO_SUFFIXES)
    found: list[tuple[str, str, list[_Segment]]] = []
    for video in sorted(videos):
        segments = videos[video]
        if video in KNOWN_BAD and not keep_bad:
            tally.add("known_bad", video)
            continue
        actions = [s for s in segments if s.cls != AMBIGUOUS]
        if len(actions) < len(segments):
            tally.add("ambiguous_segment", n=len(segments) - len(actions))
        if not actions:
            tally.add("only_ambiguous", video)
            continue
        path = index.find(video, tally)
        if path is None:
            tally.add("missing_video", video)
            continue
        found.append((video, path, actions))

    rows: list[dict[str, Any]] = []
    n_segments = 0
    probed = probe_videos([root / path for _, path, _ in found])
    for (video, path, actions), (num_frames, fps) in zip(found, probed, strict=True):
        if not (math.isfinite(fps) and fps > 0):
            tally.add("no_fps", video)
            continue
        segments = _frames(actions, fps, num_frames, classes, tally, video)
        n_segments += len(segments)
        split = "val" if video.startswith("video_validation_") else "test"
        rows.append(
            {"video_id": video, "path": path, "split": names[split], "kind": "untrimmed",
             "action": -1, "fps": fps, "num_frames": num_frames, "segments": segments}
        )  # fmt: skip
    info = DatasetInfo(name="thumos14", actions=classes)
    return finish(
        rows, root, out_manifest, info, tally,
        allow_outside_root=allow_outside_root, extra=f", {n_segments} segments",
    )  # fmt: skip


def _class_files(ann_root: Path) -> dict[tuple[str, str], Path]:
    """(class, "val" | "test") -> its annotation file; a second copy is an error."""
    out: dict[tuple[str, str], Path] = {}
    for file in find_files(ann_root, _CLASS_FILE, "THUMOS14 annotation files (<Class>_val.txt)"):
        m = _CLASS_FILE.fullmatch(file.name)
        assert m is not None
        key = (m.group(1), m.group(2).lower())
        if key in out:
            raise ManifestError(
                f"two annotation files for {key[0]} ({key[1]}): {out[key]} and {file}; "
                "keep one or pass the folder to use (annotations)"
            )
        out[key] = file
    return out


def _classes(ann_root: Path, class_files: dict[tuple[str, str], Path]) -> tuple[str, ...]:
    named = sorted({cls for cls, _ in class_files if cls != AMBIGUOUS})
    index_files = find_files(ann_root, _INDEX_FILE, "class index", required=False)
    if not index_files:
        return tuple(named)
    index_file = index_files[0]
    listed: list[str] = []
    for lineno, parts in lines(index_file, "class index"):
        if len(parts) != 2 or not parts[0].isdigit():
            raise ManifestError(f"{index_file}:{lineno}: expected '<UCF101 id> <Class>'")
        listed.append(parts[1])
    for cls in named:
        if cls not in listed:
            files = [str(f) for (c, _), f in class_files.items() if c == cls]
            raise ManifestError(f"{files[0]}: class {cls!r} is not in {index_file}")
    return tuple(sorted(listed))


def _seconds(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ManifestError(f"{where}: {text!r} is not a time in seconds")
    return value


def _frames(
    actions: list[_Segment],
    fps: float,
    num_frames: int,
    classes: tuple[str, ...],
    tally: Tally,
    video: str,
) -> list[dict[str, int]]:
    """Seconds -> frames [start, end) at the video's fps, clipped to it, without repeats."""
    out: dict[tuple[int, int, int], None] = {}
    for s in actions:
        if s.end <= s.start:
            tally.add("segment_empty", s.where)
            continue
        start = round(s.start * fps)
        end = max(round(s.end * fps), start + 1)
        if num_frames >= 0 and start >= num_frames:
            tally.add("segment_past_end", s.where)
            continue
        if num_frames >= 0 and end > num_frames:
            tally.add("segment_clipped", s.where)
            end = num_frames
        key = (start, end, classes.index(s.cls))
        if key in out:
            tally.add("duplicate_segment", s.where)
        out[key] = None
    return [{"start": a, "end": b, "label": c} for a, b, c in sorted(out)]
