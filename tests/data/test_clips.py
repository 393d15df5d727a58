"""Clip sampling: index math (property-based), static-clip determinism, preprocessing."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.data.clips import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ClipSampling,
    VideoClips,
    clip_starts,
    frames_used,
    preprocess,
    sample_video,
    stable_seed,
    static_frame_indices,
    window_starts,
)
from pipeline.errors import ConfigError, VideoTooShortError

samplings = st.builds(
    ClipSampling,
    frames_per_clip=st.integers(1, 32),
    frame_stride=st.integers(1, 4),
    clips_per_video=st.integers(1, 12),
    static_clips=st.integers(0, 16),
    window_stride=st.integers(1, 20),
)


def _video(n: int = 40, h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def _frame_ids(n: int, h: int = 8, w: int = 8) -> np.ndarray:
    """Frame i is a flat image of grey level i: preprocessed pixels reveal which frame it was."""
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, h, w, 3)).copy()


# --- index math ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(s=samplings, extra=st.integers(0, 500))
def test_clip_starts_invariants(s: ClipSampling, extra: int) -> None:
    n = s.clip_span + extra
    starts = clip_starts(n, s)
    assert starts.dtype == np.int64 and len(starts) == s.clips_per_video
    assert (np.diff(starts) >= 0).all()
    assert starts.min() >= 0 and starts.max() + s.clip_span <= n  # every clip inside the video
    if s.clips_per_video > 1:
        assert starts[0] == 0 and starts[-1] == n - s.clip_span  # first at 0, last flush
        gaps = np.diff(starts)
        assert gaps.max() - gaps.min() <= 1  # evenly spaced up to rounding
    else:
        assert starts[0] == (n - s.clip_span) // 2  # a single clip is centred


@settings(max_examples=200, deadline=None)
@given(s=samplings, extra=st.integers(0, 500))
def test_window_starts_invariants(s: ClipSampling, extra: int) -> None:
    n = s.clip_span + extra
    starts = window_starts(n, s)
    last = n - s.clip_span
    assert starts[0] == 0 and starts[-1] == last  # flush with the end
    assert (np.diff(starts) > 0).all()  # strictly increasing, no duplicates
    assert (np.diff(starts)[:-1] == s.window_stride).all()  # regular except the last step
    assert len(starts) == -(-last // s.window_stride) + 1  # ceil(last / stride) + 1


@settings(max_examples=200, deadline=None)
@given(s=samplings, n=st.integers(1, 500))
def test_static_frame_indices_invariants(s: ClipSampling, n: int) -> None:
    idx = static_frame_indices(n, s)
    assert len(idx) == s.static_clips
    if s.static_clips:
        assert idx.min() >= 0 and idx.max() < n and (np.diff(idx) >= 0).all()
        if n >= s.static_clips:
            assert len(set(idx.tolist())) == s.static_clips  # distinct when possible


def test_known_values() -> None:
    s = ClipSampling(frames_per_clip=16, clips_per_video=5, window_stride=8, static_clips=4)
    assert clip_starts(100, s).tolist() == [0, 21, 42, 63, 84]
    assert clip_starts(16, s).tolist() == [0, 0, 0, 0, 0]  # overlap allowed
    assert window_starts(40, s).tolist() == [0, 8, 16, 24]
    assert window_starts(43, s).tolist() == [0, 8, 16, 24, 27]
    assert static_frame_indices(100, s).tolist() == [12, 37, 62, 87]
    strided = ClipSampling(frames_per_clip=4, frame_stride=3)
    assert strided.clip_span == 10


@settings(deadline=None)
@given(s=samplings)
def test_too_short_raises(s: ClipSampling) -> None:
    with pytest.raises(VideoTooShortError, match=f"a clip needs {s.clip_span}") as exc:
        clip_starts(s.clip_span - 1, s, video_key="vid-7")
    assert exc.value.path == "vid-7" and exc.value.reason == "too_short"
    with pytest.raises(VideoTooShortError):
        window_starts(s.clip_span - 1, s)


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frames_per_clip": 0},
        {"frame_stride": -1},
        {"clips_per_video": 0},
        {"size": 0},
        {"window_stride": 0},
        {"static_clips": -1},
        {"size": 2.5},
        {"frames_per_clip": True},
        {"std": (0.2, 0.0, 0.2)},
        {"mean": (0.5, 0.5)},
        {"static_crop_scale": (0.0, 1.0)},
        {"static_crop_scale": (0.9, 0.8)},
        {"static_crop_scale": (0.5, 1.2)},
    ],
)
def test_sampling_validates(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="sampling"):
        ClipSampling(**kwargs)


def test_sampling_dict_round_trip() -> None:
    s = ClipSampling(size=112, frame_stride=2, static_crop_scale=(0.7, 0.9))
    d = s.to_dict()
    assert d["mean"] == list(IMAGENET_MEAN)
    assert ClipSampling.from_dict(d) == s
    with pytest.raises(ConfigError, match="unknown sampling field"):
        ClipSampling.from_dict({**d, "sizee": 3})


# --- preprocess ------------------------------------------------------------------------------


def test_preprocess_shape_and_normalisation() -> None:
    s = ClipSampling(size=16)
    frames = np.zeros((2, 3, 4, 24, 32, 3), np.uint8)  # [..., T, H, W, 3]
    frames[..., 0] = 255  # pure red
    out = preprocess(frames, s)
    assert out.dtype == torch.float32 and out.shape == (2, 3, 4, 3, 16, 16)
    expected = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]] + [
        -m / sd for m, sd in zip(IMAGENET_MEAN[1:], IMAGENET_STD[1:], strict=True)
    ]
    torch.testing.assert_close(out.mean(dim=(0, 1, 2, 4, 5)), torch.tensor(expected))
    assert out.is_contiguous()


@pytest.mark.parametrize("side", [16, 24])  # no resize (a channels-last view) / resized
def test_preprocess_equals_float_arithmetic_bit_for_bit(side: int) -> None:
    # Features must not change when the normalisation is computed differently: every value is
    # x * (1 / (255 std)) - mean / std in float32, exactly.
    s = ClipSampling(size=16)
    frames = np.random.default_rng(0).integers(0, 256, (5, side, side, 3), dtype=np.uint8)
    out = preprocess(frames, s)
    resized = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
    if side != s.size:
        resized = torch.nn.functional.interpolate(
            resized, size=(16, 16), mode="bilinear", antialias=True, align_corners=False
        )
    scale = torch.tensor([1 / (255 * v) for v in s.std], dtype=torch.float32).view(1, 3, 1, 1)
    shift = torch.tensor([m / v for m, v in zip(s.mean, s.std, strict=True)]).view(1, 3, 1, 1)
    assert torch.equal(out, resized.float() * scale - shift.float())
    assert out.is_contiguous()


def test_preprocess_centre_crop_and_resize() -> None:
    s = ClipSampling(size=8, mean=(0, 0, 0), std=(1, 1, 1))
    frame = np.zeros((1, 16, 32, 3), np.uint8)
    frame[:, :, :8] = 255  # left quarter white: outside the centre square
    frame[:, :, 8:24] = 100  # centre square grey
    out = preprocess(frame, s)
    assert out.shape == (1, 3, 8, 8)
    torch.testing.assert_close(out, torch.full_like(out, 100 / 255), atol=1 / 255, rtol=0)
    # upscaling a small video works too
    assert preprocess(np.zeros((2, 4, 4, 3), np.uint8), s).shape == (2, 3, 8, 8)


def test_preprocess_antialias() -> None:
    # a 1-pixel checkerboard must average to grey when shrunk, not alias to black or white
    s = ClipSampling(size=8, mean=(0, 0, 0), std=(1, 1, 1))
    board = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)
    out = preprocess(np.repeat(board[None, :, :, None], 3, axis=-1), s)
    assert out.std() < 0.02 and abs(out.mean() - 0.5) < 0.02


def test_preprocess_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(np.zeros((2, 8, 8, 4), np.uint8))


# --- sample_video ----------------------------------------------------------------------------


def test_sample_video_shapes_and_indices() -> None:
    s = ClipSampling(frames_per_clip=4, frame_stride=2, clips_per_video=3, static_clips=5, size=8)
    frames = _frame_ids(30)
    v = sample_video(frames, s, video_key="v", with_windows=True)
    assert isinstance(v, VideoClips) and v.num_frames == 30
    assert v.clips.shape == (3, 4, 3, 8, 8) and v.clips.dtype == torch.float32
    assert v.static.shape == (5, 4, 3, 8, 8)
    assert v.clip_starts.tolist() == [0, 12, 23]  # 11.5 rounds up
    assert v.window_starts.tolist() == window_starts(30, s).tolist()
    assert v.windows.shape == (len(v.window_starts), 4, 3, 8, 8)
    assert v.static_frames.tolist() == static_frame_indices(30, s).tolist()
    # grey level reveals the frame: clip k, step t shows frame start_k + 2 t
    raw = (v.clips * torch.tensor(IMAGENET_STD).view(3, 1, 1)) + torch.tensor(IMAGENET_MEAN).view(
        3, 1, 1
    )
    shown = (raw[:, :, 0].mean(dim=(-1, -2)) * 255).round().long()
    expected = torch.tensor(v.clip_starts)[:, None] + 2 * torch.arange(4)
    assert torch.equal(shown, expected)
    raw_w = (v.windows * torch.tensor(IMAGENET_STD).view(3, 1, 1)) + torch.tensor(
        IMAGENET_MEAN
    ).view(3, 1, 1)
    shown_w = (raw_w[:, :, 0].mean(dim=(-1, -2)) * 255).round().long()
    assert torch.equal(shown_w, torch.tensor(v.window_starts)[:, None] + 2 * torch.arange(4))


def test_static_clips_repeat_one_augmented_frame() -> None:
    s = ClipSampling(frames_per_clip=6, static_clips=3, size=16)
    v = sample_video(_video(), s, video_key="v", with_windows=False)
    assert v.windows.shape == (0, 6, 3, 16, 16) and v.window_starts.size == 0
    for t in range(1, 6):
        assert torch.equal(v.static[:, t], v.static[:, 0])
    # augmented, so not the plain centre crop of the chosen frame
    plain = preprocess(_video()[v.static_frames], s)
    assert not torch.allclose(v.static[:, 0], plain)


def test_static_clips_deterministic_per_key_and_order_independent() -> None:
    s = ClipSampling(frames_per_clip=4, static_clips=6, size=16, seed=3)
    a, b = _video(seed=1), _video(seed=2)
    first = [sample_video(x, s, video_key=k, with_windows=False) for x, k in ((a, "a"), (b, "b"))]
    second = [sample_video(x, s, video_key=k, with_windows=False) for x, k in ((b, "b"), (a, "a"))]
    assert torch.equal(first[0].static, second[1].static)
    assert torch.equal(first[1].static, second[0].static)
    # another key or another seed gives other crops of the same frames
    other_key = sample_video(a, s, video_key="a2", with_windows=False)
    assert not torch.equal(other_key.static, first[0].static)
    other_seed = sample_video(
        a, ClipSampling(frames_per_clip=4, static_clips=6, size=16, seed=4), video_key="a",
        with_windows=False,
    )  # fmt: skip
    assert not torch.equal(other_seed.static, first[0].static)
    # normal clips carry no randomness
    assert torch.equal(other_key.clips, first[0].clips)


def test_stable_seed_across_processes() -> None:
    code = "from pipeline.data.clips import stable_seed; print(stable_seed('static', 0, 'vid'))"
    env_hash = {**os.environ, "PYTHONHASHSEED": "123"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env_hash
    )
    assert int(out.stdout) == stable_seed("static", 0, "vid")


def test_static_flip_mirrors_the_same_crop() -> None:
    # the flip draws are made whether or not flipping is on: the crops match, half are mirrored
    frames = _video(n=20, h=32, w=32)
    kw = dict(frames_per_clip=2, static_clips=8, size=32)
    flipped = sample_video(frames, ClipSampling(**kw), video_key="k", with_windows=False)
    plain = sample_video(
        frames, ClipSampling(**kw, static_flip=False), video_key="k", with_windows=False
    )
    mirrored = 0
    for i in range(8):
        a, b = flipped.static[i, 0], plain.static[i, 0]
        if not torch.equal(a, b):
            torch.testing.assert_close(a, b.flip(-1))
            mirrored += 1
    assert 0 < mirrored < 8


def test_too_short_video() -> None:
    s = ClipSampling(frames_per_clip=16)
    with pytest.raises(VideoTooShortError) as exc:
        sample_video(_video(n=15), s, video_key="short-one", with_windows=True)
    assert exc.value.path == "short-one"
    assert sample_video(_video(n=16), s, video_key="ok", with_windows=True).clips.shape[0] == 5


def test_sample_video_accepts_torch_input() -> None:
    s = ClipSampling(frames_per_clip=4, static_clips=2, size=8)
    x = _video(n=12)
    a = sample_video(x, s, video_key="k", with_windows=True)
    b = sample_video(torch.from_numpy(x), s, video_key="k", with_windows=True)
    assert torch.equal(a.clips, b.clips) and torch.equal(a.static, b.static)


@pytest.mark.parametrize(
    "num_frames, with_windows", [(40, False), (40, True), (97, True), (16, True)]
)
def test_sample_video_reads_only_frames_used(num_frames: int, with_windows: bool) -> None:
    # Decoding converts only these frames: everything else must not reach any clip or window.
    s = ClipSampling(size=8, frames_per_clip=4, frame_stride=2, clips_per_video=3,
                     static_clips=4, window_stride=5)  # fmt: skip
    frames = np.random.default_rng(num_frames).integers(
        0, 256, (num_frames, 12, 12, 3), dtype=np.uint8
    )
    used = frames_used(num_frames, s, video_key="v", with_windows=with_windows)
    assert np.all(np.diff(used) > 0) and used[0] >= 0 and used[-1] < num_frames
    blanked = np.zeros_like(frames)
    blanked[used] = frames[used]
    a = sample_video(frames, s, video_key="v", with_windows=with_windows)
    b = sample_video(blanked, s, video_key="v", with_windows=with_windows)
    for name in ("clips", "static", "windows"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    if num_frames == 97:
        assert len(used) < num_frames  # a long video leaves frames out
