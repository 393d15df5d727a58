"""Procedural textured scenes of the non-default worlds, painted larger than the frame."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Painter = Callable[[int, np.random.Generator], np.ndarray]
"""painter(M, rng): a float32 [M, M, 3] image (0..255); the camera pans over its middle."""

_PALETTE_DRAWS = 24  # random colours every painter draws (books, flowers, crates)


class _Canvas:
    """An M x M image with coordinates in [0, 1] and per-video random numbers."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.u = rng.random(12)
        self.colours = rng.random((_PALETTE_DRAWS, 3)).astype(np.float32)
        self.tint = (1.0 + 0.06 * rng.standard_normal(3)).astype(np.float32)
        self.noise = rng.standard_normal((size, size, 1)).astype(np.float32) * 2.0
        self.dots = rng.random((size, size))
        c = (np.arange(size, dtype=np.float32) + 0.5) / size
        self.yy, self.xx = np.meshgrid(c, c, indexing="ij")
        self.img = np.zeros((size, size, 3), np.float32)

    def fill(self, colour) -> None:
        self.img[:] = colour

    def paint(self, mask: np.ndarray, colour) -> None:
        self.img[mask] = colour

    def gradient(self, mask: np.ndarray, top, bottom) -> None:
        t = self.yy[..., None]
        grad = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
        self.img[mask] = grad[mask]

    def done(self) -> np.ndarray:
        return np.clip(self.img * self.tint + self.noise, 0.0, 255.0)


def _lines(coord: np.ndarray, period: float, width: float, offset: float = 0.0) -> np.ndarray:
    """True on thin lines every ``period`` along ``coord``."""
    return ((coord + offset) / period) % 1.0 < width / period


# ---------------------------------------------------------------- robots


def factory(size: int, rng: np.random.Generator) -> np.ndarray:
    """Corrugated grey-blue wall, a yellow/black hazard band, dark floor with a grating."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    floor = 0.6 + 0.08 * (u[0] - 0.5)
    c.fill((118, 126, 140))
    c.paint((yy < floor) & (np.sin((xx + u[1]) * 90.0) > 0.6), (98, 106, 120))
    band = (yy >= floor - 0.05) & (yy < floor)
    c.paint(band, (35, 35, 30))
    c.paint(band & (((xx + yy + u[2]) / 0.06) % 1.0 < 0.5), (235, 190, 30))
    c.paint(yy >= floor, (66, 68, 74))
    grate = (yy >= floor) & (_lines(xx, 0.07, 0.012, u[3]) | _lines(yy, 0.05, 0.01, u[4]))
    c.paint(grate, (40, 40, 44))
    return c.done()


def lab(size: int, rng: np.random.Generator) -> np.ndarray:
    """Bright tiled wall with blue grout lines, a long dark bench, pale floor."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    floor = 0.66 + 0.08 * (u[0] - 0.5)
    c.fill((226, 232, 238))
    c.paint(
        (yy < floor) & (_lines(xx, 0.09, 0.01, u[1]) | _lines(yy, 0.09, 0.01, u[2])),
        (120, 170, 215),
    )
    c.paint((yy > floor - 0.12) & (yy < floor - 0.08), (60, 70, 85))
    c.paint(yy >= floor, (178, 182, 188))
    return c.done()


def warehouse(size: int, rng: np.random.Generator) -> np.ndarray:
    """Stacked wooden crates with plank lines against a brick-brown wall, concrete floor."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    floor = 0.7 + 0.06 * (u[0] - 0.5)
    c.fill((128, 88, 70))
    cell = 0.16 + 0.03 * u[1]
    col = np.floor((xx + u[2]) / cell).astype(int)
    tops = 0.25 + 0.3 * c.colours[col % _PALETTE_DRAWS, 0]  # a stack height per column
    crate = (yy > tops) & (yy < floor)
    c.paint(crate, (196, 150, 86))
    c.paint(crate & _lines(yy, cell / 3, 0.01, u[3]), (120, 84, 44))
    c.paint(crate & _lines(xx, cell, 0.012, u[2]), (90, 60, 30))
    c.paint(yy >= floor, (128, 126, 122))
    return c.done()


def space(size: int, rng: np.random.Generator) -> np.ndarray:
    """Deep space: a purple nebula, stars, a ringed planet."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    c.fill((12, 12, 30))
    neb = np.exp(-(((xx - u[0]) / 0.3) ** 2 + ((yy - u[1]) / 0.2) ** 2))[..., None]
    c.img += neb * np.array([110, 40, 120], np.float32)
    c.paint(c.dots > 0.982, (235, 235, 245))
    px, py = 0.2 + 0.6 * u[2], 0.25 + 0.2 * u[3]
    ring = np.abs(np.hypot((xx - px) / 0.2, (yy - py) / 0.05) - 1.0) < 0.12
    c.paint(ring, (200, 180, 130))
    c.paint(np.hypot(xx - px, yy - py) < 0.1, (80, 150, 200))
    return c.done()


