"""extract --append: a grown manifest's new videos join a complete store, nothing else changes."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.data.manifest import read_manifest, write_manifest
from pipeline.errors import StoreError
from pipeline.extract import ExtractConfig, extract
from pipeline.extract import append as append_module
from pipeline.store.reader import open_store
from store_schema import validate

SPLITS = ("train", "test", "tad_test", "anomaly_test")
"""Trimmed, untrimmed and anomaly videos: clips, windows and segments all grow."""


def _config(**changes) -> ExtractConfig:
    return ExtractConfig(splits=SPLITS, videos_per_chunk=4, batch_size=16, **changes)


def _subset(benchmark: Path, out: Path, indices: list[int]) -> Path:
    """A manifest of the benchmark's rows at `indices`, in that order (paths absolute)."""
    manifest = read_manifest(benchmark / "manifest.parquet")
    rows = manifest.table.to_pylist()
    paths = manifest.video_paths()
    chosen = [{**rows[i], "path": str(paths[i])} for i in indices]
    out.mkdir(parents=True, exist_ok=True)
    return write_manifest(out / "manifest.parquet", chosen, manifest.info, allow_outside_root=True)


def _split_rows(benchmark: Path) -> list[int]:
    table = read_manifest(benchmark / "manifest.parquet").table
    return [i for i, s in enumerate(table.column("split").to_pylist()) if s in SPLITS]


@pytest.fixture(scope="module")
def manifests(tmp_path_factory, tiny_benchmark):
    root = tmp_path_factory.mktemp("grow")
    rows = _split_rows(tiny_benchmark)
    first = rows[::2]  # every split, and not a whole number of chunks
    rest = [i for i in rows if i not in first]
    return {
        "half": _subset(tiny_benchmark, root / "half", first),
        # The stored videos first, then the new ones: the order an append gives them.
        "full": _subset(tiny_benchmark, root / "full", first + rest),
        "rows": first + rest,
    }


@pytest.fixture(scope="module")
def one_shot(tmp_path_factory, manifests, tiny_encoder_dir):
    out = tmp_path_factory.mktemp("oneshot") / "raw.zarr"
    extract(manifests["full"], str(tiny_encoder_dir), out, _config(allow_outside_root=True))
    return out


