"""What every importer shares: list files, finding and probing files, the skip tally, writing."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.data.manifest import (
    MANIFEST_FILENAME,
    DatasetInfo,
    Manifest,
    read_manifest,
    write_manifest,
)
from pipeline.errors import ConfigError, ManifestError, VideoError

log = logging.getLogger("pipeline.data.importers")

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
SPLIT_NAMING = ("protocol", "plain")
"""``split_names`` choices of the protocol data sets: "protocol" writes the splits the probes read
(tad_*, anomaly_*, privacy_*, bias_*), "plain" writes train / val / test."""
_PROBE_WORKERS = 4  # header reads are I/O bound and PyAV releases the GIL while opening
_EXAMPLES = 3  # names quoted per reason in the summary line


@dataclass(frozen=True)
class ImportResult:
    """What an importer wrote and what it left out."""

    manifest: Manifest
    """The validated manifest, as read back from ``path``."""
    path: Path
    """The manifest file written."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason -> count of what was skipped or changed (e.g. "missing_video": 3); empty when
    nothing was. The reasons are the keys of ``REASONS``."""
    summary: str = ""
    """One line: rows written per split, then every skip reason with its count and examples.
    Also logged at INFO."""

    def __len__(self) -> int:
        return len(self.manifest)


REASONS: dict[str, str] = {
    "missing_video": "listed videos not on disk",
    "missing_image": "listed images not on disk",
    "missing_annotation": "listed annotation files not on disk",
    "unreadable": "files that cannot be probed (kept: extraction records them as failed)",
    "no_fps": "videos whose frame rate cannot be read (skipped: seconds need it)",
    "duplicate_row": "repeated rows (first kept)",
    "duplicate_file": "names found at several places under the root (first by path kept)",
    "known_bad": "known-bad videos dropped",
    "ambiguous_segment": "Ambiguous segments excluded",
    "only_ambiguous": "videos with only Ambiguous segments",
    "segment_clipped": "segments clipped to the video end",
    "segment_past_end": "segments starting after the video end dropped",
    "segment_empty": "empty segments dropped",
    "duplicate_segment": "repeated segments dropped",
    "no_interval": "anomalous test videos without an interval (kept, video-level label only)",
    "in_both_lists": "videos in the train list and the test annotations (kept as test)",
    "no_gender": "videos whose performer has no gender in the mapping (kept, gender -1)",
    "not_ntu60": "NTU-120 videos (A061-A120) left out of NTU-60",
    "no_attributes": "videos without attribute labels (kept, attributes -1)",
    "unlabelled": "test rows without a label (kept, action -1)",
    "missing_split": "requested splits without annotations on disk",
}


class Tally:
    """Counts what an importer skips or changes, by reason, with a few example names."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, example: str | None = None, n: int = 1) -> None:
        if reason not in REASONS:
            raise KeyError(f"unknown skip reason {reason!r}")
        self.counts[reason] = self.counts.get(reason, 0) + n
        if example is not None and os.path.isabs(example):  # "/long/path/file.txt:12"
            example = os.path.basename(example)
        examples = self.examples.setdefault(reason, [])
        if example is not None and len(examples) < _EXAMPLES and example not in examples:
            examples.append(example)

    def text(self) -> str:
        if not self.counts:
            return "nothing skipped"
        parts = []
        for reason, n in self.counts.items():
            ex = self.examples.get(reason)
            more = ", ..." if ex and n > len(ex) else ""
            parts.append(f"{n} {REASONS[reason]}" + (f" ({', '.join(ex)}{more})" if ex else ""))
        return "; ".join(parts)


def split_map(split_names: str, protocol: dict[str, str], plain: dict[str, str]) -> dict[str, str]:
    """The data set's split -> manifest split for the ``split_names`` choice."""
    if split_names not in SPLIT_NAMING:
        raise ConfigError(
            f"split_names must be one of {', '.join(SPLIT_NAMING)}, got {split_names!r}"
        )
    return protocol if split_names == "protocol" else plain


def parse_list(value: str | Iterable[str], allowed: Iterable[str], what: str) -> tuple[str, ...]:
    """A comma-separated (or given) list of names, each one of ``allowed``, in order, no repeats."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(dict.fromkeys(v.strip() for v in items if v.strip()))
    allowed = tuple(allowed)
    bad = [v for v in names if v not in allowed]
    if bad or not names:
        raise ConfigError(
            f"{what} must be a comma-separated list of {', '.join(allowed)}, got {value!r}"
        )
    return names


def as_dir(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise ManifestError(f"{p}: {what} not found (expected a directory)")
    return p.absolute()


def read_text(path: Path, what: str) -> str:
    """The file's text (UTF-8, else latin-1: old list files are not always UTF-8)."""
    if not path.is_file():
        raise ManifestError(f"{path}: {what} not found")
    try:
        return path.read_text(encoding="utf-8-sig", errors="strict")
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1")


