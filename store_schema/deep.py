"""check_chunks(store): read every metadata document and every chunk of every array, and name each
one that is corrupt.

Every array of an anon-store store carries a crc32c checksum codec, so a flipped bit or a torn
(truncated) chunk fails its checksum instead of decoding to wrong numbers; this check reads each
chunk once to find them all. It also reports metadata documents (``zarr.json``) that do not parse,
consolidated metadata that disagrees with an array's own document, arrays without a checksum,
and, in a complete store, missing feature chunks of videos marked ok (zarr would read them as
NaN fill values without complaint). Nothing here raises: every failure becomes a line of the
report.
"""

from __future__ import annotations

import itertools
import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore

from store_schema.spec import ATTRS_KEY, IMAGE_KIND, VIDEO_OK, decode_meta

METADATA = "zarr.json"
VIDEO_FEATURES = ("clip_features", "static_features")
"""Feature arrays indexed by video first: every chunk covering an ok video must be stored."""


@dataclass
class ChunkReport:
    """What check_chunks read and what it found."""

    problems: list[str] = field(default_factory=list)
    arrays: int = 0
    """Arrays whose chunks were read."""
    chunks: int = 0
    """Chunks read and decoded (missing chunks are not counted)."""
    metadata_documents: int = 0


CHECKSUM_MISMATCH = "crc32c checksum mismatch (flipped bits or a truncated chunk)"


def corrupt_chunk_message(array: str, coords: tuple[int, ...], key: str, why: str) -> str:
    """The one line naming a corrupt chunk: `validate --deep` and every reader say the same."""
    return f"array '{array}' chunk {coords} ('{key}') is corrupt: {why}"


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or "(no message)"
    if isinstance(error, ValueError) and "checksum" in text:
        return CHECKSUM_MISMATCH
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(error).__name__}: {text}"


def _open_store(store: Any, storage_options: dict | None) -> tuple[Any, str]:
    """A read-only zarr Store and the group's path inside it."""
    if isinstance(store, zarr.Group):
        return store.store, store.path
    text = str(store)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:
        return FsspecStore.from_url(text, storage_options=storage_options, read_only=True), ""
    return LocalStore(Path(text).expanduser(), read_only=True), ""


def _list_keys(store: Any, prefix: str) -> list[str]:
    async def collect() -> list[str]:
        return [key async for key in store.list_prefix(prefix)]

    keys = sync(collect())
    return sorted(key[len(prefix) :].lstrip("/") for key in keys) if prefix else sorted(keys)


def _read_bytes(store: Any, key: str) -> bytes | None:
    buffer = sync(store.get(key, prototype=default_buffer_prototype()))
    return None if buffer is None else buffer.to_bytes()


def _read_metadata(store: Any, prefix: str, keys: list[str], report: ChunkReport) -> dict:
    """Parse every zarr.json; returns {node path: document} for those that parse."""
    documents: dict[str, dict] = {}
    for key in keys:
        if key.rsplit("/", 1)[-1] != METADATA:
            continue
        node = key[: -len(METADATA)].rstrip("/")
        label = f"metadata '{key}'" + ("" if node else " (root group)")
        report.metadata_documents += 1
        try:
            data = _read_bytes(store, f"{prefix}/{key}" if prefix else key)
            document = json.loads(data or b"")
        except Exception as error:
            report.problems.append(f"{label} is not valid JSON: {_one_line(error)}")
            continue
        if not isinstance(document, dict) or document.get("zarr_format") != 3:
            report.problems.append(f"{label} is not a zarr v3 metadata document")
            continue
        if document.get("node_type") not in ("group", "array"):
            report.problems.append(f"{label} has node_type {document.get('node_type')!r}")
            continue
        documents[node] = document
    if "" not in documents and not any("root group" in p for p in report.problems):
        report.problems.append(f"metadata '{METADATA}' (root group) is missing")
    return documents


def _check_consolidated(documents: dict[str, dict], report: ChunkReport) -> None:
    """Readers that use consolidated metadata (xarray, anon-store) must see what is stored."""
    consolidated = (documents.get("") or {}).get("consolidated_metadata") or {}
    entries = (consolidated.get("metadata") or {}) if isinstance(consolidated, dict) else None
    if not isinstance(entries, dict):  # a hand-edited or torn document: report, never raise
        report.problems.append(
            f"metadata '{METADATA}' (root group) has consolidated metadata that is not an object"
        )
        return
    for name, entry in sorted(entries.items()):
        own = documents.get(name)
        if own is not None and entry != own:
            report.problems.append(
                f"consolidated metadata of '{name}' differs from '{name}/{METADATA}'"
            )


def _has_checksum(array: zarr.Array) -> bool:
    return any(type(codec).__name__ == "Crc32cCodec" for codec in array.metadata.codecs)


