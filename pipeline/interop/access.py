"""Public read access for downstream teams: metadata, audit, xarray, and a torch Dataset."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import zarr

from pipeline.errors import ConfigError
from pipeline.store.reader import open_store
from store_schema import ATTRIBUTE_PREFIX, VIDEO_OK

Level = Literal["clip", "video"]
LEVELS: tuple[str, ...] = ("clip", "video")


def store_metadata(store: str | Path, *, storage_options: dict | None = None) -> dict[str, Any]:
    """The metadata object of a complete store (kind, encoder, sampling, dataset, audit, ...)."""
    return dict(open_store(store, storage_options=storage_options).meta)


def read_audit(store: str | Path, *, storage_options: dict | None = None) -> dict[str, Any] | None:
    """The store's latest audit record (``anon-store audit``), or None if it was never audited."""
    audit = store_metadata(store, storage_options=storage_options).get("audit")
    return dict(audit) if isinstance(audit, dict) else None


def open_dataset(store: str | Path, *, storage_options: dict | None = None) -> Any:
    """The store as an xarray Dataset (lazy, dask-backed), after the same checks as every reader
    (complete, current schema); ``ds.attrs["anon_store"]`` decoded to a dict."""
    import xarray as xr

    opened = open_store(store, storage_options=storage_options)
    ds = xr.open_zarr(opened.location.zarr_store(read_only=True), consolidated=True)
    ds.attrs["anon_store"] = dict(opened.meta)
    return ds


class FeatureDataset(torch.utils.data.Dataset):
    """Embeddings of a complete store as a torch Dataset, one item per clip or per video.

    Items are dicts: ``features`` (float32 [D] per clip, [K, D] per video; static clips with
    ``static=True``), ``action`` (int64, -1 where none), ``attributes`` (int64 [A], the order of
    ``attribute_names``; -1 unknown), ``video`` (row in the store) and ``video_id``. Only videos
    that extracted fine (status ok) are items. Safe with ``DataLoader(num_workers > 0)``: each
    worker opens the store itself and keeps its own small cache of decoded chunks.
    """

    def __init__(
        self,
        store: str | Path,
        *,
        level: Level = "clip",
        split: str | tuple[str, ...] | None = None,
        static: bool = False,
        storage_options: dict | None = None,
        cache_chunks: int = 4,
    ) -> None:
        if level not in LEVELS:
            raise ConfigError(f"level must be one of {LEVELS}, got {level!r}")
        if cache_chunks < 1:
            raise ConfigError("cache_chunks must be at least 1")
        opened = open_store(store, storage_options=storage_options)
        self.url = opened.location.url
        self.storage_options = storage_options
        self.level = level
        self.array = "static_features" if static else "clip_features"
        self.cache_chunks = cache_chunks
        self.attribute_names = opened.attribute_names
        videos = opened.videos
        keep = videos["status"] == VIDEO_OK
        if split is not None:
            wanted = (split,) if isinstance(split, str) else tuple(split)
            unknown = sorted(set(wanted) - set(opened.splits()))
            if unknown:
                raise ConfigError(f"{self.url} has no split(s) {unknown}: {opened.splits()}")
            keep &= np.isin(videos["split"], wanted)
        self.rows = np.flatnonzero(keep)
        self.video_ids = [str(v) for v in videos["video_id"][self.rows]]
        self.actions = videos["action"][self.rows].astype(np.int64)
        columns = [videos[f"{ATTRIBUTE_PREFIX}{n}"] for n in self.attribute_names]
        self.attributes = (
            np.stack(columns, axis=1)[self.rows].astype(np.int64)
            if columns
            else np.zeros((len(self.rows), 0), dtype=np.int64)
        )
        shape = opened.group[self.array].shape
        self.per_video = int(shape[1])
        if self.per_video == 0:
            raise ConfigError(f"{self.url} has no {self.array.replace('_', ' ')}")
        self.chunk_rows = int(opened.group[self.array].chunks[0])
        self._group: zarr.Group | None = None
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.rows) * (self.per_video if self.level == "clip" else 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        item, clip = divmod(index, self.per_video) if self.level == "clip" else (index, None)
        row = int(self.rows[item])
        block = self._chunk(row // self.chunk_rows)[row % self.chunk_rows]
        features = block if clip is None else block[clip]
        return {
            "features": torch.from_numpy(np.array(features, dtype=np.float32)),
            "action": int(self.actions[item]),
            "attributes": torch.from_numpy(self.attributes[item].copy()),
            "video": row,
            "video_id": self.video_ids[item],
        }

    def _chunk(self, chunk: int) -> np.ndarray:
        if chunk in self._cache:
            self._cache.move_to_end(chunk)
            return self._cache[chunk]
        if self._group is None:  # opened lazily, in the process that reads (DataLoader workers)
            self._group = open_store(self.url, storage_options=self.storage_options).group
        lo = chunk * self.chunk_rows
        values = np.asarray(self._group[self.array][lo : lo + self.chunk_rows])
        self._cache[chunk] = values
        if len(self._cache) > self.cache_chunks:
            self._cache.popitem(last=False)
        return values

    def __getstate__(self) -> dict[str, Any]:
        # Workers get the indices, not an open group or a parent's cache.
        return {**self.__dict__, "_group": None, "_cache": OrderedDict()}
