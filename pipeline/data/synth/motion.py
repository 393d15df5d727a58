"""Per-frame pose tracks of the actor: where it is, how big, and the phase of each body motion.

Every oscillating body part is driven by a phase (arm swing, leg swing, body yaw, jump bounce,
sway). A static pose is a constant phase drawn from the same uniform distribution that the moving
phase sweeps, so a single frame has the same pose distribution whatever the action: only motion
tells the actions apart. Positions, scale and phases are integrals of per-frame velocities, which
keeps untrimmed videos continuous across action segments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipeline.data.synth.config import ACTIONS, ANOMALY_TYPES

if TYPE_CHECKING:  # spec.py imports the worlds, which import this module
    from pipeline.data.synth.spec import VideoSpec

# Actor height at scale 1, as a fraction of the frame size; log scale range of all videos.
ACTOR_HEIGHT = 0.55
LOG_SCALE_RANGE = (math.log(0.72), math.log(1.45))
# Band of the body centre's y (fractions of the frame size). x wraps around the frame (walkers
# leave on one side and come back on the other); y does not, so that the actor is never cut in
# two: rising and sinking are slow enough to stay in the band for a whole trimmed video.
Y_BAND = (0.5 - 0.27, 0.5 + 0.27)
# Motion magnitudes (fractions of the frame size per frame, or log-scale per frame) and periods
# in frames, all multiplied by a per-video speed factor in [0.8, 1.2].
WALK_SPEED = 0.02  # 1.28 px / frame at 64 px
RISE_SPEED = 0.01  # 0.64 px / frame at 64 px
SCALE_RATE = 0.013  # +-14% size over 10 frames
# Periods: an oscillation whose period equals the 8-frame tubelet looks the same in both time
# slots of a 16-frame clip, and a first measurement (tiny VideoMAE, tubelet 8, 2,500 supervised
# steps) confused wave / jump / turn at period 8 with each other (35-51% recall). So only the
# jump oscillates once per tubelet; wave, turn and sway take 16 frames, so that each 8-frame slot
# sees a one-way sweep (arms up or down, body narrowing or widening, moving left or right).
WALK_LEG_PERIOD = 10.0
WAVE_PERIOD = 16.0
JUMP_PERIOD = 8.0
TURN_PERIOD = 32.0  # a full rotation; the visible width repeats every half turn (16 frames)
SWAY_PERIOD = 16.0
RUN_FACTOR = 3.5
SPEED_RANGE = (0.8, 1.2)

_CHANNELS = ("x", "y", "log_s", "arm_ph", "leg_ph", "yaw_ph", "jump_ph", "sway_ph")
_TAU = 2.0 * math.pi


@dataclass
class Tracks:
    """Per-frame state (float64 arrays of length T); see render.py for how each is drawn."""

    x: np.ndarray
    """Body centre x in pixels (wraps around the frame)."""
    y: np.ndarray
    """Body centre y in pixels (does not wrap)."""
    log_s: np.ndarray
    """Log of the actor's scale."""
    arm_ph: np.ndarray
    """Arm swing phase: angle = ARM_CENTRE + ARM_AMPLITUDE * sin(phase)."""
    leg_ph: np.ndarray
    """Leg swing phase: angle = +-LEG_AMPLITUDE * sin(phase)."""
    yaw_ph: np.ndarray
    """Body rotation about the vertical axis: width = WIDTH_MIN + (1 - WIDTH_MIN) |cos(phase)|."""
    jump_ph: np.ndarray
    """Bounce: height above the resting point = JUMP_HEIGHT * |sin(phase)|."""
    sway_ph: np.ndarray
    """Sideways sway: offset = SWAY_AMPLITUDE * sin(phase)."""
    tilt: np.ndarray
    """Rotation of the whole body about the feet in the image plane (radians; falls)."""
    ox: np.ndarray
    """Extra x offset in pixels (erratic jitter), not integrated."""
    oy: np.ndarray
    """Extra y offset in pixels (erratic jitter), not integrated."""

    @property
    def num_frames(self) -> int:
        return len(self.x)


