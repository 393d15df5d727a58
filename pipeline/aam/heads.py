"""Seen-task heads co-trained with the adapter, behind a small registry of head kinds.

A head reads adapted NORMAL-clip embeddings and per-video targets (a dict of tensors keyed by
name, e.g. {"action": [B]}); the trainer only calls ``forward``, ``loss`` and ``metric`` and
rebuilds heads from ``spec()``, so a new kind (anomaly, detection, ...) is one registered class and
needs no trainer change. Its targets come in through ``LatentTrainingData.extra_targets``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

from torch import Tensor, nn

from pipeline.aam.losses import task_cross_entropy
from pipeline.errors import ConfigError


class _HasTargets(Protocol):
    """Anything with per-video targets (LatentTrainingData)."""

    def targets(self) -> Mapping[str, Tensor]: ...


class SeenTaskHead(nn.Module):
    """Base class: ``name``, ``module`` (the trainable part), ``loss`` and ``metric``."""

    kind: ClassVar[str] = ""
    metric_name: ClassVar[str] = ""
    """Name of the validation metric; higher must be better."""

    def __init__(self, name: str, module: nn.Module, weight: float = 1.0) -> None:
        super().__init__()
        self.name = name
        self.module = module
        self.weight = weight

    def forward(self, features: Tensor) -> Tensor:
        return self.module(features)

    def loss(self, outputs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        """Training loss of outputs [B, ...] (from one clip per video) against per-video targets."""
        raise NotImplementedError

    def metric(self, outputs: Tensor, batch: Mapping[str, Tensor]) -> float:
        """Validation metric of outputs [V, K, ...] (all clips of each video); higher is better."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """JSON-able description from which ``build_head`` rebuilds this head (weights aside)."""
        raise NotImplementedError

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> SeenTaskHead:
        raise NotImplementedError

    @classmethod
    def for_data(cls, name: str, dim: int, datasets: Sequence[_HasTargets]) -> SeenTaskHead:
        """A fresh head sized for the data (e.g. number of classes seen in any split)."""
        raise NotImplementedError


HEAD_KINDS: dict[str, type[SeenTaskHead]] = {}


def register_head(cls: type[SeenTaskHead]) -> type[SeenTaskHead]:
    """Class decorator: make a head kind buildable by name."""
    HEAD_KINDS[cls.kind] = cls
    return cls


@register_head
class ActionHead(SeenTaskHead):
    """Linear D -> num_actions on one clip; validated by top-1 of the mean softmax over clips.

    The trainer fits it first on RAW features (``TrainConfig.head_warmup_epochs`` epochs, adapter
    untouched: it is the identity then) and then co-trains it with the adapter.
    """

    kind = "action"
    metric_name = "top1"
    target = "action"

    def __init__(self, name: str, dim: int, num_classes: int, weight: float = 1.0) -> None:
        super().__init__(name, nn.Linear(dim, num_classes), weight)
        self.dim = dim
        self.num_classes = num_classes

    def loss(self, outputs: Tensor, batch: Mapping[str, Tensor]) -> Tensor:
        return task_cross_entropy(outputs, batch[self.target])

    def metric(self, outputs: Tensor, batch: Mapping[str, Tensor]) -> float:
        probs = outputs.softmax(dim=-1)
        if probs.dim() == 3:  # [V, K, C]: average the clips of each video
            probs = probs.mean(dim=1)
        labels = batch[self.target].to(probs.device)
        return float((probs.argmax(dim=-1) == labels).float().mean())

    def spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "dim": self.dim,
            "num_classes": self.num_classes,
            "weight": self.weight,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ActionHead:
        return cls(spec["name"], int(spec["dim"]), int(spec["num_classes"]), spec["weight"])

    @classmethod
    def for_data(cls, name: str, dim: int, datasets: Sequence[_HasTargets]) -> ActionHead:
        labels = [d.targets()[cls.target] for d in datasets]
        num_classes = max(int(t.max()) + 1 for t in labels if t.numel())
        return cls(name, dim, num_classes)


def build_head(spec: Mapping[str, Any]) -> SeenTaskHead:
    """Rebuild a head from its ``spec()`` (weights are loaded separately)."""
    kind = spec.get("kind")
    if kind not in HEAD_KINDS:
        raise ConfigError(f"unknown head kind {kind!r}; known: {sorted(HEAD_KINDS)}")
    return HEAD_KINDS[kind].from_spec(spec)


def create_heads(
    kinds: Sequence[str], dim: int, datasets: Sequence[_HasTargets]
) -> list[SeenTaskHead]:
    """Fresh heads, one per kind (the head's name is its kind), sized for ``datasets``."""
    if not kinds:
        raise ConfigError("at least one seen-task head is needed (the adapter needs L_T)")
    heads = []
    for kind in kinds:
        if kind not in HEAD_KINDS:
            raise ConfigError(f"unknown head kind {kind!r}; known: {sorted(HEAD_KINDS)}")
        heads.append(HEAD_KINDS[kind].for_data(kind, dim, datasets))
    return heads


def heads_state(heads: Sequence[SeenTaskHead]) -> dict[str, dict[str, Tensor]]:
    """Detached CPU copies of each head's weights, keyed by head name."""
    return {
        h.name: {k: v.detach().to("cpu", copy=True) for k, v in h.state_dict().items()}
        for h in heads
    }
