"""Flows on a 2-worker dask cluster write the same stores as one process; shards are cached."""

from __future__ import annotations

import shutil

import pytest

from pipeline.orchestration.cluster import local_cluster_kwargs
from pipeline.store.location import StoreLocation
from pipeline.store.reader import open_store
from pipeline.store.writer import update_attrs
from store_schema import validate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dask_address():
    """One LocalCluster (2 single-thread worker processes) for the module's flows."""
    from distributed import LocalCluster

    with LocalCluster(**local_cluster_kwargs(2)) as cluster:
        yield cluster.scheduler_address


def test_extract_on_dask_equals_single_process(
    prefect_api, dask_address, raw_store, tiny_benchmark, tiny_encoder_dir, tmp_path,
    assert_same_store,
):  # fmt: skip
    from flows.extract_features import extract_features

    out = tmp_path / "raw.zarr"
    result = extract_features(
        input=str(tiny_benchmark / "manifest.parquet"),
        encoder=str(tiny_encoder_dir),
        output=str(out),
        videos_per_chunk=8,  # as the raw_store fixture (a single-process extract() run)
        batch_size=16,
        dask_address=dask_address,
    )
    assert result["action"] == "created" and validate(str(out)) == []
    assert_same_store(raw_store, out)


def test_sanitize_on_dask_equals_single_process(
    prefect_api, dask_address, raw_store, tmp_path, assert_same_store
):
    from flows.sanitize_store import sanitize_store
    from pipeline.aam.from_store import TrainAAMConfig, train_aam
    from pipeline.aam.trainer import TrainConfig
    from pipeline.sanitize import SanitizeConfig, sanitize

    adapter = tmp_path / "adapter"
    train_aam(str(raw_store), adapter, TrainAAMConfig(training=TrainConfig(epochs=1)))
    sanitize(raw_store, adapter, tmp_path / "local.zarr", SanitizeConfig(scheduler="synchronous"))
    result = sanitize_store(
        input=str(raw_store),
        adapter=str(adapter),
        output=str(tmp_path / "dask.zarr"),
        dask_address=dask_address,
    )
    assert result["action"] == "created" and validate(result["output"]) == []
    assert_same_store(tmp_path / "local.zarr", tmp_path / "dask.zarr")


def test_shards_are_cached_across_runs(
    prefect_api, tiny_benchmark, tiny_encoder_dir, tmp_path, monkeypatch
):
    import flows.extract_features as module

    calls: list[int] = []
    real = module.extract_shard

    def counting(job, shard, **kwargs):
        calls.append(shard)
        return real(job, shard, **kwargs)

    monkeypatch.setattr(module, "extract_shard", counting)
    out = tmp_path / "raw.zarr"
    params = {
        "input": str(tiny_benchmark / "manifest.parquet"),
        "encoder": str(tiny_encoder_dir),
        "output": str(out),
        "videos_per_chunk": 8,
        "splits": ["train", "val", "test"],
    }
    first = module.extract_features(**params)
    shards = sorted(calls)
    assert first["action"] == "created" and shards == list(range(len(shards)))

    # Interrupted after the last shard was committed, before the store was marked complete:
    # the rerun finds every shard task cached and extracts nothing.
    update_attrs(StoreLocation.parse(out).open_group("r+"), status="writing")
    calls.clear()
    second = module.extract_features(**params)
    assert calls == [] and second["action"] == "resumed" and second["clips_encoded"] == 0
    assert open_store(out).status == "complete"

    # A store deleted and extracted again (same inputs, new store id) is really re-extracted.
    shutil.rmtree(out)
    calls.clear()
    assert module.extract_features(**params)["action"] == "created"
    assert sorted(calls) == shards
