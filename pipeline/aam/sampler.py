"""Per-step sampling of videos, static-clip pairs and normal clips, vectorised and seeded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from pipeline.errors import ConfigError


@dataclass(frozen=True)
class StepSample:
    """What one optimiser step sees; all int64 tensors on CPU."""

    videos: Tensor
    """[B] video indices into the training arrays."""
    static_pair: Tensor
    """[B, 2] two distinct static-clip indices (into S) of each video: the NT-Xent positive pair."""
    clips: Tensor
    """[B, 2] two normal-clip indices (into K) of each video: column 0 feeds L_T and L_LC, column
    1 is a second, distinct clip for the normal-clip privacy extension (= column 0 if K = 1)."""
    partner: Tensor | None = None
    """[B] positions in the batch, partner[i] != i: whose appearance video i borrows in the
    appearance-swap term (None when the sampler does not draw them)."""


def distinct_pairs(n_rows: int, n_items: int, generator: torch.Generator) -> Tensor:
    """[n_rows, 2] ordered pairs of distinct indices in [0, n_items), uniform over all such pairs.

    Draw the first uniformly, then an offset uniform in [1, n_items): the second is uniform over
    the n_items - 1 others, i.e. two draws without replacement, with no per-row Python loop.
    """
    if n_items < 2:
        raise ConfigError(f"need at least 2 items to draw a distinct pair, got {n_items}")
    first = torch.randint(0, n_items, (n_rows,), generator=generator)
    offset = torch.randint(1, n_items, (n_rows,), generator=generator)
    return torch.stack([first, (first + offset) % n_items], dim=1)


def steps_per_epoch(num_videos: int, batch_size: int) -> int:
    """Batches ClipSampler.epoch yields for ``num_videos`` (a last batch of one is dropped)."""
    full, rest = divmod(num_videos, batch_size)
    return full + (rest >= 2)


class ClipSampler:
    """Shuffles videos into batches each epoch and draws the clips each step uses.

    A batch of a single video is dropped (NT-Xent needs negatives); any other short last batch is
    kept. Everything comes from one seeded torch.Generator, so a seed fixes the whole sequence.
    """

    def __init__(
        self,
        num_videos: int,
        num_clips: int,
        num_static: int,
        batch_size: int,
        seed: int = 0,
        *,
        partners: bool = False,
    ) -> None:
        if num_videos < 2:
            raise ConfigError(f"adapter training needs at least 2 videos, got {num_videos}")
        if num_static < 2:
            raise ConfigError(f"adapter training needs at least 2 static clips, got {num_static}")
        if num_clips < 1:
            raise ConfigError("adapter training needs at least 1 clip per video")
        if batch_size < 2:
            raise ConfigError(f"batch_size must be at least 2 videos, got {batch_size}")
        self.num_videos = num_videos
        self.num_clips = num_clips
        self.num_static = num_static
        self.batch_size = batch_size
        self.partners = partners
        self.generator = torch.Generator().manual_seed(seed)

    def steps_per_epoch(self) -> int:
        return steps_per_epoch(self.num_videos, self.batch_size)

    def draw(self, videos: Tensor) -> StepSample:
        """Clips for one batch of video indices."""
        b = videos.shape[0]
        static_pair = distinct_pairs(b, self.num_static, self.generator)
        if self.num_clips >= 2:
            clips = distinct_pairs(b, self.num_clips, self.generator)
        else:
            clips = torch.zeros(b, 2, dtype=torch.int64)
        partner = None
        if self.partners:
            # A random cycle through the batch: everyone gets someone else, uniformly.
            cycle = torch.randperm(b, generator=self.generator)
            partner = torch.empty(b, dtype=torch.int64)
            partner[cycle] = cycle.roll(-1)
        return StepSample(videos=videos, static_pair=static_pair, clips=clips, partner=partner)

    def epoch(self) -> Iterator[StepSample]:
        """One pass over all videos in a fresh random order."""
        order = torch.randperm(self.num_videos, generator=self.generator)
        for start in range(0, self.num_videos, self.batch_size):
            videos = order[start : start + self.batch_size]
            if videos.shape[0] < 2:
                continue
            yield self.draw(videos)
