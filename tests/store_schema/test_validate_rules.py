"""Every rule of store_schema.validate, one corruption each: a copy of a valid store is damaged
through the zarr API and validate must report exactly that problem (and nothing for the valid
stores). Each `problems.append` / early return of validate.py is one case below; the mutation
runner (`python -m tests.mutations`) checks that disabling any of them fails this test."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.sanitize import SanitizeConfig, sanitize
from pipeline.store.writer import read_attrs, write_attrs
from store_schema import (
    ATTRS_KEY,
    KINDS,
    LEGACY_VERSIONS,
    PADDED_PREFIX,
    REQUIRED_ATTRS,
    SANITIZED_ATTRS,
    SCHEMA_ID,
    SCHEMA_VERSION,
    STATUSES,
    VIDEO_PENDING,
    validate,
)
from tests.store_schema.damage import Prefix, editable, make_adapter, make_raw_store

STALE = "consolidated metadata is stale: it lists other arrays than the store holds"


# zarr warns that consolidated metadata is not in the v3 spec, and about the damaged documents.
pytestmark = pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning")


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Valid stores to copy: complete raw, raw still being written, and a real sanitized one."""
    root = tmp_path_factory.mktemp("validate-bases")
    raw = make_raw_store(root / "raw.zarr")
    make_raw_store(root / "writing.zarr", complete=False)
    adapter = make_adapter(root / "adapter")
    config = SanitizeConfig(scheduler="synchronous")
    sanitize(raw.url, adapter, root / "sanitized.zarr", config)
    return {name: root / f"{name}.zarr" for name in ("raw", "writing", "sanitized")}


# ---------------------------------------------------------------- corrupting through zarr


def _sizes(path: Path) -> dict[str, int]:
    group = editable(path)
    video, clip, feature = group["clip_features"].shape
    return {
        "video": video,
        "clip": clip,
        "feature": feature,
        "static": group["static_features"].shape[1],
        "window": group["window_features"].shape[0],
    }


_DROP = object()


def _edit_meta(path: Path, **changes: object) -> dict:
    """Change (or drop, with _DROP) keys of the store's metadata object."""
    group = editable(path)
    meta = read_attrs(group)
    assert meta is not None
    for key, value in changes.items():
        if value is _DROP:
            del meta[key]
        else:
            meta[key] = value
    write_attrs(group, meta)
    return meta


def _meta(path: Path) -> dict:
    meta = read_attrs(editable(path))
    assert meta is not None
    return meta


