"""Manifests for existing datasets: UCF101 and HMDB51 in their official layouts, or a generic CSV.

Each importer reads the dataset's own split files, probes every video's fps and frame count with
PyAV (a header read, no decoding; a video that cannot be probed is kept with unknown values so
extraction records it as failed), writes ``manifest.parquet`` with paths relative to it (by
default at the dataset root, next to the class folders) and returns the validated Manifest.
Problems in the dataset itself (missing split files, unknown classes, listed videos that are not
on disk) raise ManifestError naming the file and line.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.data.manifest import (
    ATTR_PREFIX,
    KINDS,
    MANIFEST_FILENAME,
    SPLITS,
    AttributeInfo,
    DatasetInfo,
    Manifest,
    read_manifest,
    write_manifest,
)
from pipeline.errors import ManifestError, VideoError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
_PROBE_WORKERS = 4  # header reads are I/O bound and PyAV releases the GIL while opening


def import_ucf101(
    root: str | os.PathLike[str],
    splits_dir: str | os.PathLike[str],
    split_id: int = 1,
    out_manifest: str | os.PathLike[str] | None = None,
) -> Manifest:
    """UCF101: ``root/<Class>/v_<Class>_gXX_cXX.avi`` and ``splits_dir`` = ucfTrainTestlist.

    Uses ``classInd.txt`` ("<1-based index> <Class>"), ``trainlist0N.txt`` ("<Class>/<file>
    <index>") and ``testlist0N.txt`` ("<Class>/<file>") for ``split_id`` N in 1..3. Videos in
    neither list are left out. File names are matched case-insensitively when the exact name is
    missing (the official lists and files disagree in case for HandstandPushups).
    """
    if split_id not in (1, 2, 3):
        raise ManifestError(f"UCF101 split_id must be 1, 2 or 3, got {split_id!r}")
    root, splits = _dir(root, "UCF101 video root"), _dir(splits_dir, "UCF101 split directory")
    class_file = splits / "classInd.txt"
    classes: list[str] = []
    for lineno, parts in _lines(class_file):
        if len(parts) != 2 or not parts[0].isdigit():
            raise ManifestError(f"{class_file}:{lineno}: expected '<index> <Class>'")
        if int(parts[0]) != len(classes) + 1:
            raise ManifestError(
                f"{class_file}:{lineno}: class index {parts[0]} out of order "
                f"(expected {len(classes) + 1})"
            )
        classes.append(parts[1])
    if not classes:
        raise ManifestError(f"{class_file}: no classes listed")
    by_lower = {c.lower(): i for i, c in enumerate(classes)}
    files = _video_index(root)
    rows: list[dict[str, Any]] = []
    for split, name in (
        ("train", f"trainlist0{split_id}.txt"),
        ("test", f"testlist0{split_id}.txt"),
    ):
        list_file = splits / name
        for lineno, parts in _lines(list_file):
            where = f"{list_file}:{lineno}"
            if len(parts) not in (1, 2):
                raise ManifestError(f"{where}: expected '<Class>/<file> [<index>]'")
            rel = parts[0].replace("\\", "/")
            folder = rel.split("/")[0] if "/" in rel else None
            if folder is None or folder.lower() not in by_lower:
                raise ManifestError(f"{where}: class folder of {rel!r} is not in {class_file.name}")
            action = by_lower[folder.lower()]
            if len(parts) == 2:
                if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                    raise ManifestError(f"{where}: class index {parts[1]!r} out of range")
                if int(parts[1]) - 1 != action:
                    raise ManifestError(
                        f"{where}: label {parts[1]} ({classes[int(parts[1]) - 1]}) disagrees "
                        f"with the folder {folder!r}"
                    )
            path = _find(files, rel, root, where)
            rows.append(_row(Path(path).stem, path, split, action))
    return _finish(rows, root, out_manifest, DatasetInfo(name="ucf101", actions=tuple(classes)))


def import_hmdb51(
    root: str | os.PathLike[str],
    splits_dir: str | os.PathLike[str],
    split_id: int = 1,
    out_manifest: str | os.PathLike[str] | None = None,
) -> Manifest:
    """HMDB51: ``root/<class>/<file>.avi`` and ``<class>_test_split<N>.txt`` files.

    ``splits_dir`` is the ``testTrainMulti_7030_splits`` folder or its parent. Each line is
    "<file> <1|2|0>": 1 = train, 2 = test, 0 = not used in this split (left out). Classes are the
    split files' class names in alphabetical order (the usual HMDB51 label order).
    """
    if split_id not in (1, 2, 3):
        raise ManifestError(f"HMDB51 split_id must be 1, 2 or 3, got {split_id!r}")
    root, splits = _dir(root, "HMDB51 video root"), _dir(splits_dir, "HMDB51 split directory")
    if (splits / "testTrainMulti_7030_splits").is_dir():
        splits = splits / "testTrainMulti_7030_splits"
    suffix = f"_test_split{split_id}.txt"
    split_files = sorted(p for p in splits.iterdir() if p.name.endswith(suffix))
    if not split_files:
        raise ManifestError(f"{splits}: no '<class>{suffix}' files (is this the split folder?)")
    classes = [p.name[: -len(suffix)] for p in split_files]
    files = _video_index(root)
    rows: list[dict[str, Any]] = []
    for action, (cls, list_file) in enumerate(zip(classes, split_files, strict=True)):
        if not (root / cls).is_dir():
            raise ManifestError(f"{list_file}: class folder {root / cls} not found")
        for lineno, parts in _lines(list_file):
            where = f"{list_file}:{lineno}"
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ManifestError(f"{where}: expected '<file> 0|1|2'")
            if parts[1] == "0":
                continue
            path = _find(files, f"{cls}/{parts[0]}", root, where)
            split = "train" if parts[1] == "1" else "test"
            rows.append(_row(Path(path).stem, path, split, action))
    _unique_ids(rows)
    return _finish(rows, root, out_manifest, DatasetInfo(name="hmdb51", actions=tuple(classes)))


def import_csv(
    csv_path: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
    allow_outside_root: bool = False,
) -> Manifest:
    """A generic CSV with a header row: video_id, path, split, action, optional attr_<name>,
    kind, fps, num_frames.

    Paths are relative to the CSV's directory (or absolute). ``action`` and ``attr_*`` cells are
    integer labels, or else class names (then the sorted distinct names become the label names
    and -1 still means none); an empty ``attr_*`` cell means unknown (-1). Empty or absent
    fps / num_frames are probed.
    The manifest goes to ``out_manifest`` (default: ``manifest.parquet`` next to the CSV).
    """
    csv_file = Path(csv_path)
    if not csv_file.is_file():
        raise ManifestError(f"{csv_file}: CSV file not found")
    try:
        with open(csv_file, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in (reader.fieldnames or [])]
            records = [
                (i + 2, {k.strip(): (v or "").strip() for k, v in r.items() if k is not None})
                for i, r in enumerate(reader)
            ]
    except (UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f"{csv_file}: not a readable UTF-8 CSV ({e})") from None
    allowed = {"video_id", "path", "split", "action", "kind", "fps", "num_frames"}
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
    names: dict[str, tuple[str, ...] | None] = {}
    for col in label_cols:
        values = [r[col] for _, r in records if r[col] != ""]
        if all(_is_int(v) for v in values):
            names[col] = None
        else:
            names[col] = tuple(sorted({v for v in values if not _is_int(v)}))
            numeric = [(ln, r) for ln, r in records if _is_int(r[col]) and int(r[col]) >= 0]
            if numeric:
                ln, r = numeric[0]
                fail(ln, r, col, f"mixes class names and integer labels ({r[col]!r})")

    out = Path(out_manifest) if out_manifest is not None else csv_file.with_name(MANIFEST_FILENAME)
    if out.is_dir():
        out = out / MANIFEST_FILENAME
    out_dir = out.parent.absolute()
    rows: list[dict[str, Any]] = []
    to_probe: list[int] = []
    seen: dict[str, int] = {}
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
        row["path"] = _relative(full, out_dir, allow_outside_root)
        for col in label_cols:
            cell = rec[col]
            if cell == "":
                if col == "action":
                    fail(line, rec, col, "empty (use -1 for no action)")
                row[col] = -1
            elif names[col] is None:
                row[col] = int(cell)
            else:
                row[col] = -1 if _is_int(cell) else names[col].index(cell)
        for col, conv in (("fps", float), ("num_frames", int)):
            cell = rec.get(col, "")
            if cell:
                try:
                    row[col] = conv(cell)
                except ValueError:
                    fail(line, rec, col, f"not a number: {cell!r}")
        if "fps" not in row or "num_frames" not in row:
            to_probe.append(len(rows))
        rows.append(row)

    probed = _probe([out_dir / rows[i]["path"] for i in to_probe])
    for i, (num_frames, fps) in zip(to_probe, probed, strict=True):
        rows[i].setdefault("num_frames", num_frames)
        rows[i].setdefault("fps", fps)

    def label_names(col: str) -> tuple[str, ...]:
        if names[col] is not None:
            return names[col]
        top = max((r[col] for r in rows), default=-1)
        return tuple(str(i) for i in range(top + 1))

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
    )
    written = write_manifest(
        out, rows, info, allow_outside_root=allow_outside_root, check_files=True
    )
    return read_manifest(written, allow_outside_root=allow_outside_root)


# ---------------------------------------------------------------------------------------------


def _row(video_id: str, path: str, split: str, action: int) -> dict[str, Any]:
    return {"video_id": video_id, "path": path, "split": split, "kind": "trimmed", "action": action}


def _dir(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise ManifestError(f"{p}: {what} not found (expected a directory)")
    return p.absolute()


def _lines(path: Path) -> Iterable[tuple[int, list[str]]]:
    """(1-based line number, whitespace-split fields) of the non-blank lines of a list file."""
    if not path.is_file():
        raise ManifestError(f"{path}: split file not found")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if parts:
            yield lineno, parts


def _video_index(root: Path) -> dict[str, str]:
    """Relative POSIX path -> itself, plus lower-cased aliases for case-insensitive matching."""
    index: dict[str, str] = {}
    for dirpath, _, filenames in os.walk(root):
        for fn in filenames:
            if fn.lower().endswith(VIDEO_SUFFIXES):
                rel = Path(dirpath, fn).relative_to(root).as_posix()
                index[rel] = rel
                index.setdefault("\0" + rel.lower(), rel)
    if not index:
        raise ManifestError(f"{root}: no video files found (suffixes: {', '.join(VIDEO_SUFFIXES)})")
    return index


def _find(index: dict[str, str], rel: str, root: Path, where: str) -> str:
    found = index.get(rel) or index.get("\0" + rel.lower())
    if found is None:
        raise ManifestError(f"{where}: video {rel!r} not found under {root}")
    return found


def _unique_ids(rows: list[dict[str, Any]]) -> None:
    """Make video ids unique by prefixing the class folder where file stems collide."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["video_id"]] = counts.get(r["video_id"], 0) + 1
    for r in rows:
        if counts[r["video_id"]] > 1:
            r["video_id"] = r["path"].rsplit(".", 1)[0]


def _relative(full: Path, out_dir: Path, allow_outside_root: bool) -> str:
    try:
        return full.absolute().relative_to(out_dir).as_posix()
    except ValueError:
        if allow_outside_root:
            return str(full.absolute())
        raise ManifestError(
            f"{full}: video is outside the manifest's directory {out_dir}; write the manifest "
            "in a directory above the videos or pass allow_outside_root=True"
        ) from None


def _probe(paths: list[Path]) -> list[tuple[int, float]]:
    from pipeline.data.decode import probe_video

    def one(p: Path) -> tuple[int, float]:
        try:
            num_frames, fps, _, _ = probe_video(p)
            return num_frames, fps
        except VideoError as e:
            log.warning("cannot probe %s (kept, frame count unknown): %s", p, e)
            return -1, math.nan

    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(_PROBE_WORKERS, len(paths))) as pool:
        return list(pool.map(one, paths))


def _finish(
    rows: list[dict[str, Any]],
    root: Path,
    out_manifest: str | os.PathLike[str] | None,
    info: DatasetInfo,
) -> Manifest:
    if not rows:
        raise ManifestError(f"{root}: the split files list no videos")
    out = Path(out_manifest) if out_manifest is not None else root / MANIFEST_FILENAME
    if out.is_dir():
        out = out / MANIFEST_FILENAME
    out_dir = out.parent.absolute()
    for r in rows:
        r["path"] = _relative(root / r["path"], out_dir, allow_outside_root=False)
    for r, (num_frames, fps) in zip(rows, _probe([out_dir / r["path"] for r in rows]), strict=True):
        r["num_frames"], r["fps"] = num_frames, fps
    log.info("%s: %d videos (%s)", info.name, len(rows), _count_splits(rows))
    written = write_manifest(out, rows, info, check_files=True)
    return read_manifest(written)


def _count_splits(rows: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["split"]] = counts.get(r["split"], 0) + 1
    return ", ".join(f"{k} {v}" for k, v in counts.items())


_INT = re.compile(r"^[+-]?\d+$")


def _is_int(value: str) -> bool:
    return bool(_INT.match(value))
