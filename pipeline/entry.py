"""The `anon-store` console entry: settings that must precede torch's import, then the CLI."""

from __future__ import annotations

import sys

from pipeline.openmp import prefer_passive_wait

COMMANDS_THAT_FEED_AN_ENCODER = frozenset({"extract", "demo"})
"""Commands whose hot loop is an encoder fed by decode processes: their OpenMP threads must not
spin on the cores decoding needs (pipeline.openmp)."""


def command_of(args: list[str]) -> str | None:
    """The sub-command of an `anon-store` command line (global options are flags only)."""
    return next((arg for arg in args if not arg.startswith("-")), None)


def prepare_process(args: list[str]) -> None:
    """What must be settled before torch loads, for the command `args` will run."""
    if command_of(args) in COMMANDS_THAT_FEED_AN_ENCODER:
        prefer_passive_wait()


def main() -> None:
    """`anon-store`: pipeline.cli.main, after prepare_process."""
    prepare_process(sys.argv[1:])
    from pipeline.cli import main as cli_main

    cli_main()
