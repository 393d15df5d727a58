"""Signed-distance shapes, garment textures and front-to-back compositing of an actor window."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Colours are channel-first: numpy is several times slower broadcasting over a trailing axis of
# 3 than over a long one. Lengths use a square root, several times faster than np.hypot (these
# shapes are not the default world's, whose bytes must not change).
TAU = 2.0 * math.pi
OUTLINE_COLOUR = (15.0, 15.0, 15.0)


def _length(x, y):
    if x.shape == np.broadcast_shapes(x.shape, y.shape) and x.dtype == np.float32:
        x = x * x  # in place from here on: fewer passes through fresh memory
        x += y * y
        return np.sqrt(x, out=x)
    return np.sqrt(x * x + y * y)


def circle(u, v, cu, cv, r):
    """Distance to a disc of radius r centred on (cu, cv)."""
    return _length(u - cu, v - cv) - r


def ellipse(u, v, cu, cv, a, b):
    """Approximate distance to an ellipse with half axes a (along u) and b (along v)."""
    return (_length((u - cu) * (1.0 / a), (v - cv) * (1.0 / b)) - 1.0) * np.minimum(a, b)


def capsule(u, v, ax, ay, bx, by, r):
    """Distance to a segment (a, b) of radius r; endpoints may be per-frame [T, 1, 1] arrays."""
    bax, bay = bx - ax, by - ay
    inv = 1.0 / (bax * bax + bay * bay)
    pax, pay = u - ax, v - ay
    t = pax * (bax * inv) + pay * (bay * inv)
    np.clip(t, 0.0, 1.0, out=t)
    if pax.shape == pay.shape == t.shape:  # in place: fewer passes through fresh memory
        step = bax * t
        pax -= step
        np.multiply(bay, t, out=step)
        pay -= step
        pax *= pax
        pay *= pay
        pax += pay
        d = np.sqrt(pax, out=pax)
    else:
        d = _length(pax - bax * t, pay - bay * t)
    d -= r
    return d


def round_box(u, v, cu, cv, half_w, half_h, r):
    """Distance to a rounded box centred on (cu, cv)."""
    qx = np.abs(u - cu) - (half_w - r)
    qy = np.abs(v - cv) - (half_h - r)
    outside = _length(np.maximum(qx, 0.0), np.maximum(qy, 0.0))
    return outside + np.minimum(np.maximum(qx, qy), 0.0) - r


def taper(u, v, cu, top, bottom, w_top, w_bottom):
    """Distance (approximate outside the corners) to a trapezoid symmetric about u = cu."""
    slope = (w_bottom - w_top) / (bottom - top)
    t = np.clip((v - top) / (bottom - top), 0.0, 1.0)
    side = (np.abs(u - cu) - (w_top + (w_bottom - w_top) * t)) / np.sqrt(1.0 + slope * slope)
    return np.maximum(side, np.maximum(top - v, v - bottom))


def _band(s, period, h_px):
    # s ~ sin of a pattern of ``period`` (actor heights); about one pixel of anti-aliasing.
    return np.clip(0.5 + s * (period * h_px / TAU), 0.0, 1.0)


def stripes(u, v, period, h_px, angle=0.0, shift=0.0):
    """Coverage of stripes across direction ``angle`` (0 = horizontal bands), 1 on a stripe."""
    along = v * math.cos(angle) + u * math.sin(angle)
    return _band(np.sin(along * (TAU / period) + shift), period, h_px)


def checks(u, v, period, h_px):
    """Coverage of a checkerboard of squares of side period / 2."""
    s = np.sin(u * (TAU / period)) * np.sin(v * (TAU / period))
    return _band(s, period, h_px)


def spots(u, v, period, radius, h_px):
    """Coverage of round spots of ``radius`` on a staggered grid of ``period``."""
    row = np.floor(v * (1.0 / period))
    du = ((u * (1.0 / period) + 0.5 * (row % 2)) % 1.0 - 0.5) * period
    dv = ((v * (1.0 / period)) % 1.0 - 0.5) * period
    return np.clip(0.5 + (radius - _length(du, dv)) * h_px, 0.0, 1.0)


@dataclass(frozen=True)
class Texture:
    """A two-colour pattern: ``other`` where coverage is 1, ``base`` where it is 0."""

    base: np.ndarray
    other: np.ndarray
    coverage: np.ndarray


Colour = np.ndarray | Texture
"""float32 RGB (0..255) [3] of a plain part, or a Texture."""


def composite(
    flat: np.ndarray,
    size: int,
    parts: list[tuple[np.ndarray, Colour]],
    px: np.ndarray,
    py: np.ndarray,
    to_px: np.ndarray,
    outline: float = 0.45,
) -> np.ndarray:
    """Draw an actor window over the background ``flat``; uint8 [T, S, S, 3] frames out.

    ``flat`` is uint8 [3, T * S * S + 1], changed in place: channel first, frame-major rows of
    S = ``size`` pixels, and a last scratch element per channel. ``parts`` are (signed
    distance [T, wy, wx] or broadcastable to it, colour), back to front, in units that
    ``to_px`` [T] turns into pixels; ``px`` [T, wx] and ``py`` [T, wy] are the window's pixel
    columns (wrapping around the frame) and rows (rows outside the frame are dropped). A dark
    rim around the union keeps the actor apart from backgrounds of its own colour.
    """
    T = len(px)
    shape = (T, py.shape[1], px.shape[1])
    union = np.full(shape, np.inf, np.float32)
    for sd, _ in parts:
        np.minimum(union, sd, out=union)
    union *= to_px.astype(np.float32)[:, None, None]
    # Only the pixels the actor or its rim touch (a fifth of the window) are blended.
    active = np.flatnonzero(union < 0.5)
    t, r, c = np.unravel_index(active, shape)
    scale = to_px.astype(np.float32)[t]

    def at(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, np.float32)
        if a.shape == shape:
            return np.take(a.reshape(-1), active)
        a = a.reshape((1,) * (3 - a.ndim) + a.shape)
        return a[tuple(i if n > 1 else 0 for i, n in zip((t, r, c), a.shape, strict=True))]

    edge = np.abs(np.take(union.reshape(-1), active) + 0.5)
    rim = np.clip(1.0 - edge, 0.0, 1.0)  # a one-pixel band just inside the silhouette
    layers = [(np.clip(0.5 - at(sd) * scale, 0.0, 1.0), colour) for sd, colour in parts]
    layers.append((outline * rim, np.asarray(OUTLINE_COLOUR, np.float32)))
    # Front to back: each layer's weight is its alpha times what the layers in front let
    # through; the colours are then one weighted sum (a texture adds a second row).
    n_rows = len(layers) + sum(isinstance(col, Texture) for _, col in layers)
    weights = np.empty((n_rows, len(active)), np.float32)
    palette = np.empty((3, n_rows), np.float32)
    through = np.ones(len(active), np.float32)
    k = 0
    for alpha, colour in reversed(layers):
        w = weights[k]
        np.multiply(alpha, through, out=w)
        through -= w
        if isinstance(colour, Texture):
            palette[:, k] = colour.base
            np.multiply(w, at(colour.coverage), out=weights[k + 1])
            palette[:, k + 1] = colour.other - colour.base
            k += 2
        else:
            palette[:, k] = colour
            k += 1
    # einsum, not a matrix product: OpenBLAS would thread this thin product and spin its
    # threads (20x the CPU time when OMP_NUM_THREADS is not set).
    paint = np.einsum("ck,kn->cn", palette, weights)  # [3, active]
    # Flat pixel indices; rows outside the frame go to the scratch element. mode="clip" (the
    # indices are in range anyway) because "raise" buffers the whole array.
    n = T * size * size
    rows = py[t, r]
    idx = t * (size * size) + rows * size + px[t, c] % size
    idx[(rows < 0) | (rows >= size)] = n
    for ch in range(3):
        blended = np.take(flat[ch], idx, mode="clip") * through + paint[ch]
        np.put(flat[ch], idx, np.rint(np.clip(blended, 0.0, 255.0)).astype(np.uint8), mode="clip")
    out = flat[:, :n].reshape(3, T, size, size)
    return np.ascontiguousarray(out.transpose(1, 2, 3, 0))
