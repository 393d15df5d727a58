"""The docs stay true: every python example in the downstream docs runs against a real store."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
EXAMPLES = [
    (doc.name, i, code)
    for doc in (DOCS / "downstream.md",)
    for i, code in enumerate(re.findall(r"```python\n(.*?)```", doc.read_text(), re.S))
]


def test_the_downstream_doc_has_examples():
    assert len(EXAMPLES) >= 5


@pytest.fixture
def workdir(sanitized_store):
    """The directory holding sanitized.zarr (a sanitized copy of a raw store with windows)."""
    assert sanitized_store.name == "sanitized.zarr"
    return sanitized_store.parent


@pytest.mark.parametrize(
    ("doc", "index", "code"), EXAMPLES, ids=[f"{d}#{i}" for d, i, _ in EXAMPLES]
)
def test_example_runs(doc, index, code, workdir):
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{doc} example {index}:\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{doc} example {index} printed nothing"
