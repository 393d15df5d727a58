"""import_h5(): an HDF5 feature cache becomes a raw store that the rest of the pipeline accepts."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest
import xarray as xr
import zarr
from sanitize.stores import make_adapter, read_features

from interop.conftest import manifest_for
from pipeline.aam.from_store import train_aam
from pipeline.errors import StoreError
from pipeline.interop import export, import_h5
from pipeline.sanitize import sanitize
from pipeline.store.reader import open_store
from store_schema import VIDEO_FAILED, VIDEO_OK, validate


def _reference_h5(path, ids, *, clips=6, dim=16, seed=0, extra=()):
    """The reference code's cache: one float32 [clips, D] dataset per video id, nothing else."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for i, vid in enumerate([*ids, *extra]):
            n = clips if isinstance(clips, int) else clips[i]
            f.create_dataset(vid, data=rng.standard_normal((n, dim)).astype(np.float32))
    return path


def _datasets(path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: v[()] for k, v in f.items() if isinstance(v, h5py.Dataset)}


def test_reference_h5_import_then_export_equals_the_input(raw_store, tmp_path):
    manifest = manifest_for(raw_store.url, tmp_path / "manifest.parquet")
    ids = [f"video-{i:03d}" for i in range(23)]
    present = [v for v in ids if v != "video-004"]  # one manifest video has no features
    source = _reference_h5(tmp_path / "cache.h5", present, extra=("not-in-manifest",))
    result = import_h5(source, manifest, tmp_path / "imported.zarr")
    assert (result.videos, result.failed, result.ignored) == (23, 1, 1)
    assert (result.clips_per_video, result.static_clips, result.feature_dim) == (6, 0, 16)

    store = open_store(tmp_path / "imported.zarr", kind="raw")
    assert validate(store.group) == []
    meta = store.meta
    assert meta["provenance"] == "imported"
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    expected = {"name": "imported", "source": "cache.h5", "hidden_size": 16, "weights_sha256": sha}
    assert {k: meta["encoder"][k] for k in expected} == expected
    status = np.asarray(store.group["status"][:])
    assert status[4] == VIDEO_FAILED
    assert str(store.group["failure_reason"][4:5][0]).startswith("missing")
    assert (np.delete(status, 4) == VIDEO_OK).all()
    labels = zarr.open_group(raw_store.url, mode="r")
    for name in ("split", "kind", "action", "attr_skin", "segment_start", "segment_label"):
        np.testing.assert_array_equal(store.group[name][:], labels[name][:])

    export(tmp_path / "imported.zarr", "h5", tmp_path / "exported")
    original = _datasets(source)
    del original["not-in-manifest"]
    assert _datasets(tmp_path / "exported" / "features.h5").keys() == original.keys()
    for vid, values in _datasets(tmp_path / "exported" / "features.h5").items():
        np.testing.assert_array_equal(values, original[vid])


def test_imported_store_without_static_clips_downstream(raw_store, tmp_path):
    manifest = manifest_for(raw_store.url, tmp_path / "manifest.parquet")
    source = _reference_h5(tmp_path / "cache.h5", [f"video-{i:03d}" for i in range(23)])
    import_h5(source, manifest, tmp_path / "imported.zarr")
    ds = xr.open_zarr(tmp_path / "imported.zarr")
    assert ds["static_features"].shape == (23, 0, 16)
    assert ds["clip_features"].dims == ("video", "clip", "feature")
    with pytest.raises(StoreError, match="lacks static clips"):
        train_aam(tmp_path / "imported.zarr", tmp_path / "adapter")
    # An adapter made for this file's features sanitizes the imported store.
    sha = hashlib.sha256(source.read_bytes()).hexdigest()
    adapter = make_adapter(tmp_path / "adapter-ok", encoder_sha=sha)
    sanitize(tmp_path / "imported.zarr", adapter, tmp_path / "sanitized.zarr")
    assert open_store(tmp_path / "sanitized.zarr").kind == "sanitized"