def lines(path: Path, what: str = "split file") -> Iterable[tuple[int, list[str]]]:
    """(1-based line number, whitespace-split fields) of the non-blank lines of a list file;
    any run of spaces and tabs separates fields and trailing blanks are ignored."""
    for lineno, line in enumerate(read_text(path, what).splitlines(), start=1):
        parts = line.split()
        if parts:
            yield lineno, parts


def find_files(
    root: Path, pattern: str | re.Pattern[str], what: str, *, required: bool = True
) -> list[Path]:
    """Files under ``root`` (recursively, sorted) whose name matches ``pattern`` in full."""
    regex = re.compile(pattern) if isinstance(pattern, str) else pattern
    found = sorted(
        Path(d, f)
        for d, _, files in os.walk(root)
        for f in files
        if regex.fullmatch(f) and not f.startswith("._")
    )
    if required and not found:
        raise ManifestError(f"{root}: no {what} found (searched recursively)")
    return found


class FileIndex:
    """Every file under ``root`` with one of ``suffixes``, found by its name or its stem.

    Download layouts differ (class folders or not, split folders, doubled folder names), so the
    importers of the protocol data sets resolve the names their lists give by file name anywhere
    under the root. Names are compared case-insensitively.
    """

    def __init__(self, root: Path, suffixes: tuple[str, ...], what: str = "video") -> None:
        self.root = root
        self.by_name: dict[str, list[str]] = {}
        self.by_stem: dict[str, list[str]] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.startswith("._") or not fn.lower().endswith(suffixes):
                    continue  # "._x.mp4": macOS resource forks next to copied files
                rel = Path(dirpath, fn).relative_to(root).as_posix()
                self.by_name.setdefault(fn.lower(), []).append(rel)
                self.by_stem.setdefault(fn.rsplit(".", 1)[0].lower(), []).append(rel)
        if not self.by_name:
            raise ManifestError(f"{root}: no {what} files found (suffixes: {', '.join(suffixes)})")

    def candidates(self, name: str) -> list[str]:
        """Relative paths of the files called ``name`` (a file name, or a stem)."""
        key = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
        found = self.by_name.get(key) or self.by_stem.get(key)
        if found is None and "." in key:  # listed as .mp4, stored as .avi / .mkv
            found = self.by_stem.get(key.rsplit(".", 1)[0])
        return list(found or ())

    def find(
        self,
        name: str,
        tally: Tally | None = None,
        prefer: Callable[[str], Any] | None = None,
    ) -> str | None:
        """The relative path of the file called ``name`` (a file name, or a stem when it has no
        known suffix), None when absent; of several, the one ``prefer`` ranks lowest, else the
        shortest path (counted as "duplicate_file")."""
        key = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
        found = self.candidates(name)
        if not found:
            return None
        if len(found) > 1:
            ranked = sorted(found, key=lambda p: (prefer(p) if prefer else 0, len(p), p))
            if tally is not None:
                tally.add("duplicate_file", f"{key}: {ranked[0]}")
            return ranked[0]
        return found[0]


def probe_videos(paths: list[Path]) -> list[tuple[int, float]]:
    """(num_frames, fps) of each video from its header; (-1, NaN) where it cannot be read."""
    from pipeline.data.decode import probe_video  # lazy: PyAV only when probing

    def one(p: Path) -> tuple[int, float]:
        try:
            num_frames, fps, _, _ = probe_video(p)
            return num_frames, fps
        except VideoError as e:
            log.warning("cannot probe %s (frame count unknown): %s", p, e)
            return -1, math.nan

    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(_PROBE_WORKERS, len(paths))) as pool:
        return list(pool.map(one, paths))


def image_readable(path: Path) -> bool:
    """Whether ``path`` opens as an image (PIL reads the header and checks the file)."""
    try:
        from PIL import Image
    except ImportError:  # PIL is optional: PyAV reads single images as well
        import av

        try:
            with av.open(str(path)) as c:
                return bool(c.streams.video)
        except (av.FFmpegError, OSError, ValueError):
            return False
    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # PIL raises many types (SyntaxError, OSError, ...) for damaged files
        return False


def probe_images(paths: list[Path]) -> list[bool]:
    if not paths:
        return []
    with ThreadPoolExecutor(max_workers=min(_PROBE_WORKERS, len(paths))) as pool:
        return list(pool.map(image_readable, paths))


def relative(full: Path, out_dir: Path, allow_outside_root: bool) -> str:
    try:
        return full.absolute().relative_to(out_dir).as_posix()
    except ValueError:
        if allow_outside_root:
            return str(full.absolute())
        raise ManifestError(
            f"{full}: video is outside the manifest's directory {out_dir}; write the manifest "
            "in a directory above the videos or pass allow_outside_root=True"
        ) from None


def out_path(out_manifest: str | os.PathLike[str] | None, default_dir: Path) -> Path:
    out = Path(out_manifest) if out_manifest is not None else default_dir / MANIFEST_FILENAME
    if out.is_dir():
        out = out / MANIFEST_FILENAME
    return out


