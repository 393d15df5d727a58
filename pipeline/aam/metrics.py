"""Validation metrics: the same-video retrieval privacy proxy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def same_video_retrieval(features: Tensor, *, chunk_size: int = 2048) -> float:
    """Fraction of clips whose nearest neighbour (cosine) among all OTHER clips is of their video.

    ``features`` is [V, M, D]: M clips of each of V videos. Lower means the embedding says less
    about which video (person) a clip came from; chance is (M - 1) / (V * M - 1). Rows go in
    chunks so memory stays O(chunk_size * V * M), not quadratic in the number of clips.
    """
    v, m, _ = features.shape
    if v * m < 2:
        return float("nan")
    flat = F.normalize(features.reshape(v * m, -1).to(torch.float32), dim=1)
    owner = torch.arange(v, device=flat.device).repeat_interleave(m)
    hits = 0
    for start in range(0, v * m, chunk_size):
        rows = flat[start : start + chunk_size]
        sims = rows @ flat.T
        idx = torch.arange(start, start + rows.shape[0], device=flat.device)
        sims[torch.arange(rows.shape[0], device=flat.device), idx] = float("-inf")
        nearest = sims.argmax(dim=1)
        hits += int((owner[nearest] == owner[idx]).sum())
    return hits / (v * m)


def retrieval_chance(num_videos: int, clips_per_video: int) -> float:
    """Expected same_video_retrieval for embeddings that carry no video identity."""
    total = num_videos * clips_per_video
    return (clips_per_video - 1) / (total - 1) if total > 1 else float("nan")
