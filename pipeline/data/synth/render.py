"""Numpy renderer: an anti-aliased stick-and-blob actor (signed distance fields) on a scene."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.data.synth.motion import ACTOR_HEIGHT, Tracks, build_tracks
from pipeline.data.synth.scenes import render_background
from pipeline.data.synth.shapes import capsule as _capsule
from pipeline.data.synth.shapes import round_box as _round_box
from pipeline.data.synth.shapes import taper as _taper

if TYPE_CHECKING:  # spec.py imports the worlds, which import this module
    from pipeline.data.synth.spec import VideoSpec

# Pose -> geometry. Static poses are drawn from the same ranges (see motion.py).
ARM_CENTRE, ARM_AMPLITUDE = 1.35, 1.15  # radians from hanging down: 0.2 (down) .. 2.5 (raised)
LEG_AMPLITUDE = 0.45  # radians, scissor swing of the legs
WIDTH_MIN = 0.4  # body width seen edge-on, relative to facing the camera
SWAY_AMPLITUDE = 0.10  # fraction of the frame size
JUMP_HEIGHT = 0.12  # fraction of the frame size

# Large, saturated, well separated colours: a tiny encoder at 64 px must be able to see them
# (FINDINGS #2).
SKIN_COLOURS = ((240, 205, 175), (205, 155, 105), (140, 90, 55), (80, 50, 35))
CLOTHING_COLOURS = ((215, 40, 40), (40, 170, 60), (40, 70, 210), (235, 210, 40))
TROUSERS_COLOUR = (45, 55, 80)
HAT_COLOUR = (115, 45, 145)
OUTLINE_COLOUR = (15, 15, 15)
OUTLINE_STRENGTH = 0.45

# Body geometry in units of the actor's height (y down, origin near the waist), per gender:
# gender 0 broad shoulders, narrow hips, trousers; gender 1 narrow shoulders, wide flared skirt.
_HEAD_Y, _HEAD_R = -0.32, 0.15
_SHOULDER_Y, _ARM_Y, _ARM_LEN = -0.20, -0.17, 0.33
_HIP_Y, _LEG_LEN = 0.08, 0.37
_BODY = (
    # shoulder half width, hip half width, torso bottom, arm joint x, arm r, hand r,
    # leg joint x, leg r, skirt (top, bottom, top half width, hem half width) or None
    (0.21, 0.12, 0.08, 0.18, 0.05, 0.06, 0.07, 0.055, None),
    (0.13, 0.10, 0.02, 0.11, 0.04, 0.055, 0.055, 0.035, (0.0, 0.30, 0.10, 0.27)),
)


@dataclass(frozen=True)
class Look:
    """What the actor and scene of one video look like (attributes plus identity jitter)."""

    height: float
    """Actor height in pixels at scale 1 (with the +-10% size jitter)."""
    width: float
    """Body width factor (build jitter)."""
    gender: int
    """Body shape: 0 broad shoulders and trousers, 1 narrow shoulders and a wide skirt."""
    hat: bool
    """Whether the actor wears the wide-brimmed hat."""
    skin: np.ndarray
    """RGB (0..255) of head, arms and hands (and legs below the skirt)."""
    cloth: np.ndarray
    """RGB of the torso (and skirt)."""
    legs: np.ndarray
    """RGB of the legs: trousers, or skin under a skirt."""
    hat_colour: np.ndarray
    """RGB of the hat."""
    background: np.ndarray
    """float32 [size, size, 3] static scene."""


@dataclass(frozen=True)
class RenderedVideo:
    """Frames of one video with its labels."""

    frames: np.ndarray
    """uint8 [T, H, W, 3] RGB."""
    spec: VideoSpec
    """The spec it was rendered from (labels: action, attributes, segments, anomalous)."""

    @property
    def labels(self) -> dict[str, Any]:
        """The video's labels as in its manifest row (without path and fps)."""
        row = self.spec.manifest_row(path="", fps=float("nan"))
        for key in ("path", "fps"):
            row.pop(key)
        return row


