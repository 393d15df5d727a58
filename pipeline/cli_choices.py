"""The closed vocabularies of the command line and of the Prefect flows' parameters.

Literal types (the flows annotate their parameters with them, so Prefect's parameter schema
lists the choices) and the checks the CLI's parsers run, so that a bad choice is a usage error
(exit 2) before any work starts. Lightweight on purpose: importing it must not import torch.
tests/test_cli_vocabulary.py checks every list against the constants the library validates with.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

Arch = Literal["mlp", "attention"]
"""pipeline.aam.adapter.ARCHITECTURES"""
Preset = Literal["recommended", "reference"]
"""pipeline.aam.presets.PRESETS"""
ExtractPrecision = Literal["auto", "float32", "bfloat16", "float16"]
"""The encoder's arithmetic (pipeline.encoders.registry)."""
SanitizePrecision = Literal["float64", "float32"]
"""The adapter's arithmetic (pipeline.sanitize.config.PRECISIONS)."""
ExportFormat = Literal["h5", "npy", "parquet"]
"""pipeline.interop.export.FORMATS"""
Scale = Literal["tiny", "small", "default"]
"""pipeline.data.synth.config.SCALES"""
World = Literal["default", "robots", "critters", "townsfolk"]
"""pipeline.data.synth.worlds.WORLD_NAMES"""
HeldoutWorld = Literal["default", "robots", "critters", "townsfolk", "none"]
"""The demo's held-out world (none: skip it)."""
TunePrivacy = Literal["auto", "attacker", "proxy"]
"""pipeline.aam.tune.config.PRIVACY_MODES"""
Baseline = Literal["leace", "inlp"]
"""pipeline.probes.BASELINES"""
Attacker = Literal["mlp", "linear"]
"""pipeline.probes.audit.ATTACKER_KINDS"""
AttackSource = Literal["static", "clip"]
"""pipeline.probes.audit.ATTACK_SOURCES"""
Layout = Literal[
    "ucf101",
    "hmdb51",
    "csv",
    "kinetics400",
    "thumos14",
    "ucf-crime",
    "vispr",
    "pa-hmdb51",
    "ntu-rgbd",
]
"""The importers of pipeline.data.importers.IMPORTERS (a test keeps the two the same)."""
"""The layouts `manifest import` reads (pipeline.data.importers)."""
LocalScheduler = Literal["threads", "processes", "synchronous"]
"""pipeline.sanitize.config.LOCAL_SCHEDULERS; sanitize also takes a dask address."""

DEVICE_PATTERN = r"auto|cpu|cuda|cuda:\d+"
"""What every stage's device accepts (pipeline.encoders.registry, pipeline.aam.trainer,
pipeline.sanitize.config): auto (CUDA when available), cpu, cuda or cuda:N."""
ADDRESS_PATTERN = r"[a-z][a-z0-9+.-]*://\S+"
"""A dask scheduler address: tcp://host:8786 (any scheme://...)."""
SANITIZE_SCHEDULER_PATTERN = rf"threads|processes|synchronous|{ADDRESS_PATTERN}"


def choices(literal: object) -> tuple[str, ...]:
    """The values of a Literal type, in order."""
    return tuple(get_args(literal))


def check_choice(value: str, literal: object, what: str) -> str:
    """`value` when it is one of `literal`'s values, else ValueError naming them."""
    allowed = choices(literal)
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(allowed)}")
    return value


def check_choice_list(value: str, literal: object, what: str, allow_empty: bool = False) -> str:
    """A comma-separated list of `literal`'s values (at least one unless `allow_empty`);
    returned unchanged."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names and not allow_empty:
        raise ValueError(f"takes comma-separated {what}s ({', '.join(choices(literal))})")
    for name in names:
        check_choice(name, literal, what)
    return value


def check_device(value: str) -> str:
    if not re.fullmatch(DEVICE_PATTERN, value):
        raise ValueError(f"unknown device {value!r}: use auto, cpu, cuda or cuda:N")
    return value


def check_address(value: str) -> str:
    if not re.fullmatch(ADDRESS_PATTERN, value):
        raise ValueError(f"{value!r} is not a dask scheduler address (tcp://host:8786)")
    return value


def check_sanitize_scheduler(value: str) -> str:
    if not re.fullmatch(SANITIZE_SCHEDULER_PATTERN, value):
        raise ValueError(
            f"unknown scheduler {value!r}: threads, processes, synchronous or a dask address "
            "(tcp://host:8786)"
        )
    return value
