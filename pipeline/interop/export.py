"""export(): stream a store's features into HDF5, per-video .npy files or Parquet.

Only usable videos (status ok) are exported; failed videos are counted in ``export.json``.
Every format writes ``export.json`` last (format, counts, the store's attrs: encoder, sampling,
adapter provenance), so a directory without it is an unfinished export.

h5 (``features.h5``), the layout the paper's reference code reads (``f[video_id][()]``):
    /<video_id>            float32 [clips, D]  normal clips; attrs split, kind, action,
                                               clip_start (first frame of each clip), fps,
                                               num_frames
    /static/<video_id>     float32 [S, D]      static clips (absent when the store has none);
                                               attrs static_frame
    /windows/<video_id>    float32 [W, D]      sliding windows of untrimmed / anomaly videos;
                                               attrs window_start (first frame of each window)
    root attrs: anon_store (the store's attrs as JSON), format "anon-store-h5"
npy (one file per video, what ActionFormer / TriDet-style detectors read):
    clips/<video_id>.npy   float32 [clips, D]
    static/<video_id>.npy  float32 [S, D]
    windows/<video_id>.npy float32 [W, D]: a [T, C] feature sequence, one row per window of
                           ``sampling.frames_per_clip`` frames at stride ``sampling.window_stride``
                           (the last window is flush with the video's end, so its start may be off
                           the stride grid; exact starts are in videos.jsonl)
    videos.jsonl           one JSON object per video: labels, fps, num_frames, attributes,
                           clip_start, static_frame, window_start, segments [[start, end, label]]
    annotations.json       ActionFormer-style {"database": {id: {subset, duration, fps,
                           feat_stride, feat_num_frames, annotations: [{segment (s), segment_frames,
                           label, label_id}]}}} for the videos with windows
Parquet (one row per clip; pandas / Spark / DuckDB):
    clips.parquet, static.parquet, windows.parquet with columns video_id, split, kind, clip
    (index within the video), start_frame, action, anomalous, attr_<name>..., feature
    (list<float32>); one row group per store chunk; the store's attrs in the schema metadata.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, StoreError
from pipeline.interop.reading import VideoBatch, iter_videos, segments_by_video
from pipeline.store.reader import FeatureStore, open_store
from store_schema import ATTRIBUTE_PREFIX, VIDEO_OK

log = logging.getLogger(__name__)

FORMATS = ("h5", "npy", "parquet")
H5_FORMAT = "anon-store-h5"
H5_GROUPS = ("static", "windows")
EXPORT_FILE = "export.json"
OUTPUTS = {
    "h5": ("features.h5",),
    "npy": ("clips", "static", "windows", "videos.jsonl", "annotations.json"),
    "parquet": ("clips.parquet", "static.parquet", "windows.parquet"),
}


@dataclass(frozen=True)
class ExportProgress:
    videos_done: int
    videos_total: int
    bytes_written: int
    """Feature bytes written so far (float32)."""


@dataclass(frozen=True)
class ExportResult:
    output: str
    format: str
    files: list[str]
    videos: int
    skipped: int
    """Videos not exported (failed or pending)."""
    bytes_written: int
    seconds: float


def _check_ids(store: FeatureStore, fmt: str) -> None:
    """Every exported id must name a file / HDF5 dataset; checked before anything is written."""
    status = np.asarray(store.group["status"][:])
    ids = np.asarray(store.group["video_id"][:])[status == VIDEO_OK]
    reserved = set(H5_GROUPS) if fmt == "h5" else set()
    for vid in (str(v) for v in ids):
        if not vid or vid in (".", "..") or any(c in vid for c in "/\\\0") or vid in reserved:
            raise StoreError(
                f"video id {vid!r} cannot name a file or HDF5 dataset: rename it in the manifest"
            )


def export(
    store: str | Path,
    fmt: str,
    out_dir: str | Path,
    *,
    progress: Callable[[ExportProgress], None] | None = None,
    overwrite: bool = False,
    storage_options: dict | None = None,
) -> ExportResult:
    """Write the features of the complete store `store` into `out_dir` as `fmt`.

    Streams one store chunk at a time. Files are written into a hidden temporary directory
    inside `out_dir` and moved into place at the end; existing outputs are replaced only with
    `overwrite`.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {FORMATS}, got {fmt!r}")
    started = time.perf_counter()
    source = open_store(store, storage_options=storage_options)
    if source.kind == "raw":
        log.warning("exporting RAW features of %s: they are not anonymized", source.location)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise StoreError(f"{out} exists and is not a directory")
    taken = [name for name in (*OUTPUTS[fmt], EXPORT_FILE) if (out / name).exists()]
    if taken and not overwrite:
        raise StoreError(f"{out} already holds {', '.join(taken)}: pass overwrite to replace")
    _check_ids(source, fmt)
    status = np.asarray(source.group["status"][:])
    total = int((status == VIDEO_OK).sum())
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".export-{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    counts = {"videos": 0, "bytes": 0}

    def batches() -> Iterator[VideoBatch]:
        for batch in iter_videos(source):
            yield batch
            counts["videos"] += len(batch.rows)
            counts["bytes"] += batch.clips.nbytes + batch.static.nbytes
            counts["bytes"] += sum(w.nbytes for w in batch.windows)
            if progress is not None:
                progress(ExportProgress(counts["videos"], total, counts["bytes"]))

    try:
        {"h5": _write_h5, "npy": _write_npy, "parquet": _write_parquet}[fmt](source, batches(), tmp)
        for name in taken:
            target = out / name
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        files = []
        for name in OUTPUTS[fmt]:
            if (tmp / name).exists():
                (tmp / name).rename(out / name)
                files.append(name)
        summary = {
            "format": fmt,
            "videos": counts["videos"],
            "skipped": int(len(status) - total),
            "files": files,
            "feature_dim": source.feature_dim,
            "store": source.meta,
            "source": source.location.name,
            "layout": __doc__,
        }
        (out / EXPORT_FILE).write_text(json.dumps(summary, indent=2, default=str))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(
        output=str(out),
        format=fmt,
        files=[*files, EXPORT_FILE],
        videos=counts["videos"],
        skipped=int(len(status) - total),
        bytes_written=counts["bytes"],
        seconds=time.perf_counter() - started,
    )


