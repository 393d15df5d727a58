"""prepare / extract_shard / finish (what the flow's tasks call) write what extract() writes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.errors import StoreError
from pipeline.extract import ExtractConfig
from pipeline.orchestration.extract_shards import (
    extract_shard,
    finish_extraction,
    prepare_extraction,
    uncommitted_shards,
)
from store_schema import validate


def test_shards_in_any_order_equal_extract(
    raw_store, tiny_benchmark, tiny_encoder_dir, tmp_path, assert_same_store
):
    out = tmp_path / "raw.zarr"
    config = ExtractConfig(videos_per_chunk=8, batch_size=16)  # as the raw_store fixture
    job = prepare_extraction(
        tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), out, config
    )
    assert job.action == "created" and job.todo == tuple(range(job.num_shards))
    last = job.num_shards - 1
    first = extract_shard(job, last)
    assert not first.skipped and first.clips_encoded > 0
    with pytest.raises(StoreError, match=r"shards \[0, 1"):
        finish_extraction(job)  # refuses to mark an incomplete store complete
    assert uncommitted_shards(job) == list(range(last))
    reports = [extract_shard(job, shard) for shard in reversed(range(last))]
    assert sum(r.videos for r in reports) + first.videos == job.videos
    assert extract_shard(job, 0).skipped  # committed: nothing encoded again
    result = finish_extraction(job, sum(r.clips_encoded for r in reports))
    assert result.action == "created" and validate(str(out)) == []
    assert_same_store(raw_store, out)
    again = prepare_extraction(
        tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), out, config
    )
    assert again.action == "unchanged" and again.todo == () and again.store_id == job.store_id


def test_a_replaced_store_is_refused(tiny_benchmark, tiny_encoder_dir, tmp_path):
    config = ExtractConfig(videos_per_chunk=8, batch_size=16, splits=("val",))
    job = prepare_extraction(
        tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), tmp_path / "r.zarr", config
    )
    with pytest.raises(StoreError, match="was replaced since"):
        extract_shard(replace(job, store_id="another"), 0)
    with pytest.raises(StoreError, match="out of range"):
        extract_shard(job, job.num_shards)
