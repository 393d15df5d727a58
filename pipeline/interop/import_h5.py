"""import_h5(): turn an existing HDF5 feature cache (one [clips, D] dataset per video id) into a
raw store, so that train-aam, sanitize and the probes run on features made elsewhere.

Input layout (the paper's reference cache; also what ``export(..., "h5")`` writes):
    /<video_id>           [clips, D]  normal clips (any float dtype; stored as float32)
    /static/<video_id>    [S, D]      optional static clips (S equal for every video)
    /windows/<video_id>   [W, D]      optional sliding windows; attrs window_start if known
Labels, splits, fps, frame counts and segments come from the manifest (video files need not
exist). Store videos are the manifest's videos (all splits but ``pretrain`` unless `splits` is
given), in manifest order; a video without a dataset is recorded as failed ("missing"), one with
non-finite values as failed ("corrupt"); datasets of unknown videos are ignored (counted).

Clip counts: every video must have the same number of clips, otherwise the import fails and
names two videos that differ - unless `clips_per_video` is given, in which case each video's
clips are resampled evenly to that many by index (``linspace(0, clips - 1, n)`` rounded: clips
repeat when a video has fewer; never interpolated, so every stored vector is a real embedding).
Imported clip_start values are -1 (unknown). Without a ``static`` group the store has S = 0:
sanitize and the probes work, train-aam refuses the store ("lacks static clips").

Encoder identity: {"name": "imported", "source": file name, "hidden_size": D,
"weights_sha256": sha256 of the HDF5 file}: an adapter trained on the imported store is tied to
exactly this file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.manifest import Manifest, read_manifest
from pipeline.errors import ConfigError, StoreError
from pipeline.sanitize.output import existing_state
from pipeline.store.layout import StoreLayout, plan_layout
from pipeline.store.location import StoreLocation
from pipeline.store.lock import StoreLock
from pipeline.store.writer import (
    ShardResult,
    StoreCodecs,
    base_attrs,
    commit_shard,
    create_store,
    discard_store,
    finalize_store,
    read_attrs,
    shard_committed,
    window_name,
)
from store_schema import SCHEMA_VERSION, VIDEO_FAILED, VIDEO_OK

log = logging.getLogger(__name__)

EXCLUDED_SPLITS = ("pretrain",)
"""As extraction: the encoder's own training videos are not part of a store by default."""


@dataclass(frozen=True)
class ImportResult:
    output: str
    action: str
    """created | resumed | unchanged."""
    store_id: str
    videos: int
    failed: int
    """Manifest videos without usable features (missing or corrupt)."""
    ignored: int
    """Datasets in the file whose id is not a selected manifest video."""
    clips_per_video: int
    static_clips: int
    feature_dim: int
    seconds: float