def make_look(spec: VideoSpec, size: int, rng: np.random.Generator) -> Look:
    """The appearance of ``spec``; draws the same numbers whatever the attribute values."""
    attrs = spec.attrs
    size_jitter, width_jitter = rng.uniform(0.9, 1.1), rng.uniform(0.93, 1.07)
    jitter = rng.uniform(-1.0, 1.0, size=(5, 3))

    skin = np.asarray(SKIN_COLOURS[attrs["skin"]], np.float32)
    skin = skin + 8.0 * jitter[0, 0] + 4.0 * jitter[1]  # brightness and a little hue
    cloth = np.asarray(CLOTHING_COLOURS[attrs["clothing"]], np.float32) + 14.0 * jitter[2]
    legs = np.asarray(TROUSERS_COLOUR, np.float32) + 10.0 * jitter[3]
    hat = np.asarray(HAT_COLOUR, np.float32) + 12.0 * jitter[4]
    background = render_background(attrs["scene"], size, rng)
    return Look(
        height=ACTOR_HEIGHT * size * size_jitter,
        width=width_jitter,
        gender=attrs["gender"],
        hat=bool(attrs["hat"]),
        skin=np.clip(skin, 0, 255),
        cloth=np.clip(cloth, 0, 255),
        legs=np.clip(legs, 0, 255) if attrs["gender"] == 0 else np.clip(skin, 0, 255),
        hat_colour=np.clip(hat, 0, 255),
        background=background,
    )


def render_video(spec: VideoSpec, frame_size: int = 64) -> RenderedVideo:
    """Render ``spec`` in memory: uint8 [T, frame_size, frame_size, 3] frames and its labels."""
    from pipeline.data.synth.worlds import get_world  # the worlds import this module

    return RenderedVideo(frames=get_world(spec.world).render(spec, frame_size), spec=spec)


def default_tracks(spec: VideoSpec, frame_size: int = 64) -> Tracks:
    """The default world's pose tracks of ``spec`` (the same RNG streams as its rendering)."""
    state_rng, _, motion_rng = _streams(spec)
    return build_tracks(spec, frame_size, state_rng, motion_rng)


def render_default(spec: VideoSpec, frame_size: int = 64) -> np.ndarray:
    """The default world's frames of ``spec``: uint8 [T, frame_size, frame_size, 3]."""
    state_rng, look_rng, motion_rng = _streams(spec)
    tracks = build_tracks(spec, frame_size, state_rng, motion_rng)
    look = make_look(spec, frame_size, look_rng)
    return render_frames(tracks, look, frame_size)


def _streams(spec: VideoSpec) -> tuple[np.random.Generator, ...]:
    # Start state, appearance and motion draw from separate streams: a spec with another
    # attribute or action renders the same jitter and the same start.
    seq = np.random.SeedSequence(spec.seed)
    return tuple(np.random.default_rng(s) for s in seq.spawn(3))


