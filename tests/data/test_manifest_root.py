"""Manifest paths resolve under a root (the manifest's directory or an explicit one); a path that
leaves it is refused unless allowed, in the library and on `anon-store extract`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.data.manifest import read_manifest
from pipeline.errors import ManifestError
from pipeline.store.reader import open_store


@pytest.fixture(scope="module")
def bench(tiny_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The val videos of the tiny benchmark, with manifests in a subdirectory ``meta/``:
    ``escaping.parquet`` (paths ``../videos/...``) and ``rooted.parquet`` (paths relative to the
    benchmark, for an explicit root)."""
    out = tmp_path_factory.mktemp("rooted") / "bench"
    table = pq.read_table(tiny_benchmark / "manifest.parquet")
    rows = [r for r in table.to_pylist() if r["split"] == "val"]
    for r in rows:
        (out / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tiny_benchmark / r["path"], out / r["path"])
    (out / "meta").mkdir()
    rooted = pa.Table.from_pylist(rows, schema=table.schema)
    pq.write_table(rooted, out / "meta" / "rooted.parquet")
    escaping = [{**r, "path": f"../{r['path']}"} for r in rows]
    pq.write_table(
        pa.Table.from_pylist(escaping, schema=table.schema), out / "meta" / "esc.parquet"
    )
    pq.write_table(rooted, out / "manifest.parquet")
    return out


def test_synthetic_benchmark_manifest_stays_under_its_root(tiny_benchmark: Path) -> None:
    manifest = read_manifest(tiny_benchmark / "manifest.parquet")
    root = os.path.realpath(tiny_benchmark)
    assert all(str(p).startswith(root + os.sep) for p in manifest.video_paths())


def test_explicit_root(bench: Path) -> None:
    rooted = bench / "meta" / "rooted.parquet"
    with pytest.raises(ManifestError, match="video file not found"):
        read_manifest(rooted)  # relative to meta/: the files are not there
    manifest = read_manifest(rooted, root=bench)
    assert manifest.root == bench.absolute()
    assert all(p.is_file() for p in manifest.video_paths())
    # the content hash does not depend on where the videos live
    assert manifest.sha256 == read_manifest(bench / "manifest.parquet").sha256
    with pytest.raises(ManifestError, match="not a directory"):
        read_manifest(rooted, root=bench / "nope")
    # an explicit root also bounds the paths: ../ leaves it
    with pytest.raises(ManifestError, match="escapes the video root"):
        read_manifest(bench / "meta" / "esc.parquet", root=bench / "meta")


def test_symlink_out_of_an_explicit_root(bench: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    rows = pq.read_table(bench / "manifest.parquet")
    first = rows.column("path")[0].as_py()
    os.symlink(bench / "videos", root / "videos")  # the files are there, but out of the root
    pq.write_table(rows, tmp_path / "m.parquet")
    with pytest.raises(ManifestError, match="outside the video root") as error:
        read_manifest(tmp_path / "m.parquet", root=root)
    assert "\n" not in str(error.value)
    allowed = read_manifest(tmp_path / "m.parquet", root=root, allow_outside_root=True)
    assert allowed.video_paths()[0] == (bench / first).resolve()


def _extract_args(manifest: Path, encoder: Path, out: Path) -> list:
    """`anon-store extract` of a small store (2 clips, 2 static clips per video) on the CPU."""
    return ["extract", "--manifest", manifest, "--encoder", encoder, "--output", out,
            "--device", "cpu", "--clips-per-video", "2", "--static-clips", "2"]  # fmt: skip


def test_extract_refuses_an_escaping_manifest_unless_allowed(bench, tiny_encoder_dir, run_cli):
    out = bench.parent / "raw.zarr"
    args = _extract_args(bench / "meta" / "esc.parquet", tiny_encoder_dir, out)
    code, _, err = run_cli(*args)
    assert code == 1 and err.count("\n") == 1 and "--allow-outside-root" in err, err
    assert not out.exists()
    code, _, err = run_cli(*args, "--allow-outside-root")
    assert code == 0, err
    assert len(open_store(out).rows()) == 2


def test_extract_with_a_video_root(bench, tiny_encoder_dir, run_cli):
    out = bench.parent / "raw-rooted.zarr"
    args = _extract_args(bench / "meta" / "rooted.parquet", tiny_encoder_dir, out)
    code, _, err = run_cli(*args)
    assert code == 1 and "video file not found" in err and not out.exists()
    code, _, err = run_cli(*args, "--video-root", bench)
    assert code == 0, err
    assert len(open_store(out).rows()) == 2