def circuit(size: int, rng: np.random.Generator) -> np.ndarray:
    """A green circuit board with copper traces and round pads."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    c.fill((26, 104, 58))
    pitch = 0.11 + 0.03 * u[0]
    gx, gy = (xx + u[1]) / pitch, (yy + u[2]) / pitch
    col, row = np.floor(gx).astype(int), np.floor(gy).astype(int)
    pick = c.colours[(col * 7 + row * 3) % _PALETTE_DRAWS, 0]
    horizontal = (np.abs(gy % 1.0 - 0.5) < 0.08) & (pick > 0.4)
    vertical = (np.abs(gx % 1.0 - 0.5) < 0.08) & (pick < 0.6)
    c.paint(horizontal | vertical, (196, 150, 70))
    c.paint(np.hypot(gx % 1.0 - 0.5, gy % 1.0 - 0.5) < 0.18, (220, 200, 150))
    return c.done()


# ---------------------------------------------------------------- critters


def meadow(size: int, rng: np.random.Generator) -> np.ndarray:
    """Sky, a rolling green hill line, flowers dotted in the grass."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    horizon = 0.45 + 0.06 * np.sin((xx + u[0]) * 9.0) + 0.05 * (u[1] - 0.5)
    c.gradient(yy < horizon, (120, 185, 240), (200, 225, 245))
    grass = yy >= horizon
    c.paint(grass, (92, 168, 66))
    c.paint(grass & (np.sin(xx * 40 + yy * 15 + u[2] * 6) > 0.7), (74, 140, 52))
    c.paint(grass & (c.dots > 0.985), (250, 250, 250))
    c.paint(grass & (c.dots < 0.012), (240, 90, 160))
    return c.done()


def forest(size: int, rng: np.random.Generator) -> np.ndarray:
    """Dark green woods with tree trunks of several widths and a leaf-litter floor."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    floor = 0.72 + 0.06 * (u[0] - 0.5)
    c.gradient(yy < floor, (30, 70, 40), (60, 100, 55))
    for k in range(5):
        x0, w = (u[1 + k] + k / 5.0) % 1.0, 0.025 + 0.035 * c.colours[k, 0]
        c.paint((np.abs(xx - x0) < w) & (yy < floor + 0.02), (82 + 20 * k % 40, 58, 38))
    ground = yy >= floor
    c.paint(ground, (104, 82, 46))
    c.paint(ground & (c.dots > 0.8), (150, 110, 50))
    return c.done()


def snowfield(size: int, rng: np.random.Generator) -> np.ndarray:
    """Pale sky, white snow with blue ridge shadows, falling flakes."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    horizon = 0.5 + 0.08 * (u[0] - 0.5)
    c.gradient(yy < horizon, (170, 185, 205), (215, 222, 232))
    snow = yy >= horizon
    c.paint(snow, (240, 243, 248))
    c.paint(snow & (np.sin((yy - 0.03 * np.sin(xx * 12 + u[1] * 6)) * 70) > 0.75), (185, 200, 228))
    c.paint(c.dots > 0.99, (255, 255, 255))
    return c.done()


def dunes(size: int, rng: np.random.Generator) -> np.ndarray:
    """An orange evening sky with a low sun over layered sand dunes."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    c.gradient(np.ones_like(yy, bool), (250, 170, 90), (250, 215, 150))
    c.paint(np.hypot(xx - (0.2 + 0.6 * u[0]), yy - 0.3) < 0.07, (255, 240, 190))
    shades = ((214, 160, 92), (196, 138, 74), (176, 118, 60))
    for k, shade in enumerate(shades):
        line = 0.45 + 0.14 * k + 0.05 * np.sin((xx + u[1 + k]) * (5 + 2 * k) * np.pi)
        c.paint(yy >= line, shade)
    return c.done()


# ---------------------------------------------------------------- townsfolk


def market(size: int, rng: np.random.Generator) -> np.ndarray:
    """A striped awning with a scalloped edge over wooden stalls, cobblestones below."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    c.fill((205, 190, 160))
    edge = 0.3 + 0.03 * np.abs(np.sin((xx + u[0]) * 40)) + 0.05 * (u[1] - 0.5)
    awning = yy < edge
    c.paint(awning, (245, 240, 230))
    c.paint(awning & (((xx + u[0]) / 0.08) % 1.0 < 0.5), (200, 40, 50))
    ground = 0.64 + 0.05 * (u[2] - 0.5)
    c.paint((yy >= edge) & (yy < ground) & (((xx + u[3]) / 0.05) % 1.0 < 0.15), (130, 90, 50))
    c.paint(yy >= ground, (140, 136, 130))
    row = np.floor((yy + u[4]) / 0.045)
    mortar = _lines(yy, 0.045, 0.008, u[4]) | _lines(xx + 0.5 * 0.06 * (row % 2), 0.06, 0.008)
    c.paint((yy >= ground) & mortar, (90, 86, 82))
    return c.done()


