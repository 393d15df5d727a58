"""adapter_transform gives the features of a sanitized store without writing one."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import AdapterError
from pipeline.probes.features import load_features
from pipeline.sanitize import sanitize
from pipeline.sanitize.in_memory import adapter_transform
from sanitize.stores import make_adapter


def test_matches_the_sanitized_store(raw_store, adapter_dir, tmp_path):
    sanitize(raw_store.url, adapter_dir, tmp_path / "out.zarr")
    from_store = load_features(str(tmp_path / "out.zarr"))
    raw = load_features(raw_store.url)
    in_memory = adapter_transform(adapter_dir)(raw)
    assert in_memory.source["adapter"] == str(adapter_dir)
    assert "applied in memory" in in_memory.source["transform"]
    for split, videos in from_store.splits.items():
        mine = in_memory[split]
        assert not np.array_equal(mine.clip, raw[split].clip)  # the adapter did something
        np.testing.assert_allclose(mine.clip, videos.clip, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(mine.static, videos.static, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(
            mine.window_features, videos.window_features, rtol=1e-6, atol=1e-6
        )


def test_wrong_dimension_is_a_one_line_error(raw_store, tmp_path):
    other = make_adapter(tmp_path / "wide", arch="mlp", dim=8)
    with pytest.raises(AdapterError):
        adapter_transform(other)(load_features(raw_store.url))
