"""ClipBatcher fills full batches across videos and routes every embedding back to its row."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.extract.batching import ClipBatcher


def _encode_calls(batches: list[int]):
    def encode(x: torch.Tensor) -> torch.Tensor:
        batches.append(len(x))
        return x.flatten(1)[:, :2].clone()  # "embedding" = first two numbers of the clip

    return encode


@pytest.mark.parametrize("pin", [False, pytest.param(True, marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="pinned memory needs CUDA"))])  # fmt: skip
def test_batches_are_full_and_rows_land_where_they_belong(pin):
    batches: list[int] = []
    batcher = ClipBatcher(_encode_calls(batches), batch_size=4, pin_memory=pin)
    targets = [np.zeros((n, 2), np.float32) for n in (3, 1, 6, 0, 2)]
    clips = []
    for k, t in enumerate(targets):
        c = torch.full((len(t), 2, 3, 1, 1), float(k)) + torch.arange(len(t)).view(-1, 1, 1, 1, 1)
        if k == 2:  # a repeated frame (expanded, not contiguous), like static clips
            c = c[:, :1].expand(-1, 2, -1, -1, -1)
        clips.append(c)
        batcher.add(c, t)
    batcher.flush()
    assert batches == [4, 4, 4] and batcher.clips_encoded == 12
    for c, t in zip(clips, targets, strict=True):
        np.testing.assert_array_equal(t, c.flatten(1)[:, :2].numpy())