def _labels(batch: VideoBatch, i: int, attributes: list[str]) -> dict[str, Any]:
    table = batch.table
    return {
        "video_id": str(table["video_id"][i]),
        "split": str(table["split"][i]),
        "kind": str(table["kind"][i]),
        "action": int(table["action"][i]),
        "anomalous": int(table["anomalous"][i]),
        "fps": float(table["fps"][i]),
        "num_frames": int(table["num_frames"][i]),
        "attributes": {a: int(table[f"{ATTRIBUTE_PREFIX}{a}"][i]) for a in attributes},
    }


def _write_h5(source: FeatureStore, batches: Iterator[VideoBatch], tmp: Path) -> None:
    import h5py

    with h5py.File(tmp / "features.h5", "w") as f:
        f.attrs["format"] = H5_FORMAT
        f.attrs["anon_store"] = json.dumps(source.meta, default=str)
        static = f.create_group("static") if source.group["static_features"].shape[1] else None
        windows = None
        for batch in batches:
            for i, vid in enumerate(batch.video_ids):
                labels = _labels(batch, i, source.attribute_names)
                ds = f.create_dataset(vid, data=batch.clips[i])
                for key in ("split", "kind", "action", "fps", "num_frames"):
                    ds.attrs[key] = labels[key]
                ds.attrs["clip_start"] = batch.table["clip_start"][i]
                if static is not None:
                    s = static.create_dataset(vid, data=batch.static[i])
                    s.attrs["static_frame"] = batch.table["static_frame"][i]
                if len(batch.windows[i]):
                    windows = windows if windows is not None else f.create_group("windows")
                    w = windows.create_dataset(vid, data=batch.windows[i])
                    w.attrs["window_start"] = batch.window_start[i]


def _write_npy(source: FeatureStore, batches: Iterator[VideoBatch], tmp: Path) -> None:
    sampling = source.meta.get("sampling") or {}
    actions = list((source.meta.get("dataset") or {}).get("actions") or [])
    segments = segments_by_video(source)
    for name in ("clips", "static", "windows"):
        (tmp / name).mkdir()
    has_static = bool(source.group["static_features"].shape[1])
    first_annotation = True
    with (
        open(tmp / "videos.jsonl", "w") as videos,
        open(tmp / "annotations.json", "w") as annotations,
    ):
        annotations.write('{"version": "anon-store export", "database": {')
        for batch in batches:
            for i, vid in enumerate(batch.video_ids):
                row = int(batch.rows[i])
                np.save(tmp / "clips" / f"{vid}.npy", batch.clips[i])
                if has_static:
                    np.save(tmp / "static" / f"{vid}.npy", batch.static[i])
                record = _labels(batch, i, source.attribute_names)
                segs = segments.get(row, np.zeros((0, 3), np.int32))
                record.update(
                    clip_start=batch.table["clip_start"][i].tolist(),
                    static_frame=batch.table["static_frame"][i].tolist(),
                    window_start=batch.window_start[i].tolist(),
                    segments=segs.tolist(),
                )
                videos.write(json.dumps(record) + "\n")
                if not len(batch.windows[i]):
                    continue
                np.save(tmp / "windows" / f"{vid}.npy", batch.windows[i])
                entry = _annotation(record, segs, sampling, actions)
                annotations.write(("" if first_annotation else ", ") + json.dumps(vid) + ": ")
                annotations.write(json.dumps(entry))
                first_annotation = False
        annotations.write("}}\n")
    for name in ("static", "windows"):
        if not any((tmp / name).iterdir()):
            (tmp / name).rmdir()


