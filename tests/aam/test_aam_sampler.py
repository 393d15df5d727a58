"""The per-step sampler: distinct pairs within each video, seeded, uniform, vectorised."""

from __future__ import annotations

import pytest
import torch

from pipeline.aam.sampler import ClipSampler, distinct_pairs
from pipeline.errors import ConfigError


def test_pairs_are_distinct_in_range_and_of_the_batch_videos() -> None:
    v, k, s = 23, 3, 10
    sampler = ClipSampler(v, k, s, batch_size=8, seed=0)
    # static feature (video, slot) encodes its own coordinates; gather exactly as the trainer does
    coords = torch.stack(torch.meshgrid(torch.arange(v), torch.arange(s), indexing="ij"), dim=-1)
    for _ in range(5):
        for sample in sampler.epoch():
            pair = sample.static_pair
            assert pair.dtype == torch.int64 and pair.shape == (len(sample.videos), 2)
            assert (pair[:, 0] != pair[:, 1]).all()
            assert ((pair >= 0) & (pair < s)).all()
            got = coords[sample.videos[:, None], pair]  # [B, 2, 2]
            assert torch.equal(got[:, 0, 0], sample.videos)
            assert torch.equal(got[:, 1, 0], sample.videos)
            assert (sample.clips[:, 0] != sample.clips[:, 1]).all()
            assert ((sample.clips >= 0) & (sample.clips < k)).all()


def test_epoch_visits_every_video_once_and_drops_singleton_batches() -> None:
    sampler = ClipSampler(21, 2, 2, batch_size=5, seed=3)  # 4 batches of 5 + 1 left over
    batches = [s.videos for s in sampler.epoch()]
    assert [len(b) for b in batches] == [5, 5, 5, 5] == [5] * sampler.steps_per_epoch()
    seen = torch.cat(batches)
    assert len(set(seen.tolist())) == 20
    sampler = ClipSampler(22, 2, 2, batch_size=5, seed=3)  # a last batch of 2 is kept
    assert sorted(torch.cat([s.videos for s in sampler.epoch()]).tolist()) == list(range(22))
    assert sampler.steps_per_epoch() == 5


def test_deterministic_given_the_seed() -> None:
    def run(seed: int) -> list[torch.Tensor]:
        sampler = ClipSampler(30, 4, 6, batch_size=7, seed=seed)
        out = []
        for _ in range(3):
            for s in sampler.epoch():
                out += [s.videos, s.static_pair, s.clips]
        return out

    a, b, c = run(5), run(5), run(6)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_pairs_are_roughly_uniform() -> None:
    s, n = 5, 40_000
    pairs = distinct_pairs(n, s, torch.Generator().manual_seed(0))
    counts = torch.zeros(s, s)
    counts.index_put_((pairs[:, 0], pairs[:, 1]), torch.ones(n), accumulate=True)
    expected = n / (s * (s - 1))
    assert counts.diagonal().sum() == 0
    off = counts[~torch.eye(s, dtype=torch.bool)]
    chi2 = float(((off - expected) ** 2 / expected).sum())
    assert chi2 < 60.0  # 19 degrees of freedom: p(chi2 > 60) < 1e-5
    # the normal clip a step trains on is uniform over the clips of the video
    sampler = ClipSampler(1000, 4, 2, batch_size=1000, seed=0)
    first = torch.cat([next(sampler.epoch()).clips[:, 0] for _ in range(20)])
    freq = torch.bincount(first, minlength=4).float() / len(first)
    assert (freq - 0.25).abs().max() < 0.02


def test_single_normal_clip_reuses_it_and_bad_sizes_are_config_errors() -> None:
    sample = next(ClipSampler(4, 1, 2, batch_size=4, seed=0).epoch())
    assert torch.equal(sample.clips, torch.zeros(4, 2, dtype=torch.int64))
    for args in [(1, 2, 2, 4), (4, 2, 1, 4), (4, 0, 2, 4), (4, 2, 2, 1)]:
        with pytest.raises(ConfigError):
            ClipSampler(*args)


def test_partners_are_a_seeded_derangement_of_the_batch() -> None:
    assert next(ClipSampler(10, 2, 2, batch_size=5, seed=0).epoch()).partner is None
    draws = [list(ClipSampler(40, 2, 2, batch_size=7, seed=3, partners=True).epoch())
             for _ in range(2)]  # fmt: skip
    for sample in draws[0]:
        b = sample.videos.shape[0]
        assert sorted(sample.partner.tolist()) == list(range(b))  # everyone borrows once
        assert bool((sample.partner != torch.arange(b)).all())  # never from itself
    assert all(torch.equal(a.partner, b.partner) for a, b in zip(*draws, strict=True))
    other = list(ClipSampler(40, 2, 2, batch_size=7, seed=4, partners=True).epoch())
    assert not all(torch.equal(a.partner, b.partner) for a, b in zip(draws[0], other, strict=True))
