"""Streaming training data from the store: bounded memory, same learning, deterministic."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch

from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter
from pipeline.aam.checkpoint import load_adapter
from pipeline.aam.from_store import TrainAAMConfig, load_split, train_aam, usable_rows
from pipeline.aam.heads import create_heads
from pipeline.aam.sampler import ClipSampler
from pipeline.aam.streaming import (
    MemoryLedger,
    StreamingSplit,
    StreamPlan,
    parse_bytes,
    plan_stream,
    plan_validation,
)
from pipeline.aam.trainer import TrainConfig, validate
from pipeline.errors import ConfigError
from pipeline.store.reader import open_store


def test_parse_bytes_and_plans_fit_the_budget() -> None:
    assert parse_bytes("2GB") == 2_000_000_000
    assert parse_bytes("512MiB") == 512 * 2**20
    assert parse_bytes("1.5g") == 1_500_000_000
    assert parse_bytes("100000") == 100_000
    for bad in ("lots", "2 XB", "0", "-1GB"):
        with pytest.raises(ConfigError):
            parse_bytes(bad)
    options = {"chunk_rows": 100, "row_bytes": 1000, "batch_size": 10}
    roomy = plan_stream(budget_bytes=10**9, **options)
    assert roomy == StreamPlan(block_rows=100, window=4, prefetch=2)
    for budget in (600_000, 250_000, 100_000, 20_000):
        plan = plan_stream(budget_bytes=budget, **options)
        assert plan.held_bytes(1000, 10) <= budget
    # shrink order: the window first, then the prefetch depth, then blocks below a chunk
    assert plan_stream(budget_bytes=450_000, **options) == StreamPlan(100, 1, 2)
    assert plan_stream(budget_bytes=350_000, **options) == StreamPlan(100, 1, 1)
    assert plan_stream(budget_bytes=100_000, **options).block_rows == 30
    with pytest.raises(ConfigError, match="too small to stream"):
        plan_stream(budget_bytes=11_999, **options)
    val = plan_validation(chunk_rows=100, row_bytes=1000, budget_bytes=2_000_000)
    assert val.window >= 3 and val.held_bytes(1000, 1) <= 2_000_000


def _split(store_path, split: str, plan: StreamPlan) -> StreamingSplit:
    store = open_store(store_path, kind="raw")
    return StreamingSplit(store, usable_rows(store, split), plan, ledger=MemoryLedger())


def _video_ids(features: torch.Tensor) -> list[float]:
    """A planted video is identified by its first clip's feature vector (random, unique)."""
    return [float(x) for x in features[:, 0, 5]]


def test_one_epoch_streams_every_video_once_in_a_seeded_order(planted_store) -> None:
    path = planted_store(videos=300, videos_per_chunk=20)
    plan = StreamPlan(block_rows=7, window=2, prefetch=1)  # blocks smaller than a chunk
    split = _split(path, "train", plan)
    memory = load_split(open_store(path), "train")
    assert split.num_videos == memory.num_videos == 238  # 240 train videos, 2 failed
    index = {v: i for i, v in enumerate(_video_ids(memory.clip_features))}

    def epoch(seed: int) -> list[int]:
        sampler = ClipSampler(split.num_videos, 4, 4, batch_size=16, seed=seed)
        seen = []
        for data, sample in split.batches(sampler, torch.device("cpu")):
            assert 2 <= len(sample.videos) <= 16
            picked = data.clip_features[sample.videos]
            seen += [index[v] for v in _video_ids(picked)]
            # targets travel with their videos
            assert torch.equal(data.actions[sample.videos], memory.actions[seen[-len(picked) :]])
        return seen

    first = epoch(seed=0)
    assert sorted(first) in (list(range(238)), sorted(set(range(238)) - {first[-1]}))
    assert len(set(first)) == len(first) >= 237  # at most one straggler dropped
    assert epoch(seed=0) == first and epoch(seed=1) != first
    # memory: the buffer of a window and the blocks in flight, never the split
    assert 0 < split.ledger.peak <= plan.held_bytes(split.row_bytes, 16) < memory.nbytes
    split.release_buffers()
    assert split.ledger.held == 0


def test_streamed_validation_matches_in_memory_validation(planted_store) -> None:
    path = planted_store(videos=300, videos_per_chunk=20)
    split = _split(path, "val", StreamPlan(block_rows=10, window=3, prefetch=2))
    assert len(split.groups(10)) > 2  # several query groups: the blocked path is exercised
    memory = load_split(open_store(path), "val")
    torch.manual_seed(0)
    adapter = AnonymizingAdapter(AdapterConfig(dim=16))
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(0.2 * torch.randn_like(p))
    heads = create_heads(("action",), 16, [memory])
    expected = validate(adapter, heads, memory)
    got = split.validate(adapter, heads)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    assert split.ledger.held == 0


