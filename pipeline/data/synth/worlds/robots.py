"""Robots: tracked machines (front view) with painted, plated chassis and an antenna lamp."""

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
    stripes,
)
from pipeline.data.synth.worlds.kinematics import Action, Kinematics, Pose, cycle

ATTRIBUTES: dict[str, tuple[tuple[str, ...], str]] = {
    "chassis": (("boxy", "round"), "person"),  # shape; the bias attribute
    "plating": (("plain", "stripes", "checks"), "person"),  # texture of the chassis
    "paint": (("orange", "teal", "violet", "crimson"), "person"),
    "lamp": (("red", "green", "blue"), "person"),  # small detail: the antenna tip
    "scene": (("factory", "lab", "warehouse", "space", "circuit"), "context"),
}
ANOMALY_TYPES = ("topple", "glitch", "bolt")  # fall-like, erratic, run-like (kinematics order)

# Periods >= 16 frames for one-way sweeps (motion.py); only the vibration repeats every 8.
KINEMATICS = Kinematics(
    actions=(
        Action("roll_left", {"x": -0.018, "wheel": -cycle(10)}),
        Action("roll_right", {"x": 0.018, "wheel": cycle(10)}),
        Action("drive_forward", {"log_s": 0.012, "wheel": cycle(14)}),
        Action("drive_backward", {"log_s": -0.012, "wheel": -cycle(14)}),
        Action("extend", {"neck": cycle(18)}),  # the neck telescopes up and down
        Action("pump", {"arm": cycle(16)}),  # the arms piston up and down in turn
        Action("scan", {"head": cycle(24)}),  # the head swivels, its visor sliding across
        Action("vibrate", {"shake": cycle(8)}),  # the whole machine shudders sideways
    ),
    phases=("wheel", "neck", "arm", "head", "shake"),
    y_band=(0.32, 0.75),  # the head and lamp reach 0.58 actor heights above the centre
    log_scale_range=(math.log(0.72), math.log(1.45)),
    idle_phase="head",
    gait="wheel",
    gait_period=10.0,
    walk_speed=0.018,
    anomaly_scale=1.1,
    erratic_phase="arm",
)

PAINTS = ((235, 125, 35), (25, 160, 155), (135, 75, 205), (200, 35, 60))
LAMPS = ((255, 25, 25), (30, 250, 60), (40, 90, 255))
METAL = (185, 190, 200)
JOINT = (95, 98, 108)
TREAD = (48, 48, 54)
TREAD_BARS = (120, 120, 128)
VISOR = (40, 225, 240)
VIBRATE = 0.06  # actor heights
STRIPE_PERIOD, CHECK_PERIOD = 0.16, 0.22  # actor heights: 4-8 px stripes at 64 px


@dataclass(frozen=True)
class Look:
    """Appearance of one video's robot (attributes plus jitter)."""

    scale: float
    width: float
    round: bool
    plating: int
    paint: np.ndarray
    trim: np.ndarray
    lamp: np.ndarray
    metal: np.ndarray


def make_look(attrs: Mapping[str, int], rng: np.random.Generator) -> Look:
    """The robot's look: the same random draws whatever the attribute values."""
    scale, width = rng.uniform(0.9, 1.1), rng.uniform(0.93, 1.07)
    jitter = rng.uniform(-1.0, 1.0, size=(3, 3)).astype(np.float32)
    paint = np.asarray(PAINTS[attrs["paint"]], np.float32) + 14.0 * jitter[0]
    lamp = np.asarray(LAMPS[attrs["lamp"]], np.float32) + 8.0 * jitter[1]
    metal = np.asarray(METAL, np.float32) + 10.0 * jitter[2]
    return Look(
        scale=scale,
        width=width,
        round=bool(attrs["chassis"]),
        plating=attrs["plating"],
        paint=np.clip(paint, 0, 255),
        trim=np.clip(paint * 0.35, 0, 255),
        lamp=np.clip(lamp, 0, 255),
        metal=np.clip(metal, 0, 255),
    )


