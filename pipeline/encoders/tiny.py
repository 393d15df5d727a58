"""The tiny default encoder: a CPU-sized VideoMAE trained supervised on the benchmark's pretrain
split, cached under $ANON_STORE_CACHE (or ~/.cache/anon-store) and built on first use.

Recipe (TinyEncoderConfig defaults) and why
-------------------------------------------
- Architecture: VideoMAE, 64 px, 16 consecutive frames, patch 16, hidden 128, 4 layers, 4 heads,
  MLP 512 (~1.2 M parameters): small enough to train in minutes and to encode thousands of clips
  per minute on 2 CPU cores.
- Tubelet 4 (4 temporal token slots): masked-autoencoder pretraining and tubelet 2 left the pooled
  embedding blind to motion (FINDINGS #1, #9); tubelet 8 learns but sees only 2 time slots. The
  synthetic actions differ in direction of travel, growth/shrinkage and which part oscillates at
  what rate; 4 slots give the mean-pooled tokens enough temporal resolution at ~1.5x the cost of 8.
- SUPERVISED action classification on the `pretrain` split only (never train/val/test, which the
  probes use), with a linear head on the MEAN of last_hidden_state: the very pooling the registry
  applies at extraction, so what the head needs is what downstream linear probes get.
- AdamW (lr 1e-3, weight decay 0.05), linear warm-up, cosine decay, batch 32, gradient clipping 1.
- Augmentation with label remapping from the action names (pipeline.encoders.augment): horizontal
  flip (walk_left <-> walk_right) and time reversal (rise <-> sink, approach <-> retreat, periodic
  actions map to themselves); random 16-frame windows of each decoded video. Appearance is never
  augmented away (no colour jitter): FINDINGS #10 showed supervised training keeps appearance
  decodable, which the privacy benchmark needs.
- Budget: max_steps, and max_seconds as a safety net. The cosine schedule follows
  max(step / max_steps, elapsed / max_seconds), so a slow machine still ends its schedule; with
  the step bound reached first the build is bit-reproducible for a seed.

Measured numbers are in the module's README record `anon_store_tiny.json` of every build.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.encoders import augment
from pipeline.encoders.registry import TINY_MANIFEST
from pipeline.errors import ConfigError, EncoderError, VideoError

logger = logging.getLogger(__name__)

RECIPE_VERSION = 1
TINY_NAME = "tiny"
CACHE_ENV = "ANON_STORE_CACHE"
DEFAULT_CACHE = "~/.cache/anon-store"
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total) with stage "generate", "decode" or "train"."""


