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
    flat = features.reshape(v * m, -1)
    retrieval = BlockedRetrieval(flat, 0, m)
    retrieval.update(flat, 0, chunk_size=chunk_size)  # all keys in one block
    return retrieval.hits() / (v * m)


def retrieval_chance(num_videos: int, clips_per_video: int) -> float:
    """Expected same_video_retrieval for embeddings that carry no video identity."""
    total = num_videos * clips_per_video
    return (clips_per_video - 1) / (total - 1) if total > 1 else float("nan")


class BlockedRetrieval:
    """same_video_retrieval for features that do not fit in memory at once.

    A block of query clips is kept; key clips stream past in blocks, in ascending order of their
    flat index (video * M + clip), and each query keeps its best cosine so far and whether that
    neighbour was of its own video. Strict ">" over ascending keys keeps the first maximum, as
    argmax does, so any blocking gives the count of same_video_retrieval (one block of all keys)
    up to float rounding.
    """

    def __init__(self, queries: Tensor, first_index: int, clips_per_video: int) -> None:
        """``queries`` [n, D] (flattened [videos, M, D]); its rows have flat indices
        first_index .. first_index + n - 1."""
        self.queries = F.normalize(queries.to(torch.float32), dim=1)
        dev = self.queries.device
        self.index = torch.arange(first_index, first_index + len(queries), device=dev)
        self.m = clips_per_video
        self.best = torch.full((len(queries),), float("-inf"), device=dev)
        self.same = torch.zeros(len(queries), dtype=torch.bool, device=dev)

    @torch.no_grad()
    def update(self, keys: Tensor, first_index: int, *, chunk_size: int = 2048) -> None:
        """Offer key clips [k, D] whose flat indices start at ``first_index``."""
        keys = F.normalize(keys.to(self.queries.device, torch.float32), dim=1)
        key_index = torch.arange(first_index, first_index + len(keys), device=keys.device)
        for start in range(0, len(self.queries), chunk_size):
            q = self.queries[start : start + chunk_size]
            qi = self.index[start : start + chunk_size]
            sims = q @ keys.T
            local = qi - first_index  # a query's own clip, where it is among these keys
            own = (local >= 0) & (local < len(keys))
            sims[torch.nonzero(own).squeeze(1), local[own]] = float("-inf")
            value, arg = sims.max(dim=1)
            better = value > self.best[start : start + chunk_size]
            rows = torch.nonzero(better).squeeze(1) + start
            self.best[rows] = value[better]
            self.same[rows] = (key_index[arg[better]] // self.m) == (self.index[rows] // self.m)

    def hits(self) -> int:
        return int(self.same.sum())