def _annotation(
    record: dict[str, Any], segs: np.ndarray, sampling: dict, actions: list[str]
) -> dict[str, Any]:
    fps = record["fps"] if record["fps"] > 0 else float("nan")
    return {
        "subset": record["split"],
        "duration": record["num_frames"] / fps if fps == fps else None,
        "fps": record["fps"],
        "feat_stride": sampling.get("window_stride"),
        "feat_num_frames": sampling.get("frames_per_clip"),
        "annotations": [
            {
                "segment": [s / fps, e / fps] if fps == fps else None,
                "segment_frames": [int(s), int(e)],
                "label_id": int(label),
                "label": actions[label]
                if record["kind"] != "anomaly" and 0 <= label < len(actions)
                else str(int(label)),
            }
            for s, e, label in segs.tolist()
        ],
    }


def _write_parquet(source: FeatureStore, batches: Iterator[VideoBatch], tmp: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    attributes = source.attribute_names
    fields = [
        ("video_id", pa.string()),
        ("split", pa.string()),
        ("kind", pa.string()),
        ("clip", pa.int32()),
        ("start_frame", pa.int32()),
        ("action", pa.int16()),
        ("anomalous", pa.int8()),
        *[(f"{ATTRIBUTE_PREFIX}{a}", pa.int16()) for a in attributes],
        ("feature", pa.list_(pa.float32())),
    ]
    schema = pa.schema(fields, metadata={b"anon_store": json.dumps(source.meta, default=str)})
    writers = {
        name: pq.ParquetWriter(tmp / f"{name}.parquet", schema)
        for name in ("clips", "static", "windows")
    }
    try:
        for batch in batches:
            parts = {
                "clips": (list(batch.clips), list(batch.table["clip_start"])),
                "static": (list(batch.static), list(batch.table["static_frame"])),
                "windows": (batch.windows, batch.window_start),
            }
            for name, (features, starts) in parts.items():
                table = _rows_table(batch, features, starts, attributes, schema)
                if table.num_rows:
                    writers[name].write_table(table)
    finally:
        for writer in writers.values():
            writer.close()


def _rows_table(
    batch: VideoBatch,
    features: list[np.ndarray],
    starts: list[np.ndarray],
    attributes: list[str],
    schema: Any,
) -> Any:
    """One row per clip of every video in the batch."""
    import pyarrow as pa

    counts = np.array([len(f) for f in features], dtype=np.int64)
    n = int(counts.sum())
    dim = batch.clips.shape[-1]
    video = np.repeat(np.arange(len(counts)), counts)
    values = (
        np.concatenate([f.reshape(-1, dim) for f in features])
        if n
        else np.zeros((0, dim), np.float32)
    )
    offsets = np.arange(n + 1, dtype=np.int32) * dim
    table = batch.table
    columns = {
        "video_id": pa.array([str(v) for v in table["video_id"][video]], pa.string()),
        "split": pa.array([str(v) for v in table["split"][video]], pa.string()),
        "kind": pa.array([str(v) for v in table["kind"][video]], pa.string()),
        "clip": pa.array(
            np.concatenate([np.arange(c, dtype=np.int32) for c in counts])
            if n
            else np.zeros(0, np.int32)
        ),
        "start_frame": pa.array(
            np.concatenate([np.asarray(s, np.int32) for s in starts])
            if n
            else np.zeros(0, np.int32)
        ),
        "action": pa.array(table["action"][video].astype(np.int16)),
        "anomalous": pa.array(table["anomalous"][video].astype(np.int8)),
        **{
            f"{ATTRIBUTE_PREFIX}{a}": pa.array(
                table[f"{ATTRIBUTE_PREFIX}{a}"][video].astype(np.int16)
            )
            for a in attributes
        },
        "feature": pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(values.reshape(-1).astype(np.float32))
        ),
    }
    return pa.Table.from_pydict(columns, schema=schema)