@dataclass(frozen=True, eq=False)
class _Source:
    """What the HDF5 file holds for the selected videos."""

    clips: dict[str, tuple[int, ...]]
    static: dict[str, tuple[int, ...]]
    windows: dict[str, tuple[int, ...]]
    ignored: int
    dim: int
    clips_per_video: int
    """Clips stored per video (after resampling)."""
    static_clips: int
    embedded_meta: dict[str, Any]
    """The anon_store attrs of a file written by export(), else {}."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shapes(group: Any, ids: set[str]) -> tuple[dict[str, tuple[int, ...]], int]:
    import h5py

    shapes, ignored = {}, 0
    for name, item in group.items():
        if not isinstance(item, h5py.Dataset):
            continue
        if name not in ids:
            ignored += 1
            continue
        if item.ndim != 2 or item.dtype.kind != "f":
            raise StoreError(
                f"{group.file.filename}: dataset {item.name} is {item.dtype} {item.shape}, "
                "expected a float [clips, D] array"
            )
        shapes[name] = tuple(item.shape)
    return shapes, ignored


def _scan(f: Any, ids: list[str], clips_per_video: int | None) -> _Source:
    import h5py

    wanted = set(ids)
    clips, ignored = _shapes(f, wanted)
    if not clips:
        raise StoreError(f"{f.filename}: no dataset named after a manifest video id")
    groups = {n: f[n] for n in ("static", "windows") if isinstance(f.get(n), h5py.Group)}
    static, _ = _shapes(groups["static"], wanted) if "static" in groups else ({}, 0)
    windows, _ = _shapes(groups["windows"], wanted) if "windows" in groups else ({}, 0)
    dims = {shape[1] for table in (clips, static, windows) for shape in table.values()}
    if len(dims) != 1:
        raise StoreError(f"{f.filename}: datasets have different feature sizes {sorted(dims)}")
    counts = sorted({shape[0] for shape in clips.values()})
    if clips_per_video is None and len(counts) > 1:
        a = next(v for v, s in clips.items() if s[0] == counts[0])
        b = next(v for v, s in clips.items() if s[0] == counts[-1])
        raise StoreError(
            f"{f.filename}: videos have different clip counts ({a}: {counts[0]}, {b}: "
            f"{counts[-1]}); pass clips_per_video=N to resample every video evenly to N clips"
        )
    if counts[0] == 0:
        raise StoreError(f"{f.filename}: a video has no clips")
    static_counts = {shape[0] for shape in static.values()}
    if len(static_counts) > 1:
        raise StoreError(f"{f.filename}: static groups have different clip counts")
    if static and set(static) != set(clips):
        missing = sorted(set(clips) - set(static))[:3]
        raise StoreError(f"{f.filename}: videos {missing} have clips but no static clips")
    embedded: dict[str, Any] = {}
    if f.attrs.get("format") == "anon-store-h5":
        try:
            embedded = json.loads(f.attrs["anon_store"])
        except (KeyError, ValueError, TypeError):
            embedded = {}
    return _Source(
        clips=clips,
        static=static,
        windows=windows,
        ignored=ignored,
        dim=dims.pop(),
        clips_per_video=clips_per_video or counts[0],
        static_clips=static_counts.pop() if static_counts else 0,
        embedded_meta=embedded,
    )


def _selected_rows(manifest: Manifest, splits: tuple[str, ...] | None) -> np.ndarray:
    all_splits = manifest.table.column("split").to_pylist()
    if splits is None:
        keep = [i for i, s in enumerate(all_splits) if s not in EXCLUDED_SPLITS]
    else:
        missing = sorted(set(splits) - set(all_splits))
        if missing:
            raise ConfigError(f"splits {missing} are not in the manifest")
        keep = [i for i, s in enumerate(all_splits) if s in splits]
    if not keep:
        raise ConfigError("no videos to import: the selected splits are empty")
    return np.array(keep, dtype=np.int64)


def _tables(manifest: Manifest, rows: np.ndarray, layout: StoreLayout) -> dict[str, np.ndarray]:
    def column(name: str) -> list:
        values = manifest.table.column(name).to_pylist()
        return [values[i] for i in rows]

    window_video = layout.window_video()
    segment_rows = [
        (video, seg["start"], seg["end"], seg["label"])
        for video, segments in enumerate(column("segments"))
        for seg in segments or []
    ]
    segments = np.array(segment_rows, dtype=np.int32).reshape(-1, 4)
    tables = {
        "video_id": np.array(column("video_id"), dtype=object),
        "split": np.array(column("split"), dtype=object),
        "kind": np.array(column("kind"), dtype=object),
        "action": np.array(column("action"), dtype=np.int16),
        "anomalous": np.array(column("anomalous"), dtype=np.int8),
        "fps": np.array(column("fps"), dtype=np.float32),
        "num_frames": np.array(column("num_frames"), dtype=np.int32),
        "window_offset": layout.window_offset,
        "window_count": layout.window_count,
        "window_video": window_video,
        "window_start": np.full(layout.num_windows, -1, dtype=np.int32),
        "segment_video": segments[:, 0],
        "segment_start": segments[:, 1],
        "segment_end": segments[:, 2],
        "segment_label": segments[:, 3],
    }
    for name in manifest.attribute_names:
        tables[f"attr_{name}"] = np.array(column(f"attr_{name}"), dtype=np.int16)
    return tables


def _resample(values: np.ndarray, count: int) -> np.ndarray:
    if len(values) == count:
        return values
    return values[np.rint(np.linspace(0, len(values) - 1, count)).astype(np.int64)]


def _read_shard(
    f: Any, ids: list[str], source: _Source, layout: StoreLayout, shard: int
) -> tuple[ShardResult, np.ndarray]:
    """The shard's features, and the window starts recorded in the file (-1 = unknown)."""
    videos, windows = layout.shard_videos(shard), layout.shard_windows(shard)
    n, dim = len(videos), layout.feature_dim
    k, s = layout.clips_per_video, layout.static_clips
    clips = np.full((n, k, dim), np.nan, np.float32)
    static = np.full((n, s, dim), np.nan, np.float32)
    window_features = np.full((len(windows), dim), np.nan, np.float32)
    window_start = np.full(len(windows), -1, np.int32)
    status = np.full(n, VIDEO_OK, np.int8)
    reasons = np.array([""] * n, dtype=object)
    for i, video in enumerate(videos):
        vid = ids[video]
        if vid not in source.clips:
            status[i], reasons[i] = VIDEO_FAILED, f"missing: no dataset in {Path(f.filename).name}"
            continue
        video_clips = _resample(np.asarray(f[vid][()], np.float32), k)
        video_static = np.asarray(f["static"][vid][()], np.float32) if s else static[i]
        offset = int(layout.window_offset[video]) - windows.start
        count = int(layout.window_count[video])
        video_windows, starts = window_features[offset : offset + count], None
        if count:
            dataset = f["windows"][vid]
            video_windows = np.asarray(dataset[()], np.float32)
            starts = dataset.attrs.get("window_start")
        if not all(np.isfinite(a).all() for a in (video_clips, video_static, video_windows)):
            status[i], reasons[i] = VIDEO_FAILED, "corrupt: non-finite features"
            continue
        clips[i], static[i] = video_clips, video_static
        window_features[offset : offset + count] = video_windows
        if starts is not None and len(starts) == count:
            window_start[offset : offset + count] = starts
    return ShardResult(
        shard=shard,
        clip_features=clips,
        clip_start=np.full((n, k), -1, np.int32),
        static_features=static,
        static_frame=np.full((n, s), -1, np.int32),
        window_features=window_features,
        status=status,
        failure_reason=reasons,
    ), window_start


