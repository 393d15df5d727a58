"""Schema v2 as a downstream reader meets it, and the in-place migration of v1 stores."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from pipeline.errors import StoreError
from pipeline.store import migrate as migrate_module
from pipeline.store.migrate import migrate_store
from pipeline.store.reader import open_store
from store_schema import ALL_ARRAYS, SCHEMA_VERSION, VIDEO_FAILED, decode_meta, validate

# Written by the v1 writer (commit 2665a05, pipeline.store.writer) from a hand-made layout: 10
# videos, K=3, S=2, D=8, window counts [3,0,4,2,0,5,1,3,0,2] in chunks of 5 (25 rows, 5 of them
# padding), video 5 failed (NaN clips), actions ["run", "jump", "sit down"], attribute skin a-d.
V1_FIXTURE = Path(__file__).parent / "fixtures" / "v1_store.zip"
V1_WINDOW_COUNTS = [3, 0, 4, 2, 0, 5, 1, 3, 0, 2]


@pytest.fixture
def v1_store(tmp_path) -> Path:
    out = tmp_path / "v1.zarr"
    with zipfile.ZipFile(V1_FIXTURE) as archive:
        archive.extractall(out)
    return out


def test_an_extracted_store_has_no_padding_and_real_offsets(raw_store):
    group = zarr.open_group(str(raw_store), mode="r")
    owner = np.asarray(group["window_video"][:])
    counts = np.asarray(group["window_count"][:])
    offsets = np.asarray(group["window_offset"][:])
    assert len(owner) == counts.sum() > 0 and (owner >= 0).all()
    assert not [name for name in group.array_keys() if name.startswith("_padded_")]
    for video in np.flatnonzero(counts):
        rows = owner[offsets[video] : offsets[video] + counts[video]]
        assert (rows == video).all()
    ok = np.asarray(group["status"][:]) == 1
    assert np.isfinite(np.asarray(group["window_features"][:])[ok[owner]]).all()


def test_xarray_selects_by_video_id_and_writes_netcdf(raw_store, tmp_path):
    ds = xr.open_zarr(str(raw_store))
    ids = [str(v) for v in ds["video"].values]
    assert ids == [str(v) for v in ds["video_id"].values]
    picked = ds["clip_features"].sel(video=ids[2]).values
    np.testing.assert_array_equal(picked, ds["clip_features"].values[2])
    ds.isel(video=slice(0, 4)).to_netcdf(tmp_path / "four.nc")
    back = xr.open_dataset(tmp_path / "four.nc")
    np.testing.assert_array_equal(back["clip_features"].values, ds["clip_features"].values[:4])
    meta = json.loads(back.attrs["anon_store"])
    assert meta["schema_version"] == SCHEMA_VERSION and meta["kind"] == "raw"


def test_every_array_carries_its_doc_and_codes(raw_store):
    ds = xr.open_zarr(str(raw_store))
    docs = {spec.name: spec.doc for spec in ALL_ARRAYS}
    for name, variable in ds.variables.items():
        assert variable.attrs.get("description"), name
        if name in docs:
            assert variable.attrs["description"] == docs[name]
    status = ds["status"].attrs
    assert status["flag_values"] == [0, 1, 2]
    assert status["flag_meanings"] == "pending ok failed"
    meta = decode_meta(zarr.open_group(str(raw_store), mode="r").attrs["anon_store"])
    actions = meta["dataset"]["actions"]
    assert ds["action"].attrs["flag_meanings"].split()[1:] == ["_".join(a.split()) for a in actions]
    for name, info in meta["dataset"]["attributes"].items():
        codes = ds[f"attr_{name}"].attrs
        assert codes["flag_values"] == list(range(-1, len(info["values"])))


def test_chunks_never_exceed_the_data(raw_store):
    group = zarr.open_group(str(raw_store), mode="r")
    for name in group.array_keys():
        array = group[name]
        if array.size:
            assert array.chunks[0] <= array.shape[0], name


def test_a_small_store_is_not_padded_to_a_big_chunk(tiny_benchmark, tiny_encoder_dir, tmp_path):
    """Default chunking (no videos_per_chunk): chunks sized to the 4 MB target used to be written
    whole for a handful of videos."""
    from pipeline.extract import ExtractConfig, extract

    out = tmp_path / "default.zarr"
    extract(
        tiny_benchmark / "manifest.parquet",
        str(tiny_encoder_dir),
        out,
        ExtractConfig(splits=("train",)),
    )
    group = zarr.open_group(str(out), mode="r")
    features = sum(group[n].nbytes for n in ("clip_features", "static_features", "window_features"))
    on_disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    # Chunks, their checksums, the tables and metadata; whole 4 MB edge chunks were 30x this.
    assert on_disk < 2 * features + 256 * 1024, (on_disk, features)


def test_v1_store_is_refused_with_the_migration_command(v1_store):
    with pytest.raises(StoreError, match="anon-store migrate"):
        open_store(v1_store)
    problems = validate(str(v1_store))
    assert problems == [
        "schema_version is 1, an older layout: upgrade it in place with `anon-store migrate STORE`"
    ]


def test_migration_keeps_every_value_and_drops_only_padding(v1_store):
    before = zarr.open_group(str(v1_store), mode="r")
    old = {name: np.asarray(before[name][:]) for name in before.array_keys()}
    result = migrate_store(v1_store)
    assert (result.from_version, result.to_version) == (1, SCHEMA_VERSION)
    assert result.padding_rows_removed == 5
    assert validate(str(v1_store)) == []
    store = open_store(v1_store)
    group = store.group
    for name in ("clip_features", "static_features", "clip_start", "status", "action", "attr_skin"):
        np.testing.assert_array_equal(np.asarray(group[name][:]), old[name])
    assert store.videos["status"][5] == VIDEO_FAILED
    real = old["window_video"] >= 0
    np.testing.assert_array_equal(
        np.asarray(group["window_features"][:]), old["window_features"][real]
    )
    np.testing.assert_array_equal(np.asarray(group["window_video"][:]), old["window_video"][real])
    np.testing.assert_array_equal(np.asarray(group["window_count"][:]), V1_WINDOW_COUNTS)
    np.testing.assert_array_equal(
        np.asarray(group["window_offset"][:]), np.cumsum([0, *V1_WINDOW_COUNTS[:-1]])
    )
    ds = xr.open_zarr(str(v1_store))
    assert ds["action"].attrs["flag_meanings"] == "unknown run jump sit_down"
    assert store.meta["migrated_from"] == 1 and store.meta["fingerprint"] == "fp-v1-fixture"
    with pytest.raises(StoreError, match="nothing to do"):
        migrate_store(v1_store)


def test_interrupted_migration_is_refused_by_readers_and_resumes(v1_store, monkeypatch):
    real = migrate_module._describe_arrays

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(migrate_module, "_describe_arrays", killed)
    with pytest.raises(KeyboardInterrupt):
        migrate_store(v1_store)
    with pytest.raises(StoreError, match="not complete"):
        open_store(v1_store)
    monkeypatch.setattr(migrate_module, "_describe_arrays", real)
    result = migrate_store(v1_store)
    assert result.padding_rows_removed == 5 and validate(str(v1_store)) == []
    assert open_store(v1_store).group["window_features"].shape[0] == sum(V1_WINDOW_COUNTS)
