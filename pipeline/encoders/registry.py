"""Load a transformers video model (local directory, or a hub id already cached) as a frozen
VideoEncoder that maps float clips [B, T, 3, H, W] to pooled clip embeddings [B, D].

Families and their pooling are listed in `pipeline.encoders.families`. Loading always goes through
`<ModelClass>.from_pretrained(path_or_id)`, so anything transformers can load offline works and
nothing is ever downloaded when HF_HUB_OFFLINE=1 or the hub is unreachable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pipeline.encoders import families as fam
from pipeline.errors import ConfigError, EncoderError

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TINY_MANIFEST = "anon_store_tiny.json"
"""File the tiny encoder's builder writes next to its weights (recipe + report); gives its name."""

_PREPROCESSOR_FILES = ("preprocessor_config.json", "video_preprocessor_config.json")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DEVICES = ("auto", "cpu", "cuda")
_PRECISIONS = ("auto", "float32", "bfloat16", "float16")
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class _Located:
    """Where a model's files are and how to ask transformers for them."""

    load_from: str
    """Argument passed to from_pretrained (a local directory or a hub id)."""
    local: bool
    """True when the user gave a local directory (load with local_files_only)."""
    directory: Path | None
    """Directory holding config and weights (a hub snapshot when cached), None if unknown."""


