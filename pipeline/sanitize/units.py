"""The work of one sanitize run as dask tasks: each reads, transforms and writes whole chunks.

Every output array is written in units of its own zarr chunks along the first dimension. A task
covers `chunks_per_task` consecutive chunks of one "family" of arrays:
- clip_features / static_features / window_features: read with ``da.from_zarr`` (dask chunks =
  a multiple of the zarr chunks along the first dimension, whole along the others, so the
  attention adapter sees every clip of a video), adapter applied by ``map_blocks``, the result
  written into the output array inside the same task;
- video_table / window_table / segments: the non-feature arrays, copied unchanged.
After writing its chunks a task sets one done-marker per chunk in ``MARKERS`` (an int8 array with
one zarr chunk per element, so concurrent tasks never write the same object). A rerun skips the
chunks whose markers are set; the marker array is deleted before the store is marked complete.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import zarr

from pipeline.heap import release_freed_memory
from pipeline.store.writer import table_specs

MARKERS = "_sanitize_done"
"""Per-chunk done markers of a sanitized store being written; absent from complete stores."""
HEAP_SLACK = 64 * 1024 * 1024
"""Freed memory a process may keep for the next tasks' buffers before it is handed back to the
OS. Trimming after every task kept RSS flat but page-faulted each task's buffers in again (3x
the faults of a plain copy, ~10% of the CPU time); this keeps RSS flat within a bound."""


@dataclass(frozen=True)
class Family:
    """Arrays sharing a first dimension and chunking, written together chunk by chunk."""

    name: str
    arrays: tuple[str, ...]
    rows: int
    """Length of the first dimension."""
    chunk_rows: int
    """Zarr chunk length along the first dimension (of the output arrays)."""
    features: bool
    marker_offset: int

    @property
    def num_chunks(self) -> int:
        return -(-self.rows // self.chunk_rows) if self.rows else 0


def plan_families(group: zarr.Group, dataset: Mapping[str, Any]) -> list[Family]:
    """The families of the output store `group` (created, empty), with their marker offsets;
    ``dataset`` is the stores' dataset metadata (attributes, frame-labelled attributes)."""
    by_dim: dict[str, list[str]] = {"video": [], "window": [], "segment": []}
    for spec in table_specs(dataset):
        by_dim[spec.dims[0]].append(spec.name)
    candidates = [
        ("clip_features", ("clip_features",), True),
        ("static_features", ("static_features",), True),
        ("window_features", ("window_features",), True),
        ("video_table", tuple(by_dim["video"]), False),
        ("window_table", tuple(by_dim["window"]), False),
        ("segments", tuple(by_dim["segment"]), False),
    ]
    families, offset = [], 0
    for name, arrays, features in candidates:
        first = group[arrays[0]]
        if first.size == 0 and features:
            continue  # e.g. no static clips (imported stores) or no windows: nothing to write
        family = Family(name, arrays, first.shape[0], first.chunks[0], features, offset)
        families.append(family)
        offset += family.num_chunks
    return families


def marker_count(families: Sequence[Family]) -> int:
    return sum(f.num_chunks for f in families)


def create_markers(group: zarr.Group, count: int) -> zarr.Array:
    return group.create_array(
        MARKERS,
        shape=(count,),
        chunks=(1,),
        dtype="int8",
        fill_value=0,
        dimension_names=("sanitize_chunk",),
        overwrite=True,
    )


def read_markers(group: zarr.Group, count: int) -> np.ndarray:
    """bool [count]: chunks already written. A torn marker (killed mid-write) reads as not done."""
    if MARKERS not in group.array_keys():
        create_markers(group, count)
        return np.zeros(count, dtype=bool)
    markers = group[MARKERS]
    if markers.shape != (count,):
        create_markers(group, count)
        return np.zeros(count, dtype=bool)
    try:
        return np.asarray(markers[:]) == 1
    except Exception:
        done = np.zeros(count, dtype=bool)
        for i in range(count):
            try:
                done[i] = int(markers[i]) == 1
            except Exception:
                done[i] = False
        return done


@dataclass(frozen=True, eq=False)
class Unit:
    """One task: its dask object, the marker range it sets, and the chunks it writes."""

    task: Any
    """dask Delayed computing [[chunks written, bytes written]]."""
    family: str
    markers: range


def _set_markers(markers: zarr.Array, family_offset: int, chunk_rows: int, start: int, stop: int):
    first, last = start // chunk_rows, -(-stop // chunk_rows)
    markers[family_offset + first : family_offset + last] = np.ones(last - first, dtype=np.int8)
    return last - first


