"""Every command, given a bad input at run time, exits 1 with one line on stderr, prints no
result and writes nothing (usage errors, exit 2, are in test_cli_vocabulary.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


CASES = {
    "synth": ["synth", "--output", "{tmp}/file.txt", "--scale", "tiny"],
    "manifest import": ["manifest", "import", "ucf101", "--input", "{tmp}/no-data",
                        "--splits-dir", "{tmp}/no-splits", "--output", "{tmp}/out/m.parquet"],
    "encoder build-tiny": ["encoder", "build-tiny", "--input", "{tmp}/no.parquet",
                           "--output", "{tmp}/out/encoder"],
    "encoder build-tiny --motion-weight": ["encoder", "build-tiny", "--motion-weight", "5"],
    "extract": ["extract", "--input", "{tmp}/no.parquet", "--output", "{tmp}/out/raw.zarr"],
    "train": ["train", "--input", "{tmp}/no.zarr", "--output", "{tmp}/out/adapter"],
    "tune": ["tune", "--input", "{tmp}/no.zarr", "--output", "{tmp}/out/tuned"],
    "sanitize": ["sanitize", "--input", "{raw}", "--adapter", "{tmp}/no-adapter",
                 "--output", "{tmp}/out/s.zarr"],
    "evaluate": ["evaluate", "--input", "{tmp}/no.zarr", "--output", "{tmp}/out/report"],
    "audit": ["audit", "--input", "{raw}"],
    "export": ["export", "--input", "{tmp}/no.zarr", "--format", "npy", "--output", "{tmp}/out/x"],
    "import-h5": ["import-h5", "--input", "{tmp}/no.h5", "--manifest", "{tmp}/no.parquet",
                  "--output", "{tmp}/out/raw.zarr"],
    "demo": ["demo", "--output", "{tmp}/file.txt", "--scale", "tiny"],
    "inspect": ["inspect", "{tmp}/no.zarr"],
    "validate": ["validate", "{tmp}/no.zarr"],
    "history": ["history", "{tmp}/no.zarr"],
    "migrate": ["migrate", "{raw}"],
    "publish": ["publish", "--input", "{raw}", "--output", "{tmp}/out/published.zarr"],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_and_writes_nothing(name, raw_store, tmp_path, run_cli):
    (tmp_path / "file.txt").write_text("not a directory")
    before = _files(tmp_path)
    raw_before = _files(Path(raw_store))
    args = [a.format(tmp=tmp_path, raw=raw_store) for a in CASES[name]]
    code, out, err = run_cli(*args)
    lines = err.strip().splitlines()
    assert code == 1, (name, code, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
    assert "Traceback" not in err, (name, err)
    if name == "validate":  # its result is the list of problems, on stdout
        assert all(line.startswith("problem: ") for line in out.strip().splitlines()), out
    else:
        assert not out.strip(), (name, out)
    assert _files(tmp_path) == before, name  # nothing written (no lock left either)
    assert _files(Path(raw_store)) == raw_before, name