def import_h5(
    h5_path: str | Path,
    manifest_path: str | Path,
    output: str | Path,
    *,
    overwrite: bool = False,
    clips_per_video: int | None = None,
    splits: tuple[str, ...] | None = None,
    progress: Callable[[int, int], None] | None = None,
    storage_options: dict | None = None,
    break_lock: bool = False,
) -> ImportResult:
    """Write a raw store at `output` from the HDF5 feature cache `h5_path` and its manifest.

    Checked before anything is written; streamed shard by shard; resumable like extraction
    (committed shards are kept). ``progress(videos_done, videos_total)``.
    """
    import h5py

    started = time.perf_counter()
    path = Path(h5_path)
    if not path.is_file():
        raise StoreError(f"{path}: HDF5 file not found")
    if clips_per_video is not None and clips_per_video <= 0:
        raise ConfigError(f"clips_per_video must be positive, got {clips_per_video}")
    manifest = read_manifest(manifest_path, check_files=False)
    rows = _selected_rows(manifest, splits)
    all_ids = manifest.table.column("video_id").to_pylist()
    ids = [str(all_ids[i]) for i in rows]
    location = StoreLocation.parse(output, storage_options)
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise StoreError(f"{path}: not a readable HDF5 file ({error})") from None
    with f:
        source = _scan(f, ids, clips_per_video)
        sha = _sha256(path)
        window_counts = np.array([source.windows.get(v, (0,))[0] for v in ids], np.int64)
        layout = plan_layout(
            window_counts,
            clips_per_video=source.clips_per_video,
            static_clips=source.static_clips,
            feature_dim=source.dim,
        )
        identity = {
            "schema_version": SCHEMA_VERSION,
            "h5_sha256": sha,
            "manifest_sha256": manifest.sha256,
            "rows": rows.tolist(),
            "clips_per_video": clips_per_video,
        }
        fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        with StoreLock(location, break_lock=break_lock, command="anon-store import-h5") as lock:
            state = existing_state(
                location, kind="raw", fingerprint=fingerprint, overwrite=overwrite
            )
            if state == "complete":
                meta = read_attrs(location.open_group("r")) or {}
                return ImportResult(
                    str(location),
                    "unchanged",
                    str(meta["store_id"]),
                    len(ids),
                    0,
                    source.ignored,
                    layout.clips_per_video,
                    layout.static_clips,
                    layout.feature_dim,
                    time.perf_counter() - started,
                )
            if state == "resume":
                group = location.open_group("r+")
            else:
                if state == "recreate":
                    discard_store(location)
                tables = _tables(manifest, rows, layout)
                meta = imported_store_meta(
                    manifest, rows, path, sha, source, fingerprint, clips_per_video
                )
                group = create_store(location, meta, layout, tables, StoreCodecs())
            done = shard_committed(group, layout)
            finished = sum(len(layout.shard_videos(s)) for s in np.flatnonzero(done))
            for shard in np.flatnonzero(~done):
                result, window_start = _read_shard(f, ids, source, layout, int(shard))
                windows = layout.shard_windows(int(shard))
                if len(windows):
                    target = window_name("window_start", layout)
                    group[target][windows.start : windows.stop] = window_start
                commit_shard(group, layout, result)
                finished += len(result.status)
                if progress is not None:
                    progress(finished, len(ids))
        status = np.asarray(group["status"][:])
        failed = int((status == VIDEO_FAILED).sum())
        if failed == len(status):
            raise StoreError(f"none of the {failed} videos has usable features in {path.name}")
        lock.verify()
        meta = finalize_store(
            location, group, {"op": "imported", "videos": len(status), "failed": failed},
            num_failed=failed,
        )  # fmt: skip
        log.info(
            "imported %d videos (%d failed, %d datasets ignored) from %s into %s",
            len(ids),
            failed,
            source.ignored,
            path,
            location,
        )
    return ImportResult(
        output=str(location),
        action="created" if state in ("new", "recreate") else "resumed",
        store_id=str(meta["store_id"]),
        videos=len(ids),
        failed=failed,
        ignored=source.ignored,
        clips_per_video=layout.clips_per_video,
        static_clips=layout.static_clips,
        feature_dim=layout.feature_dim,
        seconds=time.perf_counter() - started,
    )


