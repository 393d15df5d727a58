"""`anon-store tune`: one-line errors for bad input, and a small search through the CLI."""

from __future__ import annotations

import json

import pytest
import zarr
from aam.tune_helpers import write_tune_store
from sanitize.stores import make_raw_store

from pipeline.store.writer import update_attrs

FAST = ["--trials", "1", "--workers", "1", "--max-epochs", "1", "--memory-budget", "64MB"]


def _one_error_line(code: int, out: str, err: str) -> str:
    assert code == 1, out + err
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    return lines[0]


@pytest.fixture
def raw(tmp_path):
    return write_tune_store(tmp_path / "raw.zarr", privacy=False, videos=100)


def test_missing_incomplete_and_non_raw_stores_give_one_line(run_cli, tmp_path, raw):
    out = tmp_path / "tuned"
    line = _one_error_line(*run_cli("tune", "--input", tmp_path / "nope.zarr", "--output", out))
    assert "no store at" in line
    make_raw_store(tmp_path / "partial.zarr", complete=False)
    line = _one_error_line(*run_cli("tune", "--input", tmp_path / "partial.zarr", "--output", out))
    assert "not complete" in line
    update_attrs(zarr.open_group(str(raw), mode="r+"), kind="sanitized")
    line = _one_error_line(*run_cli("tune", "--input", raw, "--output", out))
    assert "expected a raw store" in line
    assert not out.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trials", "0"], "trials must be at least 1"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not both"),
        (["--privacy", "attacker"], "no labelled privacy split"),
    ],
)
def test_bad_options_give_one_line(run_cli, tmp_path, raw, args, message):
    line = _one_error_line(*run_cli("tune", "--input", raw, "--output", tmp_path / "t", *args))
    assert message in line


def test_tune_without_a_privacy_split_uses_the_proxy(run_cli, tmp_path, raw):
    out = tmp_path / "tuned"
    code, stdout, stderr = run_cli("tune", "--input", raw, "--output", out, *FAST)
    text = stdout + stderr
    assert code == 0, text
    assert "proxy" in text and "chosen: preset-recommended" in text
    assert f"table: {out / 'tune.md'}" in text.replace("\n", "")
    report = json.loads((out / "tune.json").read_text())
    assert report["privacy"]["source"] == "proxy"
    assert "proxy" in (out / "tune.md").read_text()
    assert (out / "chosen" / "model.safetensors").is_file()
    code, stdout, stderr = run_cli("tune", "--input", raw, "--output", out, *FAST, "--seed", "1")
    assert "pass --overwrite" in _one_error_line(code, stdout, stderr)