def test_unequal_clip_counts_fail_or_resample_evenly(raw_store, tmp_path):
    manifest = manifest_for(raw_store.url, tmp_path / "manifest.parquet")
    ids = [f"video-{i:03d}" for i in range(23)]
    counts = [4 + i % 5 for i in range(23)]  # 4..8 clips
    source = _reference_h5(tmp_path / "cache.h5", ids, clips=counts)
    with pytest.raises(StoreError, match=r"different clip counts.*clips_per_video") as info:
        import_h5(source, manifest, tmp_path / "strict.zarr")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "strict.zarr").exists()
    import_h5(source, manifest, tmp_path / "resampled.zarr", clips_per_video=5)
    clips = np.asarray(zarr.open_group(str(tmp_path / "resampled.zarr"))["clip_features"][:])
    original = _datasets(source)
    for i, vid in enumerate(ids):
        picks = np.rint(np.linspace(0, counts[i] - 1, 5)).astype(int)
        np.testing.assert_array_equal(clips[i], original[vid][picks])


def test_own_export_round_trips_with_static_clips_and_windows(raw_store, tmp_path):
    export(raw_store.url, "h5", tmp_path / "h5")
    manifest = manifest_for(raw_store.url, tmp_path / "manifest.parquet")
    result = import_h5(tmp_path / "h5" / "features.h5", manifest, tmp_path / "imported.zarr")
    assert (result.static_clips, result.failed) == (4, 2)  # the store's two failed videos
    before, after = read_features(raw_store.url), read_features(tmp_path / "imported.zarr")
    for name in ("clip_features", "static_features"):  # failed videos: NaN in both
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)
    old, new = (
        zarr.open_group(p, mode="r") for p in (raw_store.url, str(tmp_path / "imported.zarr"))
    )
    for v in np.flatnonzero(np.asarray(new["status"][:]) == VIDEO_OK):
        a = slice(
            int(old["window_offset"][v]), int(old["window_offset"][v] + old["window_count"][v])
        )
        b = slice(
            int(new["window_offset"][v]), int(new["window_offset"][v] + new["window_count"][v])
        )
        np.testing.assert_array_equal(old["window_features"][a], new["window_features"][b])
        np.testing.assert_array_equal(old["window_start"][a], new["window_start"][b])
    meta = open_store(tmp_path / "imported.zarr").meta
    assert meta["sampling"]["window_stride"] == 8  # carried over from the exported attrs
    # Same file and manifest again: nothing to do.
    again = import_h5(tmp_path / "h5" / "features.h5", manifest, tmp_path / "imported.zarr")
    assert again.action == "unchanged"


def test_bad_inputs(raw_store, tmp_path):
    manifest = manifest_for(raw_store.url, tmp_path / "manifest.parquet")
    with pytest.raises(StoreError, match="not found"):
        import_h5(tmp_path / "nothing.h5", manifest, tmp_path / "out.zarr")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(StoreError, match="not a readable HDF5"):
        import_h5(tmp_path / "text.h5", manifest, tmp_path / "out.zarr")
    _reference_h5(tmp_path / "other-ids.h5", ["someone-else"])
    with pytest.raises(StoreError, match="no dataset named after a manifest video"):
        import_h5(tmp_path / "other-ids.h5", manifest, tmp_path / "out.zarr")
    with h5py.File(tmp_path / "bad-shape.h5", "w") as f:
        f.create_dataset("video-000", data=np.zeros((2, 3, 4), np.float32))
    with pytest.raises(StoreError, match=r"expected a float \[clips, D\]"):
        import_h5(tmp_path / "bad-shape.h5", manifest, tmp_path / "out.zarr")
    assert not (tmp_path / "out.zarr").exists()
    good = _reference_h5(tmp_path / "good.h5", [f"video-{i:03d}" for i in range(23)])
    with pytest.raises(StoreError, match="not an anon-store store"):
        import_h5(good, manifest, tmp_path)  # a directory with other things in it