def _check_array(
    store: Any, prefix: str, name: str, keys: set[str], workers: int, report: ChunkReport
) -> list[tuple[int, ...]]:
    """Read every stored chunk of array `name`; returns the grid positions with no chunk."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = zarr.open_array(
                store, path=f"{prefix}/{name}" if prefix else name, mode="r", zarr_format=3
            )
        grid = array.cdata_shape
    except Exception as error:
        report.problems.append(f"array '{name}': metadata cannot be used: {_one_line(error)}")
        return []
    report.arrays += 1
    if not _has_checksum(array) and not name.startswith("_"):  # "_x": a writer's bookkeeping
        report.problems.append(
            f"array '{name}' has no crc32c codec: corrupt chunks cannot be detected"
        )
    stored, missing = [], []
    for coords in itertools.product(*(range(n) for n in grid)):
        key = f"{name}/{array.metadata.encode_chunk_key(coords)}"
        (stored if key in keys else missing).append((coords, key))

    def read(item: tuple[tuple[int, ...], str]) -> str | None:
        coords, key = item
        try:
            array.get_block_selection(coords)
        except Exception as error:
            return corrupt_chunk_message(name, coords, key, _one_line(error))
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for problem in pool.map(read, stored):
            report.chunks += 1
            if problem is not None:
                report.problems.append(problem)
    return [coords for coords, _ in missing]


def _check_missing(
    group: zarr.Group, missing: dict[str, list[tuple[int, ...]]], report: ChunkReport
) -> None:
    """In a complete store, a feature chunk that covers an ok video must be stored."""
    try:
        meta = decode_meta(dict(group.attrs).get(ATTRS_KEY)) or {}
        if meta.get("status") != "complete":
            return
        ok = np.asarray(group["status"][:]) == VIDEO_OK
        # Images have no normal clips: their clip_features rows are NaN, never written.
        has_clips = ok & (np.asarray(group["kind"][:]) != IMAGE_KIND)
        window_video = np.asarray(group["window_video"][:]) if "window_video" in group else None
    except Exception:  # unreadable tables are reported by the chunk and schema checks
        return
    for name, grid_missing in sorted(missing.items()):
        if not grid_missing or name not in group:
            continue
        rows_per_chunk = group[name].chunks[0]
        for coords in grid_missing:
            rows = slice(coords[0] * rows_per_chunk, (coords[0] + 1) * rows_per_chunk)
            if name in VIDEO_FEATURES:
                needed = bool((has_clips if name == "clip_features" else ok)[rows].any())
            elif name == "window_features" and window_video is not None:
                owners = window_video[rows]
                owners = owners[owners >= 0]
                needed = bool(ok[owners].any()) if len(owners) else False
            else:
                continue
            if needed:
                report.problems.append(
                    f"array '{name}' chunk {coords} is missing though it holds features of ok "
                    "videos (they would read as NaN)"
                )


def _unreadable_nodes(keys: list[str], documents: dict[str, dict]) -> list[str]:
    nodes = [key[: -len(METADATA)].rstrip("/") for key in keys if key.endswith(METADATA)]
    return [node for node in nodes if node and node not in documents]


def check_chunks(
    store: Any, *, storage_options: dict | None = None, workers: int = 8
) -> ChunkReport:
    """Read every metadata document and chunk of the store (a zarr.Group, path or URL)."""
    report = ChunkReport()
    try:
        zstore, prefix = _open_store(store, storage_options)
        keys = _list_keys(zstore, prefix)
    except Exception as error:
        report.problems.append(f"cannot list the store: {_one_line(error)}")
        return report
    documents = _read_metadata(zstore, prefix, keys, report)
    group = None
    if "" in documents:
        try:
            group = zarr.open_group(zstore, path=prefix, mode="r", use_consolidated=False)
        except Exception as error:
            report.problems.append(
                f"metadata '{METADATA}' (root group) is not a valid group: {_one_line(error)}"
            )
    _check_consolidated(documents, report)
    key_set = set(keys)
    missing: dict[str, list[tuple[int, ...]]] = {}
    arrays = [node for node, doc in documents.items() if doc.get("node_type") == "array"]
    for node in _unreadable_nodes(keys, documents):
        chunks = sum(1 for key in keys if key.startswith(f"{node}/c/"))
        if chunks:  # its chunks exist but cannot be decoded without the metadata
            report.problems.append(f"array '{node}': its {chunks} chunks cannot be checked")
    for name in sorted(arrays):
        missing[name] = _check_array(zstore, prefix, name, key_set, workers, report)
    if group is not None:  # without a usable root group its tables cannot be read either
        _check_missing(group, missing, report)
    return report
