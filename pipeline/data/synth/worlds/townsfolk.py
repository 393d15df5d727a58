"""Townsfolk: peg-doll people (front view) in patterned tunics, with a scarf and eyewear."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pipeline.data.synth.worlds import backdrops, stage
from pipeline.data.synth.worlds.base import World
from pipeline.data.synth.worlds.drawing import (
    Texture,
    capsule,
    checks,
    circle,
    ellipse,
    round_box,
    spots,
    stripes,
    taper,
)
from pipeline.data.synth.worlds.kinematics import Action, Kinematics, Pose, bounce, cycle

ATTRIBUTES: dict[str, tuple[tuple[str, ...], str]] = {
    "stature": (("slim", "stout"), "person"),  # shape; the bias attribute
    "tunic": (("maroon", "olive", "navy", "mustard"), "person"),
    "pattern": (("plain", "stripes", "checks", "spots"), "person"),  # texture of the tunic
    "scarf": (("magenta", "cyan", "lime"), "person"),  # small detail at the neck
    "eyewear": (("none", "shades"), "person"),  # small detail on the face
    "scene": (("market", "harbour", "library", "plaza", "garden", "alley"), "context"),
}
ANOMALY_TYPES = ("faint", "flail", "sprint")  # fall-like, erratic, run-like (kinematics order)

KINEMATICS = Kinematics(
    actions=(
        Action("stroll_left", {"x": -0.016, "gait": cycle(12)}),
        Action("stroll_right", {"x": 0.016, "gait": cycle(12)}),
        Action("ascend", {"y": -0.009}),
        Action("descend", {"y": 0.009}),
        Action("clap", {"arm": cycle(16)}),  # hands swing together in front and apart
        Action("nod", {"head": cycle(16)}),
        Action("rock", {"rock": cycle(32)}),  # leaning side to side about the feet
        Action("squat", {"squat": cycle(20)}),
        Action("spin", {"spin": cycle(32)}),  # the width repeats every half turn (16 frames)
        Action("bounce", {"bounce": bounce(8)}),
    ),
    phases=("gait", "arm", "head", "rock", "squat", "spin", "bounce"),
    y_band=(0.25, 0.75),
    log_scale_range=(math.log(0.72), math.log(1.45)),
    idle_phase="arm",
    gait="gait",
    gait_period=12.0,
    walk_speed=0.016,
    anomaly_scale=1.1,
    erratic_phase="arm",
)

TUNICS = ((130, 30, 45), (110, 125, 40), (30, 45, 110), (225, 175, 35))
SCARVES = ((240, 30, 200), (20, 225, 240), (130, 250, 20))
SKIN = (226, 180, 140)
SHOES = (60, 40, 30)
SHADES = (12, 12, 16)
BOUNCE, ROCK = 0.2, 0.22  # actor heights, radians
# stature -> (shoulder half width, hem half width, head radius)
STATURES = ((0.105, 0.17, 0.12), (0.18, 0.32, 0.15))


@dataclass(frozen=True)
class Look:
    """Appearance of one video's person (attributes plus jitter)."""

    scale: float
    width: float
    stature: int
    pattern: int
    shades: bool
    tunic: np.ndarray
    trim: np.ndarray
    scarf: np.ndarray
    skin: np.ndarray


def make_look(attrs: Mapping[str, int], rng: np.random.Generator) -> Look:
    """The person's look: the same random draws whatever the attribute values."""
    scale, width = rng.uniform(0.9, 1.1), rng.uniform(0.93, 1.07)
    jitter = rng.uniform(-1.0, 1.0, size=(3, 3)).astype(np.float32)
    tunic = np.clip(np.asarray(TUNICS[attrs["tunic"]], np.float32) + 12.0 * jitter[0], 0, 255)
    light = tunic.mean() > 110
    trim = tunic * 0.45 if light else tunic * 0.5 + 110.0  # always a visible pattern
    return Look(
        scale=scale,
        width=width,
        stature=attrs["stature"],
        pattern=attrs["pattern"],
        shades=bool(attrs["eyewear"]),
        tunic=tunic,
        trim=np.clip(trim, 0, 255),
        scarf=np.clip(np.asarray(SCARVES[attrs["scarf"]], np.float32) + 8.0 * jitter[1], 0, 255),
        skin=np.clip(np.asarray(SKIN, np.float32) + 10.0 * jitter[2], 0, 255),
    )


