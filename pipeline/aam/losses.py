"""The adapter's objectives: NT-Xent privacy, latent consistency, task cross-entropy, and their sum.

    L = w_lc * L_LC + w_t * L_T - w_b * L_B - w_motion * L_M

L_B (reference method): NT-Xent between the adapter outputs of two different STATIC clips of each
video in the batch; the adapter maximises it, i.e. it learns to make two frames of the same person
no more alike than frames of different people.

L_M (our extension, off by default: w_motion = 0 is the reference method): the same NT-Xent, also
maximised, between the adapter outputs of two different NORMAL clips of each video. The reference
privacy loss sees static clips only while the consistency loss pins normal clips to their raw
values, so leakage from normal clips - the embeddings a feature store actually hands out - barely
falls (FINDINGS #12). L_M puts privacy pressure on normal clips directly. It pulls against L_LC on
the same clips and against L_T (two clips of one video share an action), so tune w_motion on
validation together with w_lc and report the trade-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent(a: Tensor, b: Tensor, temperature: float = 0.1) -> Tensor:
    """SimCLR NT-Xent over the 2N views of N positive pairs (a[i], b[i]); mean over the 2N views.

    For view i the logits are cosine similarities / temperature to every OTHER view (self-similarity
    excluded); the target is its partner. The 2N - 2 views of the other videos are the negatives.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"nt_xent needs two equal [N, D] tensors, got {a.shape}, {b.shape}")
    n = a.shape[0]
    z = F.normalize(torch.cat([a, b]), dim=1)
    logits = z @ z.T / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, partner)


def latent_consistency(z: Tensor, z_adapted: Tensor) -> Tensor:
    """Mean squared error between raw and adapted embeddings (mean over all elements)."""
    return F.mse_loss(z_adapted, z)


def task_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of a seen-task head (mean over the batch)."""
    return F.cross_entropy(logits, labels)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the combined objective (reference: w_lc 100, w_t 1, w_b 1, no w_motion)."""

    w_lc: float = 100.0
    """Latent consistency (MSE raw vs adapted on normal clips); keeps unseen tasks working."""
    w_t: float = 1.0
    """Seen-task loss (sum of the heads' losses)."""
    w_b: float = 1.0
    """Static-clip privacy NT-Xent, MAXIMISED."""
    w_motion: float = 0.0
    """Normal-clip privacy NT-Xent (our extension), MAXIMISED; 0 = reference method."""


def combined_objective(
    weights: LossWeights,
    *,
    l_lc: Tensor,
    l_t: Tensor,
    l_b: Tensor,
    l_motion: Tensor | None = None,
) -> Tensor:
    """L = w_lc L_LC + w_t L_T - w_b L_B - w_motion L_M (minimised by the optimiser)."""
    total = weights.w_lc * l_lc + weights.w_t * l_t - weights.w_b * l_b
    if weights.w_motion:
        if l_motion is None:
            raise ValueError("w_motion > 0 needs l_motion")
        total = total - weights.w_motion * l_motion
    return total
