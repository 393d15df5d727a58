"""Adapter checkpoints: model.safetensors, config.json, metrics.json; atomic writes, no pickle.

Layout of an adapter directory:
    model.safetensors   tensors "adapter.<param>" and "heads.<head name>.<param>" (float32)
    config.json         format, producer, adapter architecture, heads, losses and weights,
                        training settings, and the identity of the store it was trained on
                        ("store": {"store_id", "encoder": {..., "weights_sha256", "hidden_size"}})
    metrics.json        {"history": [per-validation records], "selected": record or null}
The adapter's identity (``adapter_hash``) is the sha256 of model.safetensors.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from pipeline import __version__
from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter
from pipeline.aam.heads import SeenTaskHead, build_head
from pipeline.aam.losses import LOSS_WEIGHTS
from pipeline.aam.trainer import TrainConfig
from pipeline.errors import AdapterError, AnonStoreError
from pipeline.store.permissions import OWNER_DIR, OWNER_FILE

ADAPTER_FORMAT = "anon-store-adapter"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
OBJECTIVE = (
    "w_lc * L_LC + w_t * L_T - w_b * L_B - w_motion * L_M + w_spread * L_S + w_swap * L_W"
    " + w_class * L_C"
)


@dataclass(frozen=True)
class LoadedAdapter:
    """An adapter read back from disk, ready to use (eval mode, CPU)."""

    adapter: AnonymizingAdapter
    heads: list[SeenTaskHead]
    adapter_config: AdapterConfig
    config: dict[str, Any]
    """The whole config.json."""
    metrics: dict[str, Any] | None
    """metrics.json, or None when absent."""
    adapter_hash: str
    """sha256 (hex) of model.safetensors."""
    path: Path

    @property
    def store(self) -> dict[str, Any]:
        """Identity of the store the adapter was trained on."""
        return self.config["store"]

    @property
    def encoder(self) -> dict[str, Any]:
        """Identity of the encoder whose features the adapter expects."""
        return self.config["store"]["encoder"]


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _check_store_identity(store_identity: Mapping[str, Any], dim: int) -> None:
    encoder = store_identity.get("encoder")
    if not store_identity.get("store_id") or not isinstance(encoder, Mapping):
        raise AdapterError("store_identity needs 'store_id' and an 'encoder' identity")
    if not encoder.get("weights_sha256") or "hidden_size" not in encoder:
        raise AdapterError("store_identity encoder needs 'weights_sha256' and 'hidden_size'")
    if int(encoder["hidden_size"]) != dim:
        raise AdapterError(
            f"adapter dimension {dim} does not match the encoder's hidden_size "
            f"{encoder['hidden_size']}"
        )


def _jsonable(value: Any) -> Any:
    """Metrics may hold NaN (e.g. a proxy on a tiny split); JSON has no NaN, so write null."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _write(path: Path, data: bytes) -> None:
    # Owner-only from creation (pipeline.store.permissions): an adapter stays with the raw store.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_FILE)
    with open(descriptor, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def save_adapter(
    directory: str | os.PathLike[str],
    adapter: AnonymizingAdapter,
    heads: Sequence[SeenTaskHead],
    adapter_config: AdapterConfig,
    train_config: TrainConfig | Mapping[str, Any],
    store_identity: Mapping[str, Any],
    metrics_history: Sequence[Mapping[str, Any]],
    *,
    selected: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the adapter directory atomically (temp dir beside it, then rename); returns its path.

    An existing non-empty directory is replaced only with ``overwrite=True`` (the old one is
    renamed aside first and removed after the new one is in place).
    """
    target = Path(directory)
    _check_store_identity(store_identity, adapter_config.dim)
    if target.exists() and not target.is_dir():
        raise AdapterError(f"{target}: exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise AdapterError(f"{target}: adapter directory already exists (use overwrite)")
    tensors: dict[str, Tensor] = {}
    for k, v in adapter.state_dict().items():
        tensors[f"adapter.{k}"] = v.detach().cpu().contiguous().clone()
    for h in heads:
        for k, v in h.state_dict().items():
            tensors[f"heads.{h.name}.{k}"] = v.detach().cpu().contiguous().clone()
    training = (
        dataclasses.asdict(train_config)
        if dataclasses.is_dataclass(train_config)
        else dict(train_config)
    )
    config = {
        "format": ADAPTER_FORMAT,
        "format_version": FORMAT_VERSION,
        "producer": {"name": "anon-store", "version": __version__},
        "adapter": dataclasses.asdict(adapter_config),
        "heads": [h.spec() for h in heads],
        "losses": {
            "objective": OBJECTIVE,
            "privacy": "nt_xent on two static clips per video (maximised)",
            "motion_privacy": "nt_xent on two normal clips per video (maximised)",
            "static_spread": "spread of adapted static clips / raw spread (minimised)",
            "swap_invariance": "|a(z) - a(z + s_k - s_i)|^2 / |s_k - s_i|^2 (minimised)",
            "same_action_swap": "|a(z) - a(z + m_k - m_i)|^2 / |m_k - m_i|^2, k of i's action "
            "(minimised)",
            "latent_consistency": "mse",
            "task": "cross_entropy",
            "temperature": training.get("temperature"),
            **{k: training.get(k) for k in LOSS_WEIGHTS},
        },
        "training": training,
        "store": dict(store_identity),
    }
    metrics = {"history": list(metrics_history), "selected": selected}
    try:
        config_bytes = json.dumps(config, indent=2, allow_nan=False).encode()
        metrics_bytes = json.dumps(_jsonable(metrics), indent=2, allow_nan=False).encode()
    except (TypeError, ValueError) as e:
        raise AdapterError(f"adapter config is not JSON-serialisable: {_one_line(e)}") from e
    model_bytes = save_safetensors(tensors, metadata={"format": ADAPTER_FORMAT})

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    except OSError as e:
        raise AdapterError(f"{target}: cannot write adapter ({_one_line(e)})") from e
    try:
        _write(tmp / MODEL_FILE, model_bytes)
        _write(tmp / CONFIG_FILE, config_bytes)
        _write(tmp / METRICS_FILE, metrics_bytes)
        os.chmod(tmp, OWNER_DIR)  # mkdtemp's mode already, whatever the platform default
        replace_directory(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AdapterError(f"{target}: cannot write adapter ({_one_line(e)})") from e
    return target


def replace_directory(new: Path, target: Path) -> None:
    """Put the finished directory ``new`` (a sibling of ``target``) at ``target`` by renames: an
    existing target is moved aside first and removed only once the new one is in place."""
    if target.exists():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
        target.rename(old)
        new.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise AdapterError(f"{path}: corrupt JSON ({_one_line(e)})") from e
    if not isinstance(value, dict):
        raise AdapterError(f"{path}: corrupt JSON (not an object)")
    return value


def _section(tensors: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_adapter(
    directory: str | os.PathLike[str],
    *,
    expect_encoder: Mapping[str, Any] | None = None,
    expect_dim: int | None = None,
) -> LoadedAdapter:
    """Read an adapter directory; every problem is one AdapterError line.

    ``expect_encoder``: identity of the encoder whose features will be anonymized; its
    weights_sha256 (and hidden_size, when given) must match the training store's encoder.
    ``expect_dim``: the feature size the adapter will be applied to.
    """
    root = Path(directory)
    if not root.is_dir():
        raise AdapterError(f"{root}: adapter directory not found")
    for name in (MODEL_FILE, CONFIG_FILE):
        if not (root / name).is_file():
            raise AdapterError(f"{root}: missing {name}")
    config = _read_json(root / CONFIG_FILE)
    metrics = _read_json(root / METRICS_FILE) if (root / METRICS_FILE).exists() else None
    if config.get("format") != ADAPTER_FORMAT:
        raise AdapterError(f"{root / CONFIG_FILE}: not an anon-store adapter config")
    if config.get("format_version") != FORMAT_VERSION:
        raise AdapterError(
            f"{root / CONFIG_FILE}: unsupported adapter format version "
            f"{config.get('format_version')!r} (expected {FORMAT_VERSION})"
        )
    try:
        adapter_config = AdapterConfig(**config["adapter"])
        head_specs = list(config["heads"])
        encoder = config["store"]["encoder"]
        trained_sha = str(encoder["weights_sha256"])
        trained_hidden = int(encoder["hidden_size"])
    except (AnonStoreError, KeyError, TypeError, ValueError) as e:
        raise AdapterError(f"{root / CONFIG_FILE}: corrupt adapter config ({_one_line(e)})") from e
    if expect_dim is not None and expect_dim != adapter_config.dim:
        raise AdapterError(
            f"{root}: adapter dimension {adapter_config.dim} does not match the features "
            f"({expect_dim})"
        )
    if expect_encoder is not None:
        want_sha = expect_encoder.get("weights_sha256")
        if want_sha != trained_sha:
            raise AdapterError(
                f"{root}: adapter was trained on features of encoder weights {trained_sha[:12]}, "
                f"not {str(want_sha)[:12]} ({expect_encoder.get('name', 'unnamed encoder')})"
            )
        want_hidden = expect_encoder.get("hidden_size")
        if want_hidden is not None and int(want_hidden) != trained_hidden:
            raise AdapterError(
                f"{root}: adapter was trained for hidden_size {trained_hidden}, not {want_hidden}"
            )

    try:
        raw = (root / MODEL_FILE).read_bytes()
    except OSError as e:
        raise AdapterError(f"{root / MODEL_FILE}: cannot read ({_one_line(e)})") from e
    adapter_hash = hashlib.sha256(raw).hexdigest()
    try:
        tensors = load_safetensors(raw)
    except Exception as e:  # safetensors raises its own error types (and others) on bad bytes
        raise AdapterError(f"{root / MODEL_FILE}: corrupt safetensors ({_one_line(e)})") from e

    try:
        adapter = AnonymizingAdapter(adapter_config)
        adapter.load_state_dict(_section(tensors, "adapter."), strict=True)
        heads = []
        for spec in head_specs:
            head = build_head(spec)
            head.load_state_dict(_section(tensors, f"heads.{head.name}."), strict=True)
            heads.append(head.eval())
    except (AnonStoreError, KeyError, RuntimeError, TypeError, ValueError) as e:
        raise AdapterError(
            f"{root}: model.safetensors does not match config.json ({_one_line(e)})"
        ) from e
    return LoadedAdapter(
        adapter=adapter.eval(),
        heads=heads,
        adapter_config=adapter_config,
        config=config,
        metrics=metrics,
        adapter_hash=adapter_hash,
        path=root,
    )