DRAWS = {"batch_size": 64, "draws": 4}

# The reference objectives (w_B 1, no extensions): these tests are about how data reaches the
# trainer, not about the recipe.
FAST = TrainConfig(
    epochs=4, batch_size=16, lr=3e-3, w_lc=1.0, w_b=1.0, w_spread=0.0, w_swap=0.0,
    val_every=2, head_warmup_epochs=1, seed=0,
)  # fmt: skip


def test_streamed_training_learns_like_in_memory(planted_store, mean_losses, tmp_path):
    path = planted_store(videos=200, videos_per_chunk=20)
    feature_bytes = 178 * 8 * 16 * 4  # usable train (158) + val (20) videos * (K + S) * D * 4
    budget = 40_000
    runs = {}
    for name, config in (
        ("memory", TrainAAMConfig(training=FAST)),
        ("stream", TrainAAMConfig(training=FAST, memory_budget_bytes=budget)),
    ):
        runs[name] = train_aam(path, tmp_path / name, config)
    assert runs["memory"].data_mode == "memory" and runs["memory"].feature_bytes == feature_bytes
    streamed = runs["stream"]
    assert streamed.data_mode == "stream"
    assert 0 < streamed.peak_loader_bytes <= streamed.memory_bytes <= budget < feature_bytes

    train = load_split(open_store(path), "train")
    fresh = AnonymizingAdapter(AdapterConfig(dim=16))
    before = mean_losses(fresh, load_adapter(tmp_path / "memory").heads, train, FAST, **DRAWS)
    for name in ("memory", "stream"):
        loaded = load_adapter(tmp_path / name)
        after = mean_losses(loaded.adapter, loaded.heads, train, FAST, **DRAWS)
        assert after["l_t"] < 0.8 * before["l_t"], name
        assert after["l_b"] > before["l_b"] + 0.3, name
        raw, best = runs[name].history[0], runs[name].best
        assert best["static_retrieval"] < raw["static_retrieval"], name


def test_streaming_holds_a_bounded_share_of_a_larger_store(planted_store, tmp_path):
    """tracemalloc sees numpy buffers (store reads, the shuffle buffer, in-memory splits); the
    rest of a run (videos table, checkpoints, Python objects) is the same in both modes."""
    path = planted_store(videos=1500, dim=32, clips=8, static=8, videos_per_chunk=50)
    training = TrainConfig(epochs=1, batch_size=32, val_every=1, head_warmup_epochs=0)
    budget = 700_000
    peaks, results = {}, {}
    for name in ("memory", "stream"):
        config = TrainAAMConfig(training=training, memory_budget_bytes=budget, stream=True)
        if name == "memory":
            config = TrainAAMConfig(training=training)
        tracemalloc.start()
        try:
            results[name] = train_aam(path, tmp_path / name, config)
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert results[name].data_mode == name
    features = results["memory"].feature_bytes
    assert features == 1348 * 16 * 32 * 4  # usable train + val videos * (K + S) * D * 4 bytes
    streamed = results["stream"]
    assert streamed.peak_loader_bytes <= streamed.memory_bytes <= budget < features / 3
    assert peaks["memory"] > features  # the splits are in memory: the measurement sees them
    assert peaks["stream"] < min(features, 0.6 * peaks["memory"]), peaks


def test_cli_stream_and_budget(raw_store, tmp_path, run_cli):
    code, out, err = run_cli(
        "train",
        "--input",
        raw_store,
        "--output",
        tmp_path / "a",
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--stream",
        "--memory-budget",
        "1MB",
    )
    assert code == 0, err
    flat = " ".join((out + err).split())  # notes on stderr, the result on stdout
    assert "streaming features" in flat and "training from scratch" in flat
    assert "streamed, at most" in flat
    assert (tmp_path / "a" / "model.safetensors").is_file()
    assert not (tmp_path / "a" / ".checkpoint").exists()
    code, _, err = run_cli(
        "train", "--input", raw_store, "--output", tmp_path / "b", "--memory-budget", "1 XB"
    )
    assert code == 1 and "cannot read memory size" in err
    assert not (tmp_path / "b").exists()


def test_budget_too_small_is_one_line_and_writes_nothing(planted_store, tmp_path):
    path = planted_store(videos=60)
    config = TrainAAMConfig(training=FAST, memory_budget_bytes=1000)
    with pytest.raises(ConfigError, match="too small to stream"):
        train_aam(path, tmp_path / "x", config)
    assert not (tmp_path / "x").exists()
    np.testing.assert_array_equal(usable_rows(open_store(path), "val"), np.arange(8, 60, 10))
