"""Apply each mutation to a private copy of the code, run its tests there, record killed/survived.

The working tree is only read: pipeline/, flows/, store_schema/, tests/ and pyproject.toml are
copied once to a temporary directory; each mutation rewrites one file of the copy and restores it
afterwards (in `finally`). Tests run as ``python -m pytest -x -q -p no:cacheprovider FILES`` in
the copy with OMP_NUM_THREADS=1, the copy first on PYTHONPATH (ahead of the editable install)
and no bytecode written (a mutant's .pyc can never be reused for the next mutant).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.mutations.catalog import MUTATIONS, Mutation

REPO = Path(__file__).resolve().parents[2]
COPIED = ("pipeline", "flows", "store_schema", "tests", "pyproject.toml")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")


@dataclass
class Outcome:
    id: str
    path: str
    result: str
    """killed | survived | error (snippet not there exactly once, or pytest could not run)."""
    seconds: float
    detail: str
    """The first failing test (killed), or what went wrong (error)."""


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env.update(threads, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(root))
    return env


def copy_tree(root: Path) -> None:
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=IGNORED, symlinks=True)
        else:
            shutil.copy2(source, root / name)


def _check_imports_from_copy(root: Path) -> None:
    """The copy, not the editable install of the working tree, must be what the tests import."""
    code = "import pipeline, store_schema, flows; print(pipeline.__file__, store_schema.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=_env(root), capture_output=True, text=True
    )
    paths = done.stdout.split()
    if done.returncode != 0 or not paths or not all(p.startswith(str(root)) for p in paths):
        raise SystemExit(
            f"the copy in {root} is not what gets imported: {done.stdout}{done.stderr}"
        )


def run_pytest(root: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str, float]:
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=root, env=_env(root), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode(errors="replace") if expired.stdout else ""
        return -1, output, time.monotonic() - started
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def _first_failure(output: str) -> str:
    match = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, re.MULTILINE)
    return match.group(1) if match else ""


def apply(mutation: Mutation, root: Path) -> str:
    """The original text of the mutated file; raises ValueError unless the snippet is there once."""
    target = root / mutation.path
    if not target.is_file():
        raise ValueError(f"{mutation.path} does not exist")
    original = target.read_text()
    count = original.count(mutation.snippet)
    if count != 1:
        raise ValueError(f"snippet found {count} times in {mutation.path} (expected exactly once)")
    target.write_text(original.replace(mutation.snippet, mutation.replacement, 1))
    return original


def run_one(mutation: Mutation, root: Path, timeout: float) -> Outcome:
    target = root / mutation.path
    try:
        original = apply(mutation, root)
    except ValueError as error:
        return Outcome(mutation.id, mutation.path, "error", 0.0, str(error))
    try:
        code, output, seconds = run_pytest(root, mutation.tests, timeout)
    finally:
        target.write_text(original)
    if code == 0:
        return Outcome(mutation.id, mutation.path, "survived", seconds, "")
    if code == -1:
        return Outcome(mutation.id, mutation.path, "killed", seconds, f"timeout after {timeout}s")
    if code == 1:
        return Outcome(mutation.id, mutation.path, "killed", seconds, _first_failure(output))
    last = " ".join(output.strip().splitlines()[-1:])
    return Outcome(mutation.id, mutation.path, "error", seconds, f"pytest exit {code}: {last}")


def _select(only: list[str] | None) -> list[Mutation]:
    if not only:
        return list(MUTATIONS)
    return [m for m in MUTATIONS if any(s in m.id or s in m.path for s in only)]


def _print_table(outcomes: list[Outcome]) -> None:
    width = max(len(o.id) for o in outcomes)
    print(f"\n{'mutation':<{width}}  {'result':<8}  {'time':>6}  detail")
    for o in outcomes:
        print(f"{o.id:<{width}}  {o.result:<8}  {o.seconds:5.0f}s  {o.detail}")
    print("\nper module:")
    modules = sorted({o.path for o in outcomes})
    for path in modules:
        counts = Counter(o.result for o in outcomes if o.path == path)
        total = sum(counts.values())
        extra = "".join(f", {counts[k]} {k}" for k in ("survived", "error") if counts[k])
        print(f"  {path:<34} {counts['killed']}/{total} killed{extra}")
    counts = Counter(o.result for o in outcomes)
    print(
        f"\n{counts['killed']}/{len(outcomes)} killed, {counts['survived']} survived, "
        f"{counts['error']} errors"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutations", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        metavar="SUBSTRING",
        help="run the mutations whose id or path contains it (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--json", metavar="PATH", help="also write the outcomes as JSON")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per pytest run")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the unmutated run of the selected tests (must pass)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = parser.parse_args(argv)  # fmt: skip
    selected = _select(args.only)
    if not selected:
        print("no mutation matches", file=sys.stderr)
        return 2
    if args.list:  # with whether each snippet is (once) in the working tree as it is now
        for m in selected:
            found = (REPO / m.path).read_text().count(m.snippet) if (REPO / m.path).is_file() else 0
            state = "ok" if found == 1 else f"SNIPPET FOUND {found}x"
            print(f"{m.id:<50} {state:<8} {m.path:<30} {' '.join(m.tests)}")
        return 0
    root = Path(tempfile.mkdtemp(prefix="anon-store-mutants-"))
    try:
        copy_tree(root)
        _check_imports_from_copy(root)
        print(f"{len(selected)} mutations in a copy at {root}", flush=True)
        if not args.no_baseline:
            files = tuple(dict.fromkeys(t for m in selected for t in m.tests))
            code, output, seconds = run_pytest(root, files, args.timeout)
            if code != 0:
                print(output[-4000:])
                print(f"baseline: the unmutated tests fail (exit {code}): nothing to measure")
                return 2
            print(f"baseline: {' '.join(files)} pass unmutated ({seconds:.0f}s)", flush=True)
        outcomes = []
        for number, mutation in enumerate(selected, 1):
            outcome = run_one(mutation, root, args.timeout)
            outcomes.append(outcome)
            print(
                f"[{number}/{len(selected)}] {outcome.result:<8} {mutation.id} "
                f"({outcome.seconds:.0f}s) {outcome.detail}",
                flush=True,
            )
    finally:
        if args.keep:
            print(f"copy kept at {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    _print_table(outcomes)
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(o) for o in outcomes], indent=1) + "\n")
    results = {o.result for o in outcomes}
    return 2 if "error" in results else 1 if "survived" in results else 0
