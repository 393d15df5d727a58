"""Procedural synthetic privacy-video benchmark: motion-only actions, visible private attributes.

    from pipeline.data.synth import SynthConfig, generate_benchmark
    summary = generate_benchmark("data/synth", SynthConfig(scale="small"))

Each video is rendered from its own RNG seeded by (seed, split, index), and by the world in worlds
other than the default: the output does not depend on generation order, worker count, or which
other splits are generated. ``SynthConfig(world=...)`` picks a world family (worlds.WORLD_NAMES):
"default" is the original benchmark; the others have their own actors, actions, attributes,
scenes and camera motion. The module-level ACTIONS / ATTRIBUTES are the default world's.
"""

from pipeline.data.synth.config import (
    ACTIONS,
    ANOMALY_TYPES,
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    DATASET_NAME,
    SCALES,
    SPLITS,
    ScaleSpec,
    SynthConfig,
    split_kind,
)
from pipeline.data.synth.encode import write_mp4
from pipeline.data.synth.generate import (
    BenchmarkSummary,
    dataset_info,
    generate_benchmark,
    read_benchmark_summary,
    video_relpath,
)
from pipeline.data.synth.render import RenderedVideo, render_video
from pipeline.data.synth.spec import Segment, VideoSpec, make_video_spec, make_video_specs
from pipeline.data.synth.worlds import WORLD_NAMES, WORLDS, World, get_world

__all__ = [
    "ACTIONS",
    "ANOMALY_TYPES",
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "DATASET_NAME",
    "SCALES",
    "SPLITS",
    "WORLDS",
    "WORLD_NAMES",
    "BenchmarkSummary",
    "RenderedVideo",
    "ScaleSpec",
    "Segment",
    "SynthConfig",
    "VideoSpec",
    "World",
    "dataset_info",
    "generate_benchmark",
    "get_world",
    "make_video_spec",
    "make_video_specs",
    "read_benchmark_summary",
    "render_video",
    "split_kind",
    "video_relpath",
    "write_mp4",
]
