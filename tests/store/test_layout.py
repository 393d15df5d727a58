"""Layout planning: shards never share chunks, every video's windows fit in its shard."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.store.layout import plan_layout


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=60),
    videos_per_chunk=st.integers(1, 16),
    window_chunk=st.integers(1, 32),
)
def test_shards_own_disjoint_whole_chunks(counts, videos_per_chunk, window_chunk):
    layout = plan_layout(
        np.array(counts),
        clips_per_video=3,
        static_clips=2,
        feature_dim=8,
        videos_per_chunk=videos_per_chunk,
        window_chunk=window_chunk,
    )
    assert layout.num_windows % window_chunk == 0
    seen_videos: list[int] = []
    previous_stop = 0
    for shard in range(layout.num_shards):
        videos = layout.shard_videos(shard)
        windows = layout.shard_windows(shard)
        seen_videos += list(videos)
        assert videos.start % videos_per_chunk == 0
        assert windows.start % window_chunk == 0 and windows.stop % window_chunk == 0
        assert windows.start >= previous_stop
        previous_stop = windows.stop
        for video in videos:
            start = layout.window_offset[video]
            assert windows.start <= start
            assert start + layout.window_count[video] <= windows.stop
    assert seen_videos == list(range(len(counts)))
    assert layout.window_count.sum() == sum(counts)


def test_default_chunks_are_megabytes_not_kilobytes():
    layout = plan_layout(
        np.zeros(100_000, dtype=int), clips_per_video=5, static_clips=10, feature_dim=768
    )
    chunk_bytes = layout.videos_per_chunk * 10 * 768 * 4
    assert 1e6 <= chunk_bytes <= 16e6