def build_tracks(
    spec: VideoSpec, size: int, state_rng: np.random.Generator, motion_rng: np.random.Generator
) -> Tracks:
    """The pose tracks of ``spec``. ``state_rng`` draws the start state (the same draws for every
    action, so two specs differing only in the action start identically); ``motion_rng`` draws
    what the motion itself needs."""
    T = spec.num_frames
    start = {
        "x": state_rng.uniform(0, size),
        "y": state_rng.uniform(Y_BAND[0] * size, Y_BAND[1] * size),
        "log_s": state_rng.uniform(*LOG_SCALE_RANGE),
        **{c: state_rng.uniform(0, _TAU) for c in _CHANNELS[3:]},
    }
    speed = state_rng.uniform(*SPEED_RANGE)
    vel = {c: np.zeros(T) for c in _CHANNELS}
    if spec.kind == "anomaly":
        return _anomaly_tracks(spec, size, start, speed, motion_rng)
    if spec.kind == "trimmed":
        _action(vel, 0, T, spec.action, speed, size)
    else:
        pos = 0
        for seg in spec.segments:
            _idle(vel, pos, seg.start, size, motion_rng)
            _action(vel, seg.start, seg.end, seg.label, speed, size)
            pos = seg.end
        _idle(vel, pos, T, size, motion_rng)
    _fit_path(vel["log_s"], start, "log_s", LOG_SCALE_RANGE)
    _fit_path(vel["y"], start, "y", (Y_BAND[0] * size, Y_BAND[1] * size))
    values = {c: start[c] + np.concatenate([[0.0], np.cumsum(vel[c][:-1])]) for c in _CHANNELS}
    zeros = np.zeros(T)
    return Tracks(**values, tilt=zeros, ox=zeros.copy(), oy=zeros.copy())


def _action(vel: dict[str, np.ndarray], a: int, b: int, action: int, speed: float, size: int):
    """Velocities of ``action`` over frames [a, b) (index k = change from frame k to k + 1)."""
    k = slice(a, b - 1)
    name = ACTIONS[action]
    v = WALK_SPEED * size * speed
    if name in ("walk_right", "walk_left"):
        vel["x"][k] += v if name == "walk_right" else -v
        vel["leg_ph"][k] += _TAU * speed / WALK_LEG_PERIOD
    elif name in ("rise", "sink"):
        vr = RISE_SPEED * size * speed
        vel["y"][k] += -vr if name == "rise" else vr
    elif name in ("approach", "retreat"):
        vel["log_s"][k] += SCALE_RATE * speed * (1 if name == "approach" else -1)
    elif name == "wave":
        vel["arm_ph"][k] += _TAU * speed / WAVE_PERIOD
    elif name == "jump":
        vel["jump_ph"][k] += math.pi * speed / JUMP_PERIOD  # |sin| repeats every pi
    elif name == "turn":
        vel["yaw_ph"][k] += _TAU * speed / TURN_PERIOD
    elif name == "sway":
        vel["sway_ph"][k] += _TAU * speed / SWAY_PERIOD
    else:  # pragma: no cover - ACTIONS and this table are kept in step by the tests
        raise ValueError(f"no motion for action {name!r}")


