"""Pixel statistics the tiny encoder's build regresses from its pooled embedding: colour,
colour x edge texture and camera-compensated motion. Each is the same function of the pixels in
every world, which is what lets the embedding keep them on worlds it never saw."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pipeline.data.clips import IMAGENET_MEAN, IMAGENET_STD


def _rgb01(pixels: torch.Tensor) -> torch.Tensor:
    """ImageNet-normalised clips [B, T, C, H, W] back on the 0..1 scale."""
    mean = pixels.new_tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
    std = pixels.new_tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
    return pixels * std + mean


def colour_histogram(pixels: torch.Tensor, bins: int) -> torch.Tensor:
    """Joint RGB histogram (frequencies, bins**3 per clip) of ImageNet-normalised clips
    [B, T, C, H, W], over all frames and pixels."""
    levels = (_rgb01(pixels) * bins).floor().clamp_(0, bins - 1).long()
    index = (levels[:, :, 0] * bins + levels[:, :, 1]) * bins + levels[:, :, 2]  # [B, T, H, W]
    flat = index.flatten(1)
    counts = torch.zeros(flat.shape[0], bins**3, device=pixels.device, dtype=pixels.dtype)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=pixels.dtype))
    return counts / flat.shape[1]


def patch_histograms(pixels: torch.Tensor, bins: int, tubelet: int, patch: int) -> torch.Tensor:
    """Joint RGB histogram of each token's voxels (tubelet frames x patch x patch pixels) of
    ImageNet-normalised clips [B, T, C, H, W]: [B, tokens, bins**3] in VideoMAE's token order
    (time slot, row, column)."""
    b, t, c, h, w = pixels.shape
    nt, nh, nw = t // tubelet, h // patch, w // patch
    x = pixels.reshape(b, nt, tubelet, c, nh, patch, nw, patch)
    x = x.permute(0, 1, 4, 6, 2, 3, 5, 7).reshape(b * nt * nh * nw, tubelet, c, patch, patch)
    return colour_histogram(x, bins).reshape(b, nt * nh * nw, bins**3)


EDGE_STATES = 5
"""Per pixel: flat, or an edge at 0, 45, 90 or 135 degrees."""
TEXTURE_SCALES = 2
"""Full and half resolution: fine texture (stripes, spots) and part outlines (ears, antennae)."""
TEXTURE_FRAMES = 4
"""Evenly spaced frames per clip the texture target is computed on (appearance is static)."""


def texture_size(bins: int) -> int:
    """Length of texture_histogram's output."""
    return TEXTURE_SCALES * bins**3 * EDGE_STATES


def texture_histogram(pixels: torch.Tensor, bins: int, edge: float = 0.08) -> torch.Tensor:
    """Colour x edge-orientation co-occurrence (frequencies) of ImageNet-normalised clips
    [B, T, C, H, W] at full and half resolution: which colours come as flat areas, stripes in
    which direction, or outlines; what a foundation model's early layers respond to.

    Each pixel counts once per scale in the bin of (its colour, bins**3, x its edge state: flat
    when the luminance gradient is below ``edge`` (fraction of full range), else one of 4
    orientations); computed on TEXTURE_FRAMES evenly spaced frames.
    """
    t = pixels.shape[1]
    frames = torch.linspace(0, t - 1, min(t, TEXTURE_FRAMES)).round().long().to(pixels.device)
    rgb = _rgb01(pixels[:, frames]).clamp(0, 1).flatten(0, 1)  # [B * F, 3, H, W]
    parts = []
    for scale in range(TEXTURE_SCALES):
        img = F.avg_pool2d(rgb, 2**scale) if scale else rgb
        luma = img.mean(1, keepdim=True)
        gx = F.pad(luma[..., :, 2:] - luma[..., :, :-2], (1, 1, 0, 0)) / 2
        gy = F.pad(luma[..., 2:, :] - luma[..., :-2, :], (0, 0, 1, 1)) / 2
        angle = torch.atan2(gy, gx).remainder(math.pi)  # orientation, sign-free
        orient = ((angle / (math.pi / 4)) + 0.5).floor().long().remainder(4) + 1
        state = torch.where(torch.hypot(gx, gy) < edge, torch.zeros_like(orient), orient)
        levels = (img * bins).floor().clamp_(0, bins - 1).long()
        colour = (levels[:, 0:1] * bins + levels[:, 1:2]) * bins + levels[:, 2:3]
        index = (colour * EDGE_STATES + state).flatten(1)  # [B * F, pixels]
        counts = torch.zeros(index.shape[0], bins**3 * EDGE_STATES, device=pixels.device,
                             dtype=pixels.dtype)  # fmt: skip
        counts.scatter_add_(1, index, torch.ones_like(index, dtype=pixels.dtype))
        freq = counts / index.shape[1]
        parts.append(freq.view(pixels.shape[0], -1, freq.shape[1]).mean(1))
    return torch.cat(parts, dim=1)


