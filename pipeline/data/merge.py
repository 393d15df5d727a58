"""Merging manifests of several data sets into one (e.g. VISPR images to train an attacker and
PA-HMDB51 videos to test it, the paper's PA-HMDB51 protocol) with one label vocabulary."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.data.manifest import (
    AttributeInfo,
    DatasetInfo,
    Manifest,
    read_manifest,
    write_manifest,
)
from pipeline.errors import ManifestError

ATTR_PREFIX = "attr_"


def _same_or_one(what: str, values: list[tuple[str, tuple[str, ...]]]) -> tuple[str, ...]:
    """The one non-empty vocabulary among the manifests (all equal), or () if none has one."""
    given = [(name, vocab) for name, vocab in values if vocab]
    for name, vocab in given[1:]:
        if vocab != given[0][1]:
            first, theirs = given[0]
            raise ManifestError(
                f"cannot merge: {first} and {name} have different {what} ({len(theirs)} vs "
                f"{len(vocab)}, e.g. {theirs[0]!r} vs {vocab[0]!r}); their integer labels would "
                "mean different things"
            )
    return given[0][1] if given else ()


def merged_info(manifests: Sequence[tuple[str, Manifest]]) -> DatasetInfo:
    """One DatasetInfo: shared action / anomaly vocabularies, the union of the attributes (an
    attribute in several manifests must have the same values and role in each)."""
    infos = [(name, m.info) for name, m in manifests]
    attributes: dict[str, AttributeInfo] = {}
    owner: dict[str, str] = {}
    for name, info in infos:
        for attr, spec in info.attributes.items():
            if attr in attributes and attributes[attr] != spec:
                raise ManifestError(
                    f"cannot merge: attribute {attr!r} is {attributes[attr].values} "
                    f"({attributes[attr].role}) in {owner[attr]} but {spec.values} ({spec.role}) "
                    f"in {name}"
                )
            attributes.setdefault(attr, spec)
            owner.setdefault(attr, name)
    return DatasetInfo(
        name="+".join(dict.fromkeys(info.name for _, info in infos)),
        actions=_same_or_one("action classes", [(n, i.actions) for n, i in infos]),
        attributes=attributes,
        anomaly_types=_same_or_one("anomaly types", [(n, i.anomaly_types) for n, i in infos]),
    )


def _relocated(path: Path, out_dir: Path, allow_outside_root: bool) -> str:
    """`path` relative to the merged manifest's directory (absolute when it lies outside)."""
    relative = Path(os.path.relpath(path, out_dir))
    if relative.parts and relative.parts[0] == "..":
        if not allow_outside_root:
            raise ManifestError(
                f"{path} is outside {out_dir}: write the merged manifest in a directory above "
                "every data set, or pass --allow-outside-root (absolute paths)"
            )
        return str(path)
    return relative.as_posix()


def merge_manifests(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    allow_outside_root: bool = False,
) -> Manifest:
    """Write one manifest holding every row of `inputs` (in order), paths re-rooted at the
    output's directory; returns it as read back. Video ids must be unique across the inputs;
    a row lacks an attribute of another data set: -1 (unknown)."""
    if len(inputs) < 2:
        raise ManifestError("merging needs at least two manifests")
    out = Path(output)
    out_file = out / "manifest.parquet" if out.is_dir() else out
    out_dir = out_file.parent.resolve()
    manifests = [
        (str(path), read_manifest(path, allow_outside_root=True, check_files=False))
        for path in inputs
    ]
    info = merged_info(manifests)
    rows: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for name, manifest in manifests:
        for row, path in zip(manifest.table.to_pylist(), manifest.video_paths(), strict=True):
            video_id = row["video_id"]
            if video_id in seen:
                raise ManifestError(
                    f"cannot merge: video_id {video_id!r} is in {seen[video_id]} and in {name}"
                )
            seen[video_id] = name
            row["path"] = _relocated(path, out_dir, allow_outside_root)
            for attr in info.attributes:
                row.setdefault(ATTR_PREFIX + attr, -1)
            rows.append(row)
    written = write_manifest(out_file, rows, info, allow_outside_root=allow_outside_root)
    return read_manifest(written, allow_outside_root=allow_outside_root, check_files=False)
