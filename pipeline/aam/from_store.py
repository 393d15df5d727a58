"""train_aam(): train the adapter over a raw store's cached latents and save the checkpoint.

Data: train and val features are loaded into memory when they fit the memory budget
(V * (K + S) * D * 4 bytes per split), else streamed from the store block by block
(pipeline.aam.streaming). Resuming: a checkpoint of the whole training state is written at every
validation into ``<output>/.checkpoint`` (pipeline.aam.train_state); rerunning the same command
after a crash or kill resumes from it, or restarts cleanly when it does not match, and says which.
The adapter files appear, all at once, only when training is done.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from pipeline.aam.adapter import AdapterConfig
from pipeline.aam.checkpoint import save_adapter
from pipeline.aam.presets import describe_config, privacy_off_warning
from pipeline.aam.sampler import steps_per_epoch
from pipeline.aam.streaming import (
    MemoryLedger,
    StreamingSplit,
    StreamPlan,
    format_bytes,
    plan_stream,
    plan_validation,
)
from pipeline.aam.train_state import CHECKPOINT_DIR, TrainState, load_train_state, save_train_state
from pipeline.aam.trainer import (
    RECIPE_EPOCHS,
    LatentTrainingData,
    TrainConfig,
    TrainResult,
    train_adapter,
)
from pipeline.errors import AdapterError, StoreError
from pipeline.store.location import StoreLocation
from pipeline.store.lock import StoreLock
from pipeline.store.permissions import private_directory
from pipeline.store.reader import FeatureStore, open_store
from store_schema import IMAGE_KIND

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainAAMConfig:
    """What train-aam needs beyond the store: training settings and the adapter's shape."""

    training: TrainConfig = field(default_factory=TrainConfig)
    """Optimiser, loss weights, schedule, selection rule, seed, device."""
    arch: str = "attention"
    """Adapter architecture: mlp (per clip) | attention (over the clips of one video); the
    default is the `recommended` preset's."""
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
    memory_budget_bytes: int | None = None
    """Bytes the features may take. Train and val are loaded into memory when they fit, else
    streamed within this budget. None: ``memory_fraction`` of the memory available now."""
    memory_fraction: float = 0.5
    """The budget as a fraction of the available memory, when memory_budget_bytes is None."""
    stream: bool = False
    """Stream from the store even when the features would fit in memory."""
    stream_window: int = 4
    """Blocks (zarr chunks of the video dimension) whose videos are shuffled together when
    streaming; shrunk to fit the budget."""
    prefetch: int = 2
    """Blocks read ahead by a background thread when streaming; shrunk to fit the budget."""
    resume: bool = True
    """Continue from the checkpoint in ``<output>/.checkpoint`` when it matches this run."""
    overwrite: bool = False
    """Replace an existing adapter directory."""
    break_lock: bool = False
    """Break the output's lock (``<output>.lock``) if its holder is dead or on another host."""

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
    """Train + val features: V * (K + S) * D * 4 bytes (what in-memory training holds)."""
    data_mode: str = "memory"
    """"memory" or "stream"."""
    memory_bytes: int = 0
    """Upper bound of the feature bytes training held (= feature_bytes in memory)."""
    resumed_from: int | None = None
    """Joint epoch of the checkpoint this run resumed from; None when it started from scratch."""
    peak_loader_bytes: int | None = None
    """Peak feature bytes the streaming loader actually held (None in memory)."""


def usable_rows(store: FeatureStore, split: str) -> np.ndarray:
    """Store rows of a split's usable videos: decoded fine, with an action label, and with normal
    clips (image rows have none: the utility and consistency losses need them)."""
    rows = store.rows(split)
    labelled = store.videos["action"][rows].astype(np.int64) >= 0
    return rows[labelled & (store.videos["kind"][rows] != IMAGE_KIND)]


def _chunk_rows(store: FeatureStore) -> int:
    return int(store.group["clip_features"].chunks[0])


def _load_rows(store: FeatureStore, rows: np.ndarray) -> LatentTrainingData:
    plan = StreamPlan(block_rows=_chunk_rows(store), window=1, prefetch=2)
    return StreamingSplit(store, rows, plan).load()


def load_split(store: FeatureStore, split: str) -> LatentTrainingData:
    """A split's usable videos (decoded fine, with an action label) as in-memory training data,
    read chunk by chunk (peak: the split plus a few chunks)."""
    return _load_rows(store, usable_rows(store, split))


