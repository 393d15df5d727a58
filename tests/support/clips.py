"""Hand-made clips with known content for tests of pixel statistics."""

from __future__ import annotations

import torch

from pipeline.data.clips import IMAGENET_MEAN, IMAGENET_STD


def normalised(rgb01: torch.Tensor) -> torch.Tensor:
    """[T, 3, H, W] in 0..1 -> one ImageNet-normalised clip [1, T, 3, H, W]."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((rgb01 - mean) / std)[None]


def textured_scene(pan: int, object_dx: int | None) -> torch.Tensor:
    """16 frames of a smooth textured backdrop seen by a camera panning ``pan`` px per frame,
    with a bright square in the top row of cells moving ``object_dx`` px per frame over the
    backdrop (None: no square), blurred like a rendered video: [1, 16, 3, 64, 64]."""
    g = torch.Generator().manual_seed(0)
    backdrop = torch.rand(3, 64, 320, generator=g)
    backdrop = torch.nn.functional.avg_pool2d(backdrop[None], 5, 1, 2)[0] * 0.5 + 0.25
    frames = []
    for t in range(16):
        frame = backdrop[:, :, 64 + t * pan : 128 + t * pan].clone()
        if object_dx is not None:
            x = 20 + t * (object_dx - pan)
            frame[:, 4:14, x : x + 10] = 1.0
        blurred = torch.nn.functional.avg_pool2d(frame[None], 5, 1, 2, count_include_pad=False)
        frames.append(blurred[0])
    return normalised(torch.stack(frames))
