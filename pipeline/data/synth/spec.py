"""Per-video specifications: labels, segments and seeds, drawn deterministically per video."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from pipeline.data.synth.config import TRIMMED_SPLITS, SynthConfig, split_kind
from pipeline.data.synth.worlds import World, get_world
from pipeline.errors import ConfigError

# Stream ids mixed into a video's seed: the plan (labels, segments) and the picture (appearance,
# motion) use separate streams, so changing a label in a spec never shifts the picture's draws.
_PLAN_STREAM = 0
_RENDER_STREAM = 1


class Segment(NamedTuple):
    """Frames [start, end) of an action (untrimmed) or abnormal event (anomaly)."""

    start: int
    end: int
    label: int


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to render one video; rendering it twice gives the same frames."""

    video_id: str
    """Unique id, ``<split>_<index:05d>``."""
    split: str
    """Split the video belongs to."""
    index: int
    """Position of the video in its split."""
    kind: str
    """"trimmed" | "untrimmed" | "anomaly"."""
    num_frames: int
    """Length of the video in frames."""
    action: int
    """Action class over the whole video (trimmed), -1 for untrimmed and anomaly videos."""
    attributes: tuple[int, ...]
    """Attribute values, in the order of the world's attributes (ATTRIBUTE_NAMES by default)."""
    segments: tuple[Segment, ...] = ()
    """Action segments (untrimmed) or the abnormal event (anomaly); empty for trimmed videos."""
    anomalous: int = -1
    """1 / 0 for anomaly videos (has an abnormal event or not), -1 otherwise."""
    seed: tuple[int, ...] = (0,)
    """Entropy of the picture's RNG (appearance jitter, start state, speeds)."""
    world: str = "default"
    """The world family (pipeline.data.synth.worlds) whose vocabularies the labels index."""

    @property
    def world_def(self) -> World:
        """The World this spec belongs to."""
        return get_world(self.world)

    @property
    def attrs(self) -> dict[str, int]:
        """Attribute name -> value."""
        return dict(zip(self.world_def.attribute_names, self.attributes, strict=True))

    def with_attributes(self, **values: int) -> VideoSpec:
        """A copy with some attributes changed (same seed: same jitter, pose and motion)."""
        table = self.world_def.attributes
        unknown = set(values) - set(table)
        if unknown:
            raise ConfigError(f"unknown attribute(s) {sorted(unknown)} in world {self.world!r}")
        attrs = self.attrs | values
        for name, v in attrs.items():
            if not 0 <= v < len(table[name][0]):
                raise ConfigError(f"attribute {name} value {v} out of range")
        return replace(self, attributes=tuple(attrs[n] for n in table))

    def with_action(self, action: int) -> VideoSpec:
        """A copy of a trimmed video spec with another action (same appearance and start)."""
        if self.kind != "trimmed":
            raise ConfigError("with_action applies to trimmed videos only")
        n = len(self.world_def.actions)
        if not 0 <= action < n:
            raise ConfigError(f"action {action} out of range 0..{n - 1}")
        return replace(self, action=action)

    def manifest_row(self, path: str, fps: float) -> dict[str, Any]:
        """The video's manifest row (columns as in pipeline.data.manifest)."""
        row: dict[str, Any] = {
            "video_id": self.video_id,
            "path": path,
            "split": self.split,
            "kind": self.kind,
            "action": self.action,
        }
        for name, value in self.attrs.items():
            row[f"attr_{name}"] = value
        row["fps"] = float(fps)
        row["num_frames"] = self.num_frames
        row["segments"] = [s._asdict() for s in self.segments]
        row["anomalous"] = self.anomalous
        return row


def _split_code(split: str) -> int:
    # A stable number per split name (not its position in a tuple that may grow).
    return zlib.crc32(split.encode())


def video_seed(
    seed: int, split: str, index: int, stream: int, world: str = "default"
) -> tuple[int, ...]:
    """Entropy of one stream of one video (the default world keeps its original seeds)."""
    if world == "default":
        return (seed, _split_code(split), index, stream)
    return (seed, _split_code(world), _split_code(split), index, stream)


def _action_offset(config: SynthConfig, split: str, num_actions: int) -> int:
    # Trimmed splits continue each other's action rotation: at the tiny scale the splits together
    # hold every action; at larger scales every split is balanced anyway (to within one video).
    offset = 0
    for s in TRIMMED_SPLITS:
        if s == split:
            return offset % num_actions
        offset += config.count(s)
    return 0