def render_frames(tracks: Tracks, look: Look, size: int) -> np.ndarray:
    """Draw the actor described by ``tracks`` over the look's background."""
    T = tracks.num_frames
    f32 = np.float32
    h = look.height * np.exp(tracks.log_s)
    width = WIDTH_MIN + (1.0 - WIDTH_MIN) * np.abs(np.cos(tracks.yaw_ph))
    tilt = tracks.tilt
    tilted = bool(np.any(tilt != 0))
    cx = tracks.x + SWAY_AMPLITUDE * size * np.sin(tracks.sway_ph) + tracks.ox
    cy = tracks.y - JUMP_HEIGHT * size * np.abs(np.sin(tracks.jump_ph)) + tracks.oy
    # A fall rotates the body about its feet (0.5 h below the centre).
    cx = cx + 0.5 * h * np.sin(tilt)
    cy = cy + 0.5 * h * (1.0 - np.cos(tilt))
    (sh_w, hip_w, torso_bottom, arm_x, arm_r, hand_r, leg_x, leg_r, skirt) = _BODY[look.gender]
    theta = ARM_CENTRE + ARM_AMPLITUDE * np.sin(tracks.arm_ph)
    beta = LEG_AMPLITUDE * np.sin(tracks.leg_ph)

    # Only a window around the actor is drawn. x wraps around the frame (an actor walking out on
    # the right comes back on the left; a window is never wider than the frame); y does not:
    # rows outside the frame land in padding that is cut off at the end.
    if tilted:
        half_w = half_h = 0.62 * h + 2.0
    else:
        reach = np.maximum.reduce(
            [
                arm_x + _ARM_LEN * np.abs(np.sin(theta)) + hand_r,
                leg_x + _LEG_LEN * np.abs(np.sin(beta)) + leg_r,
                np.full(T, 0.28),  # hat brim, skirt hem, shoulders
            ]
        )
        half_w = reach * width * look.width * h + 2.0
        half_h = 0.56 * h + 2.0
    win_x = min(size, 2 * math.ceil(float(half_w.max())) + 1)
    win_y = 2 * math.ceil(float(half_h.max())) + 1
    px = (np.floor(cx).astype(np.int64) - win_x // 2)[:, None] + np.arange(win_x)  # [T, win_x]
    py = (np.floor(cy).astype(np.int64) - win_y // 2)[:, None] + np.arange(win_y)  # [T, win_y]
    dx = ((px + 0.5 - cx[:, None]) / h[:, None]).astype(f32)[:, None, :]  # [T, 1, win_x]
    dy = ((py + 0.5 - cy[:, None]) / h[:, None]).astype(f32)[:, :, None]  # [T, win_y, 1]
    if tilted:
        c, s = np.cos(tilt).astype(f32)[:, None, None], np.sin(tilt).astype(f32)[:, None, None]
        u, v = c * dx + s * dy, -s * dx + c * dy
    else:
        u, v = dx, dy  # broadcast against each other: cheap until they meet
    w = width.astype(f32)[:, None, None]
    u = u / (w * f32(look.width))
    au = np.abs(u)
    # Distances are in units of the actor height; this turns them into (about) pixels.
    to_px = h.astype(f32)[:, None, None] * np.sqrt(w)

    # Legs: a scissor swing about the hips.
    beta = beta.astype(f32)[:, None, None]
    sb, cb = np.sin(beta) * _LEG_LEN, np.cos(beta) * _LEG_LEN
    legs = np.minimum(
        _capsule(u, v, -leg_x, _HIP_Y, -leg_x + sb, _HIP_Y + cb, leg_r),
        _capsule(u, v, leg_x, _HIP_Y, leg_x - sb, _HIP_Y + cb, leg_r),
    )
    torso = _taper(au, v, _SHOULDER_Y, torso_bottom, sh_w, hip_w)
    if skirt is not None:
        torso = np.minimum(torso, _taper(au, v, skirt[0], skirt[1], skirt[2], skirt[3]))
    # Arms mirror each other, so one capsule on |u| draws both.
    theta = theta.astype(f32)[:, None, None]
    hand_x, hand_y = arm_x + _ARM_LEN * np.sin(theta), _ARM_Y + _ARM_LEN * np.cos(theta)
    skin = np.minimum(
        _capsule(au, v, arm_x, _ARM_Y, hand_x, hand_y, arm_r),
        np.hypot(au - hand_x, v - hand_y) - hand_r,
    )
    skin = np.minimum(skin, np.hypot(au, v - _HEAD_Y) - _HEAD_R)
    parts = [(legs, look.legs), (torso, look.cloth), (skin, look.skin)]
    if look.hat:
        hat = np.minimum(
            _round_box(au, v, -0.40, 0.27, 0.03, 0.02),
            _round_box(au, v, -0.48, 0.14, 0.075, 0.02),
        )
        parts.append((hat, look.hat_colour))

    # Coverage (anti-aliased) of each part; a dark rim around the whole silhouette keeps the
    # actor apart from same-coloured backgrounds. Composited front to back in one go.
    alphas, colours, union = [], [], None
    for sd, colour in parts:
        sd = sd * to_px
        union = sd if union is None else np.minimum(union, sd)
        alphas.append(np.clip(0.5 - sd, 0.0, 1.0))
        colours.append(colour)
    rim = np.clip(0.5 - union, 0.0, 1.0) - np.clip(-0.5 - union, 0.0, 1.0)
    alphas.append(OUTLINE_STRENGTH * rim)
    colours.append(np.asarray(OUTLINE_COLOUR, f32))
    through = np.ones_like(union)
    weights = []
    for alpha in reversed(alphas):
        weights.append(alpha * through)
        through *= 1.0 - alpha
    palette = np.stack(colours[::-1]).astype(f32)  # [parts, 3], front first like weights

    pad = win_y + 1
    background = np.zeros((size + 2 * pad, size, 3), f32)
    background[pad : pad + size] = look.background
    rows = np.clip(py + pad, 0, size + 2 * pad - 1)[:, :, None]
    cols = (px % size)[:, None, :]
    img = background[rows, cols] * through[..., None] + np.stack(weights, axis=-1) @ palette
    canvas = np.broadcast_to(np.rint(background).astype(np.uint8), (T, *background.shape)).copy()
    canvas[np.arange(T)[:, None, None], rows, cols] = np.rint(np.clip(img, 0.0, 255.0))
    return canvas[:, pad : pad + size]