def _feature_block(
    block: np.ndarray,
    kernel: Callable[[np.ndarray, int], np.ndarray],
    *,
    dst: zarr.Array,
    markers: zarr.Array,
    marker_offset: int,
    chunk_rows: int,
    block_info: dict | None = None,
) -> np.ndarray:
    assert block_info is not None
    start, stop = block_info[0]["array-location"][0]
    out = kernel(block, start)
    dst[start:stop] = out
    chunks = _set_markers(markers, marker_offset, chunk_rows, start, stop)
    nbytes = out.nbytes
    del out, block
    release_freed_memory(HEAP_SLACK)
    return np.array([[chunks, nbytes]], dtype=np.int64)


def _nbytes(values: np.ndarray) -> int:
    if values.dtype.kind in "OTU":
        return int(sum(len(str(v).encode()) for v in values.ravel()))
    return int(values.nbytes)


class _CopyRows:
    """Copies rows [start, stop) of non-feature arrays, then sets their markers.

    A plain class, not a dataclass or tuple: dask would otherwise walk every zarr array it holds
    looking for dask collections, once per task (seconds for a few hundred tasks).
    """

    def __init__(
        self,
        pairs: list[tuple[zarr.Array, zarr.Array]],
        markers: zarr.Array,
        marker_offset: int,
        chunk_rows: int,
    ) -> None:
        self.pairs = pairs
        self.markers = markers
        self.marker_offset = marker_offset
        self.chunk_rows = chunk_rows

    def __call__(self, start: int, stop: int) -> np.ndarray:
        written = 0
        for src, dst in self.pairs:
            values = np.asarray(src[start:stop])
            if values.size:
                dst[start:stop] = values
            written += _nbytes(values)
            del values
        chunks = _set_markers(self.markers, self.marker_offset, self.chunk_rows, start, stop)
        release_freed_memory(HEAP_SLACK)
        return np.array([[chunks, written]], dtype=np.int64)


def build_units(
    source: zarr.Group,
    output: zarr.Group,
    families: Sequence[Family],
    done: np.ndarray,
    kernel: Any,
    chunks_per_task: int,
) -> list[Unit]:
    """Tasks for every chunk group not yet done; `kernel` is the adapter (or a dask reference)."""
    markers = output[MARKERS]
    run = uuid.uuid4().hex[:8]
    units: list[Unit] = []
    for family in families:
        rows_per_task = family.chunk_rows * chunks_per_task
        starts = range(0, family.rows, rows_per_task)
        spans = [(s, min(s + rows_per_task, family.rows)) for s in starts]
        marker_spans = [
            range(
                family.marker_offset + s // family.chunk_rows,
                family.marker_offset + -(-e // family.chunk_rows),
            )
            for s, e in spans
        ]
        todo = [i for i, r in enumerate(marker_spans) if not done[r.start : r.stop].all()]
        if not todo:
            continue
        if family.features:
            tasks = _feature_tasks(source, output, family, kernel, rows_per_task, markers, run)
        else:
            copy = _CopyRows(
                [(source[name], output[name]) for name in family.arrays],
                markers,
                family.marker_offset,
                family.chunk_rows,
            )
            tasks = [
                dask.delayed(copy, pure=False)(
                    s, e, dask_key_name=f"sanitize-{family.name}-{run}-{i}"
                )
                for i, (s, e) in enumerate(spans)
            ]
        units += [Unit(tasks[i], family.name, marker_spans[i]) for i in todo]
    return units


def _feature_tasks(
    source: zarr.Group,
    output: zarr.Group,
    family: Family,
    kernel: Any,
    rows_per_task: int,
    markers: zarr.Array,
    run: str,
) -> list[Any]:
    src = source[family.arrays[0]]
    dst = output[family.arrays[0]]
    blocks = da.from_zarr(src, chunks=(rows_per_task, *src.shape[1:]), inline_array=True)
    result = blocks.map_blocks(
        _feature_block,
        kernel,
        dst=dst,
        markers=markers,
        marker_offset=family.marker_offset,
        chunk_rows=family.chunk_rows,
        drop_axis=list(range(2, src.ndim)),
        chunks=((1,) * blocks.numblocks[0], (2,)),
        dtype=np.int64,
        name=f"sanitize-{family.name}-{run}",
        meta=np.empty((0, 2), dtype=np.int64),
    )
    return list(result.to_delayed(optimize_graph=True).ravel())
