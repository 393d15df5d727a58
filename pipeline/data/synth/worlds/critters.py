"""Critters: four-legged animals seen from the side, with coat markings, ears and a collar."""

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
    circle,
    ellipse,
    spots,
    stripes,
    taper,
)
from pipeline.data.synth.worlds.kinematics import Action, Kinematics, Pose, bounce, cycle

ATTRIBUTES: dict[str, tuple[tuple[str, ...], str]] = {
    "build": (("stocky", "lanky"), "person"),  # shape; the bias attribute
    "ears": (("pointy", "floppy", "round"), "person"),  # shape
    "coat": (("ginger", "grey", "cream", "black"), "person"),
    "markings": (("plain", "spots", "stripes"), "person"),  # texture of the coat
    "collar": (("red", "lime", "blue"), "person"),  # small detail
    "scene": (("meadow", "forest", "snowfield", "dunes"), "context"),
}
ANOMALY_TYPES = ("tumble", "frenzy", "dash")  # fall-like, erratic, run-like (kinematics order)

# Travel is along the facing, drawn uniformly per video: forward and backward differ only in
# motion relative to the head, never in a single frame.
KINEMATICS = Kinematics(
    actions=(
        Action("trot_forward", {"fwd": 0.02, "gait": cycle(9)}),
        Action("trot_backward", {"fwd": -0.02, "gait": -cycle(9)}),
        Action("trot_toward", {"log_s": 0.012, "gait": cycle(12)}),  # towards the camera
        Action("trot_away", {"log_s": -0.012, "gait": -cycle(12)}),
        Action("hop", {"hop": bounce(8)}),  # bounding on the spot
        Action("sniff", {"head": cycle(16)}),  # the head dips to the ground and back
        Action("wag", {"tail": cycle(16)}),
        Action("rear", {"rear": cycle(32)}),  # up on the hind legs over 16 frames, down over 16
        Action("stretch", {"stretch": cycle(20)}),  # the body lengthens and shortens
        Action("shake", {"shake": cycle(12)}),  # a wet-dog wobble (not the hop's 8 frames)
    ),
    phases=("gait", "head", "tail", "hop", "rear", "stretch", "shake"),
    y_band=(0.32, 0.7),
    log_scale_range=(math.log(0.72), math.log(1.4)),
    idle_phase="tail",
    gait="gait",
    gait_period=9.0,
    walk_speed=0.02,
    anomaly_scale=1.05,
    fall_angle=math.pi,  # on its back
    erratic_phase="head",
)

COATS = ((214, 118, 44), (128, 128, 138), (232, 214, 170), (46, 40, 40))
COLLARS = ((235, 20, 40), (120, 245, 20), (30, 80, 255))
EYE = (20, 16, 14)
HOP, REAR, SHAKE = 0.22, 0.45, 0.12  # actor heights, radians, radians
# build -> (body half length, half height, leg length, leg radius, neck radius)
BUILDS = ((0.3, 0.15, 0.17, 0.045, 0.075), (0.27, 0.105, 0.27, 0.028, 0.05))


@dataclass(frozen=True)
class Look:
    """Appearance of one video's critter (attributes plus jitter)."""

    scale: float
    build: int
    ears: int
    markings: int
    coat: np.ndarray
    pattern: np.ndarray
    far: np.ndarray
    muzzle: np.ndarray
    collar: np.ndarray


def make_look(attrs: Mapping[str, int], rng: np.random.Generator) -> Look:
    """The critter's look: the same random draws whatever the attribute values."""
    scale = rng.uniform(0.9, 1.1)
    jitter = rng.uniform(-1.0, 1.0, size=(2, 3)).astype(np.float32)
    coat = np.clip(np.asarray(COATS[attrs["coat"]], np.float32) + 12.0 * jitter[0], 0, 255)
    # Markings darker than a light coat, lighter than a dark one, so they always show.
    light = coat.mean() > 100
    pattern = coat * 0.45 if light else coat + 110.0
    collar = np.clip(np.asarray(COLLARS[attrs["collar"]], np.float32) + 8.0 * jitter[1], 0, 255)
    return Look(
        scale=scale,
        build=attrs["build"],
        ears=attrs["ears"],
        markings=attrs["markings"],
        coat=coat,
        pattern=np.clip(pattern, 0, 255),
        far=coat * 0.7,
        muzzle=np.clip(coat * 0.5 + 120.0, 0, 255),
        collar=collar,
    )


