"""Training the anonymizing adapter and its seen-task heads on latent features.

Memory: in-memory data (LatentTrainingData) holds float32 torch tensors, V * (K + S) * D * 4 bytes
per split (V videos, K normal clips, S static clips, D features); e.g. 10,000 videos x (5 + 10)
clips x 768 x 4 B = 461 MB for train, plus val. On a GPU device the splits are copied there once.
A split may instead be a streaming source (pipeline.aam.streaming.StreamingSplit) that reads the
store block by block in bounded memory; the trainer only asks it for batches and validation.

Resuming: ``on_checkpoint`` receives the whole training state (TrainState) after every
validation, and ``resume`` continues from one; with the same data, settings and device, a resumed
CPU run ends with the same weights and history as an uninterrupted one (RNG states included).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter
from pipeline.aam.heads import SeenTaskHead, create_heads, heads_state
from pipeline.aam.losses import (
    LOSS_WEIGHTS,
    LossWeights,
    combined_objective,
    latent_consistency,
    nt_xent,
    relative_spread,
    same_label_partner,
    swap_invariance,
)
from pipeline.aam.metrics import retrieval_chance, same_video_retrieval
from pipeline.aam.presets import PRESETS
from pipeline.aam.sampler import ClipSampler, StepSample, steps_per_epoch
from pipeline.aam.train_state import TrainState
from pipeline.errors import ConfigError

logger = logging.getLogger(__name__)

RECIPE_EPOCHS = 120
"""Joint epochs of the recommended recipe (TrainConfig.epochs None): at least this many."""


def epochs_label(epochs: int | None) -> str:
    """A table cell for TrainConfig.epochs: the number, or "120+" when left to the recipe (its
    length then depends on the store)."""
    return f"{RECIPE_EPOCHS}+" if epochs is None else str(epochs)


SELECTION_RULES = ("privacy_at_utility", "utility", "last")
PRIVACY_METRICS = ("static_retrieval", "clip_retrieval")


@dataclass(frozen=True)
class TrainConfig:
    """Adapter training settings. The defaults are the `recommended` preset's
    (pipeline.aam.presets): a privacy tool's defaults must protect; the paper's weights are the
    `reference` preset."""

    epochs: int | None = None
    """Joint adapter + head epochs (one epoch = every training video once, in batches). None (the
    default): the recipe's length, RECIPE_EPOCHS or ``min_steps`` optimiser steps, whichever is
    longer (epochs_for); an integer: exactly that many."""
    min_steps: int = 2280
    """With ``epochs`` None, the fewest joint optimiser steps: 120 epochs of the default
    benchmark's 1,200 training videos in batches of 64, the length the weights were chosen at.
    A store with fewer videos takes fewer steps per epoch; measured on three worlds' small
    stores (240 training videos), 120 epochs cut the MLP attacker's static-clip cMAP by 17-31%,
    as many steps as at the default scale (570 epochs) by 19-35% (docs/privacy.md)."""
    batch_size: int = 64
    """Videos per step; each contributes 2 static clips (2B NT-Xent views) and 1 normal clip."""
    lr: float = 1e-3
    """AdamW learning rate of the joint phase. The reference used 1e-4 for 100 epochs at Kinetics
    scale; the CPU prototype (FINDINGS #11) used 1e-3 for the zero-initialised residual MLP."""
    weight_decay: float = 0.01
    """AdamW weight decay on matrices only (not biases or norms); pulls the adapter's branches
    towards zero, i.e. towards the identity."""
    w_lc: float = 1.0
    """Weight of latent consistency (MSE raw vs adapted normal clips); the paper's is 100."""
    w_t: float = 1.0
    """Weight of the seen-task loss (sum over heads)."""
    w_b: float = 5.0
    """Weight of the static-clip privacy NT-Xent (maximised); the paper's is 1."""
    w_motion: float = 0.0
    """Weight of the normal-clip privacy NT-Xent extension (maximised); 0 = reference method."""
    w_spread: float = 100.0
    """Weight of the static-spread extension (minimised): adapted static clips pulled together,
    relative to the raw ones' spread; 0 = reference method (pipeline.aam.losses)."""
    w_swap: float = 30.0
    """Weight of the appearance-swap invariance extension on normal clips (minimised); 0 =
    reference method (pipeline.aam.losses). 30 since the patch-8 tiny encoder, whose normal
    clips leak more: 10 left them at -28% on the default benchmark (docs/encoder.md)."""
    w_class: float = 0.0
    """Weight of the same-action swap invariance extension on normal clips (minimised); 0 =
    reference method (pipeline.aam.losses)."""
    temperature: float = 0.1
    """NT-Xent temperature (both privacy terms)."""
    val_every: int = 2
    """Validate every this many joint epochs (and always after the last)."""
    head_warmup_epochs: int = 5
    """Epochs fitting the heads alone on RAW features (the fresh adapter is the identity) before
    co-training, so L_T starts from a sensible head rather than pushing the adapter around."""
    head_lr: float = 3e-3
    """AdamW learning rate of the head warm-up."""
    heads: tuple[str, ...] = ("action",)
    """Seen-task head kinds (pipeline.aam.heads registry); the FIRST one's metric is the utility
    used for checkpoint selection."""
    selection: str = "privacy_at_utility"
    """Which validated checkpoint to keep. "privacy_at_utility": among trained checkpoints whose
    utility is within ``selection_tolerance`` of the best utility seen at any validation (the raw,
    epoch-0 one included), the lowest privacy proxy; if none qualifies, the best utility.
    "utility": best utility (the reference's rule). "last": the final epoch."""
    selection_tolerance: float = 0.01
    """Utility slack of the selection rule, as a fraction (0.01 = 1 accuracy point)."""
    selection_privacy: str = "static_retrieval"
    """Privacy proxy minimised by the selection rule: "static_retrieval" (what L_B trains on) or
    "clip_retrieval" (normal clips; what the store hands out)."""
    seed: int = 0
    """Seeds initialisation, sampling and dropout: same seed, data and device -> same weights."""
    preset: str | None = None
    """The named preset these settings were resolved from (recorded in config.json); None when
    built by hand."""
    device: str = "cpu"
    """"cpu", "cuda", "cuda:N" or "auto" (cuda when available)."""

    def __post_init__(self) -> None:
        if (self.epochs is not None and self.epochs < 1) or self.val_every < 1:
            raise ConfigError("epochs and val_every must be >= 1")
        if self.head_warmup_epochs < 0 or self.min_steps < 0:
            raise ConfigError("head_warmup_epochs and min_steps must be >= 0")
        if self.batch_size < 2:
            raise ConfigError(f"batch_size must be at least 2 videos, got {self.batch_size}")
        if self.lr <= 0 or self.head_lr <= 0 or self.temperature <= 0 or self.weight_decay < 0:
            raise ConfigError("lr, head_lr and temperature must be > 0, weight_decay >= 0")
        if min(getattr(self, name) for name in LOSS_WEIGHTS) < 0:
            raise ConfigError("loss weights must be >= 0")
        if self.selection not in SELECTION_RULES:
            raise ConfigError(f"selection must be one of {SELECTION_RULES}, got {self.selection!r}")
        if self.selection_privacy not in PRIVACY_METRICS:
            raise ConfigError(f"selection_privacy must be one of {PRIVACY_METRICS}")
        if not self.heads:
            raise ConfigError("at least one seen-task head is needed")
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")

    @property
    def weights(self) -> LossWeights:
        return LossWeights(**{name: getattr(self, name) for name in LOSS_WEIGHTS})

    def epochs_for(self, num_videos: int) -> int:
        """The joint epochs a run over ``num_videos`` training videos takes (see ``epochs``)."""
        if self.epochs is not None:
            return self.epochs
        per_epoch = max(steps_per_epoch(num_videos, self.batch_size), 1)
        return max(RECIPE_EPOCHS, -(-self.min_steps // per_epoch))

    def resolved(self, num_videos: int) -> TrainConfig:
        """This config with ``epochs`` fixed for ``num_videos`` training videos."""
        return replace(self, epochs=self.epochs_for(num_videos))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Inverse of dataclasses.asdict (JSON turns the heads tuple into a list)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known}
        if "heads" in kwargs:
            kwargs["heads"] = tuple(kwargs["heads"])
        return cls(**kwargs)


@dataclass(frozen=True)
class LatentTrainingData:
    """One split's cached features and targets, in memory (numpy arrays are converted).

    Only usable videos belong here: the store's failed/pending rows (NaN features) and videos
    without an action label must be filtered out by the caller.
    """

    clip_features: Tensor
    """float32 [V, K, D] normal-clip embeddings."""
    static_features: Tensor
    """float32 [V, S, D] static-clip embeddings (S >= 2 for training)."""
    actions: Tensor
    """int64 [V] action class per video (>= 0)."""
    extra_targets: Mapping[str, Tensor] = field(default_factory=dict)
    """Further per-video targets [V, ...] for additional heads, keyed by the name the head reads."""

    def __post_init__(self) -> None:
        clips = torch.as_tensor(self.clip_features, dtype=torch.float32)
        static = torch.as_tensor(self.static_features, dtype=torch.float32)
        actions = torch.as_tensor(self.actions, dtype=torch.int64)
        object.__setattr__(self, "clip_features", clips)
        object.__setattr__(self, "static_features", static)
        object.__setattr__(self, "actions", actions)
        if clips.dim() != 3 or static.dim() != 3 or actions.dim() != 1:
            raise ConfigError(
                "training data needs clip_features [V, K, D], static_features [V, S, D], "
                f"actions [V]; got {tuple(clips.shape)}, {tuple(static.shape)}, "
                f"{tuple(actions.shape)}"
            )
        v = clips.shape[0]
        if static.shape[0] != v or actions.shape[0] != v or static.shape[2] != clips.shape[2]:
            raise ConfigError(
                f"training data shapes disagree: clips {tuple(clips.shape)}, static "
                f"{tuple(static.shape)}, actions {tuple(actions.shape)}"
            )
        for name, t in self.extra_targets.items():
            if t.shape[0] != v:
                raise ConfigError(f"target {name!r} has {t.shape[0]} rows, expected {v}")
        if not (torch.isfinite(clips).all() and torch.isfinite(static).all()):
            raise ConfigError("training data has non-finite features (failed videos not removed?)")
        if v and int(actions.min()) < 0:
            raise ConfigError("training data has videos without an action label (-1)")

    @property
    def num_videos(self) -> int:
        return self.clip_features.shape[0]

    @property
    def dim(self) -> int:
        return self.clip_features.shape[2]

    @property
    def num_clips(self) -> int:
        return self.clip_features.shape[1]

    @property
    def num_static(self) -> int:
        return self.static_features.shape[1]

    @property
    def nbytes(self) -> int:
        """Memory held by the features: V * (K + S) * D * 4 bytes."""
        return 4 * (self.clip_features.numel() + self.static_features.numel())

    def targets(self) -> dict[str, Tensor]:
        """Per-video targets for the heads: {"action": actions, **extra_targets}."""
        return {"action": self.actions, **self.extra_targets}

    def to(self, device: torch.device) -> LatentTrainingData:
        if self.clip_features.device == device and self.static_features.device == device:
            return self
        return LatentTrainingData(
            clip_features=self.clip_features.to(device),
            static_features=self.static_features.to(device),
            actions=self.actions.to(device),
            extra_targets={k: t.to(device) for k, t in self.extra_targets.items()},
        )


class FeatureSource(Protocol):
    """A split the trainer can use without holding it in memory (e.g. StreamingSplit)."""

    num_videos: int
    num_clips: int
    num_static: int
    dim: int

    def targets(self) -> dict[str, Tensor]: ...

    def batches(
        self, sampler: ClipSampler, device: torch.device
    ) -> Iterator[tuple[LatentTrainingData, StepSample]]:
        """One epoch of (data on ``device``, sample indexing into that data) per step."""
        ...

    def validate(self, adapter: nn.Module, heads: list[SeenTaskHead]) -> dict[str, float]:
        """The record of ``validate`` below, computed however the source can."""
        ...


TrainingData = LatentTrainingData | FeatureSource


def _batches(
    data: TrainingData, sampler: ClipSampler, device: torch.device
) -> Iterator[tuple[LatentTrainingData, StepSample]]:
    if isinstance(data, LatentTrainingData):  # already on the device
        for sample in sampler.epoch():
            yield data, sample
    else:
        yield from data.batches(sampler, device)


@dataclass
class TrainResult:
    """The selected checkpoint (adapter and heads on CPU, eval mode) and the run's record."""

    adapter: AnonymizingAdapter
    heads: list[SeenTaskHead]
    history: list[dict[str, Any]]
    """One dict per validation; epoch 0 is the raw features with the warmed-up heads."""
    best_epoch: int
    best: dict[str, Any]
    """The history entry of the selected checkpoint."""
    seconds: float
    adapter_config: AdapterConfig
    config: TrainConfig
    resumed_from: int | None = None
    """Joint epoch of the checkpoint this run resumed from (None: it started from scratch)."""

    @property
    def adapter_state(self) -> dict[str, Tensor]:
        return self.adapter.state_dict()


def compute_losses(
    adapter: AnonymizingAdapter,
    heads: list[SeenTaskHead],
    data: LatentTrainingData,
    sample: StepSample,
    config: TrainConfig,
) -> dict[str, Tensor]:
    """The loss terms and the total for one step (``data`` on the adapter's device).

    Keys: l_lc, l_t, l_b, l_motion, l_spread, l_swap, l_class (the extensions 0 when their weight
    is 0), total.
    """
    dev = data.clip_features.device
    v = sample.videos.to(dev)
    clip_pair = sample.clips.to(dev)
    static_pair = sample.static_pair.to(dev)
    rows = torch.arange(v.shape[0], device=dev)[:, None]
    raw_clips = data.clip_features[v[:, None], clip_pair]  # [B, 2, D]
    raw_static = data.static_features[v[:, None], static_pair]  # [B, 2, D]
    if adapter.per_clip:
        adapted_clips = adapter(raw_clips)
        adapted_static = adapter(raw_static)
    else:
        # The attention adapter sees every clip of each video, as it will when sanitizing.
        adapted_clips = adapter(data.clip_features[v])[rows, clip_pair]
        adapted_static = adapter(data.static_features[v])[rows, static_pair]
    z, z_a = raw_clips[:, 0], adapted_clips[:, 0]
    batch = {k: t[v] for k, t in data.targets().items()}
    l_t = sum(h.weight * h.loss(h(z_a), batch) for h in heads)
    out = {
        "l_lc": latent_consistency(z, z_a),
        "l_t": l_t,
        "l_b": nt_xent(adapted_static[:, 0], adapted_static[:, 1], config.temperature),
    }
    zero = torch.zeros((), device=dev)
    out["l_motion"] = (
        nt_xent(adapted_clips[:, 0], adapted_clips[:, 1], config.temperature)
        if config.w_motion
        else zero
    )
    first_static = raw_static[:, 0]
    out["l_spread"] = (
        relative_spread(adapted_static[:, 0], first_static) if config.w_spread else zero
    )
    if config.w_swap:
        if sample.partner is None:
            raise ValueError("w_swap > 0 needs a sampler that draws partners")
        delta = first_static[sample.partner.to(dev)] - first_static
        if adapter.per_clip:
            swapped = adapter(z + delta)
        else:
            swapped = adapter(data.clip_features[v] + delta[:, None])[rows[:, 0], clip_pair[:, 0]]
        out["l_swap"] = swap_invariance(z_a, swapped, delta)
    else:
        out["l_swap"] = zero
    if config.w_class:
        # Another video of the same action: their mean normal clips differ by appearance (and
        # where the actor is), as the encoder sees it in motion. Lone actions sit out.
        partner = same_label_partner(data.actions[v])
        paired = partner != torch.arange(len(partner), device=dev)
        means = data.clip_features[v].mean(1)
        delta = means[partner] - means
        if adapter.per_clip:
            swapped = adapter(z + delta)
        else:
            swapped = adapter(data.clip_features[v] + delta[:, None])[rows[:, 0], clip_pair[:, 0]]
        out["l_class"] = (
            swap_invariance(z_a[paired], swapped[paired], delta[paired]) if paired.any() else zero
        )
    else:
        out["l_class"] = zero
    out["total"] = combined_objective(config.weights, **out)
    return out


@torch.no_grad()
def validate(
    adapter: AnonymizingAdapter,
    heads: list[SeenTaskHead],
    data: LatentTrainingData,
    *,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Head metrics on all clips of each video, retrieval privacy proxies, and drift (MSE)."""
    modes = [m.training for m in (adapter, *heads)]
    for m in (adapter, *heads):
        m.eval()
    try:

        def adapt(x: Tensor) -> Tensor:
            return torch.cat([adapter(x[i : i + chunk_size]) for i in range(0, len(x), chunk_size)])

        clips = adapt(data.clip_features)
        static = adapt(data.static_features)
        targets = data.targets()
        record: dict[str, float] = {}
        for h in heads:
            record[f"{h.name}_{h.metric_name}"] = h.metric(h(clips), targets)
        v, k, _ = clips.shape
        s = static.shape[1]
        record["static_retrieval"] = same_video_retrieval(static)
        record["static_retrieval_chance"] = retrieval_chance(v, s)
        record["clip_retrieval"] = same_video_retrieval(clips)
        record["clip_retrieval_chance"] = retrieval_chance(v, k)
        record["val_mse"] = float(latent_consistency(data.clip_features, clips))
        return record
    finally:
        for m, mode in zip((adapter, *heads), modes, strict=True):
            m.train(mode)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return dev


def _adamw(modules: list[nn.Module], lr: float, weight_decay: float) -> torch.optim.AdamW:
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr)


def _state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


class _Front:
    """Validated checkpoints worth keeping: those not dominated in (utility up, privacy down).

    Any checkpoint the selection rules can pick lies on this front (plus the last one for "last"),
    so only these weights are kept in memory rather than one copy per validation.
    """

    def __init__(self, utility: str, privacy: str) -> None:
        self.utility, self.privacy = utility, privacy
        self.items: list[tuple[dict[str, Any], dict[str, Tensor], dict[str, dict]]] = []
        self.last: tuple[dict[str, Any], dict[str, Tensor], dict[str, dict]] | None = None

    def _dominates(self, a: dict[str, Any], b: dict[str, Any]) -> bool:
        return a[self.utility] >= b[self.utility] and a[self.privacy] <= b[self.privacy]

    def offer(self, record: dict[str, Any], adapter: nn.Module, heads: list[SeenTaskHead]) -> None:
        entry = (record, _state(adapter), heads_state(heads))
        self.last = entry
        if any(self._dominates(r, record) for r, _, _ in self.items):
            return
        self.items = [e for e in self.items if not self._dominates(record, e[0])]
        self.items.append(entry)

    def restore(self, history: list[dict[str, Any]], state: TrainState) -> None:
        """Back to the front of a saved TrainState; ``last`` is its current weights."""
        self.items = [
            (history[i], adapter, heads)
            for i, (adapter, heads) in zip(state.front, state.front_states, strict=True)
        ]
        self.last = (history[-1], state.adapter, state.heads) if state.epoch > 0 else None

    def select(self, rule: str, reference_utility: float, tolerance: float):
        assert self.last is not None
        if rule == "last":
            return self.last
        best_utility = max(self.items, key=lambda e: (e[0][self.utility], -e[0][self.privacy]))
        if rule == "utility":
            return best_utility
        bar = reference_utility - tolerance - 1e-9
        eligible = [e for e in self.items if e[0][self.utility] >= bar]
        if not eligible:
            return best_utility
        return min(eligible, key=lambda e: (e[0][self.privacy], -e[0][self.utility]))


def _validate(adapter: AnonymizingAdapter, heads: list[SeenTaskHead], data: TrainingData):
    if isinstance(data, LatentTrainingData):
        return validate(adapter, heads, data)
    return data.validate(adapter, heads)


def train_adapter(
    train: TrainingData,
    val: TrainingData,
    config: TrainConfig,
    adapter_config: AdapterConfig,
    *,
    progress: Callable[[int, int], None] | None = None,
    on_validation: Callable[[dict[str, Any]], None] | None = None,
    on_checkpoint: Callable[[TrainState], None] | None = None,
    resume: TrainState | None = None,
) -> TrainResult:
    """Fit the heads on raw features, then the adapter and heads jointly; keep one checkpoint.

    ``train``/``val``: in-memory LatentTrainingData or a FeatureSource (streamed).
    ``progress(epochs_done, total_epochs)`` is called after every epoch (warm-up included);
    ``on_validation(record)`` after every validation; ``on_checkpoint(state)`` after every
    validation with the state ``resume`` accepts (the caller decides whether it matches this
    run). See TrainConfig.selection for the rule.
    """
    if train.dim != adapter_config.dim or val.dim != adapter_config.dim:
        raise ConfigError(
            f"adapter dim {adapter_config.dim} does not match the features "
            f"(train {train.dim}, val {val.dim})"
        )
    if val.num_videos < 1:
        raise ConfigError("validation split is empty")
    if config.w_motion and train.num_clips < 2:
        raise ConfigError("w_motion > 0 needs at least 2 normal clips per video")
    config = config.resolved(train.num_videos)
    if resume is not None and not 0 <= resume.epoch <= config.epochs:
        raise ConfigError(f"cannot resume from epoch {resume.epoch} of a {config.epochs}-epoch run")
    device = _resolve_device(config.device)
    started = time.perf_counter() - (resume.elapsed if resume is not None else 0.0)
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(config.seed)
        adapter = AnonymizingAdapter(adapter_config).to(device)
        heads = [h.to(device) for h in create_heads(config.heads, train.dim, [train, val])]
        tr = train.to(device) if isinstance(train, LatentTrainingData) else train
        va = val.to(device) if isinstance(val, LatentTrainingData) else val
        sampler = ClipSampler(
            train.num_videos, train.num_clips, train.num_static, config.batch_size,
            seed=config.seed, partners=config.w_swap > 0,
        )  # fmt: skip
        total_epochs = config.head_warmup_epochs + config.epochs
        utility_key = f"{heads[0].name}_{heads[0].metric_name}"
        front = _Front(utility_key, config.selection_privacy)
        history: list[dict[str, Any]] = []
        step = 0
        opt = _adamw([adapter, *heads], config.lr, config.weight_decay)

        def record_validation(epoch: int, step: int, train_losses: dict[str, float] | None):
            record: dict[str, Any] = {"epoch": epoch, "step": step}
            record.update(_validate(adapter, heads, va))
            keys = ("total", "l_lc", "l_t", "l_b", "l_motion", "l_spread", "l_swap", "l_class")
            record.update({f"train_{k}": (train_losses or {}).get(k) for k in keys})
            record["seconds"] = time.perf_counter() - started
            history.append(record)
            logger.info(
                "aam epoch %d: %s %.4f, static retrieval %.4f, clip retrieval %.4f",
                epoch,
                utility_key,
                record[utility_key],
                record["static_retrieval"],
                record["clip_retrieval"],
            )
            if on_validation is not None:
                on_validation(dict(record))
            return record

        def checkpoint(epoch: int) -> None:
            if on_checkpoint is None:
                return
            index = {id(r): i for i, r in enumerate(history)}
            on_checkpoint(
                TrainState(
                    epoch=epoch,
                    step=step,
                    elapsed=time.perf_counter() - started,
                    history=[dict(r) for r in history],
                    front=[index[id(r)] for r, _, _ in front.items],
                    adapter=_state(adapter),
                    heads=heads_state(heads),
                    front_states=[(a, h) for _, a, h in front.items],
                    optimizer=opt.state_dict() if epoch > 0 else None,
                    sampler_rng=sampler.generator.get_state(),
                    torch_rng=torch.get_rng_state(),
                )
            )

        if resume is None:
            # Phase 1: heads alone on raw features (the untouched adapter is exactly the identity).
            head_opt = _adamw(list(heads), config.head_lr, config.weight_decay)
            for epoch in range(config.head_warmup_epochs):
                for data, sample in _batches(tr, sampler, device):
                    v = sample.videos.to(device)
                    z = data.clip_features[v, sample.clips[:, 0].to(device)]
                    batch = {k: t[v] for k, t in data.targets().items()}
                    loss = sum(h.weight * h.loss(h(z), batch) for h in heads)
                    head_opt.zero_grad(set_to_none=True)
                    loss.backward()
                    head_opt.step()
                if progress is not None:
                    progress(epoch + 1, total_epochs)
            del head_opt
            record_validation(0, 0, None)
            checkpoint(0)
            first_epoch = 1
        else:
            adapter.load_state_dict(resume.adapter)
            for h in heads:
                h.load_state_dict(resume.heads[h.name])
            if resume.optimizer is not None:
                opt.load_state_dict(resume.optimizer)
            sampler.generator.set_state(resume.sampler_rng)
            torch.set_rng_state(resume.torch_rng)
            history = [dict(r) for r in resume.history]
            front.restore(history, resume)
            step = resume.step
            first_epoch = resume.epoch + 1
            logger.info("aam resumed after epoch %d (step %d)", resume.epoch, step)
            if on_validation is not None and history:
                on_validation(dict(history[-1]))
            if progress is not None:
                progress(config.head_warmup_epochs + resume.epoch, total_epochs)

        # Phase 2: adapter and heads in one optimiser.
        for epoch in range(first_epoch, config.epochs + 1):
            sums: dict[str, float] = {}
            n = 0
            for data, sample in _batches(tr, sampler, device):
                losses = compute_losses(adapter, heads, data, sample, config)
                opt.zero_grad(set_to_none=True)
                losses["total"].backward()
                opt.step()
                step += 1
                n += 1
                for k, t in losses.items():
                    sums[k] = sums.get(k, 0.0) + float(t.detach())
            if not math.isfinite(sums.get("total", 0.0)):
                raise ConfigError(f"adapter training diverged at epoch {epoch} (loss not finite)")
            if epoch % config.val_every == 0 or epoch == config.epochs:
                rec = record_validation(epoch, step, {k: s / max(n, 1) for k, s in sums.items()})
                front.offer(rec, adapter, heads)
                checkpoint(epoch)
            if progress is not None:
                progress(config.head_warmup_epochs + epoch, total_epochs)

        reference = max(r[utility_key] for r in history)
        best, adapter_state, head_states = front.select(
            config.selection, reference, config.selection_tolerance
        )

    adapter = adapter.cpu()
    adapter.load_state_dict(adapter_state)
    adapter.eval()
    for h in heads:
        h.cpu()
        h.load_state_dict(head_states[h.name])
        h.eval()
    seconds = time.perf_counter() - started
    logger.info(
        "aam selected epoch %d (%s rule) after %.1f s", best["epoch"], config.selection, seconds
    )
    return TrainResult(
        adapter=adapter,
        heads=heads,
        history=history,
        best_epoch=int(best["epoch"]),
        best=best,
        seconds=seconds,
        adapter_config=adapter_config,
        config=config,
        resumed_from=None if resume is None else resume.epoch,
    )
