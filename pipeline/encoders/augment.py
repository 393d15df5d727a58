"""Label-aware clip augmentation for supervised encoder training: horizontal flip and time reversal
with action labels remapped from the action NAMES (walk_left <-> walk_right, rise <-> sink, ...).

A transform changes what some actions look like: a mirrored walk_left is a walk_right, a reversed
rise is a sink. The remapping is derived from name tokens (split on non-letters and camelCase),
never from class indices, so it follows whatever action set a dataset's DatasetInfo declares:

- a token with a counterpart under the transform (left -> right) is swapped; if the swapped name is
  an action of the dataset, that is the new label;
- a name with such tokens whose swapped name is NOT in the dataset has no known image under the
  transform: those clips are never transformed (label -1 in the map);
- a name with a token in ONE_WAY (fall, throw, ...) cannot be reversed in time: never reversed;
- any other name is assumed symmetric under the transform (periodic motions such as wave, jump,
  turn, sway look the same played backwards and mirrored) and keeps its label.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# Mirroring the image swaps left and right and the sense of rotation in the image plane.
FLIP_SWAPS: dict[str, tuple[str, ...]] = {
    "left": ("right",),
    "right": ("left",),
    "leftward": ("rightward",),
    "rightward": ("leftward",),
    "leftwards": ("rightwards",),
    "rightwards": ("leftwards",),
    "clockwise": ("anticlockwise", "counterclockwise"),
    "anticlockwise": ("clockwise",),
    "counterclockwise": ("clockwise",),
    "cw": ("ccw",),
    "ccw": ("cw",),
}

_TIME_PAIRS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("left", ("right",)),
    ("leftward", ("rightward",)),
    ("leftwards", ("rightwards",)),
    ("up", ("down",)),
    ("upward", ("downward",)),
    ("upwards", ("downwards",)),
    ("rise", ("sink", "fall", "descend", "drop")),
    ("raise", ("lower",)),
    ("ascend", ("descend",)),
    ("approach", ("retreat", "recede", "leave")),
    ("toward", ("away",)),
    ("towards", ("away",)),
    ("forward", ("backward", "backwards")),
    ("forwards", ("backwards", "backward")),
    ("push", ("pull",)),
    ("open", ("close",)),
    ("in", ("out",)),
    ("grow", ("shrink",)),
    ("expand", ("contract", "shrink")),
    ("enter", ("exit", "leave")),
    ("appear", ("disappear", "vanish")),
    ("accelerate", ("decelerate",)),
    ("inhale", ("exhale",)),
    ("sit", ("stand",)),
    ("clockwise", ("anticlockwise", "counterclockwise")),
    ("cw", ("ccw",)),
)


def _symmetric(pairs: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for a, bs in pairs:
        out.setdefault(a, []).extend(b for b in bs if b not in out.get(a, []))
        for b in bs:
            if a not in out.setdefault(b, []):
                out[b].append(a)
    return {k: tuple(v) for k, v in out.items()}


# Playing a clip backwards swaps opposite directions of travel and inverse processes.
TIME_SWAPS: dict[str, tuple[str, ...]] = _symmetric(_TIME_PAIRS)

# Motions with a direction in time but no opposite action: a reversed fall is not a fall.
ONE_WAY: frozenset[str] = frozenset(
    {"fall", "falls", "falling", "drop", "throw", "kick", "hit", "punch", "break", "explode",
     "catch", "pour", "jump_off", "slip", "trip", "collapse"}
)  # fmt: skip

_TOKEN = re.compile(r"[A-Za-z]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def label_map(actions: Sequence[str], swaps: dict[str, tuple[str, ...]], one_way=()) -> np.ndarray:
    """int64 [n] mapping each action index to its label after the transform, -1 = never apply.

    ``swaps`` maps a lower-case token to its candidate counterparts (first one that yields an
    existing action name wins); ``one_way`` tokens make an action untransformable.
    """
    index = {_normalise(a): i for i, a in enumerate(actions)}
    out = np.full(len(actions), -1, dtype=np.int64)
    for i, name in enumerate(actions):
        lower = _normalise(name)
        tokens = _TOKEN.findall(lower)
        if any(t in one_way for t in tokens):
            continue
        if not any(t in swaps for t in tokens):
            out[i] = i
            continue
        for candidate in _swapped_names(lower, swaps):
            if candidate in index:
                out[i] = index[candidate]
                break
    return out


def flip_map(actions: Sequence[str]) -> np.ndarray:
    """Label of each action after a horizontal flip (-1: never flip clips of that action)."""
    return label_map(actions, FLIP_SWAPS)


def reverse_map(actions: Sequence[str]) -> np.ndarray:
    """Label of each action played backwards (-1: never reverse clips of that action)."""
    return label_map(actions, TIME_SWAPS, ONE_WAY)


def describe(actions: Sequence[str], mapping: np.ndarray) -> dict[str, str | None]:
    """Name -> name (or None) form of a map, for the build record."""
    return {a: (actions[j] if j >= 0 else None) for a, j in zip(actions, mapping, strict=True)}


def _normalise(name: str) -> str:
    """Lower case with camelCase split into words: "moveLeft" -> "move_left"."""
    return _CAMEL.sub("_", name).lower()


def _swapped_names(lower: str, swaps: dict[str, tuple[str, ...]]) -> list[str]:
    """Every name obtained by swapping all swappable tokens (each with each candidate)."""
    parts = re.split(r"([A-Za-z]+)", lower)
    names = [""]
    for part in parts:
        options = swaps.get(part, (part,)) if _TOKEN.fullmatch(part or "-") else (part,)
        names = [n + o for n in names for o in options]
    return names
