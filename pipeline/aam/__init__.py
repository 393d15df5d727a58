"""The Anonymizing Adapter Module: adapter, losses, sampler, heads, trainer, checkpoints."""

from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter, anonymize
from pipeline.aam.checkpoint import LoadedAdapter, load_adapter, save_adapter
from pipeline.aam.heads import ActionHead, SeenTaskHead, register_head
from pipeline.aam.losses import LossWeights, latent_consistency, nt_xent
from pipeline.aam.trainer import LatentTrainingData, TrainConfig, TrainResult, train_adapter

__all__ = [
    "ActionHead",
    "AdapterConfig",
    "AnonymizingAdapter",
    "LatentTrainingData",
    "LoadedAdapter",
    "LossWeights",
    "SeenTaskHead",
    "TrainConfig",
    "TrainResult",
    "anonymize",
    "latent_consistency",
    "load_adapter",
    "nt_xent",
    "register_head",
    "save_adapter",
    "train_adapter",
]