def count_splits(rows: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["split"]] = counts.get(r["split"], 0) + 1
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def finish(
    rows: list[dict[str, Any]],
    root: Path,
    out_manifest: str | os.PathLike[str] | None,
    info: DatasetInfo,
    tally: Tally,
    *,
    allow_outside_root: bool = False,
    unit: str = "videos",
    extra: str = "",
    default_dir: Path | None = None,
) -> ImportResult:
    """Write the rows (paths relative to ``root``, fps / num_frames filled) and summarise; the
    manifest goes to ``out_manifest``, by default ``manifest.parquet`` in ``default_dir`` (by
    default ``root``)."""
    if not rows:
        raise ManifestError(
            f"{root}: no {unit} to import ({tally.text()}); is this the {info.name} root?"
        )
    out = out_path(out_manifest, default_dir or root)
    out_dir = out.parent.absolute()
    for r in rows:
        r["path"] = relative(root / r["path"], out_dir, allow_outside_root)
    written = write_manifest(out, rows, info, allow_outside_root=allow_outside_root)
    manifest = read_manifest(written, allow_outside_root=allow_outside_root)
    summary = (
        f"{info.name}: {len(rows)} {unit} ({count_splits(rows)}){extra} in {written}; "
        f"{tally.text()}"
    )
    log.info("%s", summary)
    skipped = dict(tally.counts)
    return ImportResult(manifest=manifest, path=written, skipped=skipped, summary=summary)


def as_int(text: str) -> int | None:
    """``text`` as an integer ("12", "-1", "12.0"), None when it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    return int(value)


# --- the class-folder importers (UCF101, HMDB51) -----------------------------------------------


def video_index(root: Path) -> dict[str, str]:
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


def find_listed(index: dict[str, str], rel: str, root: Path, where: str) -> str:
    found = index.get(rel) or index.get("\0" + rel.lower())
    if found is None:
        raise ManifestError(f"{where}: video {rel!r} not found under {root}")
    return found


def trimmed_row(video_id: str, path: str, split: str, action: int) -> dict[str, Any]:
    return {"video_id": video_id, "path": path, "split": split, "kind": "trimmed", "action": action}


def finish_probed(
    rows: list[dict[str, Any]],
    root: Path,
    out_manifest: str | os.PathLike[str] | None,
    info: DatasetInfo,
) -> Manifest:
    """Probe every row's video, write the manifest (by default in ``root``), read it back."""
    if not rows:
        raise ManifestError(f"{root}: the split files list no videos")
    out = out_path(out_manifest, root)
    out_dir = out.parent.absolute()
    for r in rows:
        r["path"] = relative(root / r["path"], out_dir, allow_outside_root=False)
    probed = probe_videos([out_dir / r["path"] for r in rows])
    for r, (num_frames, fps) in zip(rows, probed, strict=True):
        r["num_frames"], r["fps"] = num_frames, fps
    written = write_manifest(out, rows, info, check_files=True)
    manifest = read_manifest(written)
    log.info("%s", plain_summary(manifest, written))
    return manifest


def result_of(manifest: Manifest, path: Path) -> ImportResult:
    """An ImportResult for the importers that return a Manifest (they skip nothing: a listed video
    that is missing is an error there); they log the summary themselves."""
    return ImportResult(
        manifest=manifest, path=path, skipped={}, summary=plain_summary(manifest, path)
    )


def plain_summary(manifest: Manifest, path: Path) -> str:
    rows = [{"split": s} for s in manifest.table.column("split").to_pylist()]
    return (
        f"{manifest.info.name}: {len(manifest)} videos ({count_splits(rows)}) in {path}; "
        "nothing skipped"
    )


def one_file(root: Path, names: Iterable[str], what: str) -> Path:
    """The file under ``root`` (recursively) named like the first of ``names`` that exists
    (case-insensitively); copies with the same bytes are one file, different ones an error."""
    names = tuple(names)
    wanted = {n.lower(): i for i, n in enumerate(names)}
    found: dict[int, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for fn in sorted(filenames):
            if fn.lower() in wanted:
                found.setdefault(wanted[fn.lower()], []).append(Path(dirpath, fn))
    if not found:
        searched = " or ".join(names)
        raise ManifestError(f"{root}: no {what} found (searched recursively for {searched})")
    paths = found[min(found)]
    if len({p.read_bytes() for p in paths}) > 1:
        raise ManifestError(
            f"{root}: {len(paths)} different files named {paths[0].name} "
            f"({', '.join(str(p) for p in paths)}): keep one, or name the folder to use"
        )
    return paths[0]


def load_json(path: Path, what: str) -> tuple[Any, str]:
    """(parsed JSON, its text); a syntax error names the file and line."""
    text = read_text(path, what)
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        raise ManifestError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None


def json_line(text: str, key: str, after: str | None = None) -> int:
    """The line of ``text`` where the JSON string ``key`` first appears (after the first
    ``after`` when given); 1 if nowhere."""
    start = text.find(json.dumps(after)) if after is not None else 0
    at = text.find(json.dumps(key), max(start, 0))
    return text.count("\n", 0, at) + 1 if at >= 0 else 1
