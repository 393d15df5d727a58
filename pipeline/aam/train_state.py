"""Resumable adapter training: the trainer's whole state at a validation, as safetensors + JSON.

While `anon-store train` runs, the output directory holds only a hidden checkpoint directory:

    <output>/.checkpoint/
        state.json                        the commit point: format, the run's identity (store,
                                          settings, data plan), epoch and step, the validation
                                          history, the selection front, optimiser
                                          hyper-parameters, and the name and sha256 of:
        state-<step>-<id>.safetensors     adapter and heads, the selection front's weights,
                                          optimiser moments, RNG states (uint8 tensors)

No pickle: tensors go to safetensors, everything else to JSON (non-finite floats as
{"$float": "nan"}). Writes are atomic: the tensor file is written under a temporary name, fsynced
and renamed; then state.json likewise; only then are older tensor files deleted. A kill at any
moment leaves the previous state.json and the tensor file it names intact. The final adapter
(model.safetensors, config.json, metrics.json) replaces the directory, checkpoint included, in
one rename at the end.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from pipeline.errors import AdapterError

CHECKPOINT_DIR = ".checkpoint"
STATE_FILE = "state.json"
STATE_FORMAT = "anon-store-train-state"
STATE_VERSION = 1

ModuleState = dict[str, Tensor]


@dataclass
class TrainState:
    """Everything needed to continue a run exactly where it validated last."""

    epoch: int
    """Joint epochs done (0: the head warm-up is done and the raw features validated)."""
    step: int
    """Joint optimiser steps done."""
    elapsed: float
    """Seconds of training before this checkpoint (all previous attempts together)."""
    history: list[dict[str, Any]]
    """Validation records so far."""
    front: list[int]
    """Indices into ``history`` of the checkpoints on the selection front."""
    adapter: ModuleState
    heads: dict[str, ModuleState]
    front_states: list[tuple[ModuleState, dict[str, ModuleState]]]
    """Adapter and head weights of each front entry, in ``front`` order."""
    optimizer: dict[str, Any] | None
    """The joint AdamW's state_dict (None at epoch 0: the joint phase has not started)."""
    sampler_rng: Tensor
    """State of the sampler's torch.Generator (batches, pairs, block order)."""
    torch_rng: Tensor
    """Global CPU RNG state inside the trainer's forked RNG (dropout, if any)."""
    identity: dict[str, Any] = field(default_factory=dict)
    """What a rerun must match to resume: store, settings and data plan (filled by the caller)."""


