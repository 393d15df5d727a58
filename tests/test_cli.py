"""The anon-store command line end to end on the tiny store: sanitize, inspect, validate, export."""

from __future__ import annotations

import json

import h5py
import numpy as np

from pipeline.store.reader import open_store


def test_train_sanitize_inspect_validate_export(raw_store, tmp_path, run_cli):
    adapter, sanitized = tmp_path / "adapter", tmp_path / "sanitized.zarr"
    code, _, err = run_cli(
        "train",
        "--input",
        raw_store,
        "--output",
        adapter,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--w-b",
        "5",
    )
    assert code == 0, err
    code, _, err = run_cli(
        "sanitize",
        "--input",
        raw_store,
        "--adapter",
        adapter,
        "--output",
        sanitized,
        "--workers",
        "1",
    )
    assert code == 0, err
    store = open_store(sanitized, kind="sanitized")
    assert store.meta["input_store_id"] == open_store(raw_store).store_id
    code, out, _ = run_cli("inspect", sanitized, "--json")
    summary = json.loads(out)
    assert summary["kind"] == "sanitized" and summary["videos"]["ok"] == store.num_videos
    code, _, err = run_cli("validate", sanitized)
    assert code == 0, err
    code, out, err = run_cli(
        "export", "--input", sanitized, "--format", "h5", "--output", tmp_path / "h5"
    )
    assert code == 0, err
    assert "exported" in out and "deprecated" not in err
    files = list((tmp_path / "h5").glob("*.h5"))
    with h5py.File(files[0], "r") as h5:
        video_id = str(store.videos["video_id"][0])
        np.testing.assert_array_equal(h5[video_id][:], store.group["clip_features"][0])
    code, _, err = run_cli(
        "sanitize", "--input", sanitized, "--adapter", adapter, "--output", tmp_path / "again.zarr"
    )
    assert code == 1 and "raw" in err and not (tmp_path / "again.zarr").exists()


def test_validate_fails_on_a_broken_store(raw_store, tmp_path, run_cli):
    import shutil

    import zarr

    broken = tmp_path / "broken.zarr"
    shutil.copytree(raw_store, broken)
    group = zarr.open_group(str(broken), mode="r+", use_consolidated=False)
    del group["static_frame"]
    code, out, err = run_cli("validate", broken)
    assert code == 1 and "static_frame" in out  # the problems are the result: stdout
    assert err.startswith("error:") and err.count("\n") == 1
    code, out, _ = run_cli("validate", broken, "--json")
    report = json.loads(out)
    assert code == 1 and report["valid"] is False
    assert any("static_frame" in problem for problem in report["problems"])


def test_synth_writes_a_world_and_reports_its_splits(tmp_path, run_cli):
    from pipeline.data.manifest import read_manifest
    from pipeline.data.synth import SCALES

    output = tmp_path / "robots"
    code, out, err = run_cli("synth", "--output", output, "--scale", "tiny", "--world", "robots")
    assert code == 0, err
    counts = SCALES["tiny"].counts
    assert f"{sum(counts.values())} videos" in out  # results on stdout
    assert all(f"│ {split}" in out for split in counts)
    manifest = read_manifest(output / "manifest.parquet")
    assert manifest.info.name == "anon-synth-robots" and len(manifest) == sum(counts.values())

    # a complete benchmark is replaced only with --overwrite
    code, _, err = run_cli("synth", "--output", output, "--scale", "tiny", "--world", "robots")
    assert code == 1 and "pass --overwrite" in err and err.count("\n") == 1

    code, _, err = run_cli("synth", "--output", tmp_path / "nowhere", "--world", "mars")
    assert code == 2 and "unknown synth world 'mars'" in err and "Traceback" not in err
    assert not (tmp_path / "nowhere").exists()
