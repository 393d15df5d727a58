"""NTU RGB+D (60 / 120) for the gender-bias protocol: sample names and a user-given gender map."""

from __future__ import annotations

import csv
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
    finish,
    json_line,
    load_json,
    probe_videos,
    split_map,
)
from pipeline.data.manifest import AttributeInfo, DatasetInfo
from pipeline.errors import ConfigError, ManifestError

PROTOCOLS = ("xsub", "xview", "xset")
SUBSETS = ("all", "ntu60")
GENDERS = ("male", "female")
XSUB_TRAIN_PERFORMERS: tuple[int, ...] = (
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38,  # NTU-60
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86,
    89, 91, 92, 93, 94, 95, 97, 98, 100, 103,  # NTU-120
)  # fmt: skip
"""The cross-subject training performers (the other performers are the test set)."""
XVIEW_TRAIN_CAMERAS = (2, 3)
_SAMPLE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})", re.IGNORECASE)
_GENDER_WORDS = {"m": "male", "male": "male", "f": "female", "female": "female"}
_PERFORMER = re.compile(r"[Pp]?0*(\d+)")
_PROTOCOL = {"train": "bias_train", "test": "bias_test"}
_PLAIN = {"train": "train", "test": "test"}


def import_ntu_rgbd(
    root: str | os.PathLike[str],
    out_manifest: str | os.PathLike[str] | None = None,
    *,
    gender_map: str | os.PathLike[str] | None = None,
    protocol: str = "xsub",
    train_performers: str | None = None,
    subset: str = "all",
    split_names: str = "protocol",
    allow_outside_root: bool = False,
) -> ImportResult:
    """NTU RGB+D: ``SsssCcccPpppRrrrAaaa_rgb.avi`` files anywhere under ``root`` (usually
    ``nturgb+d_rgb/``); action = Aaaa - 1, named ``A001``.. (60 classes, 120 when any A061+ is
    present; ``subset="ntu60"`` leaves A061-A120 out).

    ``gender_map``: the performer genders, which NTU does not publish; never guessed. Either a JSON
    ``{"male": ["P001", ...], "female": [...]}`` (or ``{"P001": "m", ...}``; performers as P001,
    001 or 1) or a CSV with a header and the columns ``filename`` and ``gender`` (m / f / male /
    female; ``label`` and other columns are ignored), one row per sample. It gives the ``gender``
    attribute (male / female); videos it does not cover keep -1 (counted). Without it the manifest
    has no gender attribute.

    Splits: ``protocol`` xsub (``XSUB_TRAIN_PERFORMERS`` train, the others test; or the
    ``train_performers`` given, e.g. "1,2,4" or "P001,P002"), xview (cameras 2 and 3 train,
    camera 1 test) or xset (even setups train); named bias_train / bias_test
    (``split_names="protocol"``) or train / test ("plain"). The bias protocol's own choice of
    which actions are seen with one gender only is made downstream from these labels.
    """
    root = as_dir(root, "NTU RGB+D root")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if subset not in SUBSETS:
        raise ConfigError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    if train_performers is not None and protocol != "xsub":
        raise ConfigError("train_performers sets the xsub split: use it with protocol xsub")
    names = split_map(split_names, _PROTOCOL, _PLAIN)
    train_ids = (
        set(XSUB_TRAIN_PERFORMERS)
        if train_performers is None
        else _performers(train_performers.split(","), "train_performers")
    )
    by_performer: dict[int, str] = {}
    by_sample: dict[str, str] = {}
    if gender_map is not None:
        by_performer, by_sample = _read_gender_map(Path(gender_map))

    tally = Tally()
    index = FileIndex(root, VIDEO_SUFFIXES)
    found: dict[str, list[str]] = {}
    for stem, paths in index.by_stem.items():
        m = _SAMPLE.fullmatch(stem.removesuffix("_rgb"))
        if m:
            found.setdefault(m.group(0).upper(), []).extend(paths)
    samples: dict[str, str] = {}
    for sample, paths in found.items():
        samples[sample] = sorted(paths, key=lambda p: (len(p), p))[0]
        if len(paths) > 1:
            tally.add("duplicate_file", f"{sample}: {samples[sample]}")
    if not samples:
        raise ManifestError(f"{root}: no NTU RGB+D videos (SsssCcccPpppRrrrAaaa_rgb.avi) found")

    rows: list[dict[str, Any]] = []
    for sample, path in sorted(samples.items()):
        m = _SAMPLE.fullmatch(sample)
        assert m is not None
        setup, camera, performer, _, action = map(int, m.groups())
        if subset == "ntu60" and action > 60:
            tally.add("not_ntu60", sample)
            continue
        if protocol == "xsub":
            train = performer in train_ids
        elif protocol == "xview":
            train = camera in XVIEW_TRAIN_CAMERAS
        else:
            train = setup % 2 == 0
        row: dict[str, Any] = {
            "video_id": sample,
            "path": path,
            "split": names["train" if train else "test"],
            "kind": "trimmed",
            "action": action - 1,
        }
        if gender_map is not None:
            gender = by_sample.get(sample) or by_performer.get(performer)
            if gender is None:
                tally.add("no_gender", sample)
            row["attr_gender"] = GENDERS.index(gender) if gender else -1
        rows.append(row)
    probed = probe_videos([root / r["path"] for r in rows])
    for row, (num_frames, fps) in zip(rows, probed, strict=True):
        row["num_frames"], row["fps"] = num_frames, fps
        if num_frames < 0:
            tally.add("unreadable", row["path"])
    top = max((r["action"] for r in rows), default=0)
    n_actions = 60 if top < 60 else 120
    attributes = {"gender": AttributeInfo(GENDERS, "person")} if gender_map is not None else {}
    info = DatasetInfo(
        name="ntu_rgbd",
        actions=tuple(f"A{i + 1:03d}" for i in range(n_actions)),
        attributes=attributes,
    )
    extra = "" if gender_map is not None else ", no gender map given"
    return finish(
        rows, root, out_manifest, info, tally, allow_outside_root=allow_outside_root, extra=extra
    )


