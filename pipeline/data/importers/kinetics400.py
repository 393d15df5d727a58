"""Kinetics-400: the annotation CSVs and ``<youtube_id>_<start>_<end>.mp4`` clips."""

from __future__ import annotations

import csv
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
    as_int,
    finish,
    parse_list,
    probe_videos,
)
from pipeline.data.manifest import DatasetInfo
from pipeline.errors import ManifestError

SPLITS = ("train", "val", "test")
_ANNOTATION = re.compile(
    r"(?:kinetics[-_]?(?:400)?[-_]?)?(train|val|validate|validation|test)\.csv", re.IGNORECASE
)
_SPLIT_OF = {"train": "train", "val": "val", "validate": "val", "validation": "val", "test": "test"}


@dataclass(frozen=True)
class _Clip:
    file: Path
    line: int
    split: str
    youtube_id: str
    start: int
    end: int
    label: str  # "" = unlabelled (old test.csv)

    @property
    def stem(self) -> str:
        return f"{self.youtube_id}_{self.start:06d}_{self.end:06d}"


def import_kinetics400(
    root: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    annotations: str | os.PathLike[str] | None = None,
    splits: str = "train,val,test",
    allow_outside_root: bool = False,
) -> ImportResult:
    """Kinetics-400: ``train.csv`` / ``val.csv`` / ``test.csv`` and the clips under ``root``.

    The CSVs (header ``label,youtube_id,time_start,time_end,split[,is_cc]``) are looked for in
    ``annotations`` (default: ``root/annotations``, then ``root``, then anywhere under ``root``);
    they may be called ``validate.csv`` or ``kinetics_400_val.csv`` too. They are read with a
    CSV reader (labels are quoted and contain spaces and commas); the split comes from the file
    name, never from the split column (it says ``validate`` or ``val``). A test CSV without a
    ``label`` column (old copies), or an empty label in it, gives action -1. Classes are the
    label strings of all the CSVs sorted alphabetically (the usual Kinetics order; there is no
    official index).

    Clips are found by file name anywhere under ``root`` (flat split folders or class folders):
    ``<youtube_id>_<start:06d>_<end:06d>`` with any video suffix, else ``<youtube_id>.*``; a
    copy in a folder whose name contains "replacement" (the CVDF fixes for corrupted videos)
    wins. Rows whose clip is not on disk are skipped and counted (the CSVs list more clips than
    any download has). ``splits``: which CSVs to import (comma-separated train, val, test).
    """
    root = as_dir(root, "Kinetics-400 root")
    wanted = parse_list(splits, SPLITS, "splits")
    files = _annotation_files(Path(annotations) if annotations is not None else None, root)
    clips: list[_Clip] = []
    for split, file in files.items():
        clips += _read_csv(file, split)
    classes = tuple(sorted({c.label for c in clips if c.label}))
    if not classes:
        raise ManifestError(f"{', '.join(map(str, files.values()))}: no labelled rows")
    index = FileIndex(root, VIDEO_SUFFIXES)
    tally = Tally()
    for split in wanted:
        if split not in files:
            tally.add("missing_split", split)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for clip in clips:
        if clip.split not in wanted:
            continue
        if clip.stem in seen:
            tally.add("duplicate_row", f"{clip.file.name}:{clip.line}")
            continue
        seen.add(clip.stem)
        path = _resolve(index, clip, tally)
        if path is None:
            tally.add("missing_video", clip.stem)
            continue
        if not clip.label:
            tally.add("unlabelled", f"{clip.file.name}:{clip.line}")
        action = classes.index(clip.label) if clip.label else -1
        rows.append(
            {"video_id": clip.stem, "path": path, "split": clip.split, "action": action,
             "kind": "trimmed"}
        )  # fmt: skip
    for row, (num_frames, fps) in zip(
        rows, probe_videos([root / r["path"] for r in rows]), strict=True
    ):
        row["num_frames"], row["fps"] = num_frames, fps
        if num_frames < 0:
            tally.add("unreadable", row["path"])
    info = DatasetInfo(name="kinetics400", actions=classes)
    return finish(rows, root, out_manifest, info, tally, allow_outside_root=allow_outside_root)