def harbour(size: int, rng: np.random.Generator) -> np.ndarray:
    """Hazy sky, dark blue sea with ripples, wooden pier planks in front."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    sea, pier = 0.32 + 0.06 * (u[0] - 0.5), 0.66 + 0.06 * (u[1] - 0.5)
    c.gradient(yy < sea, (180, 200, 215), (225, 228, 225))
    water = (yy >= sea) & (yy < pier)
    c.paint(water, (28, 70, 120))
    c.paint(water & (np.sin(xx * 50 + np.sin(yy * 120 + u[2] * 6) * 2) > 0.8), (90, 140, 185))
    c.paint(yy >= pier, (150, 110, 70))
    c.paint((yy >= pier) & _lines(yy, 0.05, 0.008, u[3]), (95, 65, 40))
    return c.done()


def library(size: int, rng: np.random.Generator) -> np.ndarray:
    """Dark wooden shelves full of books of many colours."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    c.fill((92, 60, 36))
    shelf = 0.2 + 0.03 * u[0]
    book = 0.03 + 0.01 * u[1]
    col = np.floor((xx + u[2]) / book).astype(int)
    row = np.floor((yy + u[3]) / shelf).astype(int)
    colour = 70 + 130 * c.colours[(col * 5 + row * 11) % _PALETTE_DRAWS]
    height = 0.55 + 0.3 * c.colours[(col * 3 + row) % _PALETTE_DRAWS, 1]
    inside = (((yy + u[3]) / shelf) % 1.0 > 1.0 - height) & (((xx + u[2]) / book) % 1.0 > 0.12)
    c.img[inside] = colour[inside]
    return c.done()


def plaza(size: int, rng: np.random.Generator) -> np.ndarray:
    """A pale wall with arched windows over a diamond-tiled sandstone floor."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    floor = 0.6 + 0.06 * (u[0] - 0.5)
    c.fill((232, 214, 180))
    ax = ((xx + u[1]) / 0.22) % 1.0 - 0.5
    arch = (np.abs(ax) < 0.22) & (yy > 0.2) & (yy < floor - 0.08)
    arch |= np.hypot(ax * 0.22, yy - 0.2) < 0.22 * 0.22
    c.paint(arch & (yy < floor - 0.08), (110, 90, 80))
    diag = np.sin((xx + yy + u[2]) * 45) * np.sin((xx - yy + u[3]) * 45) > 0
    c.paint(yy >= floor, (214, 180, 130))
    c.paint((yy >= floor) & diag, (170, 130, 90))
    return c.done()


def garden(size: int, rng: np.random.Generator) -> np.ndarray:
    """A clipped hedge with a leafy top, red flowers, an orange brick path."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    top = 0.3 + 0.025 * np.sin((xx + u[0]) * 60) + 0.05 * (u[1] - 0.5)
    c.gradient(yy < top, (150, 200, 235), (190, 220, 240))
    hedge = (yy >= top) & (yy < 0.62)
    c.paint(hedge, (40, 96, 44))
    c.paint(hedge & (c.dots > 0.9), (60, 125, 55))
    c.paint(hedge & (c.dots < 0.02), (225, 40, 50))
    path = yy >= 0.62
    c.paint(path, (196, 100, 60))
    row = np.floor(yy / 0.04)
    mortar = _lines(yy, 0.04, 0.007) | _lines(xx + 0.04 * (row % 2), 0.08, 0.007, u[2])
    c.paint(path & mortar, (230, 200, 170))
    return c.done()


def alley(size: int, rng: np.random.Generator) -> np.ndarray:
    """A red-brown brick wall with a lit window, dark asphalt below."""
    c = _Canvas(size, rng)
    u, xx, yy = c.u, c.xx, c.yy
    ground = 0.68 + 0.06 * (u[0] - 0.5)
    c.fill((150, 70, 52))
    row = np.floor((yy + u[1]) / 0.05)
    mortar = _lines(yy, 0.05, 0.01, u[1]) | _lines(xx + 0.06 * (row % 2), 0.12, 0.01, u[2])
    c.paint((yy < ground) & mortar, (200, 185, 170))
    wx = 0.15 + 0.5 * u[3]
    c.paint((xx > wx) & (xx < wx + 0.2) & (yy > 0.15) & (yy < 0.4), (250, 220, 120))
    c.paint(yy >= ground, (48, 48, 54))
    return c.done()
