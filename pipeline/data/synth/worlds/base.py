"""The World: one family of synthetic videos (actions, attributes, anomalies, how to draw them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.data.synth.config import DATASET_NAME

if TYPE_CHECKING:
    import numpy as np

    from pipeline.data.synth.spec import VideoSpec

AttributeTable = Mapping[str, tuple[tuple[str, ...], str]]
"""Attribute name -> (value names, role "person" | "context"), in manifest column order."""


@dataclass(frozen=True, eq=False)
class World:
    """A procedural world family: its label vocabularies and the functions that draw its videos.

    Every world shares the benchmark's splits and protocols; only what the videos show differs.
    """

    name: str
    """Registry name (``SynthConfig.world``)."""
    summary: str
    """One line for humans (CLI help, README)."""
    actions: tuple[str, ...]
    """Motion-only action classes (an even number: bias_train splits them into two halves)."""
    attributes: AttributeTable
    """Person attributes, then the one context attribute "scene"."""
    anomaly_types: tuple[str, ...]
    """Abnormal events of the anomaly splits (a fall, erratic motion, a run, or the world's own)."""
    bias_attribute: str
    """The binary person attribute tied to the action in bias_train (what "gender" is in the
    default world); pass it as EvalConfig.bias_attribute to run the bias probe."""
    tracks: Callable[[VideoSpec, int], Any]
    """tracks(spec, frame_size): the per-frame pose of the actor (the motion, no appearance)."""
    render: Callable[[VideoSpec, int], np.ndarray]
    """render(spec, frame_size): uint8 [T, frame_size, frame_size, 3] RGB frames."""
    version: int = 1
    """Bump when a change of this world's code changes the videos a config produces."""

    def __post_init__(self) -> None:
        roles = [role for _, role in self.attributes.values()]
        if set(roles) - {"person", "context"} or roles.count("context") != 1:
            raise ValueError(f"world {self.name}: attributes need roles person and one context")
        values, role = self.attributes.get(self.bias_attribute, ((), ""))
        if len(values) != 2 or role != "person":
            raise ValueError(f"world {self.name}: the bias attribute must be a binary person one")
        if len(self.actions) % 2 or len(set(self.actions)) != len(self.actions):
            raise ValueError(f"world {self.name}: needs an even number of distinct actions")

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(self.attributes)

    @property
    def person_attributes(self) -> tuple[str, ...]:
        return tuple(n for n, (_, role) in self.attributes.items() if role == "person")

    @property
    def dataset_name(self) -> str:
        """Name in the manifest: "anon-synth" for the default world, "anon-synth-<name>" else."""
        return DATASET_NAME if self.name == "default" else f"{DATASET_NAME}-{self.name}"
