"""HMDB51 in its official layout: class folders and the testTrainMulti_7030_splits files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.data.importers._common import (
    ImportResult,
    as_dir,
    find_listed,
    finish_probed,
    lines,
    out_path,
    result_of,
    trimmed_row,
    video_index,
)
from pipeline.data.manifest import DatasetInfo, Manifest
from pipeline.errors import ManifestError

HMDB51_CLASSES: tuple[str, ...] = (
    "brush_hair", "cartwheel", "catch", "chew", "clap", "climb", "climb_stairs", "dive",
    "draw_sword", "dribble", "drink", "eat", "fall_floor", "fencing", "flic_flac", "golf",
    "handstand", "hit", "hug", "jump", "kick", "kick_ball", "kiss", "laugh", "pick", "pour",
    "pullup", "punch", "push", "pushup", "ride_bike", "ride_horse", "run", "shake_hands",
    "shoot_ball", "shoot_bow", "shoot_gun", "sit", "situp", "smile", "smoke", "somersault",
    "stand", "swing_baseball", "sword", "sword_exercise", "talk", "throw", "turn", "walk", "wave",
)  # fmt: skip
"""The 51 class folder names in alphabetical order: the usual HMDB51 (and PA-HMDB51) labels."""


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
    root, splits = as_dir(root, "HMDB51 video root"), as_dir(splits_dir, "HMDB51 split directory")
    if (splits / "testTrainMulti_7030_splits").is_dir():
        splits = splits / "testTrainMulti_7030_splits"
    suffix = f"_test_split{split_id}.txt"
    split_files = sorted(p for p in splits.iterdir() if p.name.endswith(suffix))
    if not split_files:
        raise ManifestError(f"{splits}: no '<class>{suffix}' files (is this the split folder?)")
    classes = [p.name[: -len(suffix)] for p in split_files]
    files = video_index(root)
    rows: list[dict[str, Any]] = []
    for action, (cls, list_file) in enumerate(zip(classes, split_files, strict=True)):
        if not (root / cls).is_dir():
            raise ManifestError(f"{list_file}: class folder {root / cls} not found")
        for lineno, parts in lines(list_file):
            where = f"{list_file}:{lineno}"
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ManifestError(f"{where}: expected '<file> 0|1|2'")
            if parts[1] == "0":
                continue
            path = find_listed(files, f"{cls}/{parts[0]}", root, where)
            split = "train" if parts[1] == "1" else "test"
            rows.append(trimmed_row(Path(path).stem, path, split, action))
    _unique_ids(rows)
    info = DatasetInfo(name="hmdb51", actions=tuple(classes))
    return finish_probed(rows, root, out_manifest, info)


def _unique_ids(rows: list[dict[str, Any]]) -> None:
    """Make video ids unique by prefixing the class folder where file stems collide."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["video_id"]] = counts.get(r["video_id"], 0) + 1
    for r in rows:
        if counts[r["video_id"]] > 1:
            r["video_id"] = r["path"].rsplit(".", 1)[0]


def run(
    source: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    splits_dir: str | os.PathLike[str],
    split_id: int = 1,
) -> ImportResult:
    """The registry's entry: :func:`import_hmdb51` with an ImportResult."""
    manifest = import_hmdb51(source, splits_dir, split_id=split_id, out_manifest=out_manifest)
    return result_of(manifest, out_path(out_manifest, Path(source).absolute()))
