"""The build's pixel targets: colour and texture histograms, camera-compensated motion."""

from __future__ import annotations

import pytest
import torch

from pipeline.data.clips import IMAGENET_MEAN, IMAGENET_STD
from pipeline.encoders import targets
from tests.support.clips import normalised, textured_scene


def test_colour_histogram_counts_joint_rgb_bins():
    from pipeline.data.clips import ClipSampling, preprocess

    clip = torch.zeros(1, 16, 64, 64, 3, dtype=torch.uint8)
    clip[..., :] = torch.tensor([250, 10, 130], dtype=torch.uint8)  # bins (3, 0, 2) of 4
    clip[:, :4, :32] = torch.tensor([0, 255, 64], dtype=torch.uint8)  # bins (0, 3, 1)
    x = preprocess(clip, ClipSampling(frames_per_clip=16, size=64))
    hist = targets.colour_histogram(x, 4)
    assert hist.shape == (1, 64)
    assert hist[0, 3 * 16 + 0 * 4 + 2].item() == pytest.approx(1 - 1 / 8)
    assert hist[0, 0 * 16 + 3 * 4 + 1].item() == pytest.approx(1 / 8)
    assert hist.sum().item() == pytest.approx(1.0)


def test_texture_histogram_tells_flat_colour_from_stripes_and_their_direction():
    bins, states = 3, targets.EDGE_STATES
    flat = torch.zeros(16, 3, 32, 32)
    flat[:, 0] = 0.9  # red everywhere
    hist = targets.texture_histogram(normalised(flat), bins)
    assert hist.shape == (1, targets.texture_size(bins))
    per_scale = hist.view(targets.TEXTURE_SCALES, -1)
    assert torch.allclose(per_scale.sum(1), torch.ones(targets.TEXTURE_SCALES))
    red = (2 * bins + 0) * bins + 0  # colour index of (R high, G low, B low)
    assert torch.allclose(per_scale[:, red * states], torch.ones(targets.TEXTURE_SCALES))  # flat

    stripes = flat.clone()
    stripes[..., ::4] = 0.0  # black vertical lines every 4 columns: edges with an x gradient
    stripes[..., 1::4] = 0.0
    per_scale = targets.texture_histogram(normalised(stripes), bins)
    per_scale = per_scale.view(targets.TEXTURE_SCALES, -1)
    edges = per_scale[0].view(bins**3, states)[:, 1:].sum(0)  # orientation bins, all colours
    assert int(edges.argmax()) == 0 and float(edges[0]) > 0.3  # gradient along x: angle 0
    rotated = targets.texture_histogram(normalised(stripes.transpose(-1, -2)), bins)
    edges_t = rotated.view(targets.TEXTURE_SCALES, -1)[0].view(bins**3, states)[:, 1:].sum(0)
    assert int(edges_t.argmax()) == 2  # horizontal lines: gradient along y, 90 degrees


def test_motion_statistics_locate_moving_objects_and_their_direction_without_the_pan():
    g = targets.MOTION_GRID
    energy = slice(0, g * g)  # first statistic: |It| per cell (row-major)
    signed_x = slice(3 * g * g, 4 * g * g)  # fourth: signed horizontal flow per cell
    right = targets.motion_statistics(textured_scene(pan=0, object_dx=1))
    assert right.shape == (1, targets.MOTION_SIZE)
    cells = right[0, energy].view(g, g)
    assert float(cells[0, 1:3].min()) > 10 * float(cells[1:].max())  # there (blur spills)
    assert float(right[0, signed_x].view(g, g)[0, 1:3].min()) > 0  # to the right
    backwards = targets.motion_statistics(textured_scene(pan=0, object_dx=1).flip(1))
    assert float(backwards[0, signed_x].view(g, g)[0, 1:3].max()) < 0  # to the left
    # A panning camera over a static scene: most of the raw temporal change is the pan, which
    # the statistics remove (one translation per frame pair).
    pan = textured_scene(pan=1, object_dx=None)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
    luma = (pan * std + mean).mean(2)
    raw_energy = float((luma[:, 1:] - luma[:, :-1]).abs().mean())
    assert float(targets.motion_statistics(pan)[0, energy].mean()) < 0.5 * raw_energy


def test_patch_histograms_are_each_tokens_own_colours_in_videomae_order():
    from pipeline.data.clips import ClipSampling, preprocess

    clip = torch.zeros(1, 16, 64, 64, 3, dtype=torch.uint8)  # black: bin 0 everywhere
    clip[:, :, 16:32, 48:64] = torch.tensor([255, 0, 0], dtype=torch.uint8)  # row 1, column 3
    clip[:, :8, 0:8, 0:16] = torch.tensor([0, 0, 255], dtype=torch.uint8)  # token 0: half, 8 frames
    x = preprocess(clip, ClipSampling(frames_per_clip=16, size=64))
    local = targets.patch_histograms(x, 4, tubelet=16, patch=16)
    assert local.shape == (1, 16, 64)
    red, blue = 3 * 16, 3
    assert local[0, 1 * 4 + 3, red].item() == pytest.approx(1.0)
    assert local[0, 0, blue].item() == pytest.approx(0.25)  # 8 of 16 rows for 8 of 16 frames
    assert local[0, 0, 0].item() == pytest.approx(0.75)
    assert local[0, 5, 0].item() == pytest.approx(1.0)
    # Two time slots split the frames: the blue half-patch is in the first slot only.
    slots = targets.patch_histograms(x, 4, tubelet=8, patch=16)
    assert slots.shape == (1, 32, 64)
    assert slots[0, 0, blue].item() == pytest.approx(0.5) and slots[0, 16, blue].item() == 0.0
    # Their mean over tokens is the clip's histogram (the pooled target).
    assert torch.allclose(local.mean(1), targets.colour_histogram(x, 4), atol=1e-6)
