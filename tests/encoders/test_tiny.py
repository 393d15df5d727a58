"""The tiny encoder's builder and cache: a micro recipe on the tiny synthetic pretrain split."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings

import pytest
import torch

from pipeline.data.synth import SynthConfig, generate_benchmark
from pipeline.encoders import load_encoder, tiny
from pipeline.encoders.registry import TINY_MANIFEST, weights_sha256
from pipeline.encoders.targets import motion_statistics
from pipeline.encoders.tiny import (
    TinyBuildReport,
    TinyEncoderConfig,
    build_tiny_encoder,
    resolve_encoder_source,
    tiny_encoder_path,
)
from pipeline.errors import ConfigError, EncoderError
from tests.support.clips import textured_scene

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MICRO = TinyEncoderConfig(
    hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, batch_size=4,
    max_steps=3, warmup_steps=1, max_seconds=600, pretrain_seeds=(0,),
)  # fmt: skip
TINY_SYNTH = SynthConfig(scale="tiny", splits=("pretrain",), workers=1)


@pytest.fixture(scope="module")
def pretrain(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    return generate_benchmark(out, TINY_SYNTH).manifest_path


@pytest.fixture(scope="module")
def built(pretrain, tmp_path_factory):
    out = tmp_path_factory.mktemp("enc") / "tiny"
    return out, build_tiny_encoder(pretrain, out, MICRO)


def test_build_saves_a_loadable_videomae(built):
    out, report = built
    assert isinstance(report, TinyBuildReport)
    assert report.steps == 3 and report.stopped_by == "max_steps"
    assert report.train_videos == 4 and report.skipped_videos == 0
    enc = load_encoder(str(out), device="cpu")
    assert (enc.family, enc.pooling, enc.hidden_size) == ("videomae", "mean", 32)
    assert (enc.frames_per_clip, enc.image_size) == (16, 64)
    record = json.loads((out / TINY_MANIFEST).read_text())
    assert record["recipe"]["max_steps"] == 3 and record["report"]["steps"] == 3
    assert enc.identity["name"] == record["name"] == f"anon-store-{tiny.tiny_version(MICRO)}"
    assert tiny.tiny_version(MICRO) != tiny.tiny_version()  # the name tracks the recipe
    assert record["label_maps"]["time_reverse"]["rise"] == "sink"
    assert record["label_maps"]["flip"]["walk_left"] == "walk_right"
    x = torch.randn(2, 16, 3, 64, 64)
    assert enc.encode(x).shape == (2, 32)


@pytest.fixture
def hf_progress_bars():
    """set(shown): turn transformers' progress bars on or off for one test, as a caller would;
    the session's setting is put back after it. (HF_HUB_DISABLE_PROGRESS_BARS=1 in the
    environment starts them off, and makes huggingface_hub warn on enabling: not ours to test.)"""
    from transformers.utils import logging as hf_logging

    def set_bars(shown: bool) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Cannot enable progress bars", UserWarning)
            if shown:
                hf_logging.enable_progress_bar()
            else:
                hf_logging.disable_progress_bar()
        assert hf_logging.is_progress_bar_enabled() is shown

    before = hf_logging.is_progress_bar_enabled()
    yield set_bars
    set_bars(before)


def test_saving_prints_no_progress_bar_of_its_own(pretrain, tmp_path, capfd, hf_progress_bars):
    from transformers.utils import logging as hf_logging

    hf_progress_bars(True)  # a caller that shows bars: the save still prints none of its own
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Cannot enable progress bars", UserWarning)
        build_tiny_encoder(pretrain, tmp_path / "quiet", MICRO)
    captured = capfd.readouterr()
    assert "Writing model shards" not in captured.err + captured.out
    assert hf_logging.is_progress_bar_enabled()  # the caller's setting is restored
    hf_progress_bars(False)  # a caller that hides bars: they stay hidden
    build_tiny_encoder(pretrain, tmp_path / "quiet-again", MICRO)
    assert "Writing model shards" not in "".join(capfd.readouterr())
    assert not hf_logging.is_progress_bar_enabled()


def test_same_seed_same_weights(built, pretrain, tmp_path):
    out, _ = built
    again = tmp_path / "again"
    build_tiny_encoder(pretrain, again, MICRO)
    assert weights_sha256(again) == weights_sha256(out)
    other = tmp_path / "other"
    build_tiny_encoder(pretrain, other, TinyEncoderConfig(**{**MICRO.__dict__, "seed": 1}))
    assert weights_sha256(other) != weights_sha256(out)


def test_build_refuses_non_empty_out_dir(pretrain, tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError):
        build_tiny_encoder(pretrain, tmp_path / "x", MICRO)


def test_bad_config_is_config_error():
    with pytest.raises(ConfigError):
        TinyEncoderConfig(num_frames=16, tubelet_size=5)
    with pytest.raises(ConfigError, match="appearance"):
        TinyEncoderConfig(appearance="faces")


def test_cache_honours_env_and_builds_once(monkeypatch, tmp_path):
    monkeypatch.setenv("ANON_STORE_CACHE", str(tmp_path / "cache"))
    path = tiny_encoder_path(config=MICRO, synth=TINY_SYNTH)
    assert path.parent == tmp_path / "cache" / "encoders"
    assert path.name.startswith(f"tiny-v{tiny.RECIPE_VERSION}-")  # versioned by recipe
    assert (path / TINY_MANIFEST).is_file() and (path / "model.safetensors").is_file()
    assert not list(path.parent.glob(".*build-*"))  # temporary build dir removed

    def fail(*a, **k):
        raise AssertionError("rebuilt a cached encoder")

    monkeypatch.setattr(tiny, "build_tiny_encoder", fail)
    assert tiny_encoder_path(config=MICRO, synth=TINY_SYNTH) == path


def test_default_cache_location(monkeypatch, tmp_path):
    monkeypatch.delenv("ANON_STORE_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert tiny.cache_root() == tmp_path / ".cache" / "anon-store"


def test_killed_build_leaves_no_encoder(monkeypatch, tmp_path):
    monkeypatch.setenv("ANON_STORE_CACHE", str(tmp_path))

    def half_written(manifest, out, config=None, progress=None):
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")  # weights never arrive
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny, "build_tiny_encoder", half_written)
    with pytest.raises(KeyboardInterrupt):
        tiny_encoder_path(config=MICRO, synth=TINY_SYNTH)
    encoders = tmp_path / "encoders"
    assert not (encoders / tiny.tiny_version(MICRO, TINY_SYNTH)).exists()
    assert not list(encoders.glob(".*build-*"))
    with pytest.raises(EncoderError, match="not built"):
        tiny_encoder_path(build_if_missing=False, config=MICRO, synth=TINY_SYNTH)


def test_stale_build_dirs_are_swept(monkeypatch, tmp_path, built):
    monkeypatch.setenv("ANON_STORE_CACHE", str(tmp_path))
    name = tiny.tiny_version(MICRO, TINY_SYNTH)
    stale = tmp_path / "encoders" / f".{name}.build-dead"
    stale.mkdir(parents=True)

    def copy_built(manifest, out, config=None, progress=None):
        shutil.copytree(built[0], out)

    monkeypatch.setattr(tiny, "build_tiny_encoder", copy_built)
    path = tiny_encoder_path(config=MICRO, synth=TINY_SYNTH)
    assert path.is_dir() and not stale.exists()


def test_tiny_name_resolves_to_cache(monkeypatch, tmp_path, built):
    monkeypatch.setenv("ANON_STORE_CACHE", str(tmp_path))
    assert resolve_encoder_source("/some/model") == "/some/model"
    cached = tmp_path / "encoders" / tiny.tiny_version()
    shutil.copytree(built[0], cached)
    assert resolve_encoder_source("tiny") == str(cached)
    enc = load_encoder("tiny")
    assert enc.identity["source"] == "tiny"
    assert str(tmp_path) not in json.dumps(enc.identity)


def test_several_manifests_pool_their_videos(pretrain, tmp_path):
    report = build_tiny_encoder([pretrain, pretrain], tmp_path / "two", MICRO)
    assert report.train_videos + report.heldout_videos == 8


def test_motion_energy_init_is_zero_mean_and_scaled():
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(3, 128, (4, 16, 16), (4, 16, 16))
    before = conv.weight[64:].detach().clone()
    tiny.motion_energy_init(conv, 64, seed=0)
    w = conv.weight.detach()
    assert torch.equal(w[64:], before)  # the other channels keep their init
    assert w[:64].flatten(1).mean(1).abs().max() < 1e-6  # no response to a flat patch
    # a static patch gives the same response at every tubelet frame for none of the drifting
    # filters: they are not all constant in time
    assert (w[:64].std(dim=2) > 0).any()
    norms = w[:64].flatten(1).norm(dim=1)
    assert torch.allclose(norms, before.flatten(1).norm(dim=1).mean().expand(64), rtol=1e-4)
    again = torch.nn.Conv3d(3, 128, (4, 16, 16), (4, 16, 16))
    tiny.motion_energy_init(again, 64, seed=0)  # same filters, scaled to this conv's init
    cos = torch.nn.functional.cosine_similarity(again.weight[:64].flatten(1), w[:64].flatten(1))
    assert torch.allclose(cos, torch.ones(64), atol=1e-5)


def test_a_slow_clock_changes_nothing_but_the_hard_stop(pretrain, tmp_path, monkeypatch):
    # The learning-rate schedule follows steps only: a machine slowed down by other jobs
    # (here a clock that jumps 100 s per reading, under a 400 s limit) builds the same weights.
    config = dataclasses.replace(MICRO, max_seconds=400)
    build_tiny_encoder(pretrain, tmp_path / "normal", config)
    clock = iter(range(0, 10**6, 100))
    monkeypatch.setattr(tiny.time, "perf_counter", lambda: float(next(clock)))
    report = build_tiny_encoder(pretrain, tmp_path / "slow", config)
    assert report.stopped_by == "max_steps" and report.steps == 3
    assert weights_sha256(tmp_path / "slow") == weights_sha256(tmp_path / "normal")
    clock = iter(range(0, 10**6, 250))  # now the limit is spent after two steps
    stopped = build_tiny_encoder(pretrain, tmp_path / "stopped", config)
    assert stopped.stopped_by == "max_seconds" and stopped.steps < 3


@pytest.mark.parametrize("appearance", ["none", "histogram", "thumbnail", "attributes"])
def test_appearance_objectives_train_and_are_recorded(pretrain, tmp_path, appearance):
    config = dataclasses.replace(MICRO, appearance=appearance, thumbnail_size=4)
    report = build_tiny_encoder(pretrain, tmp_path / appearance, config)
    record = json.loads((tmp_path / appearance / TINY_MANIFEST).read_text())
    assert record["recipe"]["appearance"] == appearance
    if appearance == "none":
        assert report.final_appearance_loss == 0.0
    else:
        assert report.final_appearance_loss > 0.0
    if appearance == "attributes":  # one head per PERSON attribute, never the scene
        assert record["appearance_targets"] == ["skin", "gender", "clothing", "hat"]


def test_thumbnail_head_regresses_the_middle_frame():
    config = dataclasses.replace(MICRO, appearance="thumbnail", thumbnail_size=2, motion_weight=0)
    heads = tiny._Heads(config, n_actions=3, person={})
    tokens = torch.zeros(2, 16, config.hidden_size)
    x = torch.zeros(2, 16, 3, 64, 64)
    x[:, 8, 0] = 1.0  # middle frame red channel
    y = torch.zeros(2, 1, dtype=torch.long)
    with torch.no_grad():
        heads.thumbnail.weight.zero_()
        heads.thumbnail.bias.zero_()
        heads.thumbnail.bias[:4] = 1.0  # predicts exactly the red middle frame
    _, _, loss, motion = heads.losses(tokens, x, y)
    assert motion.item() == 0.0
    assert loss.item() == pytest.approx(0.0, abs=1e-7)
    x[:, 0, 1] = 5.0  # other frames do not matter
    assert heads.losses(tokens, x, y)[2].item() == pytest.approx(0.0, abs=1e-7)
    x[:, 8, 2] = 1.0
    assert heads.losses(tokens, x, y)[2].item() > 0.1


def test_colour_blob_init_reads_the_colour_of_a_quarter_patch():
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(3, 32, (16, 16, 16), (16, 16, 16))
    motion = conv.weight[:4].detach().clone()
    tiny.colour_blob_init(conv, 24, first=4)
    assert torch.equal(conv.weight[:4], motion)  # channels before `first` untouched
    red_top_left = torch.zeros(1, 3, 16, 16, 16)
    red_top_left[0, 0, :, :8, :8] = 1.0
    with torch.no_grad():
        out = torch.nn.functional.conv3d(red_top_left, conv.weight[4:28]).flatten()
    # filter 0 is red over the top-left quarter: the strongest response; blue filters see nothing
    assert int(out.argmax()) == 0
    assert out[8:12].abs().max() < 1e-6  # colours are R, G, B, ...: filters 8-11 are blue


def test_fields_added_since_v2_keep_the_cached_default_encoder_name():
    # Fields added since recipe version 2 are hashed only away from their inert values (an
    # encoder cached before they existed keeps its name); the pinned name makes any change of
    # the default recipe (patch 8 since session 11) a deliberate one.
    config = tiny.TinyEncoderConfig()
    fields = dataclasses.asdict(config)
    assert all(fields[name] == inert for name, inert in tiny._ADDED_SINCE_V2.items())
    assert tiny.tiny_version(config) == "tiny-v2-378b2f9f5c"


def test_cache_name_tracks_the_synthetic_generator_of_each_pretrain_world(monkeypatch):
    import dataclasses

    from pipeline.data.synth import worlds

    config = tiny.TinyEncoderConfig()
    before = tiny.tiny_version(config)
    for name in config.pretrain_worlds:
        bumped = dataclasses.replace(worlds.WORLDS[name], version=worlds.WORLDS[name].version + 1)
        with monkeypatch.context() as m:
            m.setitem(worlds.WORLDS, name, bumped)
            assert tiny.tiny_version(config) != before
    assert tiny.tiny_version(config) == before


def test_motion_objective_trains_a_standardised_head(pretrain, tmp_path):
    config = dataclasses.replace(MICRO, motion_weight=5.0)
    report = build_tiny_encoder(pretrain, tmp_path / "enc", config)
    assert report.final_appearance_loss > 0 and report.final_motion_loss > 0
    assert tiny._Heads(MICRO, 3, {}).motion is None  # off by default
    assert tiny.tiny_version(config) != tiny.tiny_version(MICRO)
    heads = tiny._Heads(config, 3, {})
    heads.train()
    x = textured_scene(pan=0, object_dx=1).repeat(4, 1, 1, 1, 1)
    x[1:] = x[1:].roll(8, dims=-1)  # different clips in the batch
    pooled = torch.zeros(4, config.hidden_size)
    loss = heads._motion_loss(pooled, x)
    assert torch.isfinite(loss) and int(heads.motion_seen) == 1
    stats = motion_statistics(x)  # the first batch sets the standardisation outright
    assert torch.allclose(heads.motion_mean, stats.mean(0))
    assert torch.allclose(heads.motion_var, stats.var(0, unbiased=False))
    heads.eval()  # evaluation never moves it
    heads._motion_loss(pooled, x.flip(1))
    assert int(heads.motion_seen) == 1 and torch.allclose(heads.motion_mean, stats.mean(0))
    with pytest.raises(ConfigError, match="motion_weight"):
        TinyEncoderConfig(motion_weight=-1.0)


def test_label_space_gives_each_world_its_own_classes_and_augmentation_maps():
    from types import SimpleNamespace

    def manifest(name: str, actions: tuple[str, ...]) -> SimpleNamespace:
        return SimpleNamespace(info=SimpleNamespace(name=name, actions=actions))

    config = tiny.TinyEncoderConfig()
    people = ("walk_left", "walk_right", "wave")
    robots = ("roll_left", "roll_right", "rise", "sink")
    names, offsets, flips, reverses = tiny._label_space(
        [manifest("a", people), manifest("a", people)], config
    )
    assert names == people and offsets == [0, 0]  # one data set: plain names, as before worlds
    names, offsets, flips, reverses = tiny._label_space(
        [manifest("a", people), manifest("b", robots), manifest("a", people)], config
    )
    assert names == ("a/walk_left", "a/walk_right", "a/wave", "b/roll_left", "b/roll_right",
                     "b/rise", "b/sink")  # fmt: skip
    assert offsets == [0, 3, 0]
    assert flips.tolist() == [1, 0, 2, 4, 3, 5, 6]  # left <-> right within each world
    assert reverses.tolist() == [1, 0, 2, 4, 3, 6, 5]  # rise <-> sink stays inside "b"
    with pytest.raises(ConfigError, match="name different actions"):
        tiny._label_space([manifest("a", people), manifest("a", robots)], config)


def test_local_objective_regresses_each_tokens_own_histogram():
    config = dataclasses.replace(MICRO, appearance="none", local_weight=2.0)
    assert tiny._Heads(MICRO, 3, {}).local is None  # off by default
    heads = tiny._Heads(config, n_actions=3, person={})
    x = torch.full((2, 16, 3, 64, 64), -3.0)  # below the ImageNet range: black, bin 0
    y = torch.zeros(2, 1, dtype=torch.long)
    patch = config.patch_size
    n = (64 // patch) ** 2  # one temporal slot (tubelet 16)
    tokens = torch.zeros(2, n, config.hidden_size)
    with torch.no_grad():
        heads.local.weight.zero_()
        heads.local.bias.zero_()
        heads.local.bias[0] = 1.0  # every token predicts "all black"
    assert heads.losses(tokens, x, y)[2].item() == pytest.approx(0.0, abs=1e-7)
    x[:, :, :, :patch, :patch] = 3.0  # token 0 turns white: only its prediction is wrong now
    loss = heads.losses(tokens, x, y)[2].item()
    assert loss == pytest.approx(2.0 * 2 / n)  # weight x (1 + 1 bins) / n tokens
    assert tiny.tiny_version(config) != tiny.tiny_version(MICRO)
    with pytest.raises(ConfigError, match="local_weight"):
        TinyEncoderConfig(local_weight=-1.0)


def test_static_clips_repeat_one_frame_and_carry_no_action():
    import numpy as np

    config = dataclasses.replace(MICRO, static_fraction=0.5)
    # Each frame of each video has its own grey level, so a repeated frame shows.
    videos = [
        torch.arange(20, dtype=torch.uint8).add(40 * v).view(20, 1, 1, 1).expand(20, 64, 64, 3)
        for v in range(4)
    ]
    labels = np.array([[0], [1], [2], [1]], dtype=np.int64)
    keep = np.arange(3)
    x, y = tiny._batch(videos, labels, np.tile(np.arange(4), 8), keep, keep, config,
                       np.random.default_rng(0))  # fmt: skip
    still = (x == x[:, :1]).flatten(1).all(1)
    assert 8 < int(still.sum()) < 24  # about half of 32
    assert (y[still, 0] == -1).all() and (y[~still, 0] >= 0).all()
    assert torch.equal(y[~still, 0], torch.from_numpy(labels[np.tile(np.arange(4), 8), 0])[~still])
    # The action loss ignores the static rows; a batch of static clips only has none.
    heads = tiny._Heads(config, n_actions=3, person={})
    tokens = torch.randn(len(y), 16, config.hidden_size)
    _, action, _, _ = heads.losses(tokens, x, y)
    assert torch.isfinite(action) and action.item() > 0
    y_still = y.clone()
    y_still[:, 0] = -1
    assert heads.losses(tokens, x, y_still)[1].item() == 0.0
    with pytest.raises(ConfigError, match="static_fraction"):
        TinyEncoderConfig(static_fraction=1.0)


def test_local_objective_and_static_clips_train_end_to_end(pretrain, tmp_path):
    config = dataclasses.replace(MICRO, local_weight=1.0, static_fraction=0.25, max_steps=4)
    report = build_tiny_encoder(pretrain, tmp_path / "enc", config)
    record = json.loads((tmp_path / "enc" / TINY_MANIFEST).read_text())
    assert record["recipe"]["local_weight"] == 1.0 and record["recipe"]["static_fraction"] == 0.25
    assert report.steps == 4 and report.final_appearance_loss > 0