def _performers(items: list[Any], where: str) -> set[int]:
    out = set()
    for item in items:
        text = str(item).strip()
        m = _PERFORMER.fullmatch(text)
        if not m or isinstance(item, bool):
            raise ConfigError(f"{where}: {item!r} is not a performer (P001, 001 or 1)")
        out.add(int(m.group(1)))
    return out


def _read_gender_map(file: Path) -> tuple[dict[int, str], dict[str, str]]:
    """(performer -> gender, sample -> gender) from the user's JSON or CSV mapping."""
    if not file.is_file():
        raise ConfigError(f"{file}: gender map not found")
    suffix = file.suffix.lower()
    if suffix == ".json":
        return _json_map(file), {}
    if suffix in (".csv", ".txt"):
        return {}, _csv_map(file)
    raise ConfigError(f"{file}: a gender map is a .json or .csv file")


def _json_map(file: Path) -> dict[int, str]:
    doc, text = load_json(file, "gender map")
    if not isinstance(doc, dict):
        raise ManifestError(f'{file}:1: expected {{"male": [...], "female": [...]}}')
    out: dict[int, str] = {}
    lists = {k.lower(): v for k, v in doc.items() if str(k).lower() in _GENDER_WORDS}
    if lists:
        pairs = [
            (item, _GENDER_WORDS[key], key)
            for key, items in lists.items()
            for item in (items if isinstance(items, list) else [items])
        ]
    else:  # {"P001": "m", ...}
        pairs = [(k, _GENDER_WORDS.get(str(v).strip().lower()), k) for k, v in doc.items()]
    for item, gender, key in pairs:
        where = f"{file}:{json_line(text, str(key))}"
        if gender is None:
            raise ManifestError(f"{where}: performer {item!r}: gender must be male/female/m/f")
        (performer,) = _performers([item], where)
        if out.get(performer, gender) != gender:
            raise ManifestError(f"{where}: performer P{performer:03d} is listed as both genders")
        out[performer] = gender
    if not out:
        raise ManifestError(f"{file}: no performers listed")
    return out


def _csv_map(file: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(file, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, skipinitialspace=True)
            header = [h.strip().lower() for h in next(reader, [])]
            if "filename" not in header or "gender" not in header:
                raise ManifestError(f"{file}:1: expected a header with filename and gender")
            name_col, gender_col = header.index("filename"), header.index("gender")
            for fields in reader:
                if not any(x.strip() for x in fields):
                    continue
                where = f"{file}:{reader.line_num}"
                if len(fields) != len(header):
                    raise ManifestError(
                        f"{where}: {len(fields)} fields where the header has {len(header)}"
                    )
                m = _SAMPLE.search(fields[name_col])
                if not m:
                    raise ManifestError(
                        f"{where}: {fields[name_col].strip()!r} is not an NTU sample name"
                    )
                gender = _GENDER_WORDS.get(fields[gender_col].strip().lower())
                if gender is None:
                    raise ManifestError(
                        f"{where}: gender {fields[gender_col].strip()!r} is not m/f/male/female"
                    )
                out[m.group(0).upper()] = gender
    except (UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f"{file}: not a readable UTF-8 CSV ({e})") from None
    if not out:
        raise ManifestError(f"{file}: no rows")
    return out
