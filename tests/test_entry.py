"""The console entry settles OpenMP's wait policy before torch loads, for the commands that feed
an encoder from decode processes, and leaves every other command and a user's choice alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from pipeline.entry import COMMANDS_THAT_FEED_AN_ENCODER, command_of

IDLE_CPU = textwrap.dedent(
    """
    import sys, time
    from pipeline.entry import prepare_process
    prepare_process(sys.argv[1:])
    import torch
    torch.set_num_threads(2)
    a = torch.randn(512, 512)
    for _ in range(5):
        a @ a
    started = time.process_time()
    time.sleep(0.3)
    from pipeline.openmp import wait_policy
    print(wait_policy() or "-", 1e3 * (time.process_time() - started))
    """
)


def _idle_cpu(args: list[str], **env: str) -> tuple[str, float]:
    """(policy, CPU ms the process burns while its only running thread sleeps after a
    2-thread matmul): an OpenMP team that spins keeps burning; a passive one sleeps too."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", IDLE_CPU, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    policy, cpu_ms = done.stdout.split()
    return policy, float(cpu_ms)


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["extract", "--input", "m.parquet"], "extract"),
        (["-v", "-q", "extract"], "extract"),
        (["--version"], None),
        ([], None),
        (["train", "--input", "extract"], "train"),
    ],
)
def test_the_command_is_the_first_argument_that_is_not_an_option(args, command) -> None:
    assert command_of(args) == command


def test_extraction_processes_get_threads_that_sleep_between_parallel_regions() -> None:
    assert "extract" in COMMANDS_THAT_FEED_AN_ENCODER
    policy, cpu_ms = _idle_cpu(["-v", "extract", "--input", "m.parquet"])
    assert policy == "PASSIVE"
    assert cpu_ms < 3.0, f"{cpu_ms:.1f} ms of CPU burnt while idle: the threads spin"


def test_other_commands_and_a_users_choice_are_left_alone() -> None:
    policy, _ = _idle_cpu(["train", "--input", "raw.zarr"])
    assert policy == "-"
    policy, _ = _idle_cpu(["extract"], OMP_WAIT_POLICY="active")
    assert policy == "ACTIVE"


def test_nothing_changes_once_torch_is_loaded() -> None:
    script = (
        "import os, torch\n"
        "from pipeline.openmp import prefer_passive_wait\n"
        "prefer_passive_wait()\n"
        "print(os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=clean, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "None"