def place(pose: Pose, look: Look) -> stage.Placement:
    """Whole-body offsets and rotations from the pose's phases (and the fall-like event)."""
    lift = BOUNCE * np.abs(np.sin(pose.phases["bounce"]))
    step = 0.02 * np.abs(np.sin(pose.phases["gait"]))  # a little bob in every step
    zeros = np.zeros(pose.num_frames)
    p = stage.Placement(dx=zeros, dy=-(lift + step), angle=zeros)
    p = p.rotated(ROCK * np.sin(pose.phases["rock"]), 0.0, 0.5)
    return p.rotated(pose.tilt, 0.0, 0.5) if np.any(pose.tilt) else p


def draw(b: stage.Body, look: Look) -> stage.Parts:
    """The person's parts, back to front."""
    shoulder, hem, head_r = STATURES[look.stature]
    # Spinning narrows the body (seen edge-on every half turn); squatting lowers everything
    # above the feet.
    w = (0.4 + 0.6 * np.abs(np.cos(b.phase["spin"]))) * look.width
    sq = 1.0 - 0.25 * (0.5 - 0.5 * np.cos(b.phase["squat"]))
    u = b.u / w
    v = 0.5 + (b.v - 0.5) / sq
    # Feet: step in turn while strolling.
    g = np.sin(b.phase["gait"])
    feet = np.minimum(
        ellipse(u, b.v, -0.07, 0.465 - 0.05 * np.maximum(g, 0.0), 0.055, 0.035),
        ellipse(u, b.v, 0.07, 0.465 - 0.05 * np.maximum(-g, 0.0), 0.055, 0.035),
    )
    robe = np.minimum(
        taper(u, v, 0.0, -0.17, 0.44, shoulder, hem),
        circle(u, v, 0.0, -0.13, shoulder),
    )
    # Arms (mirrored): clapping swings the hands from spread out to together in front.
    a = 0.15 + 0.75 * np.sin(b.phase["arm"])
    au = np.abs(u)
    sx, sy = shoulder - 0.02, -0.14
    hx, hy = sx + 0.28 * np.sin(a), sy + 0.28 * np.cos(a)
    arms = capsule(au, v, sx, sy, hx, hy, 0.035)
    hands = circle(au, v, np.maximum(hx, 0.035), hy, 0.045)
    # Head nods down and up; eyes or shades.
    nod = 0.08 * (0.5 - 0.5 * np.cos(b.phase["head"]))
    hv = -0.36 + nod
    head = circle(u, v, 0.0, hv, head_r)
    eyes_v = hv - 0.01 + 0.5 * nod
    if look.shades:
        face = round_box(u, v, 0.0, eyes_v, 0.105, 0.035, 0.02)
    else:
        face = circle(au, v, 0.05, eyes_v, 0.02)
    scarf = np.minimum(
        round_box(u, v, 0.0, hv + head_r + 0.02, shoulder + 0.02, 0.035, 0.025),
        capsule(u, v, 0.06, hv + head_r + 0.03, 0.085, hv + head_r + 0.15, 0.025),
    )
    if look.pattern == 1:
        cloth = Texture(look.tunic, look.trim, stripes(u, v, 0.13, b.h))
    elif look.pattern == 2:
        cloth = Texture(look.tunic, look.trim, checks(u, v, 0.18, b.h))
    elif look.pattern == 3:
        cloth = Texture(look.tunic, look.trim, spots(u, v, 0.11, 0.034, b.h))
    else:
        cloth = look.tunic
    return [
        (feet, np.asarray(SHOES, np.float32)),
        (robe, cloth),
        (arms, cloth),
        (hands, look.skin),
        (head, look.skin),
        (face, np.asarray(SHADES, np.float32)),
        (scarf, look.scarf),
    ]


FIGURE = stage.Figure(
    kinematics=KINEMATICS,
    height=0.55,
    centre=(0.0, 0.0),
    extent=(0.48, 0.52),
    backdrops=(
        backdrops.market,
        backdrops.harbour,
        backdrops.library,
        backdrops.plaza,
        backdrops.garden,
        backdrops.alley,
    ),
    make_look=make_look,
    place=place,
    draw=draw,
)

WORLD = World(
    name="townsfolk",
    summary="peg-doll people: stature, tunic colour and pattern, scarf, eyewear",
    actions=KINEMATICS.action_names,
    attributes=ATTRIBUTES,
    anomaly_types=ANOMALY_TYPES,
    bias_attribute="stature",
    tracks=lambda spec, size: stage.pose_of(FIGURE, spec, size),
    render=lambda spec, size: stage.render(FIGURE, spec, size),
)
