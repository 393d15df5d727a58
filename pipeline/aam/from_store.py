"""train_aam(): train the adapter over a raw store's cached latents and save the checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from pipeline.aam.adapter import AdapterConfig
from pipeline.aam.checkpoint import save_adapter
from pipeline.aam.trainer import LatentTrainingData, TrainConfig, TrainResult, train_adapter
from pipeline.errors import AdapterError, ConfigError, StoreError
from pipeline.store.location import StoreLocation
from pipeline.store.reader import FeatureStore, open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainAAMConfig:
    """What train-aam needs beyond the store: training settings and the adapter's shape."""

    training: TrainConfig = field(default_factory=TrainConfig)
    """Optimiser, loss weights, schedule, selection rule, seed, device."""
    arch: str = "mlp"
    """Adapter architecture: mlp (per clip) | attention (over the clips of one video)."""
    width: int | None = None
    """Hidden width of the adapter's residual branches (None = D)."""
    depth: int = 2
    """Residual blocks."""
    heads: int = 4
    """Attention heads (attention arch)."""
    train_split: str = "train"
    """Split the adapter and heads are trained on."""
    val_split: str = "val"
    """Split used for validation and checkpoint selection."""
    memory_fraction: float = 0.5
    """Refuse to load more features than this fraction of the available memory."""
    overwrite: bool = False
    """Replace an existing adapter directory."""

    def adapter_config(self, dim: int) -> AdapterConfig:
        return AdapterConfig(
            arch=self.arch, dim=dim, width=self.width, depth=self.depth, heads=self.heads
        )


@dataclass(frozen=True)
class TrainAAMResult:
    """Where the adapter went and what training measured."""

    output: str
    best_epoch: int
    best: dict[str, Any]
    history: list[dict[str, Any]]
    seconds: float
    feature_bytes: int


def load_split(store: FeatureStore, split: str) -> LatentTrainingData:
    """A split's usable videos (decoded fine, with an action label) as in-memory training data."""
    rows = store.rows(split)
    actions = store.videos["action"][rows].astype(np.int64)
    rows = rows[actions >= 0]
    return LatentTrainingData(
        clip_features=store.read_rows("clip_features", rows),
        static_features=store.read_rows("static_features", rows),
        actions=store.videos["action"][rows].astype(np.int64),
    )


def store_identity(store: FeatureStore) -> dict[str, Any]:
    """What an adapter records about the store it was trained on."""
    return {
        "store_id": store.store_id,
        "fingerprint": store.meta.get("fingerprint"),
        "location": store.location.name,
        "encoder": store.encoder,
        "dataset": {
            k: (store.meta.get("dataset") or {}).get(k) for k in ("name", "manifest_sha256")
        },
    }


def _check_inputs(store: FeatureStore, output: Path, config: TrainAAMConfig) -> None:
    if int(store.group["static_features"].shape[1]) < 2:
        raise StoreError(f"{store.location} lacks static clips (need >= 2 per video for L_B)")
    for split in (config.train_split, config.val_split):
        if len(store.rows(split)) == 0:
            raise StoreError(f"{store.location} has no usable videos in split '{split}'")
    occupied = output.exists() and (not output.is_dir() or any(output.iterdir()))
    if occupied and not config.overwrite:
        raise AdapterError(f"{output} already exists: pass --overwrite to replace it")
    needed = (
        (len(store.rows(config.train_split)) + len(store.rows(config.val_split)))
        * (store.group["clip_features"].shape[1] + store.group["static_features"].shape[1])
        * store.feature_dim
        * 4
    )
    budget = psutil.virtual_memory().available * config.memory_fraction
    if needed > budget:
        raise ConfigError(
            f"train and val features need {needed / 1e9:.1f} GB, over the memory budget of "
            f"{budget / 1e9:.1f} GB; raise memory_fraction or train on a machine with more memory"
        )


def train_aam(
    store: str | Path | StoreLocation,
    output: str | Path,
    config: TrainAAMConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    on_validation: Callable[[dict[str, Any]], None] | None = None,
) -> TrainAAMResult:
    """Train the Anonymizing Adapter Module on a complete raw store; write it to `output`."""
    config = config or TrainAAMConfig()
    raw = open_store(store, kind="raw")
    output_dir = Path(output)
    _check_inputs(raw, output_dir, config)
    train = load_split(raw, config.train_split)
    val = load_split(raw, config.val_split)
    feature_bytes = train.nbytes + val.nbytes
    log.info(
        "training AAM on %d train / %d val videos; features in memory: %.1f MB",
        train.num_videos,
        val.num_videos,
        feature_bytes / 1e6,
    )
    result: TrainResult = train_adapter(
        train,
        val,
        config.training,
        config.adapter_config(raw.feature_dim),
        progress=progress,
        on_validation=on_validation,
    )
    save_adapter(
        output_dir,
        result.adapter,
        result.heads,
        result.adapter_config,
        result.config,
        store_identity(raw),
        result.history,
        selected=result.best,
        overwrite=config.overwrite,
    )
    return TrainAAMResult(
        output=str(output_dir),
        best_epoch=result.best_epoch,
        best=result.best,
        history=result.history,
        seconds=result.seconds,
        feature_bytes=feature_bytes,
    )
