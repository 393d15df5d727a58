"""Every rule of store_schema.deep (validate --deep), one damage each: a copy of a valid store is
damaged and check_chunks must report exactly that problem, never raise; a store written without
crc32c checksums is never reported as checksummed."""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import Crc32cCodec

from pipeline.store.writer import StoreCodecs
from store_schema import validate
from store_schema.deep import check_chunks
from tests.store_schema.damage import Prefix, editable, make_raw_store

NO_CRC = "has no crc32c codec: corrupt chunks cannot be detected"
CHECKSUM = "crc32c checksum mismatch (flipped bits or a truncated chunk)"


@dataclass(frozen=True)
class WithoutChecksums(StoreCodecs):
    """The store's codecs minus crc32c: what an older or foreign writer would produce."""

    def compressors(self, spec):
        return [c for c in super().compressors(spec) if not isinstance(c, Crc32cCodec)]


# zarr warns that consolidated metadata is not in the v3 spec, and about the damaged documents.
pytestmark = pytest.mark.filterwarnings("ignore::zarr.errors.ZarrUserWarning")


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Valid stores to copy (videos 0-4 fill the first chunk of 5; 'first-chunk-failed' fails
    them all, so that chunk holds no features of an ok video)."""
    root = tmp_path_factory.mktemp("deep-bases")
    make_raw_store(root / "raw.zarr")
    make_raw_store(root / "writing.zarr", complete=False)
    make_raw_store(root / "no-crc.zarr", codecs=WithoutChecksums())
    make_raw_store(root / "first-chunk-failed.zarr", failed=(0, 1, 2, 3, 4))
    names = ("raw", "writing", "no-crc", "first-chunk-failed")
    return {name: root / f"{name}.zarr" for name in names}


def _arrays(path: Path) -> list[str]:
    return sorted(p.parent.name for p in path.glob("*/zarr.json"))


def _chunk_files(path: Path, array: str) -> list[Path]:
    return sorted(p for p in (path / array).rglob("*") if p.is_file() and p.name != "zarr.json")


def _chunk_key(path: Path, chunk: Path) -> str:
    return chunk.relative_to(path).as_posix()


def _coords(path: Path, chunk: Path, array: str) -> tuple[int, ...]:
    return tuple(int(part) for part in chunk.relative_to(path / array / "c").parts)


def _flip(chunk: Path, offset: int) -> None:
    data = bytearray(chunk.read_bytes())
    data[offset] ^= 0x01
    chunk.write_bytes(bytes(data))


def _first_chunk(path: Path, array: str) -> Path:
    chunk = path / array / "c" / Path(*["0"] * len(zarr.open_array(str(path / array)).shape))
    assert chunk.is_file(), chunk
    return chunk


# ---------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    id: str
    damage: Callable[[Path], list]
    """Damage the store at the path; returns the problems check_chunks must report."""
    base: str = "raw"


def _intact(path: Path) -> list:
    return []


def _written_without_crc32c(path: Path) -> list:
    """Every data array whose own metadata document names no crc32c codec."""
    unchecked = [
        name
        for name in _arrays(path)
        if not name.startswith("_") and '"crc32c"' not in (path / name / "zarr.json").read_text()
    ]
    assert len(unchecked) >= 20, unchecked
    return [f"array '{name}' {NO_CRC}" for name in unchecked]


def _one_array_without_crc32c(path: Path) -> list:
    group = editable(path)
    old = group["fps"]
    values, attrs = np.asarray(old[:]), dict(old.attrs)
    del group["fps"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new = group.create_array(
            "fps", shape=values.shape, dtype=values.dtype, chunks=old.chunks,
            dimension_names=("video",), compressors=None, attributes=attrs,
        )  # fmt: skip
    new[...] = values
    zarr.consolidate_metadata(str(path), zarr_format=3)
    return [f"array 'fps' {NO_CRC}"]


def _bookkeeping_array_without_crc32c(path: Path) -> list:
    # A writer's own "_x" arrays (markers) are not part of the data: no checksum needed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        editable(path).create_array("_markers", shape=(4,), dtype="int8", compressors=None)[...] = 1
    zarr.consolidate_metadata(str(path), zarr_format=3)
    return []


def _flipped_bit(offset: int) -> Callable[[Path], list]:
    def damage(path: Path) -> list:
        chunk = _chunk_files(path, "clip_features")[1]
        _flip(chunk, offset)
        coords = _coords(path, chunk, "clip_features")
        key = _chunk_key(path, chunk)
        return [f"array 'clip_features' chunk {coords} ('{key}') is corrupt: {CHECKSUM}"]

    return damage


def _truncated_chunk(path: Path) -> list:
    chunk = _chunk_files(path, "window_video")[0]
    chunk.write_bytes(chunk.read_bytes()[:3])
    coords = _coords(path, chunk, "window_video")
    key = _chunk_key(path, chunk)
    return [Prefix(f"array 'window_video' chunk {coords} ('{key}') is corrupt: ")]


def _missing_feature_chunk(array: str) -> Callable[[Path], list]:
    def damage(path: Path) -> list:
        chunk = _first_chunk(path, array)
        chunk.unlink()
        coords = _coords(path, chunk, array)
        return [
            f"array '{array}' chunk {coords} is missing though it holds features of ok videos "
            "(they would read as NaN)"
        ]

    return damage


def _missing_chunk_not_needed(path: Path) -> list:
    """A missing chunk is no problem where it holds no ok video, or the store is incomplete.
    (zarr does not even store a chunk of failed videos: all NaN, the fill value.)"""
    for array in ("clip_features", "static_features"):
        chunk = path / array / "c" / "0" / "0" / "0"
        chunk.unlink(missing_ok=True)
    return []


def _array_metadata(document: object) -> Callable[[Path], list]:
    """status/zarr.json replaced by `document` (bytes: written as they are)."""

    def damage(path: Path) -> list:
        meta = path / "status" / "zarr.json"
        old = json.loads(meta.read_text())
        meta.write_bytes(document if isinstance(document, bytes) else json.dumps(document).encode())
        chunks = len(_chunk_files(path, "status"))
        unreadable = f"array 'status': its {chunks} chunks cannot be checked"
        if isinstance(document, bytes):
            return [Prefix("metadata 'status/zarr.json' is not valid JSON: "), unreadable]
        if document.get("zarr_format") != 3:
            return ["metadata 'status/zarr.json' is not a zarr v3 metadata document", unreadable]
        if document.get("node_type") not in ("group", "array"):
            return [
                f"metadata 'status/zarr.json' has node_type {document['node_type']!r}",
                unreadable,
            ]
        assert document != old
        return [
            "consolidated metadata of 'status' differs from 'status/zarr.json'",
            Prefix("array 'status': metadata cannot be used: "),
        ]

    return damage


def _array_attrs_changed(path: Path) -> list:
    # Through the zarr API, without reconsolidating: readers of consolidated metadata see the old.
    editable(path)["clip_features"].update_attributes({"units": "none"})
    return ["consolidated metadata of 'clip_features' differs from 'clip_features/zarr.json'"]


def _root_missing(path: Path) -> list:
    (path / "zarr.json").unlink()
    return ["metadata 'zarr.json' (root group) is missing"]


def _root_not_json(path: Path) -> list:
    (path / "zarr.json").write_bytes(b'{"zarr_format": 3, "node_type": "gro')
    return [Prefix("metadata 'zarr.json' (root group) is not valid JSON: ")]


def _root_not_v3(path: Path) -> list:
    (path / "zarr.json").write_text(json.dumps({"zarr_format": 2, "node_type": "group"}))
    return ["metadata 'zarr.json' (root group) is not a zarr v3 metadata document"]


def _root_not_a_group(path: Path) -> list:
    root = {"zarr_format": 3, "node_type": "group", "attributes": 5}
    (path / "zarr.json").write_text(json.dumps(root))
    return [Prefix("metadata 'zarr.json' (root group) is not a valid group: ")]


def _root_consolidated_not_an_object(path: Path) -> list:
    root = json.loads((path / "zarr.json").read_text())
    root["consolidated_metadata"] = 5
    (path / "zarr.json").write_text(json.dumps(root))
    return ["metadata 'zarr.json' (root group) has consolidated metadata that is not an object"]


CASES = [
    Case("intact", _intact),
    Case("intact-writing-store", _intact, base="writing"),
    Case("store-written-without-crc32c", _written_without_crc32c, base="no-crc"),
    Case("one-array-without-crc32c", _one_array_without_crc32c),
    Case("bookkeeping-array-without-crc32c", _bookkeeping_array_without_crc32c),
    Case("flipped-bit-first-byte", _flipped_bit(0)),
    Case("flipped-bit-checksum", _flipped_bit(-1)),
    Case("truncated-chunk", _truncated_chunk),
    Case("missing-clip-features-chunk", _missing_feature_chunk("clip_features")),
    Case("missing-static-features-chunk", _missing_feature_chunk("static_features")),
    Case("missing-window-features-chunk", _missing_feature_chunk("window_features")),
    Case("missing-chunk-of-failed-videos", _missing_chunk_not_needed, base="first-chunk-failed"),
    Case("missing-chunk-in-a-writing-store", _missing_chunk_not_needed, base="writing"),
    Case("array-metadata-not-json", _array_metadata(b"\xff{not json")),
    Case("array-metadata-not-v3", _array_metadata({"zarr_format": 2, "node_type": "array"})),
    Case("array-metadata-bad-node-type", _array_metadata({"zarr_format": 3, "node_type": "x"})),
    Case("array-metadata-unusable", _array_metadata({"zarr_format": 3, "node_type": "array"})),
    Case("consolidated-metadata-differs", _array_attrs_changed),
    Case("root-metadata-missing", _root_missing),
    Case("root-metadata-not-json", _root_not_json),
    Case("root-metadata-not-v3", _root_not_v3),
    Case("root-metadata-not-a-group", _root_not_a_group),
    Case("root-consolidated-metadata-not-an-object", _root_consolidated_not_an_object),
]


def _same_problems(problems: list[str], expected: list) -> bool:
    """The same problems, in any order (each expected one matched once)."""
    left = list(problems)
    for want in expected:
        if want not in left:
            return False
        left.remove(next(p for p in left if want == p))
    return not left


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_check_chunks_reports_exactly_the_damage(case: Case, bases, tmp_path) -> None:
    store = tmp_path / "store.zarr"
    shutil.copytree(bases[case.base], store)
    expected = case.damage(store)
    report = check_chunks(str(store), workers=2)
    assert _same_problems(report.problems, expected), f"got {report.problems}, want {expected}"
    assert all("\n" not in problem for problem in report.problems)
    # validate --deep adds exactly these to the shallow problems, and never raises either.
    shallow = validate(str(store))
    assert validate(str(store), deep=True) == shallow + report.problems


def test_an_intact_store_is_read_whole(bases) -> None:
    store = bases["raw"]
    report = check_chunks(str(store), workers=2)
    assert report.problems == []
    assert report.arrays == len(_arrays(store))
    assert report.metadata_documents == len(list(store.rglob("zarr.json")))
    assert report.chunks == sum(len(_chunk_files(store, name)) for name in _arrays(store))


def test_a_store_without_checksums_is_never_reported_as_checksummed(bases, tmp_path) -> None:
    store = tmp_path / "no-crc.zarr"
    shutil.copytree(bases["no-crc"], store)
    assert validate(str(store)) == []  # the schema itself is fine
    deep = validate(str(store), deep=True)
    assert deep == _written_without_crc32c(store)
    # And its corruption goes unseen by the checksum: the reason the missing codec is reported.
    _flip(_first_chunk(store, "clip_features"), 0)
    assert not any("is corrupt" in p for p in check_chunks(str(store), workers=2).problems)


def test_a_store_that_cannot_be_listed_is_reported(tmp_path) -> None:
    report = check_chunks("nosuch-protocol://bucket/store.zarr")
    assert report.problems == [Prefix("cannot list the store: ")]