def place(pose: Pose, look: Look) -> stage.Placement:
    """Whole-body offsets and rotations from the pose's phases (and the fall-like event)."""
    zeros = np.zeros(pose.num_frames)
    p = stage.Placement(dx=VIBRATE * np.sin(pose.phases["shake"]), dy=zeros, angle=zeros)
    return p.rotated(pose.tilt, 0.0, 0.5) if np.any(pose.tilt) else p  # topple about the tracks


def draw(b: stage.Body, look: Look) -> stage.Parts:
    """The robot's parts, back to front."""
    u, v = b.u / look.width, b.v
    # Tracks: bars that run with the wheel phase.
    bars = stripes(u, v, 0.09, b.h, angle=math.pi / 2, shift=b.phase["wheel"])
    tracks = round_box(u, v, 0.0, 0.41, 0.25, 0.09, 0.04)
    tread = Texture(np.asarray(TREAD, np.float32), np.asarray(TREAD_BARS, np.float32), bars)
    # Chassis: a tall box or a wide ellipse, plain, striped or checked.
    if look.round:
        chassis, shoulder = ellipse(u, v, 0.0, 0.13, 0.29, 0.19), 0.25
    else:
        chassis, shoulder = round_box(u, v, 0.0, 0.11, 0.18, 0.23, 0.03), 0.18
    if look.plating == 1:
        coat = Texture(look.paint, look.trim, stripes(u, v, STRIPE_PERIOD, b.h))
    elif look.plating == 2:
        coat = Texture(look.paint, look.trim, checks(u, v - 0.12, CHECK_PERIOD, b.h))
    else:
        coat = look.paint
    # Arms piston up and down in turn (angles from hanging down, outwards).
    s = np.sin(b.phase["arm"])
    arms = []
    for side, lift in ((-1.0, 0.5 + 0.5 * s), (1.0, 0.5 - 0.5 * s)):
        a = 0.3 + 1.2 * lift
        hx, hy = side * (shoulder + 0.24 * np.sin(a)), 0.0 + 0.24 * np.cos(a)
        arms.append(capsule(u, v, side * shoulder, 0.0, hx, hy, 0.04))
        arms.append(circle(u, v, hx, hy, 0.06))
    arm = np.minimum(arms[0], arms[2])
    claw = np.minimum(arms[1], arms[3])
    # Neck, head with a visor that slides as the head swivels, antenna with the lamp.
    neck_len = 0.03 + 0.13 * (0.5 - 0.5 * np.cos(b.phase["neck"]))
    yaw = 1.1 * np.sin(b.phase["head"])
    hw = 0.6 + 0.4 * np.cos(yaw)
    hc = -0.16 - neck_len
    neck = capsule(u, v, 0.0, -0.08, 0.0, hc, 0.03)
    head = round_box(u, v, 0.0, hc, 0.16 * hw, 0.09, 0.03)
    visor = round_box(u, v, 0.1 * np.sin(yaw), hc - 0.005, 0.09 * hw, 0.03, 0.02)
    top = hc - 0.09
    antenna = capsule(u, v, 0.0, top, 0.0, top - 0.1, 0.013)
    lamp = circle(u, v, 0.0, top - 0.13, 0.075)
    joint, metal = np.asarray(JOINT, np.float32), look.metal
    return [
        (arm, metal),
        (claw, joint),
        (tracks, tread),
        (neck, joint),
        (chassis, coat),
        (antenna, joint),
        (lamp, look.lamp),
        (head, metal),
        (visor, np.asarray(VISOR, np.float32)),
    ]


FIGURE = stage.Figure(
    kinematics=KINEMATICS,
    height=0.5,
    centre=(0.0, -0.04),
    extent=(0.6, 0.59),
    backdrops=(
        backdrops.factory,
        backdrops.lab,
        backdrops.warehouse,
        backdrops.space,
        backdrops.circuit,
    ),
    make_look=make_look,
    place=place,
    draw=draw,
)

WORLD = World(
    name="robots",
    summary="tracked robots: chassis shape, plating texture, paint, antenna lamp",
    actions=KINEMATICS.action_names,
    attributes=ATTRIBUTES,
    anomaly_types=ANOMALY_TYPES,
    bias_attribute="chassis",
    tracks=lambda spec, size: stage.pose_of(FIGURE, spec, size),
    render=lambda spec, size: stage.render(FIGURE, spec, size),
)
