"""The default world: a stick-and-blob humanoid with skin, gender, clothing and hat, six scenes."""

from __future__ import annotations

from pipeline.data.synth.config import ACTIONS, ANOMALY_TYPES, ATTRIBUTES, GENERATOR_VERSION
from pipeline.data.synth.render import default_tracks, render_default
from pipeline.data.synth.worlds.base import World

WORLD = World(
    name="default",
    summary="stick-and-blob humanoids (the original benchmark)",
    actions=ACTIONS,
    attributes=ATTRIBUTES,
    anomaly_types=ANOMALY_TYPES,
    bias_attribute="gender",
    tracks=default_tracks,
    render=render_default,
    version=GENERATOR_VERSION,
)
