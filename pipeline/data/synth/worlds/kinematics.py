"""Motion primitives of the non-default worlds: travel, climb, scale and part oscillations."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

# The default world's idle wobble (standing and shifting one's weight).
from pipeline.data.synth.motion import _idle_signal

if TYPE_CHECKING:
    from pipeline.data.synth.spec import VideoSpec

# An action is a sum of constant per-frame velocities of some channels: position (x, y, "fwd" =
# x along the actor's facing), log scale, and phases that the world's renderer turns into part
# motion (a swinging limb, a bob, a width oscillation...). As in motion.py, every phase starts
# uniform in [0, 2 pi) and positions uniform in their band, so a single frame has the same pose
# distribution whatever the action: only motion tells the actions apart.
TAU = 2.0 * math.pi
SPEED_RANGE = (0.8, 1.2)
POSITION_CHANNELS = ("x", "y", "log_s")


def cycle(period: float) -> float:
    """Phase velocity (radians per frame) of an oscillation of ``period`` frames."""
    return TAU / period


def bounce(period: float) -> float:
    """Phase velocity of a |sin| bounce repeating every ``period`` frames."""
    return math.pi / period


@dataclass(frozen=True)
class Action:
    """One motion class: channel -> velocity at speed 1 (x, y and fwd in frame sizes per frame,
    log_s per frame, phases in radians per frame)."""

    name: str
    moves: Mapping[str, float]


@dataclass(frozen=True)
class Kinematics:
    """A world's motion vocabulary and the ranges its actors move in."""

    actions: tuple[Action, ...]
    phases: tuple[str, ...]
    """Phase channels the renderer reads (each uniform at the start)."""
    y_band: tuple[float, float]
    """Band of the body centre's y, as fractions of the frame size (x wraps, y does not)."""
    log_scale_range: tuple[float, float]
    idle_phase: str
    """The phase that wobbles a little while the actor idles (untrimmed videos)."""
    gait: str
    """The phase that walking and running advance (anomaly videos)."""
    gait_period: float
    walk_speed: float
    """Walking speed of the anomaly videos' normal activity, frame sizes per frame."""
    anomaly_scale: float = 1.0
    """Largest scale of anomaly videos (smaller actors on a ground line)."""
    ground: float = 0.9
    """y of the feet (local v = 0.5) in anomaly videos, as a fraction of the frame size."""
    run_factor: float = 3.5
    fall_angle: float = math.pi / 2
    """Largest tilt of the fall-like event (radians)."""
    erratic_phase: str = ""
    """A phase thrown about during the erratic event (besides position and tilt jitter)."""

    @property
    def action_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.actions)


@dataclass
class Pose:
    """Per-frame state of one video (float64 arrays of length T)."""

    x: np.ndarray
    """Body centre x in pixels (wraps around the frame)."""
    y: np.ndarray
    """Body centre y in pixels."""
    log_s: np.ndarray
    """Log of the actor's scale."""
    phases: dict[str, np.ndarray]
    """Phase channel -> radians."""
    facing: np.ndarray
    """+1 facing right, -1 facing left (only side-view actors show it)."""
    tilt: np.ndarray
    """Fall-like event: rotation of the whole actor (radians, clockwise on screen)."""
    ox: np.ndarray
    """Extra x offset in pixels (erratic jitter), not integrated."""
    oy: np.ndarray
    """Extra y offset in pixels (erratic jitter), not integrated."""
    grounded: bool = False
    """y is the ground line (the feet, local v = 0.5), not the body centre (anomaly videos)."""

    @property
    def num_frames(self) -> int:
        return len(self.x)


def build_pose(
    kin: Kinematics,
    spec: VideoSpec,
    size: int,
    state_rng: np.random.Generator,
    motion_rng: np.random.Generator,
) -> Pose:
    """The pose of ``spec``: ``state_rng`` draws the start (the same draws for every action),
    ``motion_rng`` what idling and anomalies need."""
    T = spec.num_frames
    lo_y, hi_y = kin.y_band[0] * size, kin.y_band[1] * size
    start = {
        "x": state_rng.uniform(0, size),
        "y": state_rng.uniform(lo_y, hi_y),
        "log_s": state_rng.uniform(*kin.log_scale_range),
        **{c: state_rng.uniform(0, TAU) for c in kin.phases},
    }
    facing = 1.0 if state_rng.integers(2) else -1.0
    speed = state_rng.uniform(*SPEED_RANGE)
    if spec.kind == "anomaly":
        return _anomaly_pose(kin, spec, size, start, facing, speed, motion_rng)
    channels = POSITION_CHANNELS + kin.phases
    vel = {c: np.zeros(T) for c in channels}
    if spec.kind == "trimmed":
        _action(kin, vel, 0, T, spec.action, speed, size, facing)
    else:
        pos = 0
        for seg in spec.segments:
            _idle(kin, vel, pos, seg.start, size, motion_rng)
            _action(kin, vel, seg.start, seg.end, seg.label, speed, size, facing)
            pos = seg.end
        _idle(kin, vel, pos, T, size, motion_rng)
    _fit_path(vel["log_s"], start, "log_s", kin.log_scale_range)
    _fit_path(vel["y"], start, "y", (lo_y, hi_y))
    values = {c: start[c] + np.concatenate([[0.0], np.cumsum(vel[c][:-1])]) for c in channels}
    zeros = np.zeros(T)
    return Pose(
        x=values["x"],
        y=values["y"],
        log_s=values["log_s"],
        phases={c: values[c] for c in kin.phases},
        facing=np.full(T, facing),
        tilt=zeros,
        ox=zeros.copy(),
        oy=zeros.copy(),
    )


