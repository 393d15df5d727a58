"""Rich progress bars for the CLI: a context manager that hands library code a callback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
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


@contextmanager
def progress_bar(description: str, unit: str = "") -> Iterator[Callable[..., None]]:
    """Yield update(done, total, **fields) that drives one rich bar; `fields` show after it.

    The bar appears at the first update, so errors found while checking inputs print alone.
    """
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    bar = Progress(*columns, console=console, transient=False)
    task = bar.add_task(description, total=None, info="")
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
