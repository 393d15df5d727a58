"""Each loss against a direct, loop-by-loop computation."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.aam.losses import (
    LossWeights,
    combined_objective,
    latent_consistency,
    nt_xent,
    relative_spread,
    same_label_partner,
    swap_invariance,
    task_cross_entropy,
)


def _cos(u: list[float], v: list[float]) -> float:
    dot = sum(a * b for a, b in zip(u, v, strict=True))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def _nt_xent_direct(a: torch.Tensor, b: torch.Tensor, t: float) -> float:
    """SimCLR: views 0..N-1 are a, N..2N-1 are b; view i's positive is its pair."""
    views = [row.tolist() for row in torch.cat([a, b]).double()]
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        denom = sum(math.exp(_cos(views[i], views[j]) / t) for j in range(2 * n) if j != i)
        total += -math.log(math.exp(_cos(views[i], views[pos]) / t) / denom)
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_nt_xent_matches_a_direct_loop_over_a_3_video_batch(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    got = float(nt_xent(a, b, temperature))
    assert got == pytest.approx(_nt_xent_direct(a, b, temperature), rel=1e-5)


def test_nt_xent_properties() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    # symmetric in the two views, blind to the scale of each vector (cosine)
    assert float(nt_xent(a, b)) == pytest.approx(float(nt_xent(b, a)), rel=1e-6)
    scale = torch.rand(4, 1, generator=g) + 0.5
    assert float(nt_xent(a * scale, b)) == pytest.approx(float(nt_xent(a, b)), rel=1e-5)
    # identical pairs of well-separated videos: near zero; pairs that look like other videos: large
    eye = torch.eye(4, 6)
    assert float(nt_xent(eye, eye)) < 1e-3
    assert float(nt_xent(eye, eye.roll(1, dims=0))) > 5.0
    # a single video has no negatives: the loss is 0 (the trainer never uses such batches)
    assert float(nt_xent(a[:1], b[:1])) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        nt_xent(a, b[:3])


def test_nt_xent_gradient_is_finite_with_identical_views() -> None:
    a = torch.randn(3, 4, requires_grad=True)
    nt_xent(a, a.detach().clone()).backward()
    assert torch.isfinite(a.grad).all()


def test_latent_consistency_is_the_mean_squared_error() -> None:
    g = torch.Generator().manual_seed(2)
    z, za = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    direct = sum((float(z[i, j]) - float(za[i, j])) ** 2 for i in range(3) for j in range(4)) / 12
    assert float(latent_consistency(z, za)) == pytest.approx(direct, rel=1e-6)
    assert float(latent_consistency(z, z)) == 0.0


def test_task_cross_entropy_matches_direct() -> None:
    g = torch.Generator().manual_seed(3)
    logits, labels = torch.randn(3, 5, generator=g), torch.tensor([4, 0, 2])
    direct = 0.0
    for i in range(3):
        row = [float(v) for v in logits[i]]
        direct += -(row[int(labels[i])] - math.log(sum(math.exp(v) for v in row)))
    assert float(task_cross_entropy(logits, labels)) == pytest.approx(direct / 3, rel=1e-6)


def test_combined_objective_maximises_the_privacy_terms() -> None:
    l_lc, l_t, l_b, l_m = (torch.tensor(v) for v in (0.5, 2.0, 3.0, 7.0))
    w = LossWeights()  # reference: 100, 1, 1, 0
    assert float(combined_objective(w, l_lc=l_lc, l_t=l_t, l_b=l_b)) == pytest.approx(49.0)
    assert float(combined_objective(w, l_lc=l_lc, l_t=l_t, l_b=l_b, l_motion=l_m)) == 49.0
    w = LossWeights(w_lc=2.0, w_t=3.0, w_b=4.0, w_motion=0.5)
    got = combined_objective(w, l_lc=l_lc, l_t=l_t, l_b=l_b, l_motion=l_m)
    assert float(got) == pytest.approx(2 * 0.5 + 3 * 2.0 - 4 * 3.0 - 0.5 * 7.0)
    with pytest.raises(ValueError):
        combined_objective(w, l_lc=l_lc, l_t=l_t, l_b=l_b)


def _spread(rows: torch.Tensor) -> float:
    mean = [sum(float(r[j]) for r in rows) / len(rows) for j in range(rows.shape[1])]
    total = sum(sum((float(r[j]) - mean[j]) ** 2 for j in range(len(mean))) for r in rows)
    return total / len(rows)


def test_relative_spread_against_a_loop() -> None:
    g = torch.Generator().manual_seed(0)
    raw = torch.randn(6, 5, generator=g)
    adapted = torch.randn(6, 5, generator=g, requires_grad=True)
    got = relative_spread(adapted, raw)
    assert float(got.detach()) == pytest.approx(_spread(adapted.detach()) / _spread(raw), rel=1e-5)
    assert float(relative_spread(raw, raw)) == pytest.approx(1.0)
    assert float(relative_spread(2 * raw + 7, raw)) == pytest.approx(4.0)  # shifts are free
    assert float(relative_spread(raw[:1].expand(6, 5), raw)) == pytest.approx(0.0, abs=1e-6)
    raw.requires_grad_(True)
    relative_spread(adapted, raw).backward()
    assert raw.grad is None or float(raw.grad.abs().sum()) == 0.0  # the normaliser is a constant
    assert adapted.grad is not None and float(adapted.grad.abs().sum()) > 0


def test_swap_invariance_is_one_for_the_identity_and_zero_when_appearance_is_ignored() -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5, 6, generator=g)
    delta = torch.zeros(5, 6)
    delta[:, 3:] = torch.randn(5, 3, generator=g)  # appearance lives in dims 3-5
    assert float(swap_invariance(z, z + delta, delta)) == pytest.approx(1.0)
    keep = torch.tensor([1.0, 1, 1, 0, 0, 0])  # an adapter that drops dims 3-5
    assert float(swap_invariance(z * keep, (z + delta) * keep, delta)) == 0.0
    a, b = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    moved = sum(float(((a[i] - b[i]) ** 2).sum()) for i in range(5)) / 5
    size = sum(float((delta[i] ** 2).sum()) for i in range(5)) / 5
    assert float(swap_invariance(a, b, delta)) == pytest.approx(moved / size, rel=1e-5)