def _fit_path(
    velocity: np.ndarray, start: dict[str, float], channel: str, bounds: tuple[float, float]
) -> None:
    """Keep a channel inside ``bounds`` without wrapping: slow its changes down if the whole path
    spans more than the bounds, then map the start (uniform in the bounds) to a uniform place
    among the starts that keep the path inside. Unlike clipping the start (the default world's
    way, which piles growing paths up at the top), frames of a moving path then have the same
    mean as frames of a still one: a single frame does not tell growing from shrinking."""
    lo, hi = bounds
    path = np.concatenate([[0.0], np.cumsum(velocity[:-1])])
    span = path.max() - path.min()
    if span > hi - lo:
        velocity *= (hi - lo) / span
        path *= (hi - lo) / span
    first, last = lo - path.min(), hi - path.max()
    start[channel] = float(first + (start[channel] - lo) / (hi - lo) * (last - first))


def _action(
    kin: Kinematics,
    vel: dict[str, np.ndarray],
    a: int,
    b: int,
    action: int,
    speed: float,
    size: int,
    facing: float,
) -> None:
    """Velocities of ``action`` over frames [a, b) (index k = change from frame k to k + 1)."""
    k = slice(a, b - 1)
    for channel, rate in kin.actions[action].moves.items():
        if channel == "fwd":
            vel["x"][k] += rate * size * speed * facing
        elif channel in ("x", "y"):
            vel[channel][k] += rate * size * speed
        else:
            vel[channel][k] += rate * speed


def _idle(
    kin: Kinematics,
    vel: dict[str, np.ndarray],
    a: int,
    b: int,
    size: int,
    rng: np.random.Generator,
) -> None:
    """Idling over [a, b): a small sideways shuffle and a little movement of one part."""
    dx = np.diff(_idle_signal(b - a, rng, 0.02 * size))
    dph = np.diff(_idle_signal(b - a, rng, 0.12))
    if b - a > 1:
        vel["x"][a : b - 1] += dx
        vel[kin.idle_phase][a : b - 1] += dph


def _anomaly_pose(
    kin: Kinematics,
    spec: VideoSpec,
    size: int,
    start: dict[str, float],
    facing: float,
    speed: float,
    rng: np.random.Generator,
) -> Pose:
    """Normal activity (walking back and forth along the ground, standing) and the event.

    Events by position in the world's anomaly types: 0 fall-like (tilt to kin.fall_angle and
    back), 1 erratic (position, tilt and one phase thrown about), 2 a run (kin.run_factor times
    the walking speed).
    """
    T = spec.num_frames
    lo, hi = kin.log_scale_range
    log_s = lo + (start["log_s"] - lo) * (math.log(kin.anomaly_scale) - lo) / (hi - lo)
    walking = np.zeros(T, bool)
    t, walk = 0, bool(rng.integers(2))
    while t < T:
        n = int(rng.integers(24, 65) if walk else rng.integers(12, 41))
        walking[t : t + n] = walk
        t, walk = t + n, not walk
    idle_dx = np.diff(_idle_signal(T + 1, rng, 0.02 * size))
    direction = facing
    side = 1.0 if rng.integers(2) else -1.0
    jitter = rng.uniform(-1.0, 1.0, size=(4, T))
    event = spec.segments[0] if spec.segments else None
    kind = event.label if event else -1
    in_event = np.zeros(T, bool)
    if event:
        in_event[event.start : event.end] = True

    x, gait, face = np.empty(T), np.empty(T), np.empty(T)
    x[0], gait[0] = start["x"] * 0.6 + 0.2 * size, start[kin.gait]
    x_lo, x_hi = 0.2 * size, 0.8 * size
    v = kin.walk_speed * size * speed
    step = TAU * speed / kin.gait_period
    for i in range(T - 1):
        face[i] = direction
        dx, dg = idle_dx[i], 0.0
        if in_event[i] and kind == 2:
            dx, dg = direction * v * kin.run_factor, step * kin.run_factor
        elif in_event[i]:
            dx = 0.0
        elif walking[i]:
            dx, dg = direction * v, step
        nx = x[i] + dx
        if nx > x_hi or nx < x_lo:  # turn round at the edges of the walkway
            direction = -direction
            nx = x[i] - dx
        x[i + 1], gait[i + 1] = nx, gait[i] + dg
    face[T - 1] = direction

    phases = {c: np.full(T, start[c]) for c in kin.phases}
    phases[kin.gait] = gait
    tilt, ox, oy = np.zeros(T), np.zeros(T), np.zeros(T)
    if event and kind == 0:
        n = event.end - event.start
        ramp = max(2, min(8, n // 3))
        tau = np.arange(n, dtype=float)
        down = np.minimum(1.0, ((tau + 1) / ramp) ** 2)  # accelerating topple
        up = np.clip((n - 1 - tau) / ramp, 0.0, 1.0)  # getting up again at the end
        tilt[event.start : event.end] = side * kin.fall_angle * np.minimum(down, up)
    elif event and kind == 1:
        sl = slice(event.start, event.end)
        ox[sl] = 0.06 * size * jitter[0, sl]
        oy[sl] = 0.05 * size * jitter[1, sl]
        tilt[sl] = 0.3 * jitter[2, sl]
        if kin.erratic_phase:
            phases[kin.erratic_phase][sl] += math.pi * jitter[3, sl]
    return Pose(
        x=x,
        y=np.full(T, kin.ground * size),
        log_s=np.full(T, log_s),
        phases=phases,
        facing=face,
        tilt=tilt,
        ox=ox,
        oy=oy,
        grounded=True,
    )