@dataclass(frozen=True)
class TinyEncoderConfig:
    """Architecture and training recipe of the tiny encoder (see the module docstring for why)."""

    image_size: int = 64
    """Input height and width in pixels."""
    num_frames: int = 16
    """Frames per clip (consecutive, stride 1)."""
    patch_size: int = 16
    """Spatial patch size in pixels."""
    tubelet_size: int = 4
    """Frames per token; num_frames // tubelet_size temporal slots."""
    hidden_size: int = 128
    """Token width, also the embedding dimension D."""
    num_layers: int = 4
    """Transformer layers."""
    num_heads: int = 4
    """Attention heads."""
    intermediate_size: int = 512
    """MLP width of each layer."""
    motion_filters: int = 64
    """Patch-embedding channels initialised as drifting / flickering Gabor filters (0 = none)."""
    batch_size: int = 32
    """Clips per optimiser step."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    warmup_steps: int = 30
    """Linear warm-up steps before the cosine decay."""
    max_steps: int = 1500
    """Optimiser steps (the cosine schedule spans them)."""
    max_seconds: float = 270.0
    """Wall-clock budget of the training loop; training stops when it is spent."""
    grad_clip: float = 1.0
    """Gradient norm clipping."""
    flip: bool = True
    """Augment with horizontal flips (labels remapped by name, e.g. walk_left <-> walk_right)."""
    time_reverse: bool = True
    """Augment with time reversal (labels remapped by name, e.g. rise <-> sink)."""
    heldout_videos: int = 150
    """Pretrain videos held out of training to report accuracy (at most a tenth of them)."""
    eval_clips: int = 3
    """Evenly spaced clips per held-out video (logits averaged)."""
    seed: int = 0
    """Seeds the initial weights, the held-out choice and the data order."""

    def __post_init__(self) -> None:
        for name in ("image_size", "num_frames", "patch_size", "tubelet_size", "hidden_size",
                     "num_layers", "num_heads", "intermediate_size", "batch_size", "max_steps",
                     "eval_clips"):  # fmt: skip
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"tiny encoder {name} must be >= 1, got {getattr(self, name)}")
        if self.num_frames % self.tubelet_size or self.image_size % self.patch_size:
            raise ConfigError("tiny encoder: num_frames % tubelet_size and image_size % patch_size "
                              "must be 0")  # fmt: skip
        if self.hidden_size % self.num_heads:
            raise ConfigError("tiny encoder: hidden_size must be a multiple of num_heads")
        if not self.max_seconds > 0 or self.lr <= 0:
            raise ConfigError("tiny encoder: max_seconds and lr must be positive")


@dataclass(frozen=True)
class TinyBuildReport:
    """What one build did and how well the encoder classifies pretrain actions."""

    steps: int
    """Optimiser steps taken."""
    stopped_by: str
    """"max_steps" or "max_seconds"."""
    seconds: float
    """Wall time of the training loop."""
    total_seconds: float
    """Wall time of the whole build (decoding, training, evaluation, saving)."""
    seconds_per_step: float
    """Mean training step time."""
    final_loss: float
    """Training loss, mean over the last 10% of steps."""
    final_accuracy: float
    """Training accuracy (augmented clips), mean over the last 10% of steps."""
    heldout_accuracy: float | None
    """Top-1 on held-out pretrain videos (eval_clips clips each), None if none were held out."""
    train_videos: int
    """Pretrain videos trained on."""
    heldout_videos: int
    """Pretrain videos held out."""
    skipped_videos: int
    """Pretrain videos that could not be decoded or are shorter than a clip."""
    torch_threads: int
    """torch.get_num_threads() during training."""


# -------------------------------------------------------------------------------------- build


def build_tiny_encoder(
    pretrain_manifest_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: TinyEncoderConfig | None = None,
    progress: Progress | None = None,
) -> TinyBuildReport:
    """Train the tiny encoder on the manifest's `pretrain` split and save it into ``out_dir``.

    ``out_dir`` receives config.json + model.safetensors (a VideoMAEModel, loadable with
    load_encoder), preprocessor_config.json (ImageNet mean/std used in training) and
    anon_store_tiny.json (name, recipe, report, dataset, label maps). It must not exist or be
    empty. Raises ConfigError when the manifest has no usable labelled pretrain video.
    """
    from pipeline.data.manifest import read_manifest

    config = config or TinyEncoderConfig()
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty directory")
    manifest = read_manifest(pretrain_manifest_path).select("pretrain")
    actions = manifest.info.actions
    labels = manifest.table.column("action").to_numpy()
    keep = np.flatnonzero(labels >= 0)
    if len(keep) == 0 or not actions:
        raise ConfigError(f"{pretrain_manifest_path}: no labelled videos in the pretrain split")

    videos, video_labels, skipped = _decode_all(manifest, keep, config, progress)
    if not videos:
        raise ConfigError(f"{pretrain_manifest_path}: no pretrain video could be decoded")
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(videos))
    n_held = min(config.heldout_videos, len(videos) // 10)
    held, train = order[:n_held], order[n_held:]

    torch.manual_seed(config.seed)
    model = _new_model(config)
    if config.motion_filters:
        motion_energy_init(model.embeddings.patch_embeddings.projection, config.motion_filters,
                           seed=config.seed)  # fmt: skip
    head = torch.nn.Linear(config.hidden_size, len(actions))
    flips = augment.flip_map(actions) if config.flip else np.full(len(actions), -1)
    reverses = augment.reverse_map(actions) if config.time_reverse else np.full(len(actions), -1)
    stats = _train(model, head, videos, video_labels, train, flips, reverses, config, rng,
                   progress)  # fmt: skip
    held_acc = _evaluate(model, head, [videos[i] for i in held], video_labels[held], config)

    tail = max(1, stats["steps"] // 10)
    report = TinyBuildReport(
        steps=stats["steps"],
        stopped_by=stats["stopped_by"],
        seconds=round(stats["seconds"], 2),
        total_seconds=round(time.perf_counter() - t0, 2),
        seconds_per_step=round(stats["seconds"] / max(1, stats["steps"]), 4),
        final_loss=round(float(np.mean(stats["losses"][-tail:])), 4),
        final_accuracy=round(float(np.mean(stats["accs"][-tail:])), 4),
        heldout_accuracy=None if held_acc is None else round(held_acc, 4),
        train_videos=len(train),
        heldout_videos=len(held),
        skipped_videos=skipped,
        torch_threads=torch.get_num_threads(),
    )
    record = {
        "name": f"anon-store-{tiny_version(config)}",
        "recipe_version": RECIPE_VERSION,
        "recipe": asdict(config),
        "report": asdict(report),
        "dataset": {
            "name": manifest.info.name,
            "pretrain_manifest_sha256": manifest.sha256,
            "actions": list(actions),
        },
        "label_maps": {
            "flip": augment.describe(actions, flips),
            "time_reverse": augment.describe(actions, reverses),
        },
        "pooling": "mean of last_hidden_state (VideoMAEModel, use_mean_pooling)",
        "versions": _versions(),
    }
    _save(model, out, config, record)
    logger.info("tiny encoder built in %.1f s: %s", report.total_seconds, report)
    return report


def _new_model(config: TinyEncoderConfig) -> torch.nn.Module:
    from transformers import VideoMAEConfig, VideoMAEModel

    cfg = VideoMAEConfig(
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_frames=config.num_frames,
        tubelet_size=config.tubelet_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        use_mean_pooling=True,
        attn_implementation="sdpa",
    )
    return VideoMAEModel(cfg)


def motion_energy_init(conv: torch.nn.Conv3d, n: int, *, seed: int = 0) -> None:
    """Overwrite the first ``n`` output channels of a patch-embedding Conv3d with motion filters.

    Filters (luminance, equal on R, G, B; zero mean; Gaussian envelope over the patch) are
    quadrature pairs of drifting gratings - 8 directions x spatial periods 8 and 16 px x speeds
    0.7 and 1.4 px/frame - and of flickering static gratings (4 orientations x temporal periods 8
    and 16 frames): 80 in all, a seeded random subset when n < 80. Each is scaled to the mean norm
    of the default-initialised channels, so the residual stream keeps its usual scale.

    Why: from a random init the pooled embedding is dominated by appearance and supervised
    training spends its first 400-800 steps at chance before motion features appear. Filters
    that respond to motion (Adelson-Bergen motion energy once the MLP squares them) skip that
    plateau: measured on the default pretrain split, held-out accuracy 0.66 after 400 steps
    versus 0.35 after 500 steps from a random init.
    """
    d, c, t, p, _ = conv.weight.shape
    yy, xx = torch.meshgrid(torch.arange(p) - (p - 1) / 2, torch.arange(p) - (p - 1) / 2,
                            indexing="ij")  # fmt: skip
    tt = (torch.arange(t) - (t - 1) / 2)[:, None, None]
    env = torch.exp(-(xx**2 + yy**2) / (2 * (p / 3) ** 2))[None]
    filters = []
    for direction in range(8):
        theta = direction * math.pi / 4
        for period in (8.0, 16.0):
            k = 2 * math.pi / period
            phase = k * (xx * math.cos(theta) + yy * math.sin(theta))[None]
            for speed in (0.7, 1.4):
                for phi in (0.0, math.pi / 2):
                    filters.append(env * torch.cos(phase - k * speed * tt + phi))
    for t_period in (8.0, 16.0):
        for orientation in range(4):
            theta = orientation * math.pi / 4
            phase = (2 * math.pi / 16) * (xx * math.cos(theta) + yy * math.sin(theta))[None]
            for phi in (0.0, math.pi / 2):
                flicker = torch.cos(2 * math.pi * tt / t_period + phi)
                filters.append(env * torch.cos(phase) * flicker)
    n = min(n, d, len(filters))
    pick = torch.randperm(len(filters), generator=torch.Generator().manual_seed(seed))[:n]
    bank = torch.stack(filters)[pick]
    bank = bank - bank.mean(dim=(1, 2, 3), keepdim=True)
    weight = bank[:, None].expand(-1, c, -1, -1, -1) / math.sqrt(c)
    with torch.no_grad():
        rest = conv.weight[n:].flatten(1).norm(dim=1).mean() if n < d else torch.tensor(1.0)
        norm = weight.flatten(1).norm(dim=1).view(-1, 1, 1, 1, 1)
        conv.weight[:n] = weight * (rest / norm)


def _decode_all(
    manifest: Any, rows: np.ndarray, config: TinyEncoderConfig, progress: Progress | None
) -> tuple[list[torch.Tensor], np.ndarray, int]:
    """Decode the chosen rows once into uint8 [N, size, size, 3] tensors (centre square)."""
    from pipeline.data.decode import decode_video

    paths = manifest.video_paths()
    frames_col = manifest.table.column("num_frames").to_numpy()
    labels = manifest.table.column("action").to_numpy()
    videos, kept, skipped = [], [], 0
    for done, i in enumerate(rows, start=1):
        try:
            v = decode_video(
                paths[i],
                expected_frames=int(frames_col[i]),
                min_frames=config.num_frames,
                short_side=config.image_size,
            )
        except VideoError as exc:
            logger.warning("tiny encoder: skipping %s", exc)
            skipped += 1
            continue
        videos.append(_square(torch.from_numpy(v), config.image_size))
        kept.append(int(labels[i]))
        if progress:
            progress("decode", done, len(rows))
    return videos, np.asarray(kept, dtype=np.int64), skipped


def _square(v: torch.Tensor, size: int) -> torch.Tensor:
    """Centre square crop resized to size (as clips.preprocess does), kept uint8 [N, S, S, 3]."""
    h, w = int(v.shape[1]), int(v.shape[2])
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    v = v[:, top : top + side, left : left + side]
    if side != size:
        x = F.interpolate(v.permute(0, 3, 1, 2), size=(size, size), mode="bilinear",
                          antialias=True, align_corners=False)  # fmt: skip
        v = x.permute(0, 2, 3, 1)
    return v.contiguous()


def _batch(
    videos: list[torch.Tensor],
    video_labels: np.ndarray,
    idx: np.ndarray,
    flips: np.ndarray,
    reverses: np.ndarray,
    config: TinyEncoderConfig,
    rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random window of each chosen video, randomly flipped / reversed with labels remapped."""
    from pipeline.data.clips import ClipSampling, preprocess

    t = config.num_frames
    starts = [int(rng.integers(0, len(videos[i]) - t + 1)) for i in idx]
    do_flip = rng.random(len(idx)) < 0.5
    do_rev = rng.random(len(idx)) < 0.5
    clips, ys = [], []
    for i, s, f, r in zip(idx, starts, do_flip, do_rev, strict=True):
        clip, y = videos[i][s : s + t], int(video_labels[i])
        if f and flips[y] >= 0:
            clip, y = clip.flip(2), int(flips[y])
        if r and reverses[y] >= 0:
            clip, y = clip.flip(0), int(reverses[y])
        clips.append(clip)
        ys.append(y)
    sampling = ClipSampling(frames_per_clip=t, size=config.image_size)
    return preprocess(torch.stack(clips), sampling), torch.tensor(ys)


