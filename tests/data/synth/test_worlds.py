"""The world families: each generates, is deterministic, shows its attributes, moves its actions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.manifest import read_manifest, write_manifest
from pipeline.data.synth import (
    ACTIONS,
    ATTRIBUTES,
    WORLD_NAMES,
    SynthConfig,
    dataset_info,
    generate_benchmark,
    get_world,
    make_video_spec,
    make_video_specs,
    render_video,
    video_relpath,
)
from pipeline.data.synth.worlds import critters, robots, stage, townsfolk
from pipeline.errors import ConfigError

NEW_WORLDS = ("robots", "critters", "townsfolk")
FIGURES = {"robots": robots.FIGURE, "critters": critters.FIGURE, "townsfolk": townsfolk.FIGURE}
# Taken before the worlds existed: the default world must stay byte for byte what it was.
DEFAULT_MANIFEST_SHA = "2b1a045ba9874409a6e3aa512a67dbc1e22fce4d70a303bafc72db11126bcb55"
TINY_MANIFEST_SHA = "17f43b09cae5001857e6d9a56c50d37b16ff0520855de1dc0c9fcfa3ec230a78"
TINY_FRAMES_SHA = "3fe3adcc4c36e1f62656ed0dcde4eb4532a207f9b7d1522f413cae4c2842ee28"


def _tiny(world: str, **kwargs) -> SynthConfig:
    return SynthConfig(scale="tiny", world=world, workers=1, **kwargs)


@pytest.fixture(scope="module", params=NEW_WORLDS)
def bench(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "bench"
    return request.param, out, generate_benchmark(out, _tiny(request.param))


def _manifest_sha(config: SynthConfig, tmp_path: Path) -> str:
    rows = [s.manifest_row(video_relpath(s), config.fps) for s in make_video_specs(config)]
    path = write_manifest(tmp_path / "manifest.parquet", rows, dataset_info(config.world))
    return read_manifest(path, check_files=False).sha256


# ---------------------------------------------------------------- registry and config


def test_registry_and_world_invariants():
    assert WORLD_NAMES[0] == "default" and set(NEW_WORLDS) <= set(WORLD_NAMES)
    assert get_world("default").actions == ACTIONS
    assert dict(get_world("default").attributes) == ATTRIBUTES
    for name in NEW_WORLDS:
        world = get_world(name)
        assert world.dataset_name == f"anon-synth-{name}"
        assert 8 <= len(world.actions) <= 10 and len(world.actions) % 2 == 0
        assert not set(world.actions) & set(ACTIONS)  # a vocabulary of its own
        person = world.person_attributes
        assert 3 <= len(person) <= 5 and world.bias_attribute in person
        for attr in person:
            assert 2 <= len(world.attributes[attr][0]) <= 4
        scenes, role = world.attributes["scene"]
        assert role == "context" and 4 <= len(scenes) <= 6
        assert len(world.anomaly_types) == 3
        assert len(FIGURES[name].backdrops) == len(scenes)


def test_bad_world_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as error:
        SynthConfig(world="atlantis")
    message = str(error.value)
    assert "\n" not in message and all(name in message for name in WORLD_NAMES)


def test_config_round_trip_and_old_dicts():
    cfg = _tiny("critters", seed=2)
    assert cfg.to_dict()["world"] == "critters"
    assert SynthConfig.from_dict(cfg.to_dict()) == cfg
    old = {k: v for k, v in SynthConfig().to_dict().items() if k != "world"}
    assert SynthConfig.from_dict(old).world == "default"
    assert SynthConfig().generator_version == 1


def test_specs_know_their_world_and_validate_against_it():
    spec = make_video_spec(_tiny("robots"), "train", 0)
    assert spec.world == "robots" and set(spec.attrs) == set(robots.ATTRIBUTES)
    assert spec.with_attributes(lamp=2).attrs["lamp"] == 2
    with pytest.raises(ConfigError):
        spec.with_attributes(hat=1)  # the default world's attribute
    with pytest.raises(ConfigError):
        spec.with_attributes(lamp=3)
    with pytest.raises(ConfigError):
        spec.with_action(len(robots.WORLD.actions))
    # Other worlds draw from their own seeds, so they are not the default world relabelled.
    assert spec.seed != make_video_spec(SynthConfig(scale="tiny"), "train", 0).seed


def test_default_world_is_unchanged(tmp_path):
    assert _manifest_sha(SynthConfig(), tmp_path) == DEFAULT_MANIFEST_SHA
    assert _manifest_sha(SynthConfig(scale="tiny"), tmp_path) == TINY_MANIFEST_SHA
    import hashlib

    digest = hashlib.sha256()
    for spec in make_video_specs(SynthConfig(scale="tiny")):
        digest.update(render_video(spec).frames.tobytes())
    assert digest.hexdigest() == TINY_FRAMES_SHA


# ---------------------------------------------------------------- generation


def test_generation_and_manifest(bench):
    name, out, summary = bench
    world = get_world(name)
    m = read_manifest(out)  # every file exists
    assert m.sha256 == summary.manifest_sha256
    assert m.info.name == f"anon-synth-{name}"
    assert m.info.actions == world.actions and m.info.anomaly_types == world.anomaly_types
    assert m.person_attributes == world.person_attributes
    assert m.context_attributes == ("scene",)
    doc = json.loads((out / "benchmark.json").read_text())
    assert doc["config"]["world"] == name and doc["dataset"]["name"] == m.info.name
    rows = m.table.to_pylist()
    assert {r["action"] for r in rows if r["kind"] == "trimmed"} == set(range(len(world.actions)))
    anomaly = {s["label"] for r in rows if r["kind"] == "anomaly" for s in r["segments"]}
    assert anomaly == {0, 1, 2}
    bias = [r for r in rows if r["split"] == "bias_train"]
    half = len(world.actions) // 2
    assert all(r[f"attr_{world.bias_attribute}"] == (r["action"] >= half) for r in bias)


def test_same_config_same_bytes_any_worker_count(bench, tmp_path):
    name, out, _ = bench
    cfg = SynthConfig(scale="tiny", world=name, splits=("val", "anomaly_test"), workers=2)
    again = generate_benchmark(tmp_path / "again", cfg)
    assert again.counts == {"val": 2, "anomaly_test": 2}
    for path in sorted((tmp_path / "again" / "videos").rglob("*.mp4")):
        assert path.read_bytes() == (out / path.relative_to(tmp_path / "again")).read_bytes()


# ---------------------------------------------------------------- rendering


def _changed(a: np.ndarray, b: np.ndarray, threshold: int = 40) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b).max(axis=-1) > threshold


def _same_tracks(a, b) -> bool:
    return all(
        np.array_equal(x, y)
        if isinstance(x, np.ndarray)
        else x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
        for x, y in zip(dataclasses.astuple(a), dataclasses.astuple(b), strict=True)
        if not isinstance(x, bool)
    )


@pytest.mark.parametrize("name", NEW_WORLDS)
def test_render_is_deterministic(name):
    spec = make_video_spec(_tiny(name), "tad_test", 0)
    a, b = render_video(spec).frames, render_video(spec).frames
    assert a.shape == (64, 64, 64, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert render_video(spec, frame_size=96).frames.shape == (64, 96, 96, 3)


@pytest.mark.parametrize("name", NEW_WORLDS)
def test_attributes_change_the_actor_or_the_background_never_the_motion(name):
    world, figure = get_world(name), FIGURES[name]
    spec = make_video_spec(_tiny(name), "test", 1)
    base = render_video(spec).frames

    def actor(s) -> np.ndarray:  # where the actor (and its outline) shows
        return _changed(render_video(s).frames, stage.render(figure, s, 64, actor=False), 0)

    for attr, (values, _) in world.attributes.items():
        for value in range(len(values)):
            if value == spec.attrs[attr]:
                continue
            other = spec.with_attributes(**{attr: value})
            assert _same_tracks(world.tracks(other, 64), world.tracks(spec, 64)), attr
            frames = render_video(other).frames
            changed = _changed(base, frames, 0)
            # Every value is drawn differently (small details: a few pixels every frame).
            assert _changed(base, frames).sum(axis=(1, 2)).mean() > 4, (attr, values[value])
            if attr == "scene":
                assert changed.mean() > 0.5
                # Frames differ no more than the scenes behind the actor do: its own colours
                # are the same (where it is opaque, the pixel does not change at all).
                scenes = [stage.render(figure, s, 64, actor=False) for s in (spec, other)]
                behind = np.abs(scenes[0].astype(np.int16) - scenes[1])
                assert (np.abs(base.astype(np.int16) - frames) <= behind + 1).all()
                assert (~changed & (behind > 40).any(axis=-1)).sum(axis=(1, 2)).min() > 20
            else:
                assert not (changed & ~(actor(spec) | actor(other))).any(), attr


def _fitted(world_name: str, action: int) -> bool:
    # These move the start (as little as needed) so that the path stays inside its band.
    moves = FIGURES[world_name].kinematics.actions[action].moves
    return "y" in moves or "log_s" in moves


@pytest.mark.parametrize("name", NEW_WORLDS)
def test_actions_are_told_apart_by_motion_only(name):
    world = get_world(name)
    spec = make_video_spec(_tiny(name), "test", 2)
    videos = [render_video(spec.with_action(a)).frames for a in range(len(world.actions))]
    ref = videos[0][0]
    for a, frames in enumerate(videos):
        if _fitted(name, a):
            assert np.abs(frames[0].astype(int) - ref).mean() < 20, world.actions[a]
        else:
            assert np.array_equal(frames[0], ref), world.actions[a]
        # Something moves in every 8 frames.
        f = frames.astype(np.int16)
        for t in range(len(f) - 8):
            moved = np.abs(f[t + 1 : t + 9] - f[t]).max(axis=(1, 2, 3))
            assert moved.max() > 40, (world.actions[a], t)
    # Every pair moves differently within any 16-frame clip (compared as frame differences,
    # so that where an earlier motion left the actor does not count).
    motion = [np.diff(v.astype(np.int16), axis=0) for v in videos]
    for a in range(len(videos)):
        for b in range(a + 1, len(videos)):
            for t in (0, 8, 16):
                diff = np.abs(motion[a][t : t + 15] - motion[b][t : t + 15]).mean()
                assert diff > 0.15, (world.actions[a], world.actions[b], t)


@pytest.mark.parametrize("name", NEW_WORLDS)
def test_single_frame_pose_does_not_depend_on_the_action(name):
    world, cfg = get_world(name), SynthConfig(world=name)
    actions = FIGURES[name].kinematics.actions
    static = next(i for i, a in enumerate(actions) if not _fitted(name, i) and "x" not in a.moves)
    fitted = [i for i in range(len(actions)) if _fitted(name, i)]

    def stats(action: int) -> dict[str, np.ndarray]:
        tracks = [world.tracks(make_video_spec(cfg, "pretrain", i).with_action(action), 64)
                  for i in range(120)]  # fmt: skip
        return {k: np.concatenate([getattr(t, k) for t in tracks]) for k in ("y", "log_s")}

    ref = stats(static)
    for action in fitted:
        got = stats(action)
        for key, tol in (("y", 2.5), ("log_s", 0.05)):
            assert abs(got[key].mean() - ref[key].mean()) < tol, (world.actions[action], key)
            assert abs(got[key].std() - ref[key].std()) < tol, (world.actions[action], key)


@pytest.mark.parametrize("name", NEW_WORLDS)
def test_untrimmed_videos_move_more_inside_segments(name):
    inside, outside = [], []
    for index in range(2):
        spec = make_video_spec(_tiny(name), "tad_train", index)
        # The actor over its scene, less the scene: the camera's motion drops out.
        scene = stage.render(FIGURES[name], spec, 64, actor=False)
        frames = render_video(spec).frames.astype(np.int16) - scene
        energy = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
        mask = np.zeros(len(energy), bool)
        for seg in spec.segments:
            mask[seg.start : seg.end - 1] = True
        inside.append(energy[mask].mean())
        outside.append(energy[~mask].mean())
    assert np.mean(inside) > 2 * np.mean(outside)


@pytest.mark.parametrize("name", NEW_WORLDS)
def test_anomaly_events(name):
    world, kin = get_world(name), FIGURES[name].kinematics
    cfg = SynthConfig(world=name)
    for index in range(6):
        spec = make_video_spec(cfg, "anomaly_train", index)
        t = world.tracks(spec, 64)
        if not spec.segments:
            assert np.all(t.tilt == 0) and np.all(t.ox == 0)
            continue
        seg = spec.segments[0]
        inside = np.zeros(spec.num_frames, bool)
        inside[seg.start : seg.end] = True
        if seg.label == 0:  # fall-like
            assert np.abs(t.tilt[inside]).max() == pytest.approx(kin.fall_angle)
            assert np.all(t.tilt[~inside] == 0)
        elif seg.label == 1:  # erratic
            assert np.abs(t.ox[inside]).mean() > 1 and np.all(t.ox[~inside] == 0)
        else:  # run-like
            speed = np.abs(np.diff(t.x))
            assert speed[seg.start : seg.end - 1].mean() > 2 * speed[~inside[:-1]].mean()
    assert render_video(make_video_spec(_tiny(name), "anomaly_train", 0)).frames.shape[0] == 64


@pytest.mark.parametrize("name", NEW_WORLDS)
def test_the_window_holds_the_whole_actor(name):
    # The actor is drawn in a window around it: a much larger one draws the same picture.
    big = dataclasses.replace(FIGURES[name], extent=(1.5, 1.5))
    for split, index in (("test", 0), ("tad_test", 1), ("anomaly_train", 0), ("anomaly_train", 2)):
        spec = make_video_spec(_tiny(name), split, index)
        assert np.array_equal(stage.render(FIGURES[name], spec, 64), stage.render(big, spec, 64))


def test_cli_world_option(run_cli, tmp_path):
    code, out, _ = run_cli("synth", "--help")
    assert code == 0 and all(name in out for name in WORLD_NAMES)
    code, out, err = run_cli(
        "synth", "--output", tmp_path / "x", "--scale", "tiny", "--world", "mars"
    )
    assert code == 2 and "unknown synth world" in out + err  # a usage error (docs/cli.md)