def make_video_spec(config: SynthConfig, split: str, index: int) -> VideoSpec:
    """The spec of video ``index`` of ``split``; depends only on (config, split, index)."""
    kind = split_kind(split)
    if not 0 <= index < config.count(split):
        raise ConfigError(f"video index {index} out of range for split {split!r}")
    world = get_world(config.world)
    n_actions, bias = len(world.actions), world.bias_attribute
    rng = np.random.default_rng(video_seed(config.seed, split, index, _PLAN_STREAM, world.name))
    # Attributes are independent of each other and of the action, except in bias_* (below).
    attrs = {name: int(rng.integers(len(values))) for name, (values, _) in world.attributes.items()}
    num_frames = config.num_frames(kind)
    offset = _action_offset(config, split, n_actions)
    action, segments, anomalous = -1, (), -1
    if split == "bias_test":
        # Every action with both values of the bias attribute (gender in the default world)
        # equally often: pairs of videos share an action.
        action = (offset + index // 2) % n_actions
        attrs[bias] = index % 2
    elif split == "bias_train":
        # The first half of the actions is only ever seen with value 0, the second half with 1;
        # the two halves alternate so that even a few videos hold both.
        half = n_actions // 2
        action = (index % 2) * half + (offset + index // 2) % half
        attrs[bias] = index % 2
    elif kind == "trimmed":
        action = (offset + index) % n_actions
    elif kind == "untrimmed":
        segments = _plan_action_segments(rng, num_frames, n_actions)
    else:
        anomalous = 1 if index % 2 == 0 else 0
        if anomalous:
            label = (index // 2) % len(world.anomaly_types)
            segments = (_plan_anomaly(rng, num_frames, label),)
    return VideoSpec(
        video_id=f"{split}_{index:05d}",
        split=split,
        index=index,
        kind=kind,
        num_frames=num_frames,
        action=action,
        attributes=tuple(attrs[n] for n in world.attributes),
        segments=segments,
        anomalous=anomalous,
        seed=video_seed(config.seed, split, index, _RENDER_STREAM, world.name),
        world=world.name,
    )


def make_video_specs(config: SynthConfig) -> list[VideoSpec]:
    """Specs of every video of the selected splits, in canonical (manifest) order."""
    return [
        make_video_spec(config, split, i)
        for split in config.selected_splits
        for i in range(config.count(split))
    ]


def _place(rng: np.random.Generator, total: int, lengths: list[int], gap: int) -> list[int]:
    """Random starts for back-to-back intervals, with at least ``gap`` frames around each."""
    free = total - sum(lengths) - gap * (len(lengths) + 1)
    cuts = np.sort(rng.integers(0, free + 1, size=len(lengths)))
    starts, pos, prev = [], gap, 0
    for length, cut in zip(lengths, cuts, strict=True):
        pos += int(cut) - prev
        prev = int(cut)
        starts.append(pos)
        pos += length + gap
    return starts


def _plan_action_segments(
    rng: np.random.Generator, num_frames: int, num_actions: int
) -> tuple[Segment, ...]:
    """1-3 non-overlapping action segments (distinct actions) of ~1/6-1/3 of the video each."""
    lo = max(16, round(num_frames / 6))
    hi = max(lo, round(num_frames / 3))
    gap = 8
    count = int(rng.integers(1, 4))
    lengths = [int(v) for v in rng.integers(lo, hi + 1, size=count)]
    labels = [int(a) for a in rng.choice(num_actions, size=count, replace=False)]
    while len(lengths) > 1 and sum(lengths) + gap * (len(lengths) + 1) > num_frames:
        lengths.pop()
        labels.pop()
    lengths[0] = min(lengths[0], num_frames - 2 * gap)
    starts = _place(rng, num_frames, lengths, gap)
    return tuple(Segment(s, s + n, a) for s, n, a in zip(starts, lengths, labels, strict=True))


def _plan_anomaly(rng: np.random.Generator, num_frames: int, label: int) -> Segment:
    """One abnormal event of ~1/12-1/4 of the video (16-48 frames at 192), after a normal start."""
    lo = max(12, round(num_frames / 12))
    hi = max(lo, round(num_frames / 4))
    length = int(rng.integers(lo, hi + 1))
    earliest = max(8, num_frames // 8)
    start = int(rng.integers(earliest, num_frames - length - 4 + 1))
    return Segment(start, start + length, label)
