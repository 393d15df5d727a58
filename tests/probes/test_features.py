"""Loading probe features from a real store: splits, failed videos, windows, segments."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.probes.features import load_features

from .store_helpers import write_store
from .synthetic import features


@pytest.fixture(scope="module")
def planted():
    return features(0, scale=1)


def test_store_round_trip(tmp_path, planted):
    location = write_store(tmp_path / "raw.zarr", planted)
    loaded = load_features(location.url)
    assert set(loaded.splits) == set(planted.splits)
    assert loaded.window_length == planted.window_length
    assert loaded.dataset.person_attributes == ["skin", "gender", "hat"]
    assert loaded.dataset.context_attributes == ["scene"]
    assert loaded.source["kind"] == "raw"
    for name, want in planted.splits.items():
        got = loaded[name]
        np.testing.assert_array_equal(got.video_id, want.video_id)
        np.testing.assert_array_equal(got.clip, want.clip)
        np.testing.assert_array_equal(got.static, want.static)
        np.testing.assert_array_equal(got.action, want.action)
        for attr in want.attributes:
            np.testing.assert_array_equal(got.attributes[attr], want.attributes[attr])
        np.testing.assert_array_equal(got.anomalous, want.anomalous)
        assert got.num_windows == want.num_windows
        for v in range(len(want)):
            np.testing.assert_array_equal(
                got.window_features[got.video_windows(v)],
                want.window_features[want.video_windows(v)],
            )
            np.testing.assert_array_equal(got.video_segments(v), want.video_segments(v))
            np.testing.assert_array_equal(got.frame_labels(v), want.frame_labels(v))


def test_only_ok_videos_are_loaded_and_local_indices_follow(tmp_path, planted):
    location = write_store(tmp_path / "raw.zarr", planted, failed={"tad_test": [0], "test": [1]})
    loaded = load_features(location.url, splits=["test", "tad_test"])
    assert set(loaded.splits) == {"test", "tad_test"}
    assert len(loaded["test"]) == len(planted["test"]) - 1
    tad, want = (
        loaded["tad_test"],
        planted["tad_test"].subset(np.arange(1, len(planted["tad_test"]))),
    )
    np.testing.assert_array_equal(tad.video_id, want.video_id)
    assert tad.window_video.max() == len(tad) - 1
    for v in range(len(tad)):
        np.testing.assert_array_equal(tad.video_segments(v), want.video_segments(v))
        np.testing.assert_array_equal(
            tad.window_features[tad.video_windows(v)], want.window_features[want.video_windows(v)]
        )


def test_map_features_transforms_every_part(planted):
    seen = []

    def double(x, part):
        seen.append((part, x.ndim))
        return 2 * x

    out = planted.map_features(double, transform="double")
    assert set(seen) == {("clip", 3), ("static", 3), ("window", 2)}  # videos kept whole
    np.testing.assert_allclose(
        out["tad_train"].window_features, 2 * planted["tad_train"].window_features
    )
    np.testing.assert_allclose(out["train"].static, 2 * planted["train"].static)
    assert out.source["transform"] == "double"