@dataclass(frozen=True)
class DataPlan:
    """How train and val reach the trainer: in memory, or streamed within a budget."""

    budget_bytes: int
    train_bytes: int
    val_bytes: int
    row_bytes: int
    train_plan: StreamPlan | None = None
    """None: train is loaded into memory."""
    val_plan: StreamPlan | None = None
    """None: val is loaded into memory."""
    batch_size: int = 0

    @property
    def mode(self) -> str:
        return "memory" if self.train_plan is None else "stream"

    @property
    def memory_bytes(self) -> int:
        """Upper bound of the feature bytes held during training."""
        train = (
            self.train_bytes
            if self.train_plan is None
            else self.train_plan.held_bytes(self.row_bytes, self.batch_size)
        )
        if self.val_plan is None:
            return train + self.val_bytes
        return train + self.val_plan.held_bytes(self.row_bytes, 1)

    def identity(self) -> dict[str, Any]:
        """What determines the batches and metrics (prefetch depth does not)."""

        def plan(p: StreamPlan | None) -> dict[str, int] | None:
            return None if p is None else {"block_rows": p.block_rows, "window": p.window}

        return {"train": plan(self.train_plan), "val": plan(self.val_plan)}

    def describe(self) -> str:
        total = self.train_bytes + self.val_bytes
        if self.train_plan is None:
            return (
                f"features in memory: {format_bytes(total)} = V*(K+S)*D*4 bytes "
                f"(budget {format_bytes(self.budget_bytes)})"
            )
        p = self.train_plan
        val = (
            f"val in memory ({format_bytes(self.val_bytes)})"
            if self.val_plan is None
            else f"val streamed in blocks of {self.val_plan.block_rows} rows"
        )
        return (
            f"streaming features ({format_bytes(total)} in the store, budget "
            f"{format_bytes(self.budget_bytes)}): blocks of {p.block_rows} store rows, shuffle "
            f"window {p.window} blocks, prefetch {p.prefetch}; {val}; holds at most "
            f"{format_bytes(self.memory_bytes)}"
        )


