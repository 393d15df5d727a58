"""UCF101 in its official layout: class folders and the ucfTrainTestlist split files."""

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
    root, splits = as_dir(root, "UCF101 video root"), as_dir(splits_dir, "UCF101 split directory")
    class_file = splits / "classInd.txt"
    classes: list[str] = []
    for lineno, parts in lines(class_file):
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
    files = video_index(root)
    rows: list[dict[str, Any]] = []
    for split, name in (
        ("train", f"trainlist0{split_id}.txt"),
        ("test", f"testlist0{split_id}.txt"),
    ):
        list_file = splits / name
        for lineno, parts in lines(list_file):
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
            path = find_listed(files, rel, root, where)
            rows.append(trimmed_row(Path(path).stem, path, split, action))
    info = DatasetInfo(name="ucf101", actions=tuple(classes))
    return finish_probed(rows, root, out_manifest, info)


def run(
    source: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    splits_dir: str | os.PathLike[str],
    split_id: int = 1,
) -> ImportResult:
    """The registry's entry: :func:`import_ucf101` with an ImportResult."""
    manifest = import_ucf101(source, splits_dir, split_id=split_id, out_manifest=out_manifest)
    return result_of(manifest, out_path(out_manifest, Path(source).absolute()))
