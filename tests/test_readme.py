"""The README stays true: its downstream reading example runs without importing anon-store."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _reading_example() -> str:
    text = README.read_text()
    section = text.split("### Reading a store downstream", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_starts_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    assert commands == ["make demo", "make test"]


def test_downstream_reading_example_runs_without_anon_store(raw_store, tmp_path):
    (tmp_path / "sanitized.zarr").symlink_to(raw_store)
    code = _reading_example() + (
        "\nimport sys\n"
        "assert x.shape[0] == y.shape[0] > 0\n"
        "assert not any(m.split('.')[0] in ('pipeline', 'store_schema') for m in sys.modules)\n"
        "print('ok', x.shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok")
