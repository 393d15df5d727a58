"""The retrieval privacy proxy and the seen-task head registry."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline.aam.heads import ActionHead, build_head, create_heads
from pipeline.aam.metrics import retrieval_chance, same_video_retrieval
from pipeline.errors import ConfigError


def _retrieval_direct(x: torch.Tensor) -> float:
    v, m, _ = x.shape
    items = [(i, x[i, j].tolist()) for i in range(v) for j in range(m)]

    def cos(a: list[float], b: list[float]) -> float:
        dot = sum(p * q for p, q in zip(a, b, strict=True))
        return dot / math.sqrt(sum(p * p for p in a) * sum(q * q for q in b))

    hits = 0
    for n, (owner, vec) in enumerate(items):
        others = [(cos(vec, w), o) for k, (o, w) in enumerate(items) if k != n]
        hits += max(others)[1] == owner
    return hits / len(items)


@pytest.mark.parametrize("chunk", [1, 4, 2048])
def test_same_video_retrieval_matches_direct_loop(chunk: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 4, generator=g) + 0.8 * torch.randn(5, 1, 4, generator=g)
    got = same_video_retrieval(x, chunk_size=chunk)
    assert got == pytest.approx(_retrieval_direct(x))
    assert 0.0 < got < 1.0


def test_retrieval_extremes_and_chance() -> None:
    centres = 10 * torch.eye(6, 8)[:, None, :]
    assert same_video_retrieval(centres + 0.01 * torch.randn(6, 4, 8)) == 1.0
    assert retrieval_chance(6, 4) == pytest.approx(3 / 23)
    noise = torch.randn(200, 4, 32, generator=torch.Generator().manual_seed(1))
    assert same_video_retrieval(noise) < 0.05  # chance 3/799
    assert math.isnan(same_video_retrieval(torch.randn(1, 1, 4)))


def test_action_head_mean_softmax_top1_and_loss() -> None:
    head = ActionHead("action", dim=3, num_classes=3)
    # video 0: clip votes 0, 0, 2 (weak) -> 0; video 1: one confident vote for 2 beats two weak 1s
    logits = torch.tensor(
        [[[5.0, 0, 0], [5.0, 0, 0], [0, 0, 1.0]], [[0, 1.0, 0.9], [0, 1.0, 0.9], [0, 0, 9.0]]]
    )
    assert head.metric(logits, {"action": torch.tensor([0, 2])}) == 1.0
    assert head.metric(logits, {"action": torch.tensor([0, 1])}) == 0.5
    loss = head.loss(logits[:, 0], {"action": torch.tensor([0, 1])})
    assert float(loss) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits[:, 0], torch.tensor([0, 1])))
    )


def test_heads_are_sized_from_all_splits_and_rebuilt_from_spec(planted) -> None:
    train, val = planted(num_actions=3), planted(num_actions=5)
    (head,) = create_heads(("action",), 16, [train, val])
    assert head.num_classes == 5 and head(torch.randn(2, 16)).shape == (2, 5)
    rebuilt = build_head(head.spec())
    assert isinstance(rebuilt, ActionHead) and rebuilt.spec() == head.spec()
    with pytest.raises(ConfigError):
        create_heads(("detection",), 16, [train])
    with pytest.raises(ConfigError):
        build_head({"kind": "nope"})
