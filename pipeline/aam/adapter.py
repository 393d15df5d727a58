"""The Anonymizing Adapter Module: a residual map [..., D] -> [..., D], identity at init."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipeline.errors import ConfigError

logger = logging.getLogger(__name__)

ARCHITECTURES = ("mlp", "attention")


@dataclass(frozen=True)
class AdapterConfig:
    """Shape of the adapter; everything needed to rebuild it from a checkpoint."""

    arch: str = "mlp"
    """"mlp": residual MLP blocks applied to each clip on its own. "attention": residual
    self-attention over the clips of ONE video (input [V, K, D]); never across videos."""
    dim: int = 128
    """D, the encoder's embedding size; input and output size of the adapter."""
    width: int | None = None
    """Hidden width of each residual branch (MLP hidden size, or attention q/k/v size);
    None means D."""
    depth: int = 2
    """Number of residual blocks."""
    heads: int = 4
    """Attention heads per block (attention arch only); must divide the width."""
    dropout: float = 0.0
    """Dropout on each residual branch's output during training; 0 keeps training deterministic
    without touching the global RNG."""
    norm: bool = True
    """Pre-LayerNorm on each branch input. Encoder features have arbitrary scale; normalising the
    branch input keeps the branch's step size independent of that scale (the skip path is
    untouched, so identity at initialisation still holds)."""

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"adapter arch must be one of {ARCHITECTURES}, got {self.arch!r}")
        if self.dim < 1 or self.depth < 1 or (self.width is not None and self.width < 1):
            raise ConfigError(
                f"adapter dim, width and depth must be positive (dim={self.dim}, "
                f"width={self.width}, depth={self.depth})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"adapter dropout must be in [0, 1), got {self.dropout}")
        if self.arch == "attention" and (self.heads < 1 or self.hidden % self.heads):
            raise ConfigError(
                f"attention adapter: heads ({self.heads}) must divide the width ({self.hidden})"
            )

    @property
    def hidden(self) -> int:
        """The resolved branch width."""
        return self.dim if self.width is None else self.width


class _MLPBlock(nn.Module):
    """x + W2 drop(gelu(W1 norm(x))), with W2 zero-initialised so the block starts as identity."""

    def __init__(self, cfg: AdapterConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.dim) if cfg.norm else nn.Identity()
        self.fc1 = nn.Linear(cfg.dim, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.norm(x)))))


class _AttentionBlock(nn.Module):
    """x + W_o attn(norm(x)) over the sequence axis (clips of one video), W_o zero-initialised.

    Written out by hand rather than with nn.MultiheadAttention so the batch/sequence layout is
    explicit ([batch, seq, D] always): the reference fed [N, D] with batch_first=False and so mixed
    clips of different videos.
    """

    def __init__(self, cfg: AdapterConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.norm = nn.LayerNorm(cfg.dim) if cfg.norm else nn.Identity()
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, attn_mask: Tensor | None) -> Tensor:
        b, k, _ = x.shape
        q, kk, v = self.qkv(self.norm(x)).chunk(3, dim=-1)
        # [B, K, H*d] -> [B, H, K, d]: heads split the feature axis, the sequence axis stays K.
        q, kk, v = (t.reshape(b, k, self.heads, -1).transpose(1, 2) for t in (q, kk, v))
        y = F.scaled_dot_product_attention(q, kk, v, attn_mask=attn_mask)
        y = y.transpose(1, 2).reshape(b, k, -1)
        return x + self.drop(self.out(y))


class AnonymizingAdapter(nn.Module):
    """Maps clip embeddings [..., D] to anonymized embeddings of the same shape.

    "mlp": every clip is mapped on its own; any leading shape is accepted.
    "attention": input [V, K, D] is V videos of K clips; attention runs along K only, so a video's
    output never depends on the other videos in the batch. Input [N, D] is N single clips, each a
    length-1 sequence (the attention then reduces to a per-clip residual map x + W_o W_v norm(x)).
    Optional ``mask`` (input shape without D; True = real clip) lets videos with fewer clips share
    a padded batch: padded clips come back unchanged and, for attention, are never attended to.

    Per-clip/per-video independence is exact in the maths; numerically, matrix-multiply kernels
    may round differently for different batch shapes (~1e-7 relative), so a video's output is
    bitwise identical across batches of the same shape and equal to float precision otherwise.

    Every residual branch ends in a zero-initialised projection, so a fresh adapter returns its
    input exactly; no warm-start phase is needed.
    """

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__()
        self.config = config
        block = _MLPBlock if config.arch == "mlp" else _AttentionBlock
        self.blocks = nn.ModuleList(block(config) for _ in range(config.depth))

    @property
    def per_clip(self) -> bool:
        """True when each clip is mapped independently of the other clips of its video."""
        return self.config.arch == "mlp"

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if x.shape[-1] != self.config.dim:
            raise ConfigError(
                f"adapter expects features of size {self.config.dim}, got {x.shape[-1]}"
            )
        valid = None if mask is None else mask.to(device=x.device, dtype=torch.bool)
        if self.per_clip:
            out = x
            for blk in self.blocks:
                out = blk(out)
        else:
            out = self._attend(x, valid)
        return out if valid is None else torch.where(valid[..., None], out, x)

    def _attend(self, x: Tensor, valid: Tensor | None) -> Tensor:
        if x.dim() == 1:
            raise ConfigError("attention adapter needs [N, D] clips or [V, K, D] videos")
        single_clips = x.dim() == 2
        seq = x.unsqueeze(1) if single_clips else x.reshape(-1, *x.shape[-2:])
        attn_mask = None
        if valid is not None and not single_clips:
            keys = valid.reshape(seq.shape[:2])
            # A video with no real clip would give an all-masked softmax row (NaN); let it attend
            # to everything instead - forward() puts its inputs back anyway.
            keys = keys | ~keys.any(dim=1, keepdim=True)
            attn_mask = keys[:, None, None, :]  # [B, heads, query, key], broadcast
        out = seq
        for blk in self.blocks:
            out = blk(out, attn_mask)
        return out.squeeze(1) if single_clips else out.reshape(x.shape)


@torch.no_grad()
def anonymize(
    adapter: AnonymizingAdapter,
    features: Tensor,
    *,
    mask: Tensor | None = None,
    chunk_size: int = 1024,
) -> Tensor:
    """Apply ``adapter`` in eval mode over the first axis in chunks; returns float32 on CPU.

    ``features`` is [N, D] (single clips) or [V, K, D] (videos); chunks split the first axis only,
    so a chunk never cuts a video in two. Chunks run on the adapter's device.
    """
    was_training = adapter.training
    adapter.eval()
    dev = next(adapter.parameters()).device
    try:
        parts = []
        for start in range(0, features.shape[0], chunk_size):
            x = features[start : start + chunk_size].to(dev, torch.float32)
            m = None if mask is None else mask[start : start + chunk_size].to(dev)
            parts.append(adapter(x, m).cpu())
        if not parts:
            return features.detach().to("cpu", torch.float32).clone()
        return torch.cat(parts)
    finally:
        adapter.train(was_training)