def test_combined_objective_adds_the_minimised_extensions() -> None:
    l_lc, l_t, l_b, l_s, l_w = (torch.tensor(v) for v in (0.5, 2.0, 3.0, 0.25, 0.125))
    w = LossWeights(w_lc=2.0, w_t=3.0, w_b=4.0, w_spread=8.0, w_swap=16.0)
    got = combined_objective(w, l_lc=l_lc, l_t=l_t, l_b=l_b, l_spread=l_s, l_swap=l_w)
    assert float(got) == pytest.approx(2 * 0.5 + 3 * 2.0 - 4 * 3.0 + 8 * 0.25 + 16 * 0.125)
    for missing in ("l_spread", "l_swap"):
        terms = {"l_spread": l_s, "l_swap": l_w}
        terms.pop(missing)
        with pytest.raises(ValueError, match="w_s"):
            combined_objective(w, l_lc=l_lc, l_t=l_t, l_b=l_b, **terms)


def test_same_label_partner_pairs_rows_of_one_label_and_leaves_lone_rows_alone() -> None:
    labels = torch.tensor([3, 1, 3, 2, 1, 3])
    partner = same_label_partner(labels)
    assert partner.tolist() == [2, 4, 5, 3, 1, 0]  # 3: 0 -> 2 -> 5 -> 0; 1: 1 <-> 4; 2 alone
    for row, other in enumerate(partner.tolist()):
        assert labels[other] == labels[row]
    assert sorted(partner.tolist()) == list(range(6))  # a permutation: everyone lends once


def test_combined_objective_adds_the_within_class_term() -> None:
    zero = torch.tensor(0.0)
    w = LossWeights(w_lc=0.0, w_t=0.0, w_b=0.0, w_class=3.0)
    got = combined_objective(w, l_lc=zero, l_t=zero, l_b=zero, l_class=torch.tensor(0.5))
    assert float(got) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="w_class"):
        combined_objective(w, l_lc=zero, l_t=zero, l_b=zero)
