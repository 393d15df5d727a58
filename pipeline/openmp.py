"""OpenMP's wait policy: chosen before torch loads its OpenMP runtime, which reads it only then."""

from __future__ import annotations

import os
import sys

WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY"
PASSIVE = "PASSIVE"


def prefer_passive_wait() -> None:
    """Make OpenMP threads sleep, not spin, between parallel regions, unless the user chose a
    policy (theirs is kept) or torch is already imported (too late: libgomp read the environment
    when it loaded, so nothing is changed).

    With a CPU encoder fed by decode processes, the encoder's idle OpenMP threads otherwise spin
    through every serial gap of the extracting thread (materialising clips, routing embeddings)
    on the cores the decode processes need (docs/pipeline.md has the measurements)."""
    if "torch" not in sys.modules:
        os.environ.setdefault(WAIT_POLICY_VARIABLE, PASSIVE)


def wait_policy() -> str:
    """The policy this process's OpenMP runtime was given ("" for its default: spin a while)."""
    return os.environ.get(WAIT_POLICY_VARIABLE, "").strip().upper()
