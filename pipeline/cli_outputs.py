"""What the CLI (and the flows) may write where.

- never into a zarr store: an output that is a zarr store is refused, or replaced as a whole
  with ``overwrite`` (staged next to it, swapped in at the end); an output inside one is refused;
- never over an existing output without ``overwrite`` (each command says what it finds there);
- never over one of the command's own inputs.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import StoreError

ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def is_zarr_store(path: str | Path) -> bool:
    """A local directory holding zarr metadata at its top (zarr v3 or v2)."""
    directory = Path(path)
    return directory.is_dir() and any((directory / m).is_file() for m in ZARR_MARKERS)


def _local(path: str | Path) -> Path | None:
    text = str(path)
    if "://" in text and not text.startswith("file://"):
        return None
    return Path(text.removeprefix("file://")).expanduser().resolve()


def check_outside_stores(out: str | Path) -> None:
    """StoreError when `out` lies inside a (local) zarr store."""
    local = _local(out)
    for parent in local.parents if local is not None else ():
        if is_zarr_store(parent):
            raise StoreError(f"{out} is inside the zarr store {parent}: choose a path outside it")


def _check_not_an_input(out: Path, inputs: Iterable[object]) -> None:
    target = _local(out)
    for source in inputs:
        if not isinstance(source, str | Path):
            continue
        path = _local(source)
        if target is not None and path is not None and (path == target or target in path.parents):
            raise StoreError(f"{out} would replace the input {source}: choose another output")


def check_output_dir(
    output: str | Path,
    *,
    overwrite: bool,
    inputs: Iterable[object] = (),
    flag: str = "--overwrite",
) -> bool:
    """Check a directory output; True when it is a zarr store that `overwrite` lets the caller
    replace (write into ``staged_dir(output)``); StoreError for what is refused."""
    out = Path(output)
    check_outside_stores(out)
    _check_not_an_input(out, inputs)
    if not out.exists():
        return False
    if not out.is_dir():
        raise StoreError(f"{out} exists and is not a directory")
    if is_zarr_store(out):
        if not overwrite:
            raise StoreError(
                f"{out} is a zarr store: pass {flag} to replace it (the store is deleted)"
            )
        return True
    return False


def check_report_dir(
    output: str | Path,
    *,
    overwrite: bool,
    inputs: Iterable[object] = (),
    flag: str = "--overwrite",
) -> bool:
    """check_output_dir, and a non-empty directory is refused unless `overwrite` (its report
    files are then written over; other files stay)."""
    replace = check_output_dir(output, overwrite=overwrite, inputs=inputs, flag=flag)
    out = Path(output)
    if not replace and not overwrite and out.is_dir() and any(out.iterdir()):
        raise StoreError(f"{out} exists and is not empty: pass {flag} to write the report over it")
    return replace


def check_output_file(output: str | Path, *, overwrite: bool, flag: str = "--overwrite") -> None:
    """A file output: refused when it is a directory, inside a zarr store, or exists without
    `overwrite`."""
    out = Path(output)
    check_outside_stores(out)
    if out.is_dir():
        raise StoreError(f"{out} is a directory: give a file name")
    if out.exists() and not overwrite:
        raise StoreError(f"{out} exists: pass {flag} to replace it")


@contextmanager
def staged_dir(output: str | Path) -> Iterator[Path]:
    """A fresh directory next to `output` to write into; when the block succeeds it replaces
    `output` (renamed aside, the new one renamed in, the old one deleted); when it fails it is
    deleted and `output` is left as it was."""
    out = Path(output)
    tag = uuid.uuid4().hex[:8]
    staging = out.parent / f".{out.name}.{tag}.new"
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.{tag}.old"
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


Report = TypeVar("Report", bound=Any)


def write_report_dir(
    output: str | Path, replace: bool, produce: Callable[[Path], Report]
) -> Report:
    """``produce(directory)`` writes a report (EvalReport, ProtocolReport: built from ``data``
    and a directory) into `output`, or, when `replace`, into a staged directory that replaces
    `output` once complete; returns the report as found at `output`."""
    if not replace:
        return produce(Path(output))
    with staged_dir(output) as staging:
        report = produce(staging)
    return type(report)(report.data, Path(output))
