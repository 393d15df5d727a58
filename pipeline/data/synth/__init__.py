"""Procedural synthetic privacy-video benchmark: motion-only actions, visible private attributes.

    from pipeline.data.synth import SynthConfig, generate_benchmark
    summary = generate_benchmark("data/synth", SynthConfig(scale="small"))

Each video is rendered from its own RNG seeded by (seed, split, index): the output does not depend
on generation order, worker count, or which other splits are generated.
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

__all__ = [
    "ACTIONS",
    "ANOMALY_TYPES",
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "DATASET_NAME",
    "SCALES",
    "SPLITS",
    "BenchmarkSummary",
    "RenderedVideo",
    "ScaleSpec",
    "Segment",
    "SynthConfig",
    "VideoSpec",
    "dataset_info",
    "generate_benchmark",
    "make_video_spec",
    "make_video_specs",
    "read_benchmark_summary",
    "render_video",
    "split_kind",
    "video_relpath",
    "write_mp4",
]
