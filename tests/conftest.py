"""Test-wide environment: offline, no analytics, private caches; shared tiny fixtures.

The suite must pass in any ordinary environment (issue 19): whatever the caller exported that
changes how the code or its libraries behave is removed here, and what the suite needs is set.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# This runs when pytest imports the root conftest: before any test module, and so before
# anything imports prefect, transformers, huggingface_hub, dask, fsspec, zarr, botocore or
# matplotlib. Most of them read their environment variables once, at import (prefect's settings,
# huggingface_hub's HF_HUB_DISABLE_PROGRESS_BARS, dask's and fsspec's config), so editing
# os.environ here, at module level, is early enough and later would not be. glibc reads MALLOC_*
# only at process start: for this process it is too late, but every child process (the heap
# tests, CLI subprocesses, servers) inherits the cleaned environment.
_SESSION_DIR = tempfile.mkdtemp(prefix="anon-store-tests-")
# Every run made one (416 left in /tmp after a day of runs): removed when pytest exits.
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)

LOOPBACK = "localhost,127.0.0.1,::1"

PINNED = {
    # No network, no telemetry; model files only from local directories.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # Private homes and caches: never a developer's Prefect database/profiles, HF cache, tiny
    # encoder cache, matplotlibrc, dask or fsspec config, AWS profile or credentials file.
    "PREFECT_HOME": os.path.join(_SESSION_DIR, "prefect"),
    "ANON_STORE_CACHE": os.path.join(_SESSION_DIR, "cache"),
    "HF_HOME": os.path.join(_SESSION_DIR, "hf"),
    "MPLCONFIGDIR": os.path.join(_SESSION_DIR, "matplotlib"),
    "DASK_CONFIG": os.path.join(_SESSION_DIR, "dask"),
    "FSSPEC_CONFIG_DIR": os.path.join(_SESSION_DIR, "fsspec"),
    "AWS_CONFIG_FILE": os.path.join(_SESSION_DIR, "aws", "config"),
    "AWS_SHARED_CREDENTIALS_FILE": os.path.join(_SESSION_DIR, "aws", "credentials"),
    "AWS_EC2_METADATA_DISABLED": "true",  # no credential lookups at 169.254.169.254
    # Local servers (moto S3, the Prefect API) are reached directly, never through a proxy.
    "NO_PROXY": LOOPBACK,
    "no_proxy": LOOPBACK,
}
"""Set for the whole session, whatever the caller's environment holds."""

KEPT = frozenset({"ANON_STORE_FUZZ_SCALE"})
"""Knobs of the test suite itself (the property tests' example count), left as given."""

CLEARED_PREFIXES = (
    "ANON_STORE_",  # the project's own settings: ANON_STORE_IO_ATTEMPTS, _STORAGE_OPTIONS, ...
    "PREFECT_",  # PREFECT_API_URL/KEY/PROFILE would send flow runs to someone else's server
    "HF_",  # HF_HUB_DISABLE_PROGRESS_BARS, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN, verbosity...
    "HUGGINGFACE_",
    "TRANSFORMERS_",  # TRANSFORMERS_VERBOSITY, TRANSFORMERS_CACHE, ...
    "MALLOC_",  # glibc tuning (MALLOC_MMAP_THRESHOLD_, MALLOC_TOP_PAD_, ...): the heap tests
    "AWS_",  # endpoints (AWS_ENDPOINT_URL[_S3] is read by the code), profiles, credentials
    "DASK_",  # dask/distributed config (DASK_SCHEDULER, DASK_DISTRIBUTED__*, ...)
    "FSSPEC_",  # FSSPEC_<PROTOCOL>_<OPTION> become default storage options
    "ZARR_",  # zarr's config (e.g. ZARR_DEFAULT_ZARR_FORMAT)
)
CLEARED_NAMES = frozenset(
    {
        *(f"{scheme}_PROXY" for scheme in ("HTTP", "HTTPS", "ALL", "FTP", "WS", "WSS")),
        *(f"{scheme}_proxy" for scheme in ("http", "https", "all", "ftp", "ws", "wss")),
        "GLIBC_TUNABLES",  # glibc.malloc.* tunables, as MALLOC_*
        "MPLBACKEND",
        "PYTHONOPTIMIZE",  # child processes would drop the code's assert checks
        # rich's console (the CLI's output the tests read): colours, width, terminal detection
        "FORCE_COLOR",
        "TTY_COMPATIBLE",
        "TTY_INTERACTIVE",
        "COLUMNS",
        "LINES",
    }
)


def _controlled(name: str) -> bool:
    """True for a variable whose value this conftest decides (set or removed)."""
    if name in KEPT:
        return False
    return name in PINNED or name in CLEARED_NAMES or name.startswith(CLEARED_PREFIXES)


def isolate_environment(environ=os.environ) -> None:
    """Remove every controlled variable, then set the pinned ones (also for child processes)."""
    for name in [n for n in environ if _controlled(n)]:
        del environ[name]
    environ.update(PINNED)


isolate_environment()
BASELINE = {name: value for name, value in os.environ.items() if _controlled(name)}
"""The controlled variables as every test starts with them (see _isolated_environment)."""

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# Property tests: the same examples on every run and machine (derandomize), a failure printed with
# the @reproduce_failure blob that replays it, no per-example deadline (on a slow, shared 2-core
# CI machine one example's time varies far more than a deadline allows: it would only flake).
# HYPOTHESIS_PROFILE=dev explores new random examples instead, remembered in .hypothesis/;
# pytest's --hypothesis-profile overrides both (it is applied after this conftest is loaded).
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    print_blob=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", print_blob=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Test helpers shared across the suite (tests/support/: faulty_fs, the faulty:// filesystem;
# local_servers, Prefect and moto servers started on free ports).
sys.path.append(str(Path(__file__).parent / "support"))


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch):
    """Each test starts from BASELINE: a controlled variable that an earlier test or a library
    call changed without monkeypatch (e.g. flows.deployments sets PREFECT_API_URL) is put back
    for the test's duration."""
    for name in [n for n in os.environ if _controlled(n) and n not in BASELINE]:
        monkeypatch.delenv(name)
    for name, value in BASELINE.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)


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