def _lr(step: int, progress: float, config: TinyEncoderConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _train(
    model: torch.nn.Module,
    head: torch.nn.Module,
    videos: list[torch.Tensor],
    video_labels: np.ndarray,
    train: np.ndarray,
    flips: np.ndarray,
    reverses: np.ndarray,
    config: TinyEncoderConfig,
    rng: np.random.Generator,
    progress: Progress | None,
) -> dict[str, Any]:
    params = [*model.parameters(), *head.parameters()]
    # No weight decay on biases and LayerNorm weights (1-D tensors), as usual for transformers.
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )  # fmt: skip
    model.train()
    losses, accs = [], []
    queue: list[int] = []
    t0 = time.perf_counter()
    step, stopped_by = 0, "max_steps"
    while step < config.max_steps:
        elapsed = time.perf_counter() - t0
        if elapsed >= config.max_seconds:
            stopped_by = "max_seconds"
            break
        # Epoch-wise shuffles of the training videos: a deterministic data order for a seed.
        while len(queue) < config.batch_size:
            queue.extend(rng.permutation(train).tolist())
        idx, queue = np.asarray(queue[: config.batch_size]), queue[config.batch_size :]
        x, y = _batch(videos, video_labels, idx, flips, reverses, config, rng)
        lr = _lr(step, max(step / config.max_steps, elapsed / config.max_seconds), config)
        for group in opt.param_groups:
            group["lr"] = lr
        logits = head(model(pixel_values=x).last_hidden_state.mean(dim=1))
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        losses.append(loss.item())
        accs.append(float((logits.argmax(1) == y).float().mean()))
        step += 1
        if progress:
            progress("train", step, config.max_steps)
        if step % 100 == 0:
            logger.info("tiny encoder step %d loss %.3f acc %.3f lr %.2e (%.0f s)", step,
                        np.mean(losses[-100:]), np.mean(accs[-100:]), lr, elapsed)  # fmt: skip
    model.eval()
    return {"steps": step, "stopped_by": stopped_by, "seconds": time.perf_counter() - t0,
            "losses": losses or [math.nan], "accs": accs or [math.nan]}  # fmt: skip


