"""ExtractConfig's safety defaults: the encoder's own pretraining split is never extracted unless
asked for; nothing is overwritten, no lock broken, no path outside the video root accepted, no
remote code run, no local path recorded - unless the user says so, with a real boolean."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline.data.clips import ClipSampling
from pipeline.data.manifest import read_manifest
from pipeline.errors import ConfigError
from pipeline.extract import ExtractConfig
from pipeline.extract.config import DEFAULT_EXCLUDED_SPLITS
from pipeline.extract.plan import plan_extraction

SAFE_FLAGS = ("overwrite", "break_lock", "allow_outside_root", "trust_remote_code", "record_paths")
"""Switches that loosen a safety rule: off unless asked for."""


def test_safety_defaults() -> None:
    config = ExtractConfig()
    assert {name: getattr(config, name) for name in SAFE_FLAGS} == dict.fromkeys(SAFE_FLAGS, False)
    assert config.splits is None  # = every split but the excluded ones
    assert config.video_root is None  # = the manifest's own directory
    assert "pretrain" in DEFAULT_EXCLUDED_SPLITS
    defaults = {f.name: f.default for f in dataclasses.fields(ExtractConfig)}
    assert {name: defaults[name] for name in SAFE_FLAGS} == dict.fromkeys(SAFE_FLAGS, False)


@pytest.mark.parametrize("flag", SAFE_FLAGS)
@pytest.mark.parametrize("value", ["no", "false", 0, 1, None])
def test_safety_flags_take_only_real_booleans(flag: str, value: object) -> None:
    # "no" is truthy: a flag read from a config file as a string must not switch a rule off.
    with pytest.raises(ConfigError, match=f"^{flag} must be true or false, got "):
        ExtractConfig(**{flag: value})


def _plan(manifest, config: ExtractConfig):
    sampling = ClipSampling(frames_per_clip=8, size=32, clips_per_video=2, static_clips=1)
    return plan_extraction(manifest, sampling, 32, {"family": "videomae"}, config)


def test_pretrain_split_is_not_extracted_by_default(tiny_benchmark) -> None:
    manifest = read_manifest(tiny_benchmark / "manifest.parquet")
    splits = [str(s) for s in manifest.table.column("split").to_pylist()]
    assert "pretrain" in splits  # the benchmark has one: what is tested is its exclusion
    plan = _plan(manifest, ExtractConfig())
    assert "pretrain" not in plan.splits
    assert set(plan.splits) == set(splits) - {"pretrain"}
    assert [splits[row] for row in plan.rows] == [s for s in splits if s != "pretrain"]
    assert list(plan.tables["split"]) == [s for s in splits if s != "pretrain"]
    # Extracted only when asked for by name.
    asked = _plan(manifest, ExtractConfig(splits=("pretrain", "train")))
    assert sorted(asked.splits) == ["pretrain", "train"]
    assert {splits[row] for row in asked.rows} == {"pretrain", "train"}
    # The selection is part of the fingerprint: a store with pretrain is another store.
    assert asked.fingerprint != plan.fingerprint


def test_the_decoder_is_part_of_the_fingerprint_only_when_it_is_not_pyav(tiny_benchmark) -> None:
    from pipeline.data.decode import DECODER

    manifest = read_manifest(tiny_benchmark / "manifest.parquet")
    sampling = ClipSampling(frames_per_clip=8, size=32, clips_per_video=2, static_clips=1)
    default = _plan(manifest, ExtractConfig())
    named = plan_extraction(manifest, sampling, 32, {"family": "videomae"}, ExtractConfig(),
                            decoder=DECODER)  # fmt: skip
    other = plan_extraction(manifest, sampling, 32, {"family": "videomae"}, ExtractConfig(),
                            decoder="torchcodec")  # fmt: skip
    assert DECODER == "pyav" and named.fingerprint == default.fingerprint
    assert other.fingerprint != default.fingerprint
