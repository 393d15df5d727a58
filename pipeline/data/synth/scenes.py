"""Backgrounds of the six scenes: distinct colour layouts and textures, jittered per video."""

from __future__ import annotations

import numpy as np

# Draws per background, whatever the scene, so that a video's other draws never depend on it.
_NUM_UNIFORMS = 8


def render_background(scene: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A static float32 [size, size, 3] background (0..255) of ``scene`` with per-video jitter."""
    u = rng.random(_NUM_UNIFORMS)
    tint = 1.0 + 0.06 * rng.standard_normal(3)
    noise = rng.standard_normal((size, size, 1)).astype(np.float32) * 2.5
    stars = rng.random((size, size))
    yy, xx = np.meshgrid(
        (np.arange(size) + 0.5) / size, (np.arange(size) + 0.5) / size, indexing="ij"
    )
    img = np.empty((size, size, 3), np.float32)

    def paint(mask: np.ndarray, colour: tuple[float, float, float]) -> None:
        img[mask] = colour

    if scene == 0:  # street: building wall with a window grid above, road with lane dashes
        horizon = 0.55 + 0.1 * (u[0] - 0.5)
        paint(yy < horizon, (170, 160, 150))
        cell = 0.22 + 0.04 * u[1]
        cx, cy = ((xx + u[2]) / cell) % 1.0, ((yy + u[3]) / cell) % 1.0
        paint(
            (yy < horizon - 0.04) & (cx > 0.2) & (cx < 0.8) & (cy > 0.25) & (cy < 0.8), (55, 65, 90)
        )
        paint(yy >= horizon, (85, 85, 90))
        lane = horizon + 0.55 * (1.0 - horizon)
        paint((np.abs(yy - lane) < 0.025) & (((xx * 3.0 + u[4]) % 1.0) < 0.5), (230, 230, 215))
    elif scene == 1:  # park: blue sky, green grass, dark bushes on the horizon
        horizon = 0.5 + 0.1 * (u[0] - 0.5)
        img[:] = np.array([140, 200, 240], np.float32) * (1.0 - 0.25 * yy[..., None])
        paint(yy >= horizon, (70, 150, 55))
        for k in range(3):
            bx = (u[1 + k] + k / 3.0) % 1.0
            d = np.hypot(np.minimum(np.abs(xx - bx), 1 - np.abs(xx - bx)), (yy - horizon) * 1.4)
            paint(d < 0.11 + 0.03 * u[4], (35, 100, 40))
    elif scene == 2:  # beach: sky, sea band with light wave lines, sand
        sea, sand = 0.33 + 0.08 * (u[0] - 0.5), 0.56 + 0.08 * (u[1] - 0.5)
        paint(yy < sea, (150, 205, 245))
        paint((yy >= sea) & (yy < sand), (30, 100, 175))
        waves = (yy >= sea) & (yy < sand) & (np.sin((xx * 9 + yy * 30 + u[2] * 6.28) * 2) > 0.85)
        paint(waves, (120, 175, 220))
        paint(yy >= sand, (230, 205, 145))
    elif scene == 3:  # office: beige wall with a window, wooden floor with planks
        floor = 0.7 + 0.08 * (u[0] - 0.5)
        paint(yy < floor, (215, 205, 180))
        wx = 0.08 + 0.5 * u[1]
        frame = (xx > wx) & (xx < wx + 0.36) & (yy > 0.1) & (yy < 0.47)
        paint(frame, (90, 80, 70))
        paint((xx > wx + 0.03) & (xx < wx + 0.33) & (yy > 0.13) & (yy < 0.44), (170, 210, 235))
        paint(yy >= floor, (125, 85, 50))
        paint((yy >= floor) & (((xx + u[2]) / 0.12) % 1.0 < 0.12), (90, 60, 35))
    elif scene == 4:  # night: dark navy sky with stars and a moon, black ground
        img[:] = np.array([18, 22, 55], np.float32) * (1.0 + 0.6 * yy[..., None])
        paint(stars > 0.985, (230, 230, 240))
        mx, my = 0.15 + 0.7 * u[1], 0.1 + 0.2 * u[2]
        paint(np.hypot(xx - mx, yy - my) < 0.08, (240, 230, 160))
        paint(yy >= 0.8 + 0.06 * (u[0] - 0.5), (35, 35, 40))
    elif scene == 5:  # kitchen: white / teal checkerboard tiles
        tile = 0.125 * (1.0 + 0.2 * (u[0] - 0.5))
        check = ((np.floor((xx + u[1]) / tile) + np.floor((yy + u[2]) / tile)) % 2) == 0
        img[:] = (235, 235, 230)
        paint(check, (40, 140, 140))
    else:
        raise ValueError(f"scene {scene} out of range")
    img *= tint.astype(np.float32)
    img += noise
    return np.clip(img, 0.0, 255.0)