def _evaluate(
    model: torch.nn.Module,
    head: torch.nn.Module,
    videos: list[torch.Tensor],
    labels: np.ndarray,
    config: TinyEncoderConfig,
) -> float | None:
    """Top-1 over held-out videos with logits averaged over evenly spaced clips."""
    from pipeline.data.clips import ClipSampling, clip_starts, preprocess

    if not videos:
        return None
    sampling = ClipSampling(frames_per_clip=config.num_frames, clips_per_video=config.eval_clips,
                            size=config.image_size)  # fmt: skip
    correct = 0
    with torch.inference_mode():
        for v, y in zip(videos, labels, strict=True):
            starts = clip_starts(len(v), sampling)
            clips = torch.stack([v[s : s + config.num_frames] for s in starts])
            feats = model(pixel_values=preprocess(clips, sampling)).last_hidden_state.mean(1)
            correct += int(head(feats).mean(0).argmax()) == int(y)
    return correct / len(videos)


def _save(model: torch.nn.Module, out: Path, config: TinyEncoderConfig, record: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    preprocessor = {
        "image_mean": list(_IMAGENET_MEAN),
        "image_std": list(_IMAGENET_STD),
        "size": config.image_size,
        "num_frames": config.num_frames,
        "note": "frames: centre square, antialiased resize, /255, (x - mean) / std",
    }
    (out / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    # Written last: its presence marks a complete build.
    (out / TINY_MANIFEST).write_text(json.dumps(record, indent=2, default=str) + "\n")


def _versions() -> dict[str, str]:
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


# -------------------------------------------------------------------------------------- cache


def cache_root() -> Path:
    """$ANON_STORE_CACHE, or ~/.cache/anon-store."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def tiny_version(config: TinyEncoderConfig | None = None, synth: Any = None) -> str:
    """Cache directory name: tiny-v<recipe> for the default recipe, plus a hash otherwise."""
    base = f"tiny-v{RECIPE_VERSION}"
    if (config is None or config == TinyEncoderConfig()) and synth is None:
        return base
    key = json.dumps({"recipe": asdict(config or TinyEncoderConfig()),
                      "synth": synth.to_dict() if synth is not None else None},
                     sort_keys=True, default=str)  # fmt: skip
    return f"{base}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def tiny_encoder_path(
    build_if_missing: bool = True,
    progress: Progress | None = None,
    *,
    config: TinyEncoderConfig | None = None,
    synth: Any = None,
) -> Path:
    """Directory of the cached tiny encoder, building it first if needed (minutes on 2 cores).

    The build generates only the `pretrain` split of the synthetic benchmark (``synth``, default
    SynthConfig(scale="default", seed=0, splits=("pretrain",))) into a temporary directory, trains
    with ``config`` (default recipe) and renames the result into place in one step: a killed build
    never leaves a half-written encoder. A file lock keeps two processes from building at once
    (the second waits, then uses the first one's result).
    Raises EncoderError when the encoder is missing and build_if_missing is False.
    """
    root = cache_root() / "encoders"
    name = tiny_version(config, synth)
    final = root / name
    if _complete(final):
        return final
    if not build_if_missing:
        raise EncoderError(f"the tiny encoder is not built yet ({final} missing)")
    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{name}.lock")):
        if _complete(final):  # another process built it while we waited
            return final
        for stale in root.glob(f".{name}.build-*"):  # left by killed builds
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():
            shutil.rmtree(final)  # incomplete (not ours to trust)
        work = Path(tempfile.mkdtemp(prefix=f".{name}.build-", dir=root))
        try:
            _build_into(work, config, synth, progress)
            os.replace(work / "model", final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def resolve_encoder_source(name_or_path: str) -> str:
    """Map the name "tiny" to the cached tiny encoder's directory (building it if needed)."""
    if name_or_path == TINY_NAME:
        return str(tiny_encoder_path())
    return name_or_path


def _build_into(work: Path, config: TinyEncoderConfig | None, synth: Any,
                progress: Progress | None) -> None:  # fmt: skip
    from pipeline.data.synth import SynthConfig, generate_benchmark

    synth = synth or SynthConfig(scale="default", seed=0, splits=("pretrain",))
    if synth.splits != ("pretrain",):
        synth = replace(synth, splits=("pretrain",))
    logger.info("building the tiny encoder (first use): generating the pretrain split")
    gen = (lambda d, n: progress("generate", d, n)) if progress else None
    summary = generate_benchmark(work / "data", synth, progress=gen)
    build_tiny_encoder(summary.manifest_path, work / "model", config, progress)


def _complete(path: Path) -> bool:
    return (path / TINY_MANIFEST).is_file() and (path / "config.json").is_file()