def _rewrite(
    path: Path,
    name: str,
    *,
    dtype: str | None = None,
    dims: tuple[str, ...] | None = None,
    values: np.ndarray | None = None,
    new_name: str | None = None,
) -> None:
    """Recreate array `name` (as `new_name`) with another dtype, dimension names or values,
    keeping its codecs, chunks and attrs."""
    group = editable(path)
    old = group[name]
    data = np.asarray(old[...]) if values is None else values
    if dtype is not None:
        data = data.astype(dtype)
    chunks = tuple(min(c, max(1, s)) for c, s in zip(old.chunks, data.shape, strict=False))
    chunks = chunks + tuple(data.shape[len(chunks) :])
    attrs = dict(old.attrs)
    compressors = old.compressors
    dimension_names = dims or old.metadata.dimension_names
    if new_name is None:
        del group[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = group.create_array(
            new_name or name,
            shape=data.shape,
            dtype=data.dtype,
            chunks=chunks,
            dimension_names=dimension_names,
            compressors=compressors,
            attributes=attrs,
        )
    if data.size:
        array[...] = data


def _add_array(path: Path, name: str, dims: tuple[str, ...], shape: tuple[int, ...]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        array = editable(path).create_array(
            name, shape=shape, dtype="int16", chunks=shape, dimension_names=dims
        )
    array[...] = np.zeros(shape, dtype=np.int16)


def _set(path: Path, name: str, index: int, value: object) -> None:
    editable(path)[name][index] = value


def _windowed_videos(path: Path) -> np.ndarray:
    counts = np.asarray(editable(path)["window_count"][:])
    videos = np.flatnonzero(counts > 0)
    assert len(videos) >= 2, "the base store must have videos with windows"
    return videos


def _flip_chunk_byte(path: Path, array: str) -> None:
    chunk = sorted(p for p in (path / array).rglob("*") if p.is_file() and p.name != "zarr.json")
    data = bytearray(chunk[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk[0].write_bytes(bytes(data))


# ---------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    id: str
    corrupt: Callable[[Path], list]
    """Damage the store at the path; returns the problems validate must report."""
    base: str = "raw"
    reconsolidate: bool = True
    """Rewrite consolidated metadata after the damage (off for the stale-metadata cases)."""


def _valid(path: Path) -> list:
    return []


def _missing_array(path: Path) -> list:
    del editable(path)["window_start"]
    return ["missing array 'window_start'"]


def _declared_attribute_missing(path: Path) -> list:
    del editable(path)["attr_skin"]
    return ["missing array 'attr_skin'"]


def _undeclared_attribute(path: Path) -> list:
    _add_array(path, "attr_age", ("video",), (_sizes(path)["video"],))
    return ["array 'attr_age' is not declared in dataset.attributes"]


def _wrong_dtype(path: Path) -> list:
    _rewrite(path, "fps", dtype="float64")
    return ["array 'fps' has dtype float64, expected float32"]


def _wrong_string_dtype(path: Path) -> list:
    _rewrite(path, "video_id", values=np.zeros(_sizes(path)["video"], dtype=np.int64))
    return ["array 'video_id' has dtype int64, expected str"]


def _wrong_dimension_names(path: Path) -> list:
    _rewrite(path, "clip_start", dims=("video", "frame"))
    return ["array 'clip_start' has dimension_names ('video', 'frame'), expected ('video', 'clip')"]


def _video_size_mismatch(path: Path) -> list:
    n = _sizes(path)["video"]
    _rewrite(path, "num_frames", values=np.asarray(editable(path)["num_frames"][: n - 1]))
    return [f"array 'num_frames' has {n - 1} along 'video', other arrays have {n}"]


def _window_size_mismatch(path: Path) -> list:
    w = _sizes(path)["window"]
    _rewrite(path, "window_start", values=np.asarray(editable(path)["window_start"][: w - 1]))
    return [f"array 'window_start' has {w - 1} along 'window', other arrays have {w}"]


def _clip_size_mismatch(path: Path) -> list:
    k = _sizes(path)["clip"]
    starts = np.asarray(editable(path)["clip_start"][:])
    _rewrite(path, "clip_start", values=np.concatenate([starts, starts[:, :1]], axis=1))
    return [f"array 'clip_start' has {k + 1} along 'clip', other arrays have {k}"]


def _hidden_size_mismatch(path: Path) -> list:
    d = _sizes(path)["feature"]
    _edit_meta(path, encoder={**_meta(path)["encoder"], "hidden_size": d + 1})
    return [f"feature dimension {d} differs from encoder {d + 1}"]


def _clips_per_video_mismatch(path: Path) -> list:
    k = _sizes(path)["clip"]
    _edit_meta(path, sampling={**_meta(path)["sampling"], "clips_per_video": k + 1})
    return [f"'clip' dimension {k} differs from sampling.clips_per_video"]


def _static_clips_mismatch(path: Path) -> list:
    s = _sizes(path)["static"]
    _edit_meta(path, sampling={**_meta(path)["sampling"], "static_clips": s + 1})
    return [f"'static' dimension {s} differs from sampling.static_clips"]


def _pending_in_complete(path: Path) -> list:
    _set(path, "status", 1, VIDEO_PENDING)
    return ["status is complete but 1 videos are still pending"]


def _padding_rows_in_complete(path: Path) -> list:
    _set(path, "window_video", 0, -1)
    return ["window_video has padding rows (-1) in a complete store"]


def _padded_arrays_in_complete(path: Path) -> list:
    _rewrite(path, "window_video", new_name=f"{PADDED_PREFIX}window_video")
    return [f"complete store still holds padded window arrays ['{PADDED_PREFIX}window_video']"]


def _negative_window_count(path: Path) -> list:
    _set(path, "window_count", int(_windowed_videos(path)[0]), -1)
    return ["negative window_offset or window_count"]


def _negative_window_offset(path: Path) -> list:
    _set(path, "window_offset", int(_windowed_videos(path)[0]), -1)
    return ["negative window_offset or window_count"]


def _windows_past_the_rows(path: Path) -> list:
    video = int(_windowed_videos(path)[-1])
    count = int(editable(path)["window_count"][video])
    _set(path, "window_offset", video, _sizes(path)["window"] - count + 1)
    return ["window_offset + window_count runs past the window rows"]


def _windows_up_to_the_last_row(path: Path) -> list:
    """The boundary: a video whose windows end exactly at the last row is fine."""
    video = int(_windowed_videos(path)[-1])
    offset = int(editable(path)["window_offset"][video])
    _set(path, "window_count", video, _sizes(path)["window"] - offset)
    return []


def _no_metadata_object(path: Path) -> list:
    del editable(path).attrs[ATTRS_KEY]
    return [f"root attrs lack the '{ATTRS_KEY}' object: not an anon-store store"]


def _metadata_not_an_object(path: Path) -> list:
    editable(path).attrs[ATTRS_KEY] = "[1, 2, 3]"
    return [f"root attrs lack the '{ATTRS_KEY}' object: not an anon-store store"]


def _required_attr_missing(key: str) -> Callable[[Path], list]:
    def corrupt(path: Path) -> list:
        _edit_meta(path, **{key: _DROP})
        also = {
            "schema": [f"schema is None, expected {SCHEMA_ID!r}"],
            "schema_version": [f"schema_version is None, expected {SCHEMA_VERSION}"],
            "kind": [f"kind is None, expected one of {KINDS}"],
            "status": [f"status is None, expected one of {STATUSES}"],
            "dataset": [
                f"array '{name}' is not declared in dataset.attributes"
                for name in ("attr_scene", "attr_skin")
            ],
        }
        return [f"root attrs lack '{key}'", *also.get(key, [])]

    return corrupt


def _edit(expected: str, **changes: object) -> Callable[[Path], list]:
    def corrupt(path: Path) -> list:
        _edit_meta(path, **changes)
        return [expected]

    return corrupt


def _raw_store_claiming_sanitized(path: Path) -> list:
    _edit_meta(path, kind="sanitized")
    return [f"sanitized store lacks '{key}'" for key in SANITIZED_ATTRS]


def _sanitized_attr_missing(key: str) -> Callable[[Path], list]:
    def corrupt(path: Path) -> list:
        _edit_meta(path, **{key: _DROP})
        return [f"sanitized store lacks '{key}'"]

    return corrupt


def _legacy_version(path: Path) -> list:
    # A v1 store is refused with the migrate hint and nothing else (its layout differs anyway).
    version = LEGACY_VERSIONS[0]
    _edit_meta(path, schema_version=version)
    return [
        f"schema_version is {version!r}, an older layout: upgrade it in place with "
        "`anon-store migrate STORE`"
    ]


def _stale_consolidated_extra_array(path: Path) -> list:
    _add_array(path, "notes", ("note",), (3,))
    return [STALE]


def _stale_consolidated_removed_array(path: Path) -> list:
    del editable(path)["window_start"]
    return ["missing array 'window_start'", STALE]


def _unopenable(path: Path) -> list:
    (path / "zarr.json").unlink()
    return [Prefix("cannot open store: ")]


def _unreadable_status(path: Path) -> list:
    _flip_chunk_byte(path, "status")
    return [Prefix("cannot read the store: ")]


CASES = [
    Case("valid-raw", _valid),
    Case("valid-writing-store-with-pending-videos-and-padded-windows", _valid, base="writing"),
    Case("valid-sanitized", _valid, base="sanitized"),
    Case("valid-windows-up-to-the-last-row", _windows_up_to_the_last_row),
    Case("missing-array", _missing_array),
    Case("declared-attribute-array-missing", _declared_attribute_missing),
    Case("undeclared-attr-array", _undeclared_attribute),
    Case("wrong-dtype", _wrong_dtype),
    Case("wrong-dtype-for-a-string-array", _wrong_string_dtype),
    Case("wrong-dimension-names", _wrong_dimension_names),
    Case("size-mismatch-along-video", _video_size_mismatch),
    Case("size-mismatch-along-window", _window_size_mismatch),
    Case("size-mismatch-along-clip", _clip_size_mismatch),
    Case("hidden-size-mismatch", _hidden_size_mismatch),
    Case("sampling-clips-per-video-mismatch", _clips_per_video_mismatch),
    Case("sampling-static-clips-mismatch", _static_clips_mismatch),
    Case("pending-videos-in-a-complete-store", _pending_in_complete),
    Case("padding-rows-in-a-complete-store", _padding_rows_in_complete),
    Case("padded-window-arrays-in-a-complete-store", _padded_arrays_in_complete),
    Case("negative-window-count", _negative_window_count),
    Case("negative-window-offset", _negative_window_offset),
    Case("window-bounds", _windows_past_the_rows),
    Case("no-metadata-object", _no_metadata_object),
    Case("metadata-not-an-object", _metadata_not_an_object),
    *(Case(f"required-attr-missing-{key}", _required_attr_missing(key)) for key in REQUIRED_ATTRS),
    Case(
        "wrong-schema-id",
        _edit(f"schema is 'other.schema', expected {SCHEMA_ID!r}", schema="other.schema"),
    ),
    Case(
        "wrong-schema-version",
        _edit(
            f"schema_version is {SCHEMA_VERSION + 1}, expected {SCHEMA_VERSION}",
            schema_version=SCHEMA_VERSION + 1,
        ),
    ),
    Case(
        "schema-version-as-a-string",
        _edit(
            f"schema_version is '{SCHEMA_VERSION}', expected {SCHEMA_VERSION}",
            schema_version=str(SCHEMA_VERSION),
        ),
    ),
    *([Case("legacy-schema-version", _legacy_version)] if LEGACY_VERSIONS else []),
    Case("wrong-kind", _edit(f"kind is 'cooked', expected one of {KINDS}", kind="cooked")),
    Case("wrong-status", _edit(f"status is 'done', expected one of {STATUSES}", status="done")),
    Case("raw-store-claiming-to-be-sanitized", _raw_store_claiming_sanitized),
    *(
        Case(f"sanitized-attr-missing-{key}", _sanitized_attr_missing(key), base="sanitized")
        for key in SANITIZED_ATTRS
    ),
    Case(
        "stale-consolidated-metadata-extra-array",
        _stale_consolidated_extra_array,
        reconsolidate=False,
    ),
    Case(
        "stale-consolidated-metadata-removed-array",
        _stale_consolidated_removed_array,
        reconsolidate=False,
    ),
    Case("store-cannot-be-opened", _unopenable, reconsolidate=False),
    Case("store-cannot-be-read", _unreadable_status, reconsolidate=False),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_validate_reports_exactly_the_broken_rule(case: Case, bases, tmp_path) -> None:
    store = tmp_path / "store.zarr"
    shutil.copytree(bases[case.base], store)
    expected = case.corrupt(store)
    if case.reconsolidate:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(str(store), zarr_format=3)
    problems = validate(str(store))
    assert _same_problems(problems, expected), f"got {problems}, expected {expected}"
    assert all("\n" not in problem for problem in problems)


def _same_problems(problems: list[str], expected: list) -> bool:
    """The same problems, in any order (each expected one matched once)."""
    left = list(problems)
    for want in expected:
        if want not in left:
            return False
        left.remove(next(p for p in left if want == p))
    return not left
