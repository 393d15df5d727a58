"""The same input and adapter give bit-identical output whatever the chunking or scheduler."""

from __future__ import annotations

import pytest

from pipeline.sanitize import SanitizeConfig, sanitize
from sanitize.stores import assert_same_features, make_adapter


@pytest.fixture
def attention_adapter(tmp_path):
    # Attention: the arch whose blocks must hold whole videos.
    return make_adapter(tmp_path / "adapter", arch="attention")


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_identical_across_chunkings_batch_sizes_and_local_schedulers(
    store_factory, attention_adapter, tmp_path, precision
):
    # Same values, stored with different zarr chunks.
    stores = {
        "a": store_factory("a.zarr", videos_per_chunk=5, window_chunk=16),
        "b": store_factory("b.zarr", videos_per_chunk=7, window_chunk=24),
    }
    runs = [
        ("a", SanitizeConfig(scheduler="threads", workers=2, precision=precision)),
        ("a", SanitizeConfig(scheduler="synchronous", chunks_per_task=3, precision=precision)),
        ("b", SanitizeConfig(scheduler="threads", chunks_per_task=2, precision=precision)),
    ]
    # Batch size changes the float64 GEMM shapes (float64 arithmetic absorbs that); float32
    # ignores it (fixed GEMM tiles, pipeline.sanitize.kernel.FLOAT32_TILE).
    runs.append(("b", SanitizeConfig(scheduler="synchronous", batch_size=3, precision=precision)))
    outputs = []
    for i, (store, config) in enumerate(runs):
        out = tmp_path / f"out-{i}.zarr"
        sanitize(stores[store].url, attention_adapter, out, config)
        outputs.append(out)
    for out in outputs[1:]:
        assert_same_features(outputs[0], out)


def test_identical_with_the_processes_scheduler(raw_store, attention_adapter, tmp_path):
    sanitize(raw_store.url, attention_adapter, tmp_path / "threads.zarr")
    config = SanitizeConfig(scheduler="processes", workers=2, chunks_per_task=2)
    sanitize(raw_store.url, attention_adapter, tmp_path / "processes.zarr", config)
    assert_same_features(tmp_path / "threads.zarr", tmp_path / "processes.zarr")


def test_identical_on_a_distributed_local_cluster(raw_store, attention_adapter, tmp_path):
    distributed = pytest.importorskip("distributed")
    sanitize(raw_store.url, attention_adapter, tmp_path / "threads.zarr")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        config = SanitizeConfig(scheduler=cluster.scheduler_address)
        reports = []
        sanitize(
            raw_store.url,
            attention_adapter,
            tmp_path / "cluster.zarr",
            config,
            progress=reports.append,
        )
    assert reports[-1].chunks_done == reports[-1].chunks_total
    assert_same_features(tmp_path / "threads.zarr", tmp_path / "cluster.zarr")