def _idle_signal(n: int, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A slow, smooth random wobble starting at 0 (standing and shifting one's weight)."""
    p1, p2 = rng.uniform(40, 90), rng.uniform(16, 32)
    f1, f2 = rng.uniform(0, _TAU, size=2)
    t = np.arange(n)
    s = 0.7 * np.sin(_TAU * t / p1 + f1) + 0.3 * np.sin(_TAU * t / p2 + f2)
    return amplitude * (s - s[0])


def _idle(vel: dict[str, np.ndarray], a: int, b: int, size: int, rng: np.random.Generator):
    """Idle standing over [a, b): small sideways shuffle and a little arm movement."""
    dx = np.diff(_idle_signal(b - a, rng, 0.02 * size))
    darm = np.diff(_idle_signal(b - a, rng, 0.12))
    if b - a > 1:
        vel["x"][a : b - 1] += dx
        vel["arm_ph"][a : b - 1] += darm


def _fit_path(
    velocity: np.ndarray, start: dict[str, float], channel: str, bounds: tuple[float, float]
) -> None:
    """Keep a channel inside ``bounds`` without wrapping: slow its changes down if the whole path
    spans more than the bounds, then move the start (as little as possible) so the path fits."""
    lo, hi = bounds
    path = np.concatenate([[0.0], np.cumsum(velocity[:-1])])
    span = path.max() - path.min()
    if span > hi - lo:
        velocity *= (hi - lo) / span
        path *= (hi - lo) / span
    start[channel] = float(np.clip(start[channel], lo - path.min(), hi - path.max()))


def _anomaly_tracks(
    spec: VideoSpec, size: int, start: dict[str, float], speed: float, rng: np.random.Generator
) -> Tracks:
    """Normal activity (walking back and forth along the ground, standing) and the event."""
    T = spec.num_frames
    lo, hi = LOG_SCALE_RANGE
    # Smaller actors standing on a ground line, so falls and runs stay inside the frame.
    log_s = lo + (start["log_s"] - lo) * (math.log(1.1) - lo) / (hi - lo)
    height = ACTOR_HEIGHT * size * math.exp(log_s)
    # Normal activity: alternate standing and walking pieces.
    walking = np.zeros(T, bool)
    t, walk = 0, bool(rng.integers(2))
    while t < T:
        n = int(rng.integers(24, 65) if walk else rng.integers(12, 41))
        walking[t : t + n] = walk
        t, walk = t + n, not walk
    idle_dx = np.diff(_idle_signal(T + 1, rng, 0.02 * size))
    direction = 1.0 if rng.integers(2) else -1.0
    side = 1.0 if rng.integers(2) else -1.0
    jitter = rng.uniform(-1.0, 1.0, size=(4, T))
    event = spec.segments[0] if spec.segments else None
    kind = ANOMALY_TYPES[event.label] if event else None
    in_event = np.zeros(T, bool)
    if event:
        in_event[event.start : event.end] = True

    x = np.empty(T)
    leg = np.empty(T)
    x[0], leg[0] = start["x"] * 0.6 + 0.2 * size, start["leg_ph"]
    x_lo, x_hi = 0.2 * size, 0.8 * size
    v = WALK_SPEED * size * speed
    for i in range(T - 1):
        dx, dleg = idle_dx[i], 0.0
        if in_event[i] and kind == "run":
            dx, dleg = direction * v * RUN_FACTOR, _TAU * speed * RUN_FACTOR / WALK_LEG_PERIOD
        elif in_event[i]:
            dx = 0.0
        elif walking[i]:
            dx, dleg = direction * v, _TAU * speed / WALK_LEG_PERIOD
        nx = x[i] + dx
        if nx > x_hi or nx < x_lo:  # turn round at the edges of the walkway
            direction = -direction
            nx = x[i] - dx
        x[i + 1], leg[i + 1] = nx, leg[i] + dleg

    arm = np.full(T, start["arm_ph"])
    tilt, ox, oy = np.zeros(T), np.zeros(T), np.zeros(T)
    if event and kind == "fall":
        n = event.end - event.start
        ramp = max(2, min(8, n // 3))
        tau = np.arange(n, dtype=float)
        down = np.minimum(1.0, ((tau + 1) / ramp) ** 2)  # accelerating topple
        up = np.clip((n - 1 - tau) / ramp, 0.0, 1.0)  # getting up again at the end
        tilt[event.start : event.end] = side * (math.pi / 2) * np.minimum(down, up)
    elif event and kind == "erratic":
        sl = slice(event.start, event.end)
        ox[sl] = 0.06 * size * jitter[0, sl]
        oy[sl] = 0.05 * size * jitter[1, sl]
        tilt[sl] = 0.3 * jitter[2, sl]
        arm[sl] = start["arm_ph"] + math.pi * jitter[3, sl]
    ground = 0.9 * size
    full = np.full  # constant channels
    return Tracks(
        x=x,
        y=full(T, ground - 0.5 * height),
        log_s=full(T, log_s),
        arm_ph=arm,
        leg_ph=leg,
        yaw_ph=full(T, start["yaw_ph"]),
        jump_ph=np.zeros(T),
        sway_ph=np.zeros(T),
        tilt=tilt,
        ox=ox,
        oy=oy,
    )
