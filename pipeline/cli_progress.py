"""Where the CLI writes: results on stdout, progress bars, notes and logs on stderr.

- ``out`` (stdout): what a command produces (tables, summaries, ``--json``), so that
  ``anon-store inspect STORE > f`` captures it;
- ``console`` (stderr): progress bars, notes, log records, errors.

``configure(verbose, quiet)`` applies the global options: -v shows the library's INFO log
records (-vv DEBUG), --quiet only errors (no progress bars, notes or warnings). Dynamic text
(paths, ids, messages) is never parsed as rich markup: print it with ``markup=False`` or
``escape`` it (rich.markup.escape).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
out = Console()
LIBRARY_LOGGERS = ("pipeline", "store_schema", "flows")
"""Loggers -v turns up (the rest of the world stays at WARNING until -vv)."""
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class _State:
    def __init__(self) -> None:
        self.quiet = False
        self.root_level: int | None = None
        """The root logger's level before configure() (restored by unconfigure())."""
        self.deprecations: list[str] = []
        """Notes on deprecated spellings, printed when the command succeeds."""


state = _State()


class ConsoleLogHandler(logging.Handler):
    """Log records through the stderr console: printed above a live progress bar, never parsed
    as markup."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            console.print(message, markup=False, highlight=False, soft_wrap=True)
        except Exception:
            self.handleError(record)


def configure(verbose: int = 0, quiet: bool = False) -> None:
    """Apply -v/-vv/--quiet: logging levels and handler, progress bars and notes."""
    state.quiet = quiet
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ConsoleLogHandler)]:
        root.removeHandler(handler)
    handler = ConsoleLogHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    if quiet:
        library, other = logging.ERROR, logging.ERROR
    elif verbose >= 2:
        library, other = logging.DEBUG, logging.INFO
    elif verbose == 1:
        library, other = logging.INFO, logging.WARNING
    else:
        library, other = logging.WARNING, logging.WARNING
    if state.root_level is None:
        state.root_level = root.level
    root.setLevel(other)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library)


def unconfigure() -> None:
    """Undo configure() (the CLI run in-process, by tests, leaves no handler behind)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, ConsoleLogHandler)]:
        root.removeHandler(handler)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    if state.root_level is not None:
        root.setLevel(state.root_level)
        state.root_level = None
    state.quiet = False
    state.deprecations.clear()


def note(message: str) -> None:
    """One informational line on stderr (not with --quiet); `message` is plain text."""
    if not state.quiet:
        console.print(message, markup=False, highlight=False, soft_wrap=True)


def deprecated(message: str) -> None:
    """Record a note on a deprecated spelling; flush_deprecations() prints it once the command
    has succeeded (a failing command's stderr stays its one error line)."""
    if message not in state.deprecations:
        state.deprecations.append(message)


def flush_deprecations() -> None:
    for message in state.deprecations:
        note(message)
    state.deprecations.clear()


def warn(message: str) -> None:
    """A warning line on stderr (not with --quiet); `message` is plain text."""
    if not state.quiet:
        console.print(
            f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True
        )


def error(message: str) -> None:
    """The one-line error on stderr; `message` is plain text (its first line is printed)."""
    first = message.splitlines()[0] if message else "failed"
    console.print(f"[red]error:[/red] {escape(first)}", highlight=False, soft_wrap=True)


def result(message: str) -> None:
    """A result line on stdout; `message` is plain text."""
    out.print(message, markup=False, highlight=False, soft_wrap=True)


def result_json(data: Any) -> None:
    """A command's result as JSON on stdout (plain, parseable)."""
    print(json.dumps(data, default=str, indent=2))


@contextmanager
def progress_bar(description: str, unit: str = "") -> Iterator[Callable[..., None]]:
    """Yield update(done, total, **fields) that drives one rich bar on stderr; `fields` show
    after it. No bar with --quiet.

    The bar appears at the first update, so errors found while checking inputs print alone.
    """
    if state.quiet:
        yield lambda done, total=None, **fields: None
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn(escape(unit)),
        TextColumn("{task.fields[info]}", markup=False),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    bar = Progress(*columns, console=console, transient=False, redirect_stdout=False)
    task = bar.add_task(escape(description), total=None, info="")
    started = False

    def update(done: float, total: float | None = None, **fields: object) -> None:
        nonlocal started
        if not started:
            bar.start()
            started = True
        info = "  ".join(f"{key} {value}" for key, value in fields.items())
        bar.update(task, completed=done, total=total, info=info)

    try:
        yield update
    finally:
        if started:
            bar.stop()