def imported_store_meta(
    manifest: Manifest,
    rows: np.ndarray,
    path: Path,
    sha: str,
    source: _Source,
    fingerprint: str,
    clips_per_video: int | None,
) -> dict[str, Any]:
    info = manifest.info
    embedded_sampling = source.embedded_meta.get("sampling") or {}
    meta = base_attrs("raw", fingerprint, provenance="imported")
    meta.update(
        encoder={
            "name": "imported",
            "source": path.name,
            "family": "imported",
            "pooling": "unknown",
            "hidden_size": source.dim,
            "weights_sha256": sha,
        },
        sampling={
            "clips_per_video": source.clips_per_video,
            "static_clips": source.static_clips,
            # Known only when the file was written by export() from a store.
            "frames_per_clip": embedded_sampling.get("frames_per_clip"),
            "window_stride": embedded_sampling.get("window_stride"),
        },
        dataset={
            "name": info.name,
            "manifest_sha256": manifest.sha256,
            "actions": list(info.actions),
            "anomaly_types": list(info.anomaly_types),
            "attributes": {
                name: {"values": list(attr.values), "role": attr.role}
                for name, attr in info.attributes.items()
            },
            "splits": sorted({manifest.table.column("split")[int(i)].as_py() for i in rows}),
        },
        imported={
            "file": path.name,
            "sha256": sha,
            "clips_resampled_to": clips_per_video,
            "ignored_datasets": source.ignored,
            "source_encoder": (source.embedded_meta.get("encoder") or {}).get("name"),
            "source_provenance": source.embedded_meta.get("provenance"),
        },
    )
    return meta