def _annotation_files(annotations: Path | None, root: Path) -> dict[str, Path]:
    """split -> its CSV; two CSVs for one split are an error."""
    if annotations is not None:
        places = [as_dir(annotations, "Kinetics-400 annotation folder")]
    else:
        places = [p for p in (root / "annotations", root) if p.is_dir()]
    for recursive in (False, True):
        found: dict[str, Path] = {}
        for place in places:
            candidates = place.rglob("*.csv") if recursive else place.glob("*.csv")
            for file in sorted(candidates):
                m = _ANNOTATION.fullmatch(file.name)
                if not m:
                    continue
                split = _SPLIT_OF[m.group(1).lower()]
                if split in found and found[split] != file:
                    raise ManifestError(
                        f"two {split} annotation files: {found[split]} and {file}; "
                        "keep one or pass the folder to use (annotations)"
                    )
                found[split] = file
            if found:
                return dict(sorted(found.items(), key=lambda kv: SPLITS.index(kv[0])))
    where = ", ".join(str(p) for p in places)
    raise ManifestError(
        f"{where}: no Kinetics annotation CSVs (train.csv, val.csv, test.csv) found"
    )


def _read_csv(file: Path, split: str) -> list[_Clip]:
    try:
        with open(file, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, skipinitialspace=True)
            header = [h.strip().lower() for h in next(reader, [])]
            need = ["youtube_id", "time_start", "time_end"] + (["label"] if split != "test" else [])
            missing = [c for c in need if c not in header]
            if missing:
                raise ManifestError(
                    f"{file}:1: header lacks {', '.join(missing)} "
                    f"(expected label,youtube_id,time_start,time_end,split)"
                )
            col = {name: header.index(name) for name in (*need, "label") if name in header}
            out: list[_Clip] = []
            for fields in reader:
                line = reader.line_num
                if not any(f.strip() for f in fields):
                    continue
                where = f"{file}:{line}"
                if len(fields) != len(header):
                    raise ManifestError(
                        f"{where}: {len(fields)} fields where the header has {len(header)} "
                        f"({','.join(header)}); quote labels that contain commas"
                    )
                youtube_id = fields[col["youtube_id"]].strip()
                if not youtube_id or any(c.isspace() or c in "/\\" for c in youtube_id):
                    raise ManifestError(f"{where}: bad youtube_id {youtube_id!r}")
                start = as_int(fields[col["time_start"]].strip())
                end = as_int(fields[col["time_end"]].strip())
                if start is None or end is None or not 0 <= start < end:
                    raise ManifestError(
                        f"{where}: time_start / time_end must be whole seconds with start < end, "
                        f"got {fields[col['time_start']]!r}, {fields[col['time_end']]!r}"
                    )
                label = fields[col["label"]].strip() if "label" in col else ""
                if not label and split != "test":
                    raise ManifestError(f"{where}: empty label")
                out.append(_Clip(file, line, split, youtube_id, start, end, label))
            return out
    except (UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f"{file}: not a readable UTF-8 CSV ({e})") from None


def _resolve(index: FileIndex, clip: _Clip, tally: Tally) -> str | None:
    found = index.candidates(clip.stem) or index.candidates(clip.youtube_id)
    if not found:
        return None
    if len(found) == 1:
        return found[0]

    def rank(path: str) -> tuple[int, int, str]:
        parts = [p.lower() for p in Path(path).parts[:-1]]
        if any("replacement" in p for p in parts):
            return (0, len(path), path)
        in_split = any(_SPLIT_OF.get(p) == clip.split for p in parts)
        return (1 if in_split else 2, len(path), path)

    best = sorted(found, key=rank)
    if rank(best[0])[0] != 0:
        tally.add("duplicate_file", f"{clip.stem}: {best[0]}")
    return best[0]
