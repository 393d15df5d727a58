"""VISPR privacy attributes on images: per-image JSON labels, split list files."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pipeline.data.importers._common import (
    IMAGE_SUFFIXES,
    FileIndex,
    ImportResult,
    Tally,
    as_dir,
    find_files,
    finish,
    json_line,
    lines,
    load_json,
    parse_list,
    probe_images,
    split_map,
)
from pipeline.data.manifest import PRESENCE_VALUES, AttributeInfo, DatasetInfo
from pipeline.errors import ConfigError, ManifestError

PAPER_ATTRIBUTES: tuple[str, ...] = (
    "a4_gender", "a9_face_complete", "a10_face_partial", "a12_semi_nudity", "a17_color",
    "a64_rel_personal", "a65_rel_social",
)  # fmt: skip
"""The 7 binary attributes of the SPAct / TeD-SPAD / paper privacy protocol."""
ATTRIBUTE_SETS = ("paper", "all")
SPLITS = ("train", "val", "test")
BINARY = PRESENCE_VALUES
_ATTRIBUTE_ID = re.compile(r"a\d+_\w+")
_PROTOCOL = {"train": "privacy_train", "val": "val", "test": "privacy_test"}
_PLAIN = {"train": "train", "val": "val", "test": "test"}


def import_vispr(
    root: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    attributes: str = "paper",
    splits: str = "train,val,test",
    split_names: str = "protocol",
    allow_outside_root: bool = False,
) -> ImportResult:
    """VISPR: ``{split}2017.txt`` lists of ``annotations/{split}2017/<id>.json`` files, each
    ``{"image_path": "images/{split}2017/<id>.jpg", "labels": ["a10_face_partial", ...]}``.

    Every image becomes a row of kind ``image`` (fps 0, num_frames 1, or -1 when PIL cannot open
    it: kept so that extraction records it) with action -1 and one binary attribute column per
    attribute (``no`` / ``yes``): the 7 of the paper's protocol (``attributes="paper"``: a4_gender,
    a9_face_complete, a10_face_partial, a12_semi_nudity, a17_color, a64_rel_personal,
    a65_rel_social; other labels are ignored) or all 68 ids of ``attributes.tsv`` ("all").
    A split without a list file takes every JSON file of ``annotations/{split}2017/``. An image
    path that is not where the JSON says is looked up by file name under ``root``. Skipped and
    counted: listed JSON files or images not on disk, repeated ids. Splits: privacy_train /
    val / privacy_test (``split_names="protocol"``: train on train2017, test on test2017) or
    train / val / test ("plain"). Grey images need nothing here: the clip sampler makes 3
    channels.
    """
    root = as_dir(root, "VISPR root")
    wanted = parse_list(splits, SPLITS, "splits")
    names = split_map(split_names, _PROTOCOL, _PLAIN)
    if attributes not in ATTRIBUTE_SETS:
        raise ConfigError(
            f"attributes must be one of {', '.join(ATTRIBUTE_SETS)}, got {attributes!r}"
        )
    columns = PAPER_ATTRIBUTES if attributes == "paper" else _all_attributes(root)
    known = set(columns)
    tally = Tally()
    index: FileIndex | None = None
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for split in wanted:
        for json_file, where in _listed(root, split, tally):
            if not json_file.is_file():
                tally.add("missing_annotation", where)
                continue
            doc, text = load_json(json_file, "annotation")
            labels, image_path = _fields(doc, text, json_file)
            if attributes == "all":
                for label in labels:
                    if label not in known:
                        line = json_line(text, label)
                        raise ManifestError(
                            f"{json_file}:{line}: label {label!r} is not in attributes.tsv"
                        )
            rel: str | None = image_path
            inside = not Path(image_path).is_absolute() and ".." not in Path(image_path).parts
            if not (inside and (root / image_path).is_file()):
                if index is None:
                    index = FileIndex(root, IMAGE_SUFFIXES, "image")
                rel = index.find(image_path, tally)
                if rel is None:
                    tally.add("missing_image", image_path)
                    continue
            video_id = json_file.stem
            if video_id in seen:
                tally.add("duplicate_row", video_id)
                continue
            seen.add(video_id)
            row: dict[str, Any] = {
                "video_id": video_id,
                "path": rel,
                "split": names[split],
                "kind": "image",
                "action": -1,
                "fps": 0.0,
            }
            for attr in columns:
                row[f"attr_{attr}"] = int(attr in labels)
            rows.append(row)
    for row, ok in zip(rows, probe_images([root / r["path"] for r in rows]), strict=True):
        row["num_frames"] = 1 if ok else -1
        if not ok:
            tally.add("unreadable", row["path"])
    info = DatasetInfo(
        name="vispr", attributes={a: AttributeInfo(BINARY, "person") for a in columns}
    )
    return finish(
        rows, root, out_manifest, info, tally, allow_outside_root=allow_outside_root, unit="images"
    )


def _listed(root: Path, split: str, tally: Tally) -> list[tuple[Path, str]]:
    """(JSON file, where it is listed) of a split: its list file's lines, else its folder."""
    list_files = find_files(root, re.compile(rf"{split}2017\.txt"), "list file", required=False)
    if not list_files:
        folder = root / "annotations" / f"{split}2017"
        if not folder.is_dir():  # e.g. a download without val2017
            tally.add("missing_split", split)
            return []
        return [(p, str(p)) for p in sorted(folder.glob("*.json"))]
    list_file = list_files[0]
    out = []
    for lineno, parts in lines(list_file, "list file"):
        where = f"{list_file}:{lineno}"
        if len(parts) != 1 or not parts[0].lower().endswith(".json"):
            raise ManifestError(f"{where}: expected 'annotations/{split}2017/<id>.json'")
        out.append((root / parts[0].replace("\\", "/"), where))
    return out


def _fields(doc: Any, text: str, json_file: Path) -> tuple[set[str], str]:
    """(labels, image_path) of one annotation; a wrong shape names the file and line."""
    if not isinstance(doc, dict):
        raise ManifestError(f"{json_file}:1: expected an object with image_path and labels")
    labels, image_path = doc.get("labels"), doc.get("image_path")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        line = json_line(text, "labels")
        raise ManifestError(f"{json_file}:{line}: 'labels' must be a list of attribute ids")
    if not isinstance(image_path, str) or not image_path.strip():
        line = json_line(text, "image_path")
        raise ManifestError(f"{json_file}:{line}: 'image_path' must be a path under the root")
    return {x.strip() for x in labels}, image_path.strip().replace("\\", "/")


def _all_attributes(root: Path) -> tuple[str, ...]:
    tsv = find_files(root, re.compile(r"attributes\.tsv"), "attributes.tsv")[0]
    ids: list[str] = []
    for _, parts in lines(tsv, "attribute list"):
        if _ATTRIBUTE_ID.fullmatch(parts[0]) and parts[0] not in ids:
            ids.append(parts[0])
    if not ids:
        raise ManifestError(f"{tsv}: no attribute ids (a0_safe, a4_gender, ...)")
    return tuple(ids)
