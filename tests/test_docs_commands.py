"""Every `anon-store` command line in the README and docs/ (bash blocks) parses against the CLI:
known command, known options, required options given, valid choices. Docs cannot drift from
the command line they describe (the python examples run: tests/interop/test_docs_examples.py)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer

from pipeline.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _command_lines() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.split(" #", 1)[0].strip()
                if line.startswith("anon-store "):
                    found.append((doc.name, line))
    return found


COMMANDS = _command_lines()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize(
    ("doc", "line"), COMMANDS, ids=[f"{d}:{i}" for i, (d, _) in enumerate(COMMANDS)]
)
def test_documented_command_parses(doc, line):
    args = shlex.split(line)[1:]
    command: click.Command = typer.main.get_command(app)
    # Global options come before the command name.
    while args and args[0].startswith("-"):
        args.pop(0)
    path = []
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        name = args.pop(0)
        assert name in command.commands, f"{doc}: unknown command {' '.join([*path, name])!r}"
        path.append(name)
        command = command.commands[name]
    if "--help" in args:
        return
    try:
        command.make_context(" ".join(["anon-store", *path]), list(args))
    except click.UsageError as error:
        pytest.fail(f"{doc}: `{line}` does not parse: {error.format_message()}")
