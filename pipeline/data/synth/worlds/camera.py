"""Camera motion of the non-default worlds: a slow pan, a slow zoom and a little shake."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TAU = 2.0 * math.pi
MARGIN = 1.4
"""Backdrops are painted this much larger than the frame, so a panned view never leaves them."""
PAN_AMPLITUDE = 0.12
"""Largest pan offset, a fraction of the frame size (sinusoidal, periods of 150-300 frames)."""
ZOOM_AMPLITUDE = 0.08
"""Largest zoom-in of the backdrop (1.08x)."""
SHAKE_AMPLITUDE = 0.005
"""Largest hand-held shake, a fraction of the frame size (0.3 px at 64 px)."""


@dataclass(frozen=True)
class CameraPath:
    """Where the camera looks in each frame, relative to the backdrop's centre."""

    dx: np.ndarray
    """[T] pan in pixels (positive: the view moves right, the scene moves left)."""
    dy: np.ndarray
    """[T] pan in pixels (positive: the view moves down)."""
    zoom: np.ndarray
    """[T] magnification of the backdrop (>= 1)."""


def draw_camera(rng: np.random.Generator, num_frames: int, size: int) -> CameraPath:
    """A smooth camera path: always the same number of draws, whatever the video."""
    u = rng.uniform(0.0, 1.0, size=12)
    t = np.arange(num_frames, dtype=float)
    pan = PAN_AMPLITUDE * size * u[0]
    period = 150.0 + 150.0 * u[1]
    dx = pan * np.sin(TAU * (t / period + u[2]))
    dy = 0.3 * pan * np.sin(TAU * (t / (1.3 * period) + u[3]))
    zoom = 1.0 + ZOOM_AMPLITUDE * u[4] * (
        0.5 + 0.5 * np.sin(TAU * (t / (200.0 + 100 * u[5]) + u[6]))
    )
    shake = SHAKE_AMPLITUDE * size * u[7]
    dx = dx + shake * np.sin(TAU * (t / (5.0 + 4.0 * u[8]) + u[9]))
    dy = dy + shake * np.sin(TAU * (t / (5.0 + 4.0 * u[10]) + u[11]))
    return CameraPath(dx=dx, dy=dy, zoom=zoom)


def backdrop_size(size: int) -> int:
    """Side of the painted backdrop for frames of ``size`` pixels."""
    return math.ceil(MARGIN * size) + 2


SUBPIXELS = 4
"""Views are sampled at quarter-pixel positions from precomputed shifted copies of the backdrop:
one gather per channel instead of four plus the blending, and no visible difference."""


def film(backdrop: np.ndarray, camera: CameraPath, size: int, out: np.ndarray) -> None:
    """Write the views of the float32 [M, M, 3] ``backdrop`` along ``camera`` into ``out``,
    uint8 [3, T * size * size] (channel first, frame-major rows of ``size`` pixels)."""
    M, Q, S = backdrop.shape[0], SUBPIXELS, size
    m = M - 1
    # Shifted copies V[c, qy, qx] = backdrop sampled at (row + qy / Q, col + qx / Q).
    B = backdrop.transpose(2, 0, 1)
    w = (np.arange(Q, dtype=np.float32) / Q)[None, :, None, None]
    left, right = B[:, None, :, :-1], B[:, None, :, 1:]
    across = left + w * (right - left)  # [3, Q(qx), M, m]
    top, bottom = across[:, None, :, :-1], across[:, None, :, 1:]
    versions = top + w[:, :, None] * (bottom - top)  # [3, Q, Q, m, m]
    # Bytes, not floats: a quarter of the memory traffic for what is a byte image in the end.
    versions = np.rint(np.clip(versions, 0.0, 255.0)).astype(np.uint8).reshape(3, -1)
    offsets = np.arange(S) + 0.5 - 0.5 * S

    def taps(shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        src = 0.5 * M + offsets[None, :] / camera.zoom[:, None] + shift[:, None] - 0.5
        q = np.rint(np.clip(src, 0.0, m - 1.0) * Q).astype(np.int64)
        return q // Q, q % Q

    iy, fy = taps(camera.dy)  # [T, S]
    ix, fx = taps(camera.dx)
    row = fy * (Q * m * m) + iy * m
    col = fx * (m * m) + ix
    idx = (row[:, :, None] + col[:, None, :]).reshape(-1)
    for c in range(3):
        # mode="clip" (the indices are in range anyway): "raise" buffers the whole output.
        np.take(versions[c], idx, out=out[c], mode="clip")