def _arrays(path: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return {name: np.asarray(group[name][:]) for name in group.array_keys()}


def _snapshot(path: Path) -> dict[str, str]:
    return {
        str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(path.rglob("*"))
        if f.is_file()
    }


def _half_store(tmp_path, manifests, encoder) -> Path:
    out = tmp_path / "raw.zarr"
    extract(manifests["half"], str(encoder), out, _config(allow_outside_root=True))
    return out


def test_append_equals_a_one_shot_extraction(tmp_path, manifests, one_shot, tiny_encoder_dir):
    store = _half_store(tmp_path, manifests, tiny_encoder_dir)
    before = _arrays(store)
    first_meta = open_store(store).meta
    result = extract(
        manifests["full"],
        str(tiny_encoder_dir),
        store,
        _config(append=True, allow_outside_root=True),
    )
    assert result.action == "appended" and result.videos > 0
    assert validate(str(store)) == []
    grown, expected = _arrays(store), _arrays(one_shot)
    assert sorted(grown) == sorted(expected)
    for name, values in expected.items():
        np.testing.assert_array_equal(grown[name], values, err_msg=name)
    for name, values in before.items():  # existing rows bit for bit
        np.testing.assert_array_equal(grown[name][: len(values)], values, err_msg=name)
    meta = open_store(store).meta
    assert meta["store_id"] == first_meta["store_id"]
    assert (first_meta["version"], meta["version"]) == (1, 2)
    assert [e["op"] for e in meta["history"]] == ["created", "appended"]
    assert meta["history"][-1]["videos"] == result.videos
    assert meta["fingerprint"] != first_meta["fingerprint"]
    assert "_append" not in zarr.open_group(str(store), mode="r")
    again = extract(
        manifests["full"],
        str(tiny_encoder_dir),
        store,
        _config(append=True, allow_outside_root=True),
    )
    assert again.action == "unchanged"


def test_refusals_leave_the_store_untouched(tmp_path, manifests, tiny_benchmark, tiny_encoder_dir):
    store = _half_store(tmp_path, manifests, tiny_encoder_dir)
    snapshot = _snapshot(store)
    order = manifests["rows"]
    dropped = _subset(tiny_benchmark, tmp_path / "dropped", order[1:])
    relabelled = read_manifest(manifests["full"], allow_outside_root=True).table.to_pylist()
    relabelled[0]["action"] = (relabelled[0]["action"] + 1) % 3
    changed = write_manifest(
        tmp_path / "changed" / "manifest.parquet",
        relabelled,
        read_manifest(manifests["full"], allow_outside_root=True).info,
        allow_outside_root=True,
    )
    cases = [
        (dropped, _config(append=True, allow_outside_root=True), "not in the manifest"),
        (changed, _config(append=True, allow_outside_root=True), "changed its action"),
        (
            manifests["full"],
            _config(append=True, allow_outside_root=True, clips_per_video=3),
            "clip sampling",
        ),
    ]
    for manifest, config, message in cases:
        with pytest.raises(StoreError, match=message):
            extract(manifest, str(tiny_encoder_dir), store, config)
        assert _snapshot(store) == snapshot, message
        assert not Path(f"{store}.lock").exists()


def test_killed_commit_resumes_and_readers_see_the_old_version(
    tmp_path, manifests, one_shot, tiny_encoder_dir, monkeypatch
):
    store = _half_store(tmp_path, manifests, tiny_encoder_dir)
    old = _arrays(store)
    real_grow = append_module._grow
    seen = []

    def grow_then_die(array, *args, **kwargs):
        real_grow(array, *args, **kwargs)
        # A reader opening the store mid-commit finds the previous complete version.
        opened = open_store(store)
        seen.append((opened.status, opened.num_videos, opened.group["clip_features"].shape[0]))
        np.testing.assert_array_equal(
            np.asarray(opened.group["clip_features"][:]), old["clip_features"]
        )
        if len(seen) == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(append_module, "_grow", grow_then_die)
    config = _config(append=True, allow_outside_root=True)
    with pytest.raises(KeyboardInterrupt):
        extract(manifests["full"], str(tiny_encoder_dir), store, config)
    n_old = len(old["video_id"])
    assert seen == [("complete", n_old, n_old)] * 5
    monkeypatch.setattr(append_module, "_grow", real_grow)
    result = extract(manifests["full"], str(tiny_encoder_dir), store, config)
    assert result.action == "appended" and result.clips_encoded == 0  # staging was complete
    grown, expected = _arrays(store), _arrays(one_shot)
    for name, values in expected.items():
        np.testing.assert_array_equal(grown[name], values, err_msg=name)
    assert open_store(store).meta["version"] == 2


def test_sanitize_follows_the_append_with_new_rows_only(
    tmp_path, manifests, one_shot, tiny_encoder_dir
):
    from pipeline.sanitize import sanitize

    sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/, for the sanitize test helpers
    from sanitize.stores import make_adapter

    dim = zarr.open_group(str(one_shot), mode="r")["clip_features"].shape[-1]
    sha = open_store(one_shot).encoder["weights_sha256"]
    adapter = make_adapter(tmp_path / "adapter", dim=dim, encoder_sha=sha)
    store = _half_store(tmp_path, manifests, tiny_encoder_dir)
    out = tmp_path / "sanitized.zarr"
    sanitize(str(store), adapter, out)
    first = _arrays(out)
    config = _config(append=True, allow_outside_root=True)
    extract(manifests["full"], str(tiny_encoder_dir), store, config)
    result = sanitize(str(store), adapter, out)
    assert result.action == "appended"
    assert 0 < result.chunks_written < result.chunks_total
    grown = _arrays(out)
    for name, values in first.items():
        np.testing.assert_array_equal(grown[name][: len(values)], values, err_msg=name)
    reference = tmp_path / "reference.zarr"
    sanitize(str(store), adapter, reference)  # from scratch, the same grown input
    for name, values in _arrays(reference).items():
        np.testing.assert_array_equal(grown[name], values, err_msg=name)
    meta = open_store(out).meta
    assert [e["op"] for e in meta["history"]] == ["sanitized", "appended"]
    assert meta["input_version"] == open_store(store).meta["version"] == 2
    assert validate(str(out)) == []
    assert sanitize(str(store), adapter, out).action == "unchanged"
    other = make_adapter(tmp_path / "other", dim=dim, encoder_sha=sha, seed=1)
    with pytest.raises(StoreError, match="overwrite"):
        sanitize(str(store), other, out)


KILLED_APPEND = """
import sys
from pipeline.extract import ExtractConfig, extract
config = ExtractConfig(splits=tuple(sys.argv[4].split(",")), videos_per_chunk=4, batch_size=16,
                       append=True, allow_outside_root=True)
extract(sys.argv[1], sys.argv[2], sys.argv[3], config)
"""


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8])
def test_append_killed_at_a_random_point_resumes_to_the_same_store(
    fraction, tmp_path, manifests, one_shot, tiny_encoder_dir
):
    import os
    import signal
    import subprocess
    import time

    store = _half_store(tmp_path, manifests, tiny_encoder_dir)
    args = [str(manifests["full"]), str(tiny_encoder_dir), str(store), ",".join(SPLITS)]
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", KILLED_APPEND, *args], check=True)
    whole = time.monotonic() - started
    shutil_store = tmp_path / "again.zarr"
    store.rename(shutil_store)
    store = _half_store(tmp_path, manifests, tiny_encoder_dir)
    args[2] = str(store)
    child = subprocess.Popen([sys.executable, "-c", KILLED_APPEND, *args])
    time.sleep(whole * fraction)
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    config = _config(append=True, allow_outside_root=True, break_lock=True)
    extract(manifests["full"], str(tiny_encoder_dir), store, config)
    assert validate(str(store)) == []
    grown, expected = _arrays(store), _arrays(one_shot)
    for name, values in expected.items():
        np.testing.assert_array_equal(grown[name], values, err_msg=name)
