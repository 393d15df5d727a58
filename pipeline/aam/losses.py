"""The adapter's objectives: NT-Xent privacy, latent consistency, task cross-entropy, our
appearance-removal extensions, and their sum.

    L = w_lc L_LC + w_t L_T - w_b L_B - w_motion L_M + w_spread L_S + w_swap L_W + w_class L_C

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

L_S and L_W (our extensions, off by default; label-free like L_B) target appearance itself rather
than a video's identity. Maximising NT-Xent is satisfied by SCRAMBLING what tells two videos
apart (the cosine similarity of a positive pair falls below the negatives', which carries as much
information): attribute values shared by a quarter of the batch survive it (FINDINGS #3).
- L_S, static spread: the spread of the adapted static clips around their batch mean, relative
  to the raw static clips' spread. A static clip is appearance only; a point that every static
  clip maps to carries none. Minimised.
- L_W, appearance-swap invariance on NORMAL clips: a normal clip z_i with its video's appearance
  replaced by another video's, z_i + (s_k - s_i) with s the static clips, must adapt to the same
  point as z_i; relative to |s_k - s_i|^2. An adapter that ignores the directions along which
  static clips vary satisfies it. Minimised. It is the term that reaches the normal clips a store
  hands out, which the static-clip terms barely touch (FINDINGS #12).

L_C (our extension, off by default; uses the seen task's labels, never private ones): same-action
swap invariance on NORMAL clips, in their own space. L_W estimates appearance from static clips,
which a non-linear encoder represents differently from the same appearance in motion. Two videos
of the same action differ mostly by who is in them and where, so m_k - m_i, with m a video's mean
normal clip and k another video of i's action in the batch, is an appearance difference as the
encoder sees it in motion: z_i and z_i + m_k - m_i must adapt to the same point (swap_invariance).
Invariance, not shrinkage: an adapter that merely scales within-action differences down keeps
them readable to an attacker that standardises its features; one that ignores them does not.
Minimised.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

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


def relative_spread(adapted: Tensor, raw: Tensor) -> Tensor:
    """Mean squared distance of ``adapted`` [N, D] rows to their mean, over the same of ``raw``
    (a constant: no gradient flows into the normaliser)."""
    spread = (adapted - adapted.mean(0, keepdim=True)).square().sum(1).mean()
    reference = (raw - raw.mean(0, keepdim=True)).square().sum(1).mean().detach()
    return spread / reference.clamp_min(1e-12)


def same_label_partner(labels: Tensor) -> Tensor:
    """[N] index of another row with the same label: the next one in row order within each label
    (cyclically); a row whose label occurs once is its own partner."""
    rows_by_label: dict[int, list[int]] = {}
    for row, label in enumerate(labels.tolist()):
        rows_by_label.setdefault(label, []).append(row)
    partner = list(range(labels.shape[0]))
    for rows in rows_by_label.values():
        for row, other in zip(rows, rows[1:] + rows[:1], strict=True):
            partner[row] = other
    return torch.tensor(partner, dtype=torch.int64, device=labels.device)


def swap_invariance(adapted: Tensor, adapted_swapped: Tensor, delta: Tensor) -> Tensor:
    """Mean squared distance between adapt(z) and adapt(z + delta), relative to mean |delta|^2."""
    moved = (adapted - adapted_swapped).square().sum(1).mean()
    return moved / delta.square().sum(1).mean().detach().clamp_min(1e-12)


def task_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of a seen-task head (mean over the batch)."""
    return F.cross_entropy(logits, labels)


@dataclass(frozen=True)
class LossWeights:
    """Weights of the combined objective (reference: w_lc 100, w_t 1, w_b 1, no extensions)."""

    w_lc: float = 100.0
    """Latent consistency (MSE raw vs adapted on normal clips); keeps unseen tasks working."""
    w_t: float = 1.0
    """Seen-task loss (sum of the heads' losses)."""
    w_b: float = 1.0
    """Static-clip privacy NT-Xent, MAXIMISED."""
    w_motion: float = 0.0
    """Normal-clip privacy NT-Xent (our extension), MAXIMISED; 0 = reference method."""
    w_spread: float = 0.0
    """Static-clip spread (our extension), minimised; 0 = reference method."""
    w_swap: float = 0.0
    """Appearance-swap invariance on normal clips (our extension), minimised; 0 = reference."""
    w_class: float = 0.0
    """Same-action swap invariance of normal clips (our extension), minimised; 0 = reference."""


LOSS_WEIGHTS: tuple[str, ...] = tuple(f.name for f in fields(LossWeights))
"""The weight names (TrainConfig carries each, the checkpoint records each)."""


def combined_objective(
    weights: LossWeights,
    *,
    l_lc: Tensor,
    l_t: Tensor,
    l_b: Tensor,
    l_motion: Tensor | None = None,
    l_spread: Tensor | None = None,
    l_swap: Tensor | None = None,
    l_class: Tensor | None = None,
) -> Tensor:
    """L = w_lc L_LC + w_t L_T - w_b L_B - w_motion L_M + w_spread L_S + w_swap L_W
    + w_class L_C (minimised)."""
    total = weights.w_lc * l_lc + weights.w_t * l_t - weights.w_b * l_b
    for weight, term, name, sign in (
        (weights.w_motion, l_motion, "w_motion", -1.0),
        (weights.w_spread, l_spread, "w_spread", 1.0),
        (weights.w_swap, l_swap, "w_swap", 1.0),
        (weights.w_class, l_class, "w_class", 1.0),
    ):
        if weight:
            if term is None:
                raise ValueError(f"{name} > 0 needs its loss term")
            total = total + sign * weight * term
    return total