MOTION_GRID = 4
"""Cells per side of the motion statistics' spatial grid."""
MOTION_SEGMENTS = 4
"""Time segments of a clip over which oscillating motion is summed before its magnitude."""
_CELL_STATISTICS = 5
_TRACK_STATISTICS = 9 * 5
MOTION_SIZE = _CELL_STATISTICS * MOTION_GRID**2 + _TRACK_STATISTICS
"""Length of motion_statistics' output."""


def motion_statistics(pixels: torch.Tensor) -> torch.Tensor:
    """World-agnostic motion statistics of ImageNet-normalised clips [B, T, C, H, W]
    (MOTION_SIZE per clip), after removing the camera's global translation per frame pair.

    From the luminance's temporal derivative It and spatial gradients (Ix, Iy): per cell of a
    MOTION_GRID x MOTION_GRID grid, the motion energy |It|, the magnitudes of the horizontal and
    vertical normal flow (-It Ix, -It Iy, summed over MOTION_SEGMENTS time segments first, so
    oscillations count) and their signed means (translations); and for the moving region as a
    whole (pixels weighted by |It|): its centroid, spread, the flow above and below its centroid
    and its energy, each as mean, mean change, mean |change|, spread over time and segment
    magnitude. What tells a nod from a clap or a squat in a world the action labels never saw.
    Small motions on a plain background give the pan estimate nothing to hold on to: it is
    then 0 (no texture, nothing to remove).
    """
    # Luminance (mean of R, G, B on the 0..1 scale) in one pass over the channels.
    scale = pixels.new_tensor(IMAGENET_STD) / 3
    luma = torch.einsum("btchw,c->bthw", pixels, scale) + sum(IMAGENET_MEAN) / 3
    it = luma[:, 1:] - luma[:, :-1]
    mid = (luma[:, 1:] + luma[:, :-1]) / 2
    ix = F.pad(mid[..., :, 2:] - mid[..., :, :-2], (1, 1, 0, 0)) / 2
    iy = F.pad(mid[..., 2:, :] - mid[..., :-2, :], (0, 0, 1, 1)) / 2

    # The camera's pan/shake: one translation (u, v) per frame pair, removed from It. Least
    # squares (It + Ix u + Iy v = 0) in each cell of an 8 x 8 grid, then the median over the
    # textured cells: robust to the actors, who cover a few cells.
    def local(field: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(field, 8).flatten(2)  # [B, T, 64]

    a, b, c = local(ix * ix), local(ix * iy), local(iy * iy)
    p, q = -local(ix * it), -local(iy * it)
    det = a * c - b * b
    textured = det > 1e-9  # luminance 0..1: gradients of ~0.01 give ~1e-8
    safe = torch.where(textured, det, torch.ones_like(det))
    nan = torch.full_like(det, float("nan"))
    u = torch.where(textured, (c * p - b * q) / safe, nan).nanmedian(2).values.nan_to_num(0.0)
    v = torch.where(textured, (a * q - b * p) / safe, nan).nanmedian(2).values.nan_to_num(0.0)
    it = it + ix * u[..., None, None] + iy * v[..., None, None]
    hx, hy, energy = -it * ix, -it * iy, it.abs()

    def cells(field: torch.Tensor) -> torch.Tensor:  # [B, T, H, W] -> [B, T, g, g]
        return F.adaptive_avg_pool2d(field, MOTION_GRID)

    def segments(series: torch.Tensor) -> torch.Tensor:  # [B, T, ...] -> [B, segments, ...]
        return torch.stack([s.mean(1) for s in series.chunk(MOTION_SEGMENTS, 1)], 1)

    chx, chy = cells(hx), cells(hy)
    per_cell = [cells(energy).mean(1), segments(chx).abs().mean(1),
                segments(chy).abs().mean(1), chx.mean(1), chy.mean(1)]  # fmt: skip
    # The moving region, pixels weighted by |It|: everything below needs only the row and
    # column marginals (coordinates are separable), not another pass over the pixels.
    h, w = it.shape[-2:]
    ys = torch.linspace(-1, 1, h, device=pixels.device, dtype=pixels.dtype)
    xs = torch.linspace(-1, 1, w, device=pixels.device, dtype=pixels.dtype)
    rows, columns = energy.sum(3), energy.sum(2)  # [B, T, H], [B, T, W]
    total = rows.sum(2) + 1e-6
    cx, cy = (columns @ xs) / total, (rows @ ys) / total
    sx = (columns * (xs - cx[..., None]).square()).sum(2) / total
    sy = (rows * (ys - cy[..., None]).square()).sum(2) / total
    above = (ys < cy[..., None]).to(pixels.dtype)  # [B, T, H]
    hx_rows, hy_rows = hx.sum(3), hy.sum(3)
    below = 1 - above
    series = [cx, cy, sx, sy, (hx_rows * above).sum(2), (hx_rows * below).sum(2),
              (hy_rows * above).sum(2), (hy_rows * below).sum(2), total / (h * w)]  # fmt: skip
    track = []
    for s in series:
        change = s[:, 1:] - s[:, :-1]
        track += [s.mean(1), change.mean(1), change.abs().mean(1), s.std(1),
                  segments(s).abs().mean(1)]  # fmt: skip
    return torch.cat([f.flatten(1) for f in per_cell] + [torch.stack(track, 1)], 1)
