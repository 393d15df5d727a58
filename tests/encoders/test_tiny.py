"""The tiny encoder's builder and cache: a micro recipe on the tiny synthetic pretrain split."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from pipeline.data.synth import SynthConfig, generate_benchmark
from pipeline.encoders import load_encoder, tiny
from pipeline.encoders.registry import TINY_MANIFEST, weights_sha256
from pipeline.encoders.tiny import (
    TinyBuildReport,
    TinyEncoderConfig,
    build_tiny_encoder,
    resolve_encoder_source,
    tiny_encoder_path,
)
from pipeline.errors import ConfigError, EncoderError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MICRO = TinyEncoderConfig(
    hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, batch_size=4,
    max_steps=3, warmup_steps=1, max_seconds=600,
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
    assert enc.identity["name"] == record["name"] != "anon-store-tiny-v1"  # non-default recipe
    assert record["label_maps"]["time_reverse"]["rise"] == "sink"
    assert record["label_maps"]["flip"]["walk_left"] == "walk_right"
    x = torch.randn(2, 16, 3, 64, 64)
    assert enc.encode(x).shape == (2, 32)


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


def test_cache_honours_env_and_builds_once(monkeypatch, tmp_path):
    monkeypatch.setenv("ANON_STORE_CACHE", str(tmp_path / "cache"))
    path = tiny_encoder_path(config=MICRO, synth=TINY_SYNTH)
    assert path.parent == tmp_path / "cache" / "encoders"
    assert path.name.startswith("tiny-v1-")  # versioned by recipe
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
