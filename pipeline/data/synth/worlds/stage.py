"""Render a video of a non-default world: pose, look, a filmed backdrop and the actor on top."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.data.synth.worlds.backdrops import Painter
from pipeline.data.synth.worlds.camera import backdrop_size, draw_camera, film
from pipeline.data.synth.worlds.drawing import Colour, composite
from pipeline.data.synth.worlds.kinematics import Kinematics, Pose, build_pose

if TYPE_CHECKING:
    from pipeline.data.synth.spec import VideoSpec

Parts = list[tuple[np.ndarray, Colour]]
"""(signed distance in actor heights, colour), back to front."""


@dataclass(frozen=True)
class Body:
    """What a world's draw function gets: local coordinates of the window pixels and the pose.

    Local coordinates are in actor heights, u to the right, v down, origin at the body centre
    (feet at v = 0.5), already rotated by the placement's angle. Per-frame values are [T, 1, 1].
    """

    u: np.ndarray
    v: np.ndarray
    h: np.ndarray
    """Pixels per actor height."""
    phase: Mapping[str, np.ndarray]
    facing: np.ndarray


@dataclass(frozen=True)
class Placement:
    """Per-frame offset of the body centre (actor heights) and rotation about it (radians,
    clockwise on screen), from the pose's phases: bounces, sways, rearing, falls."""

    dx: np.ndarray
    dy: np.ndarray
    angle: np.ndarray

    def rotated(self, angle: np.ndarray, pu: np.ndarray | float, pv: np.ndarray | float):
        """This placement turned further by ``angle`` about the body point (pu, pv)."""
        a0, a1 = self.angle, self.angle + angle
        # A body point q lands on centre + R(angle) q; keeping the pivot p in place moves the
        # centre by (R(a0) - R(a1)) p.
        c0, s0, c1, s1 = np.cos(a0), np.sin(a0), np.cos(a1), np.sin(a1)
        dx = self.dx + (c0 - c1) * pu - (s0 - s1) * pv
        dy = self.dy + (s0 - s1) * pu + (c0 - c1) * pv
        return Placement(dx=dx, dy=dy, angle=a1)


@dataclass(frozen=True)
class Figure:
    """How a world draws its actor and its scenes."""

    kinematics: Kinematics
    height: float
    """Actor height (local unit) at scale 1, as a fraction of the frame size."""
    centre: tuple[float, float]
    """Body point (actor heights) at the middle of the actor's bounding box."""
    extent: tuple[float, float]
    """Half width and half height of that box, covering every pose (actor heights)."""
    backdrops: tuple[Painter, ...]
    """One painter per value of the scene attribute."""
    make_look: Callable[[Mapping[str, int], np.random.Generator], Any]
    """Appearance from the attributes; draws the same numbers whatever their values; the look
    has a ``scale`` (size jitter)."""
    place: Callable[[Pose, Any], Placement]
    draw: Callable[[Body, Any], Parts]


def streams(spec: VideoSpec) -> tuple[np.random.Generator, ...]:
    """Start state, look, motion, camera and scene: separate streams, so that another attribute
    or action leaves every other draw alone."""
    seq = np.random.SeedSequence(spec.seed)
    return tuple(np.random.default_rng(s) for s in seq.spawn(5))


def pose_of(figure: Figure, spec: VideoSpec, size: int) -> Pose:
    """The pose tracks of ``spec`` (the same draws as rendering it)."""
    state_rng, _, motion_rng, _, _ = streams(spec)
    return build_pose(figure.kinematics, spec, size, state_rng, motion_rng)


def render(figure: Figure, spec: VideoSpec, size: int, actor: bool = True) -> np.ndarray:
    """uint8 [T, size, size, 3] frames of ``spec`` (without the actor: the filmed scene alone,
    exactly as it shows around the actor)."""
    state_rng, look_rng, motion_rng, camera_rng, scene_rng = streams(spec)
    pose = build_pose(figure.kinematics, spec, size, state_rng, motion_rng)
    attrs = spec.attrs
    look = figure.make_look(attrs, look_rng)
    camera = draw_camera(camera_rng, spec.num_frames, size)
    backdrop = figure.backdrops[attrs["scene"]](backdrop_size(size), scene_rng)
    n = spec.num_frames * size * size
    flat = np.empty((3, n + 1), np.uint8)
    flat[:, n] = 0  # a scratch element (see composite)
    film(backdrop, camera, size, out=flat[:, :n])
    if not actor:
        nowhere = np.zeros((spec.num_frames, 1), np.int64)
        return composite(flat, size, [], nowhere, nowhere, np.ones(spec.num_frames))
    return draw_actor(figure, pose, look, flat, size, camera.dx, camera.dy)


def draw_actor(
    figure: Figure,
    pose: Pose,
    look: Any,
    flat: np.ndarray,
    size: int,
    cam_dx: np.ndarray,
    cam_dy: np.ndarray,
) -> np.ndarray:
    """Composite the actor over the background ``flat`` (as drawing.composite takes it; the
    camera moves the actor too); uint8 [T, size, size, 3] frames."""
    T = pose.num_frames
    f32 = np.float32
    h = figure.height * size * look.scale * np.exp(pose.log_s)
    place = figure.place(pose, look)
    cx = pose.x + pose.ox - cam_dx + place.dx * h
    cy = pose.y + pose.oy - cam_dy + place.dy * h - (0.5 * h if pose.grounded else 0.0)
    # Only a window around the actor is drawn: the (rotated) bounding box about its centre. x
    # wraps around the frame, y does not.
    cos, sin = np.cos(place.angle), np.sin(place.angle)
    (bu, bv), (ex, ey) = figure.centre, figure.extent
    wx = cx + h * (cos * bu - sin * bv)
    wy = cy + h * (sin * bu + cos * bv)
    half_w = h * (np.abs(cos) * ex + np.abs(sin) * ey) + 2.0
    half_h = h * (np.abs(sin) * ex + np.abs(cos) * ey) + 2.0
    win_x = min(size, 2 * math.ceil(float(np.max(half_w))) + 1)
    win_y = 2 * math.ceil(float(np.max(half_h))) + 1
    px = (np.floor(wx).astype(np.int64) - win_x // 2)[:, None] + np.arange(win_x)
    py = (np.floor(wy).astype(np.int64) - win_y // 2)[:, None] + np.arange(win_y)
    dx = ((px + 0.5 - cx[:, None]) / h[:, None]).astype(f32)[:, None, :]
    dy = ((py + 0.5 - cy[:, None]) / h[:, None]).astype(f32)[:, :, None]
    if np.any(place.angle != 0):
        c, s = cos.astype(f32)[:, None, None], sin.astype(f32)[:, None, None]
        u, v = c * dx + s * dy, -s * dx + c * dy
    else:
        u, v = dx, dy

    def col(a: np.ndarray) -> np.ndarray:  # per-frame values, broadcastable over the window
        return np.asarray(a, f32).reshape(T, 1, 1)

    body = Body(
        u=u,
        v=v,
        h=col(h),
        phase={k: col(p) for k, p in pose.phases.items()},
        facing=col(pose.facing),
    )
    return composite(flat, size, figure.draw(body, look), px, py, to_px=h)