class VideoEncoder:
    """A frozen video model plus everything needed to use and identify it.

    Attributes: family, pooling ('mean' | 'cls' | 'pooler'), hidden_size, frames_per_clip,
    image_size, mean/std (per-channel normalisation the model expects), device, precision
    (resolved: 'float32' | 'bfloat16' | 'float16'), identity (JSON-able dict) and model.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        family: fam.Family,
        config: Any,
        *,
        device: torch.device,
        precision: str,
        identity: dict[str, Any],
        mean: tuple[float, ...],
        std: tuple[float, ...],
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self._family = family
        self.family = family.name
        self.pooling = family.pooling
        self.hidden_size = int(fam.vision_config(family, config).hidden_size)
        self.frames_per_clip = fam.frame_count(family, config)
        self.image_size = fam.image_size(family, config)
        self.mean = mean
        self.std = std
        self.device = device
        self.precision = precision
        self.identity = identity

    def __repr__(self) -> str:
        return (
            f"VideoEncoder({self.identity['name']!r}, family={self.family}, "
            f"pooling={self.pooling}, D={self.hidden_size}, T={self.frames_per_clip}, "
            f"size={self.image_size}, device={self.device}, precision={self.precision})"
        )

    def encode(self, clips: torch.Tensor) -> torch.Tensor:
        """Embed float32 clips [B, T, 3, H, W] (already normalised) into float32 CPU [B, D]."""
        # clone() outside inference mode returns an ordinary tensor: callers may feed features into
        # autograd (adapter training), which refuses inference tensors.
        return self.embed(clips).cpu().clone()

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        """Embed float32 clips [B, T, 3, H, W] (on the CPU or already on the model's device) into
        float32 [B, D] ON THE MODEL'S DEVICE, without waiting for the GPU to finish: extraction
        queues the next batch while this one runs and copies the result back asynchronously."""
        self._check(clips)
        if clips.shape[0] == 0:
            return torch.empty(0, self.hidden_size, device=self.device)
        if self.device.type == "cuda" and clips.device.type != "cuda":
            # Pinned host memory lets the copy overlap with queued GPU work.
            if not clips.is_pinned():
                clips = clips.contiguous().pin_memory()
            clips = clips.to(self.device, non_blocking=True)
        dtype = _DTYPES.get(self.precision)
        self.model.eval()
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None),
        ):
            out = self._family.forward(self.model, clips)
        return out.float()

    def _check(self, clips: torch.Tensor) -> None:
        if not isinstance(clips, torch.Tensor) or clips.dtype != torch.float32 or clips.ndim != 5:
            got = (
                f"{clips.dtype} tensor of shape {tuple(clips.shape)}"
                if isinstance(clips, torch.Tensor)
                else type(clips).__name__
            )
            raise ConfigError(f"encoder expects float32 clips [B, T, 3, H, W], got {got}")
        _, t, c, h, w = clips.shape
        want = (self.frames_per_clip, 3, self.image_size, self.image_size)
        if (t, c, h, w) != want:
            raise ConfigError(
                f"encoder {self.identity['name']!r} expects clips of {want[0]} frames, 3 channels, "
                f"{want[2]}x{want[3]} pixels; got {t} frames, {c} channels, {h}x{w}: set the clip "
                f"sampling to frames_per_clip={want[0]}, size={want[2]}"
            )


def load_encoder(
    path_or_id: str | Path,
    *,
    device: str = "auto",
    precision: str = "auto",
    trust_remote_code: bool = False,
    record_paths: bool = False,
) -> VideoEncoder:
    """Load a video encoder from a local model directory, a cached hub id, or "tiny".

    device: "auto" (CUDA when available), "cpu", "cuda" or "cuda:N".
    precision: "auto" (bfloat16 autocast on CUDA, float32 on CPU), "float32", "bfloat16"
    (autocast), "float16" (autocast, CUDA only). Weights stay float32 in memory either way.
    trust_remote_code: let transformers import Python code shipped with the model (``auto_map``
    in its config). Off unless the user asks (``--trust-remote-code``): a model directory is
    data, and loading it must not run code. Weights are read from safetensors, or from
    ``*.bin`` with ``torch.load(weights_only=True)`` (no arbitrary pickle).
    record_paths: keep the absolute model directory in ``identity["source"]``. By default the
    identity is path-free, so the stores it is written into name no directory of this machine:
    a local directory is recorded by its base name, and it is identified by the content hashes
    ``weights_sha256`` and ``config_sha256``.
    Raises EncoderError if the model cannot be loaded or is not a supported family, ConfigError for
    a bad device/precision.
    """
    source = str(path_or_id)
    dev = _resolve_device(device)
    prec = _resolve_precision(precision, dev)
    load_from = source
    if source == "tiny":
        from pipeline.encoders.tiny import resolve_encoder_source

        load_from = resolve_encoder_source(source)

    located = _locate(source, load_from)
    config, family = _load_config(source, located, trust_remote_code)
    model = _load_model(source, located, family, trust_remote_code)
    directory = located.directory
    mean, std = _normalisation(directory)
    config_json = _config_dict(config)
    identity = {
        "name": _name(source, located),
        "source": _source(source, located, record_paths),
        "family": family.name,
        "model_type": config.model_type,
        "pooling": family.pooling,
        "hidden_size": int(fam.vision_config(family, config).hidden_size),
        "frames_per_clip": fam.frame_count(family, config),
        "image_size": fam.image_size(family, config),
        "mean": list(mean),
        "std": list(std),
        "weights_sha256": weights_sha256(directory) if directory else None,
        "revision": None if located.local else getattr(config, "_commit_hash", None),
        "config_sha256": hashlib.sha256(
            json.dumps(config_json, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest(),
        "config": config_json,
    }
    encoder = VideoEncoder(
        model.to(dev),
        family,
        config,
        device=dev,
        precision=prec,
        identity=identity,
        mean=mean,
        std=std,
    )
    logger.info("loaded %r", encoder)
    return encoder


def weights_sha256(directory: str | Path) -> str:
    """SHA-256 streamed over the weight files of a model directory, in name order.

    Hashes *.safetensors (or, for old checkpoints without them, *.bin / *.pt); for a single file
    this equals `sha256sum model.safetensors`.
    """
    directory = Path(directory)
    files = sorted(directory.glob("*.safetensors")) or sorted(
        [*directory.glob("*.bin"), *directory.glob("*.pt")]
    )
    if not files:
        raise EncoderError(f"no weight files (*.safetensors) in {directory}")
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _resolve_device(device: str) -> torch.device:
    if not (device in _DEVICES or re.fullmatch(r"cuda:\d+", device)):
        raise ConfigError(f"unknown device {device!r}: use one of auto, cpu, cuda, cuda:N")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available")
    resolved = torch.device(device)
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device {device!r} requested but this machine has {torch.cuda.device_count()} GPU(s)"
        )
    return resolved


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in _PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: use one of {', '.join(_PRECISIONS)}")
    if precision == "auto":
        if device.type != "cuda":
            return "float32"
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if precision == "float16" and device.type != "cuda":
        raise ConfigError("precision float16 needs a CUDA device; use float32 or bfloat16 on CPU")
    return precision


def _unreachable(source: str) -> EncoderError:
    return EncoderError(
        f"cannot load encoder {source!r}: not a local model directory and the model hub is "
        "unreachable; pass a local path"
    )


def _locate(source: str, load_from: str) -> _Located:
    path = Path(load_from).expanduser()
    if path.exists():
        if not path.is_dir():
            raise EncoderError(
                f"cannot load encoder {source!r}: {load_from} is a file, not a model directory"
            )
        if not (path / "config.json").is_file():
            raise EncoderError(
                f"cannot load encoder {source!r}: {load_from} is not a model directory "
                "(no config.json)"
            )
        return _Located(str(path), True, path)
    if not _HUB_ID.match(load_from) or load_from.startswith((".", "~")):
        raise EncoderError(f"cannot load encoder {source!r}: no such directory {load_from}")
    # A hub id: works only if it is already in the local hub cache (offline) or the hub answers.
    try:
        from transformers.utils import cached_file

        config_file = cached_file(load_from, "config.json")
    except Exception as exc:  # OSError, connection errors, offline-mode errors
        logger.debug("hub lookup of %s failed: %s", load_from, exc)
        raise _unreachable(source) from None
    directory = Path(config_file).parent if config_file else None
    return _Located(load_from, False, directory)


def _load_config(source: str, located: _Located, trust_remote_code: bool) -> tuple[Any, fam.Family]:
    from transformers import AutoConfig

    model_type = None
    if located.directory is not None:
        try:
            raw = json.loads((located.directory / "config.json").read_text())
            model_type = raw.get("model_type") if isinstance(raw, dict) else None
        except (OSError, ValueError) as exc:
            raise EncoderError(f"cannot load encoder {source!r}: bad config.json ({exc})") from None
        _require_family(source, model_type)
    try:
        config = AutoConfig.from_pretrained(
            located.load_from,
            local_files_only=located.local,
            trust_remote_code=trust_remote_code,
        )
    except Exception as exc:
        if not located.local:
            raise _unreachable(source) from None
        raise EncoderError(f"cannot load encoder {source!r}: {_one_line(exc)}") from None
    return config, _require_family(source, config.model_type)


def _require_family(source: str, model_type: str | None) -> fam.Family:
    family = fam.family_for(model_type) if model_type else None
    if family is None:
        raise EncoderError(
            f"cannot load encoder {source!r}: model_type {model_type!r} is not supported; "
            f"supported families: {', '.join(fam.SUPPORTED)}"
        )
    return family


def _load_model(
    source: str, located: _Located, family: fam.Family, trust_remote_code: bool
) -> torch.nn.Module:
    import transformers

    cls = getattr(transformers, family.class_name)
    kwargs: dict[str, Any] = {}
    # SDPA where the model implements it; otherwise leave transformers' default (eager).
    if getattr(cls, "_supports_sdpa", False):
        kwargs["attn_implementation"] = "sdpa"
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # one bar per load clutters extraction logs
    try:
        model, info = cls.from_pretrained(
            located.load_from,
            local_files_only=located.local,
            trust_remote_code=trust_remote_code,
            weights_only=True,  # *.bin checkpoints: torch's restricted unpickler, never pickle
            dtype=torch.float32,
            output_loading_info=True,
            **kwargs,
        )
    except Exception as exc:
        if not located.local:
            raise _unreachable(source) from None
        if type(exc).__name__ == "UnpicklingError":  # torch's weights-only unpickler said no
            raise EncoderError(
                f"cannot load encoder {source!r}: its weight file is a pickle holding more than "
                "tensors, which anon-store never unpickles; convert it to safetensors"
            ) from None
        raise EncoderError(f"cannot load encoder {source!r}: {_one_line(exc)}") from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    missing = [k for k in info.get("missing_keys", ()) if not k.startswith(family.unused_prefixes)]
    if missing:
        # Random weights would silently produce meaningless features.
        raise EncoderError(
            f"cannot load encoder {source!r}: checkpoint lacks {len(missing)} weight tensor(s) "
            f"of {family.class_name}, e.g. {sorted(missing)[0]}"
        )
    if family.submodule:
        model = getattr(model, family.submodule)
    return model


def _normalisation(directory: Path | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    for name in _PREPROCESSOR_FILES:
        path = directory / name if directory else None
        if path is None or not path.is_file():
            continue
        try:
            raw = json.loads(path.read_text())
            mean, std = raw.get("image_mean"), raw.get("image_std")
        except (OSError, ValueError, AttributeError):
            logger.warning("ignoring unreadable %s", path)
            continue
        if mean and std and len(mean) == 3 and len(std) == 3:
            return tuple(float(m) for m in mean), tuple(float(s) for s in std)
    return IMAGENET_MEAN, IMAGENET_STD


def _name(source: str, located: _Located) -> str:
    if located.directory is not None and (located.directory / TINY_MANIFEST).is_file():
        try:
            name = json.loads((located.directory / TINY_MANIFEST).read_text()).get("name")
            if name:
                return str(name)
        except (OSError, ValueError, AttributeError):
            logger.warning("ignoring unreadable %s", located.directory / TINY_MANIFEST)
    if located.local:
        return Path(located.load_from).name
    return located.load_from


def _source(source: str, located: _Located, record_paths: bool) -> str:
    """What the identity says the encoder was loaded from: "tiny" and hub ids as given, a local
    directory by its base name (its absolute path only with ``record_paths``)."""
    if source == "tiny" or not located.local:
        return source
    path = Path(located.load_from).expanduser()
    return str(path.absolute()) if record_paths else path.absolute().name


def _config_dict(config: Any) -> dict[str, Any]:
    """The config as JSON, without `_name_or_path` (a machine-specific absolute path)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "_name_or_path"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(json.loads(json.dumps(config.to_dict(), default=str, sort_keys=True)))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