def place(pose: Pose, look: Look) -> stage.Placement:
    """Whole-body offsets and rotations from the pose's phases (and the fall-like event)."""
    f = pose.facing
    a, b, leg = BUILDS[look.build][:3]
    zeros = np.zeros(pose.num_frames)
    lift = HOP * np.abs(np.sin(pose.phases["hop"]))
    p = stage.Placement(dx=zeros, dy=-lift, angle=zeros)
    # Rearing turns the body up about the hind feet (counter-clockwise when facing right).
    rear = REAR * (0.5 - 0.5 * np.cos(pose.phases["rear"]))
    p = p.rotated(-f * rear, -f * 0.6 * a, 0.5)
    body_v = 0.5 - leg - 0.5 * b
    p = p.rotated(SHAKE * np.sin(pose.phases["shake"]), 0.0, body_v)
    if np.any(pose.tilt):
        p = p.rotated(pose.tilt, 0.0, body_v)  # rolls over onto its back
    return p


def draw(b: stage.Body, look: Look) -> stage.Parts:
    """The critter's parts, back to front."""
    f = b.facing
    u, v = b.u * f, b.v  # the head is towards +u
    half_len, half_h, leg_len, leg_r, neck_r = BUILDS[look.build]
    a = half_len * (1.0 + 0.22 * np.sin(b.phase["stretch"]))
    body_v = 0.5 - leg_len - 0.5 * half_h
    hip_v = body_v + 0.4 * half_h
    # Legs: diagonal pairs swing together, so the back legs mirror the front ones (one capsule
    # on |u| per pair); the far pair is darker and behind the body.
    swing = 0.5 * np.sin(b.phase["gait"])
    au, hx = np.abs(u), 0.6 * a
    near_legs, far_legs = (
        capsule(au, v, hx, hip_v, hx + leg_len * np.sin(g), hip_v + leg_len * np.cos(g), leg_r)
        for g in (swing, -swing)
    )
    body = ellipse(u, v, 0.0, body_v, a, half_h)
    # Head on a neck; sniffing dips it forward to the ground.
    dip = 0.5 - 0.5 * np.cos(b.phase["head"])
    head_u, head_v = a + 0.08 + 0.06 * dip, body_v - half_h - 0.06 + 0.2 * dip
    neck = capsule(u, v, 0.7 * a, body_v - 0.3 * half_h, head_u, head_v, neck_r)
    head = circle(u, v, head_u, head_v, 0.1)
    muzzle = circle(u, v, head_u + 0.09, head_v + 0.03, 0.05)
    eye = circle(u, v, head_u + 0.035, head_v - 0.025, 0.022)
    if look.ears == 0:  # pointy: upright triangles
        ear = taper(u, v, head_u - 0.03, head_v - 0.22, head_v - 0.05, 0.004, 0.06)
    elif look.ears == 1:  # floppy: long lobes drooping in front of the head's side
        ear = ellipse(u, v, head_u - 0.06, head_v + 0.03, 0.045, 0.1)
    else:  # round: a disc on top
        ear = circle(u, v, head_u - 0.05, head_v - 0.1, 0.065)
    # Collar: a band across the neck near the head.
    cu, cv = 0.45 * (0.7 * a) + 0.55 * head_u, 0.45 * (body_v - 0.3 * half_h) + 0.55 * head_v
    collar = capsule(u, v, cu - 0.03, cv - 0.065, cu + 0.03, cv + 0.065, 0.045)
    # Tail: wagging up and down from the rump.
    t = 0.55 + 0.6 * np.sin(b.phase["tail"])
    tail = capsule(
        u,
        v,
        -0.92 * a,
        body_v - 0.3 * half_h,
        -0.92 * a - 0.26 * np.cos(t),
        body_v - 0.3 * half_h - 0.26 * np.sin(t),
        0.032,
    )
    if look.markings == 1:
        coat = Texture(look.coat, look.pattern, spots(u, v, 0.11, 0.034, b.h))
    elif look.markings == 2:
        coat = Texture(look.coat, look.pattern, stripes(u, v, 0.11, b.h, angle=math.pi / 2))
    else:
        coat = look.coat
    return [
        (far_legs, look.far),
        (tail, look.coat),
        (neck, look.coat),
        (body, coat),
        (near_legs, look.coat),
        (head, look.coat),
        (ear, look.far) if look.ears == 1 else (ear, look.coat),
        (muzzle, look.muzzle),
        (eye, np.asarray(EYE, np.float32)),
        (collar, look.collar),
    ]


FIGURE = stage.Figure(
    kinematics=KINEMATICS,
    height=0.62,
    centre=(0.0, 0.15),
    extent=(0.66, 0.37),
    backdrops=(backdrops.meadow, backdrops.forest, backdrops.snowfield, backdrops.dunes),
    make_look=make_look,
    place=place,
    draw=draw,
)

WORLD = World(
    name="critters",
    summary="four-legged animals (side view): build, ear shape, coat, markings, collar",
    actions=KINEMATICS.action_names,
    attributes=ATTRIBUTES,
    anomaly_types=ANOMALY_TYPES,
    bias_attribute="build",
    tracks=lambda spec, size: stage.pose_of(FIGURE, spec, size),
    render=lambda spec, size: stage.render(FIGURE, spec, size),
)
