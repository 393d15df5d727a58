"""UCF-Crime (weakly supervised anomaly detection): the train list, the temporal test labels."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pipeline.data.importers._common import (
    VIDEO_SUFFIXES,
    FileIndex,
    ImportResult,
    Tally,
    as_dir,
    as_int,
    finish,
    lines,
    one_file,
    probe_videos,
    split_map,
)
from pipeline.data.manifest import DatasetInfo
from pipeline.errors import ManifestError

ANOMALY_TYPES: tuple[str, ...] = (
    "Abuse", "Arrest", "Arson", "Assault", "Burglary", "Explosion", "Fighting", "RoadAccidents",
    "Robbery", "Shooting", "Shoplifting", "Stealing", "Vandalism",
)  # fmt: skip
"""The 13 anomaly classes; segment labels index them. Normal videos have none."""
NORMAL = "Normal"
TRAIN_LIST = ("Anomaly_Train.txt",)
TEST_ANNOTATIONS = (
    "Temporal_Anomaly_Annotation_for_Testing_Videos.txt",
    "Temporal_Anomaly_Annotation.txt",
)
_PREFIX = re.compile(r"([A-Za-z]+?)_?\d")
_PROTOCOL = {"train": "anomaly_train", "test": "anomaly_test"}
_PLAIN = {"train": "train", "test": "test"}


def import_ucf_crime(
    root: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    annotations: str | os.PathLike[str] | None = None,
    split_names: str = "protocol",
    allow_outside_root: bool = False,
) -> ImportResult:
    """UCF-Crime: ``Anomaly_Train.txt`` and the temporal test annotation file.

    Both files are searched recursively under ``annotations`` (default ``root``); the test file
    may be called ``Temporal_Anomaly_Annotation_for_Testing_Videos.txt`` or
    ``Temporal_Anomaly_Annotation.txt``. Train lines ``<Class folder>/<video>.mp4`` give
    video-level labels only: anomaly videos are anomalous (1) with no segments, normal ones
    (``Training_Normal_Videos_Anomaly/``) 0. Test lines ``<video> <Class> s1 e1 s2 e2`` (any
    whitespace) give up to two intervals in frames, -1 = none; intervals are inclusive, so a
    segment is [s, e + 1), clipped to the video's frame count; its label is the anomaly type.
    Videos are found by file name anywhere under ``root`` (``Videos/<Class>/``,
    ``Anomaly-Videos-Part-1/<Class>/``, ``Testing_Normal_Videos_Anomaly/``, doubled folders...);
    names are taken as written: the test normals ``Normal_Videos_003_x264`` and the train normals
    ``Normal_Videos003_x264`` are different videos. Skipped and counted: videos not on disk,
    repeated lines, train entries that are test videos too (kept as test), segments past the end.
    Splits: anomaly_train / anomaly_test (``split_names="protocol"``) or train / test ("plain").
    """
    root = as_dir(root, "UCF-Crime root")
    ann_root = as_dir(annotations, "UCF-Crime annotation folder") if annotations else root
    names = split_map(split_names, _PROTOCOL, _PLAIN)
    train_file = one_file(ann_root, TRAIN_LIST, "UCF-Crime train list")
    test_file = one_file(ann_root, TEST_ANNOTATIONS, "UCF-Crime test annotations")
    tally = Tally()

    test: dict[str, tuple[str, list[tuple[int, int, str]], str]] = {}
    for lineno, parts in lines(test_file, "test annotation file"):
        where = f"{test_file}:{lineno}"
        if len(parts) != 6:
            raise ManifestError(f"{where}: expected '<video> <Class> <s1> <e1> <s2> <e2>'")
        video, cls = parts[0], parts[1]
        if cls != NORMAL and cls not in ANOMALY_TYPES:
            raise ManifestError(f"{where}: unknown class {cls!r} (expected Normal or an anomaly)")
        numbers = [as_int(p) for p in parts[2:]]
        if any(n is None for n in numbers):
            raise ManifestError(f"{where}: the interval bounds must be frame numbers or -1")
        intervals = []
        for s, e in ((numbers[0], numbers[1]), (numbers[2], numbers[3])):
            assert s is not None and e is not None
            if s == -1 and e == -1:
                continue
            if s < 0 or e < s:
                raise ManifestError(f"{where}: bad interval {s} {e} (0 <= start <= end, or -1 -1)")
            intervals.append((s, e, where))
        if cls == NORMAL and intervals:
            raise ManifestError(f"{where}: a Normal video with an anomaly interval")
        key = _key(video)
        if key in test:
            tally.add("duplicate_row", where)
            continue
        test[key] = (cls, intervals, video)

    train: dict[str, tuple[str, str]] = {}
    for lineno, parts in lines(train_file, "train list"):
        where = f"{train_file}:{lineno}"
        if len(parts) != 1:
            raise ManifestError(f"{where}: expected '<Class folder>/<video>.mp4'")
        entry = parts[0].replace("\\", "/")
        cls = _train_class(entry)
        if cls is None:
            raise ManifestError(f"{where}: cannot tell the class of {entry!r}")
        key = _key(entry)
        if key in train:
            tally.add("duplicate_row", where)
            continue
        if key in test:
            tally.add("in_both_lists", entry)
            continue
        train[key] = (cls, entry)

    index = FileIndex(root, VIDEO_SUFFIXES)
    rows: list[dict[str, Any]] = []
    intervals_of: list[list[tuple[int, int, str]]] = []
    for split, entries in (
        ("train", [(cls, [], name) for cls, name in train.values()]),
        ("test", list(test.values())),
    ):
        for cls, intervals, name in entries:
            path = index.find(name, tally)
            if path is None:
                tally.add("missing_video", name.rsplit("/", 1)[-1])
                continue
            anomalous = 0 if cls == NORMAL else 1
            if split == "test" and anomalous and not intervals:
                tally.add("no_interval", name)
            rows.append(
                {"video_id": Path(path).stem, "path": path, "split": names[split],
                 "kind": "anomaly", "action": -1, "anomalous": anomalous,
                 "type": ANOMALY_TYPES.index(cls) if anomalous else -1}
            )  # fmt: skip
            intervals_of.append(intervals)

    n_segments = 0
    probed = probe_videos([root / r["path"] for r in rows])
    for row, intervals, (num_frames, fps) in zip(rows, intervals_of, probed, strict=True):
        row["num_frames"], row["fps"] = num_frames, fps
        if num_frames < 0:
            tally.add("unreadable", row["path"])
        label = row.pop("type")
        segments = []
        for s, e, where in intervals:
            end = e + 1  # inclusive end frame
            if num_frames >= 0 and s >= num_frames:
                tally.add("segment_past_end", where)
                continue
            if num_frames >= 0 and end > num_frames:
                tally.add("segment_clipped", where)
                end = num_frames
            segments.append({"start": s, "end": end, "label": label})
        row["segments"] = sorted(segments, key=lambda g: (g["start"], g["end"]))
        n_segments += len(segments)
    _unique_ids(rows)
    info = DatasetInfo(name="ucf_crime", anomaly_types=ANOMALY_TYPES)
    return finish(
        rows, root, out_manifest, info, tally,
        allow_outside_root=allow_outside_root, extra=f", {n_segments} segments",
    )  # fmt: skip


def _key(name: str) -> str:
    """A list entry's video, as compared between the lists: the file stem, lower case."""
    return name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()


def _train_class(entry: str) -> str | None:
    parts = entry.split("/")
    for folder in reversed(parts[:-1]):
        if folder in ANOMALY_TYPES:
            return folder
        if "normal" in folder.lower():
            return NORMAL
    base = parts[-1]
    if base.lower().startswith("normal_videos"):
        return NORMAL
    m = _PREFIX.match(base)
    return m.group(1) if m and m.group(1) in ANOMALY_TYPES else None


def _unique_ids(rows: list[dict[str, Any]]) -> None:
    """Two listed videos resolving to files with one stem (say .mp4 and .avi): prefix folders."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["video_id"]] = counts.get(r["video_id"], 0) + 1
    for r in rows:
        if counts[r["video_id"]] > 1:
            r["video_id"] = r["path"]
