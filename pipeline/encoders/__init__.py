"""Frozen video encoders: the transformers registry and the tiny default encoder."""

from pipeline.encoders.registry import VideoEncoder, load_encoder, weights_sha256

__all__ = ["VideoEncoder", "load_encoder", "weights_sha256"]