def _encode(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$float"}:
            return float(value["$float"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def _optimizer_split(sd: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    state: dict[str, dict[str, Any]] = {}
    names: dict[str, list[str]] = {}
    for index, entry in sd["state"].items():
        state[str(index)] = {}
        names[str(index)] = []
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous().clone()
                names[str(index)].append(key)
            else:
                state[str(index)][key] = value
    meta = {"param_groups": list(sd["param_groups"]), "state": state, "tensors": names}
    return tensors, meta


def _optimizer_join(meta: Mapping[str, Any], tensors: Mapping[str, Tensor]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for index, keys in meta["tensors"].items():
        entry = dict(meta["state"].get(index, {}))
        for key in keys:
            entry[key] = tensors[f"optimizer.{index}.{key}"]
        state[int(index)] = entry
    groups = [
        {**g, "betas": tuple(g["betas"])} if "betas" in g else dict(g) for g in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def _put(tensors: dict[str, Tensor], prefix: str, module_state: Mapping[str, Tensor]) -> None:
    for k, v in module_state.items():
        tensors[f"{prefix}{k}"] = v.detach().cpu().contiguous().clone()


def _take(tensors: Mapping[str, Tensor], prefix: str) -> ModuleState:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def save_train_state(directory: str | os.PathLike[str], state: TrainState) -> Path:
    """Write ``state`` into ``directory`` atomically (see the module docstring); returns the
    path of state.json."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    head_names = sorted(state.heads)
    tensors: dict[str, Tensor] = {}
    _put(tensors, "adapter.", state.adapter)
    for name in head_names:
        _put(tensors, f"heads.{name}.", state.heads[name])
    for i, (adapter, heads) in enumerate(state.front_states):
        _put(tensors, f"front.{i}.adapter.", adapter)
        for name in head_names:
            _put(tensors, f"front.{i}.heads.{name}.", heads[name])
    optimizer_meta = None
    if state.optimizer is not None:
        opt_tensors, optimizer_meta = _optimizer_split(state.optimizer)
        tensors.update(opt_tensors)
    tensors["rng.sampler"] = state.sampler_rng.detach().cpu().contiguous().clone()
    tensors["rng.torch"] = state.torch_rng.detach().cpu().contiguous().clone()
    payload = save_safetensors(tensors, metadata={"format": STATE_FORMAT})
    name = f"state-{state.step:09d}-{uuid.uuid4().hex[:8]}.safetensors"
    meta = {
        "format": STATE_FORMAT,
        "format_version": STATE_VERSION,
        "identity": state.identity,
        "epoch": state.epoch,
        "step": state.step,
        "elapsed": state.elapsed,
        "history": state.history,
        "front": state.front,
        "heads": head_names,
        "optimizer": optimizer_meta,
        "tensors_file": name,
        "tensors_sha256": hashlib.sha256(payload).hexdigest(),
    }
    try:
        text = json.dumps(_encode(meta), indent=1, allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise AdapterError(f"training state is not JSON-serialisable: {e}") from e
    _atomic_write(root / name, payload)
    _atomic_write(root / STATE_FILE, text)
    for old in root.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return root / STATE_FILE


def load_train_state(directory: str | os.PathLike[str]) -> TrainState | None:
    """The state saved in ``directory``; None when there is none; a one-line AdapterError when
    it cannot be used (corrupt, truncated, foreign, or another format version)."""
    root = Path(directory)
    for stale in root.glob(".*.tmp"):  # left by a kill mid-write; never referenced
        stale.unlink(missing_ok=True)
    path = root / STATE_FILE
    if not path.is_file():
        return None
    try:
        meta = _decode(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise AdapterError(f"{path}: unreadable ({' '.join(str(e).split())})") from e
    if not isinstance(meta, dict) or meta.get("format") != STATE_FORMAT:
        raise AdapterError(f"{path}: not an anon-store training state")
    if meta.get("format_version") != STATE_VERSION:
        raise AdapterError(f"{path}: training state version {meta.get('format_version')!r}")
    try:
        raw = (root / meta["tensors_file"]).read_bytes()
        if hashlib.sha256(raw).hexdigest() != meta["tensors_sha256"]:
            raise AdapterError(f"{root / meta['tensors_file']}: checksum mismatch")
        tensors = load_safetensors(raw)
        heads = list(meta["heads"])
        front_states = [
            (
                _take(tensors, f"front.{i}.adapter."),
                {name: _take(tensors, f"front.{i}.heads.{name}.") for name in heads},
            )
            for i in range(len(meta["front"]))
        ]
        optimizer = meta["optimizer"]
        return TrainState(
            epoch=int(meta["epoch"]),
            step=int(meta["step"]),
            elapsed=float(meta["elapsed"]),
            history=list(meta["history"]),
            front=[int(i) for i in meta["front"]],
            adapter=_take(tensors, "adapter."),
            heads={name: _take(tensors, f"heads.{name}.") for name in heads},
            front_states=front_states,
            optimizer=None if optimizer is None else _optimizer_join(optimizer, tensors),
            sampler_rng=tensors["rng.sampler"],
            torch_rng=tensors["rng.torch"],
            identity=dict(meta.get("identity") or {}),
        )
    except AdapterError:
        raise
    except Exception as e:  # missing file or key, bad safetensors bytes, wrong types
        detail = " ".join(str(e).split()) or type(e).__name__
        raise AdapterError(f"{root}: corrupt training state ({detail})") from e
