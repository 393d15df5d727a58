"""Test-wide environment: offline, no analytics, private caches; shared tiny fixtures."""

from __future__ import annotations

import os
import tempfile

# Set before anything imports transformers or prefect.
_SESSION_DIR = tempfile.mkdtemp(prefix="anon-store-tests-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_HOME", os.path.join(_SESSION_DIR, "prefect"))
os.environ["ANON_STORE_CACHE"] = os.path.join(_SESSION_DIR, "cache")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

# Test helpers shared across the suite (tests/support/faulty_fs.py: the faulty:// filesystem).
sys.path.append(str(Path(__file__).parent / "support"))


def save_tiny_videomae(directory: Path, *, hidden: int = 32, seed: int = 0) -> Path:
    """A tiny random-initialised VideoMAE saved like a real checkpoint (safetensors + config)."""
    import torch
    from transformers import VideoMAEConfig, VideoMAEModel

    config = VideoMAEConfig(
        image_size=32,
        patch_size=16,
        num_frames=8,
        tubelet_size=4,
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
    )
    torch.manual_seed(seed)
    VideoMAEModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory) -> Path:
    """The synthetic benchmark at --scale tiny (real mp4 files + manifest.parquet)."""
    from pipeline.data.synth import SynthConfig, generate_benchmark

    out = tmp_path_factory.mktemp("bench") / "tiny"
    generate_benchmark(out, SynthConfig(scale="tiny", seed=0, workers=1))
    return out


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    return save_tiny_videomae(tmp_path_factory.mktemp("encoder") / "videomae-tiny")


@pytest.fixture(scope="session")
def raw_store(tmp_path_factory, tiny_benchmark, tiny_encoder_dir) -> Path:
    """A complete raw store extracted from the tiny benchmark with the tiny random encoder."""
    from pipeline.extract import ExtractConfig, extract

    out = tmp_path_factory.mktemp("stores") / "raw.zarr"
    extract(
        tiny_benchmark / "manifest.parquet",
        str(tiny_encoder_dir),
        out,
        ExtractConfig(videos_per_chunk=8, batch_size=16),
    )
    return out


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run `anon-store ARGS...` in-process; returns (exit code, stdout, stderr)."""
    import sys

    from pipeline import cli

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["anon-store", *map(str, args)])
        code = 0
        try:
            cli.main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