def plan_data(store: FeatureStore, config: TrainAAMConfig) -> DataPlan:
    """In memory when train + val fit the budget (and streaming is not forced), else streamed:
    val stays in memory when it takes at most half the budget, else it streams in one half."""
    k = int(store.group["clip_features"].shape[1])
    s = int(store.group["static_features"].shape[1])
    row_bytes = (k + s) * store.feature_dim * 4
    train_bytes = len(usable_rows(store, config.train_split)) * row_bytes
    val_bytes = len(usable_rows(store, config.val_split)) * row_bytes
    budget = config.memory_budget_bytes or int(
        psutil.virtual_memory().available * config.memory_fraction
    )
    base = DataPlan(budget, train_bytes, val_bytes, row_bytes)
    if not config.stream and train_bytes + val_bytes <= budget:
        return base
    bs = config.training.batch_size
    chunk_rows = _chunk_rows(store)
    val_plan = None
    if val_bytes > budget // 2:
        val_plan = plan_validation(
            chunk_rows=chunk_rows,
            row_bytes=row_bytes,
            budget_bytes=budget // 2,
            prefetch=config.prefetch,
        )
    train_budget = budget - (val_bytes if val_plan is None else budget // 2)
    train_plan = plan_stream(
        chunk_rows=chunk_rows,
        row_bytes=row_bytes,
        batch_size=bs,
        budget_bytes=train_budget,
        window=config.stream_window,
        prefetch=config.prefetch,
    )
    return dataclasses.replace(base, train_plan=train_plan, val_plan=val_plan, batch_size=bs)


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


def run_identity(store: FeatureStore, config: TrainAAMConfig, data: DataPlan) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (the device may differ: then not bit-exact)."""
    training = dataclasses.asdict(config.training)
    training.pop("device")
    identity = {
        "store": {"store_id": store.store_id, "fingerprint": store.meta.get("fingerprint")},
        "splits": [config.train_split, config.val_split],
        "adapter": dataclasses.asdict(config.adapter_config(store.feature_dim)),
        "training": training,
        "data": data.identity(),
    }
    return json.loads(json.dumps(identity))


def setting_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """Keys (one level deep: "training.lr") whose values differ between two settings records."""
    out = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{sub}" for sub in sorted(set(a) | set(b)) if a.get(sub) != b.get(sub)]
        else:
            out.append(key)
    return out


def _occupied(output: Path) -> bool:
    """An output that holds anything but our checkpoint (a finished adapter, other files)."""
    if not output.exists():
        return False
    if not output.is_dir():
        return True
    return any(p.name != CHECKPOINT_DIR for p in output.iterdir())


def _check_inputs(store: FeatureStore, output: Path, config: TrainAAMConfig) -> None:
    if int(store.group["static_features"].shape[1]) < 2:
        raise StoreError(f"{store.location} lacks static clips (need >= 2 per video for L_B)")
    for split in (config.train_split, config.val_split):
        if len(usable_rows(store, split)) == 0:
            raise StoreError(
                f"{store.location} has no usable videos in split '{split}' (decoded, with an "
                "action label, not an image): train on the action data set's store"
            )
    if output.exists() and not output.is_dir():
        raise AdapterError(f"{output} exists and is not a directory")
    if _occupied(output) and not config.overwrite:
        raise AdapterError(f"{output} already exists: pass --overwrite to replace it")


def _resume_state(
    checkpoint_dir: Path, identity: dict[str, Any], config: TrainAAMConfig, say: Callable
) -> TrainState | None:
    """The checkpoint to resume from, or None (a stale one is removed); says which."""
    if not checkpoint_dir.exists():
        say("no checkpoint: training from scratch")
        return None
    if not config.resume:
        say(f"resume disabled: discarding {checkpoint_dir}, training from scratch")
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return None
    try:
        state = load_train_state(checkpoint_dir)
    except AdapterError as error:
        say(f"checkpoint unusable ({error}): restarting from scratch")
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return None
    if state is None:
        say("no checkpoint written yet: training from scratch")
        return None
    if state.identity != identity:
        changed = ", ".join(setting_differences(state.identity, identity)) or "identity"
        say(
            f"checkpoint in {checkpoint_dir} is from another run ({changed} differ): "
            "restarting from scratch"
        )
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return None
    if state.epoch > config.training.epochs:
        say("checkpoint is past the last epoch: restarting from scratch")
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
        return None
    say(
        f"resuming from the checkpoint in {checkpoint_dir}: epoch {state.epoch} of "
        f"{config.training.epochs} done (step {state.step})"
    )
    return state


def train_aam(
    store: str | Path | StoreLocation,
    output: str | Path,
    config: TrainAAMConfig | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    on_validation: Callable[[dict[str, Any]], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> TrainAAMResult:
    """Train the Anonymizing Adapter Module on a complete raw store; write it to `output`.

    ``notify(message)`` hears, in one line each, how the features are held (in memory or
    streamed, and how many bytes) and whether the run resumes a checkpoint or starts from scratch.
    """
    config = config or TrainAAMConfig()

    def say(message: str) -> None:
        log.info("train-aam: %s", message)
        if notify is not None:
            notify(message)

    raw = open_store(store, kind="raw")
    output_dir = Path(output)
    say(describe_config(config))
    warning = privacy_off_warning(dataclasses.asdict(config.training))
    if warning is not None:  # one line: to the caller's channel if it has one, else the log
        notify(warning) if notify is not None else log.warning(warning)
    # One run per output directory: two runs resuming the same checkpoint would overwrite it.
    with StoreLock(StoreLocation.parse(output_dir), break_lock=config.break_lock,
                   command="anon-store train"):  # fmt: skip
        return _train_locked(raw, output_dir, config, say, progress, on_validation)


def _train_locked(
    raw: FeatureStore,
    output_dir: Path,
    config: TrainAAMConfig,
    say: Callable[[str], None],
    progress: Callable[[int, int], None] | None,
    on_validation: Callable[[dict[str, Any]], None] | None,
) -> TrainAAMResult:
    _check_inputs(raw, output_dir, config)
    train_rows = usable_rows(raw, config.train_split)
    if config.training.epochs is None:
        training = config.training.resolved(len(train_rows))
        per_epoch = steps_per_epoch(len(train_rows), training.batch_size)
        say(f"{training.epochs} epochs of {len(train_rows)} training videos ({per_epoch} steps "
            f"each; the recipe takes at least {RECIPE_EPOCHS} epochs and {training.min_steps} "
            "steps)")  # fmt: skip
        config = dataclasses.replace(config, training=training)
    data = plan_data(raw, config)
    ledger = MemoryLedger()
    val_rows = usable_rows(raw, config.val_split)
    say(data.describe())
    train: Any
    val: Any
    if data.train_plan is None:
        train = _load_rows(raw, train_rows)
    else:
        train = StreamingSplit(raw, train_rows, data.train_plan, ledger=ledger)
    if data.val_plan is None:
        val = _load_rows(raw, val_rows)
    else:
        val = StreamingSplit(raw, val_rows, data.val_plan, ledger=ledger)
    identity = run_identity(raw, config, data)
    checkpoint_dir = output_dir / CHECKPOINT_DIR
    private_directory(output_dir)  # checkpoints are adapters too: owner-only
    resume = _resume_state(checkpoint_dir, identity, config, say)

    def on_checkpoint(state: TrainState) -> None:
        state.identity = identity
        try:
            save_train_state(checkpoint_dir, state)
        except OSError as error:
            raise AdapterError(
                f"{checkpoint_dir}: cannot write checkpoint ({type(error).__name__}: {error})"
            ) from error

    result: TrainResult = train_adapter(
        train,
        val,
        config.training,
        config.adapter_config(raw.feature_dim),
        progress=progress,
        on_validation=on_validation,
        on_checkpoint=on_checkpoint,
        resume=resume,
    )
    if isinstance(train, StreamingSplit):
        train.release_buffers()
    # The finished adapter replaces the directory (and the checkpoint in it) in one rename.
    save_adapter(
        output_dir,
        result.adapter,
        result.heads,
        result.adapter_config,
        result.config,
        store_identity(raw),
        result.history,
        selected=result.best,
        overwrite=True,
    )
    return TrainAAMResult(
        output=str(output_dir),
        best_epoch=result.best_epoch,
        best=result.best,
        history=result.history,
        seconds=result.seconds,
        feature_bytes=data.train_bytes + data.val_bytes,
        data_mode=data.mode,
        memory_bytes=data.memory_bytes,
        resumed_from=result.resumed_from,
        peak_loader_bytes=None if data.mode == "memory" else ledger.peak,
    )
