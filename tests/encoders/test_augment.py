"""Label remapping of flips and time reversal is derived from action names."""

from __future__ import annotations

from pipeline.data.synth import ACTIONS
from pipeline.encoders.augment import describe, flip_map, reverse_map


def test_synthetic_action_set():
    flips = describe(ACTIONS, flip_map(ACTIONS))
    reverses = describe(ACTIONS, reverse_map(ACTIONS))
    assert flips["walk_left"] == "walk_right" and flips["walk_right"] == "walk_left"
    assert all(flips[a] == a for a in ACTIONS if "walk" not in a)
    assert reverses["rise"] == "sink" and reverses["sink"] == "rise"
    assert reverses["approach"] == "retreat" and reverses["retreat"] == "approach"
    assert reverses["walk_left"] == "walk_right"
    for periodic in ("wave", "jump", "turn", "sway"):
        assert reverses[periodic] == periodic


def test_maps_follow_names_not_indices():
    actions = ("sink", "sway", "rise")
    assert list(reverse_map(actions)) == [2, 1, 0]


def test_unpaired_and_one_way_actions_are_never_transformed():
    actions = ("circle_clockwise", "walk_left", "fall", "speed_up", "moveLeft", "moveRight")
    flips = describe(actions, flip_map(actions))
    reverses = describe(actions, reverse_map(actions))
    assert flips["circle_clockwise"] is None  # its mirror image is not a class
    assert flips["walk_left"] is None and reverses["walk_left"] is None
    assert reverses["fall"] is None and flips["fall"] == "fall"
    assert reverses["speed_up"] is None  # "speed_down" is not a class
    assert flips["moveLeft"] == "moveRight" and reverses["moveRight"] == "moveLeft"


def test_rotation_senses_pair_up():
    actions = ("circle_clockwise", "circle_counterclockwise")
    assert list(flip_map(actions)) == [1, 0]
    assert list(reverse_map(actions)) == [1, 0]
