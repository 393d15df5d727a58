"""The adapter: identity at initialisation, no mixing across videos, masks, chunked application."""

from __future__ import annotations

import pytest
import torch

from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter, anonymize
from pipeline.errors import ConfigError

ARCHS = ("mlp", "attention")


def _trained_like(arch: str, dim: int = 16, seed: int = 0) -> AnonymizingAdapter:
    """An adapter with every weight random (as if trained), so branches are not zero."""
    torch.manual_seed(seed)
    adapter = AnonymizingAdapter(AdapterConfig(arch=arch, dim=dim, width=24, depth=2, heads=4))
    with torch.no_grad():
        for p in adapter.parameters():
            p.normal_(0.0, 0.3)
    return adapter.eval()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("shape", [(7, 16), (5, 3, 16), (1, 1, 16)])
def test_untrained_adapter_is_exactly_the_identity(arch: str, shape: tuple[int, ...]) -> None:
    torch.manual_seed(1)
    adapter = AnonymizingAdapter(AdapterConfig(arch=arch, dim=16, heads=4))
    x = 10.0 * torch.randn(shape)
    out = adapter(x)
    assert out.shape == x.shape
    assert torch.equal(out, x)


@pytest.mark.parametrize("arch", ARCHS)
def test_zero_initialised_branches_still_learn(arch: str) -> None:
    adapter = AnonymizingAdapter(AdapterConfig(arch=arch, dim=16, heads=4))
    adapter(torch.randn(4, 3, 16)).pow(2).sum().backward()
    last = [b.fc2 if arch == "mlp" else b.out for b in adapter.blocks]
    assert all(float(layer.weight.detach().abs().sum()) == 0.0 for layer in last)
    assert all(float(layer.weight.grad.abs().sum()) > 0.0 for layer in last)


@pytest.mark.parametrize("arch", ARCHS)
def test_video_output_does_not_depend_on_the_rest_of_the_batch(arch: str) -> None:
    adapter = _trained_like(arch)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 5, 16, generator=g)
    out = adapter(x)
    assert not torch.allclose(out, x)  # the test means something only if the adapter acts
    # Same batch shape, other companions: bitwise identical.
    other = torch.randn(6, 5, 16, generator=g)
    other[3] = x[0]
    assert torch.equal(adapter(other)[3], out[0])
    # Alone, in a permuted batch, in a big batch: equal up to matmul rounding.
    alone = torch.cat([adapter(x[i : i + 1]) for i in range(6)])
    torch.testing.assert_close(alone, out, rtol=0, atol=1e-5)
    perm = torch.randperm(6, generator=g)
    torch.testing.assert_close(adapter(x[perm]), out[perm], rtol=0, atol=1e-5)
    big = torch.randn(257, 5, 16, generator=g)
    big[100:106] = x
    torch.testing.assert_close(adapter(big)[100:106], out, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_no_gradient_flows_between_videos(arch: str) -> None:
    adapter = _trained_like(arch)
    x = torch.randn(4, 5, 16, requires_grad=True)
    adapter(x)[0].sum().backward()
    assert float(x.grad[1:].abs().max()) == 0.0
    assert float(x.grad[0].abs().max()) > 0.0


def test_attention_runs_along_the_clips_of_one_video() -> None:
    adapter = _trained_like("attention")
    x = torch.randn(3, 5, 16, requires_grad=True)
    adapter(x)[0, 0].sum().backward()
    # Clip 0 of video 0 attends to the other clips of video 0 ...
    assert float(x.grad[0, 1:].abs().max()) > 0.0
    # ... but single clips [N, D] are length-1 sequences: clip i depends on clip i only.
    y = torch.randn(6, 16, requires_grad=True)
    adapter(y)[2].sum().backward()
    assert float(y.grad[[0, 1, 3, 4, 5]].abs().max()) == 0.0
    torch.testing.assert_close(adapter(y), adapter(y[:, None, :])[:, 0], rtol=0, atol=1e-6)


def test_mlp_maps_each_clip_on_its_own() -> None:
    adapter = _trained_like("mlp")
    x = torch.randn(4, 5, 16)
    torch.testing.assert_close(adapter(x)[2, 3], adapter(x[2, 3]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_mask_leaves_padding_unchanged_and_ignores_it(arch: str) -> None:
    adapter = _trained_like(arch)
    x = torch.randn(3, 5, 16)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2] = False  # a video with no real clip at all
    out = adapter(x, mask)
    assert torch.equal(out[1, 3:], x[1, 3:])
    assert torch.equal(out[2], x[2])
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1, :3], adapter(x[1:2, :3])[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[0], adapter(x[0:1])[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_anonymize_in_chunks_matches_one_call(arch: str) -> None:
    adapter = _trained_like(arch)
    adapter.train()
    x = torch.randn(10, 5, 16)
    out = anonymize(adapter, x, chunk_size=3)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    torch.testing.assert_close(out, adapter.eval()(x), rtol=0, atol=1e-5)
    adapter.train()
    anonymize(adapter, x[:0])
    assert adapter.training  # mode restored


def test_bad_configs_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        AdapterConfig(arch="transformer")
    with pytest.raises(ConfigError):
        AdapterConfig(arch="attention", dim=16, heads=5)
    with pytest.raises(ConfigError):
        AdapterConfig(depth=0)
    with pytest.raises(ConfigError):
        AnonymizingAdapter(AdapterConfig(dim=16))(torch.randn(2, 8))
    assert AdapterConfig(dim=32).hidden == 32
    assert AdapterConfig(dim=32, width=8).hidden == 8
