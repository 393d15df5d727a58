"""PyAV decoding of real files: content, frame counts, broken files, downscaling and speed."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.data.decode import decode_video, probe_video
from pipeline.errors import (
    CorruptVideoError,
    TruncatedVideoError,
    VideoError,
    VideoTooShortError,
)

log = logging.getLogger(__name__)


def gradient_frames(n: int, h: int = 32, w: int = 32) -> np.ndarray:
    """Smooth moving colour gradients: survive yuv420 chroma subsampling almost unchanged."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.arange(n, dtype=np.float32)[:, None, None]
    r = 128 + 80 * np.sin(np.pi * (x / w + t / 20))
    g = 128 + 80 * np.cos(np.pi * (y / h - t / 30))
    b = np.broadcast_to(40 + 6 * t, r.shape)
    return np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, fps: int = 25, **container_options: str) -> Path:
    """mp4 -> lossless-ish H.264 (crf 0), avi -> mpeg4 at high quality."""
    codec, options = ("mpeg4", {"qscale": "2"}) if path.suffix == ".avi" else ("libx264", {})
    with av.open(str(path), "w", options=container_options) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "yuv420p"
        if codec == "libx264":
            options = {"crf": "0", "preset": "ultrafast"}
        else:
            s.codec_context.qscale = 2
            s.codec_context.flags |= av.codec.context.Flags.qscale
            options = {}
        s.options = options
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    noise = np.random.default_rng(1).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    return {
        "mp4": write_video(d / "g.mp4", gradient_frames(24)),
        "avi": write_video(d / "g.avi", gradient_frames(30)),
        "noise_avi": write_video(d / "n.avi", noise),
        "noise_mp4": write_video(d / "n.mp4", noise),
        "wide": write_video(d / "wide.mp4", gradient_frames(16, 64, 96)),
    }


def yuv420_round_trip(frames: np.ndarray) -> np.ndarray:
    """What a perfect codec returns: the frames after RGB -> yuv420p -> RGB."""
    return np.stack(
        [
            av.VideoFrame.from_ndarray(f, format="rgb24")
            .reformat(format="yuv420p")
            .to_ndarray(format="rgb24")
            for f in frames
        ]
    )


@pytest.mark.parametrize("kind, n, tolerance", [("mp4", 24, 0.0), ("avi", 30, 2.0)])
def test_decode_matches_written_frames(
    videos: dict[str, Path], kind: str, n: int, tolerance: float
) -> None:
    frames = decode_video(videos[kind])
    assert frames.dtype == np.uint8 and frames.shape == (n, 32, 32, 3)
    assert frames.flags.c_contiguous
    expected = yuv420_round_trip(gradient_frames(n)).astype(np.float32)
    # H.264 at crf 0 is lossless: only chroma subsampling differs from the input; mpeg4 is lossy
    error = np.abs(frames - expected).mean()
    assert error <= tolerance, error
    assert np.abs(frames.astype(np.float32) - gradient_frames(n)).mean() < 4.0


def test_probe_video(videos: dict[str, Path]) -> None:
    assert probe_video(videos["mp4"]) == (24, 25.0, 32, 32)
    assert probe_video(videos["avi"]) == (30, 25.0, 32, 32)
    assert probe_video(videos["wide"]) == (16, 25.0, 96, 64)


def test_expected_frames_and_tolerance(videos: dict[str, Path]) -> None:
    assert len(decode_video(videos["mp4"], expected_frames=24)) == 24
    assert len(decode_video(videos["mp4"], expected_frames=20)) == 24  # more is fine
    assert len(decode_video(videos["mp4"], expected_frames=-1)) == 24  # -1 = unknown
    with pytest.raises(TruncatedVideoError, match="decoded 24 of 25 frames") as exc:
        decode_video(videos["mp4"], expected_frames=25)
    assert exc.value.reason == "truncated" and exc.value.path == str(videos["mp4"])
    assert len(decode_video(videos["mp4"], expected_frames=25, tolerance=1)) == 24


def test_too_short(videos: dict[str, Path]) -> None:
    assert len(decode_video(videos["mp4"], min_frames=24)) == 24
    with pytest.raises(VideoTooShortError, match="24 frames, need at least 25") as exc:
        decode_video(videos["mp4"], min_frames=25)
    assert exc.value.reason == "too_short"


def test_short_side_downscales_during_decode(videos: dict[str, Path]) -> None:
    full = decode_video(videos["wide"])
    small = decode_video(videos["wide"], short_side=32)
    assert full.shape == (16, 64, 96, 3) and small.shape == (16, 32, 48, 3)
    # an area filter is a 2x2 box average here
    boxed = full.reshape(16, 32, 2, 48, 2, 3).astype(np.float32).mean(axis=(2, 4))
    assert np.abs(small - boxed).mean() < 3.0
    assert decode_video(videos["wide"], short_side=128).shape == full.shape  # never upscaled


@pytest.mark.parametrize("kind", ["mp4", "noise_avi", "wide"])
def test_frames_equal_pyav_per_frame_conversion(videos: dict[str, Path], kind: str) -> None:
    # decode_video reuses one converter per video for speed: the pixels must be PyAV's own
    with av.open(str(videos[kind])) as container:
        reference = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    np.testing.assert_array_equal(decode_video(videos[kind]), reference)
    with av.open(str(videos[kind])) as container:
        scaled = np.stack([
            f.to_ndarray(format="rgb24", width=48, height=32, interpolation="AREA")
            for f in container.decode(video=0)
        ])  # fmt: skip
    if kind == "wide":
        np.testing.assert_array_equal(decode_video(videos[kind], short_side=32), scaled)


@pytest.mark.parametrize("kind", ["mp4", "noise_avi", "noise_mp4"])
def test_keep_converts_only_the_wanted_frames(videos: dict[str, Path], kind: str) -> None:
    full = decode_video(videos[kind])
    keep = np.array([0, 3, 4, 11, len(full) - 1, len(full) + 5])  # one past the end: ignored
    kept = decode_video(videos[kind], keep=keep)
    assert kept.shape == full.shape
    wanted = keep[keep < len(full)]
    np.testing.assert_array_equal(kept[wanted], full[wanted])  # P-frames still decode right
    others = np.setdiff1d(np.arange(len(full)), wanted)
    assert not kept[others].any()
    # the frame count checks still see every decoded frame
    with pytest.raises(TruncatedVideoError):
        decode_video(videos[kind], keep=keep, expected_frames=len(full) + 10)


def test_threads_give_identical_frames(videos: dict[str, Path]) -> None:
    one = decode_video(videos["noise_mp4"], threads=False)
    many = decode_video(videos["noise_mp4"], threads=True)
    np.testing.assert_array_equal(one, many)


# --- broken files: each gives its specific VideoError, quickly -------------------------------


@pytest.mark.timeout(30)
def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "e.mp4").touch()
    with pytest.raises(CorruptVideoError, match="empty file") as exc:
        decode_video(tmp_path / "e.mp4")
    assert exc.value.reason == "corrupt"
    with pytest.raises(CorruptVideoError):
        probe_video(tmp_path / "e.mp4")


@pytest.mark.timeout(30)
def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    (tmp_path / "t.mp4").write_text("this is a text file, not a video\n" * 100)
    with pytest.raises(CorruptVideoError, match="cannot open"):
        decode_video(tmp_path / "t.mp4")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("seed", range(3))
def test_random_bytes(tmp_path: Path, seed: int) -> None:
    data = np.random.default_rng(seed).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    (tmp_path / "r.mp4").write_bytes(data)
    with pytest.raises(CorruptVideoError):
        decode_video(tmp_path / "r.mp4")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CorruptVideoError, match="No such file"):
        decode_video(tmp_path / "missing.mp4")
    with pytest.raises(CorruptVideoError, match="not a regular file"):
        decode_video(tmp_path)


def test_no_video_stream(tmp_path: Path) -> None:
    path = tmp_path / "audio.mp4"
    with av.open(str(tmp_path / "audio.wav"), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        for p in [*s.encode(frame), *s.encode()]:
            c.mux(p)
    (tmp_path / "audio.wav").rename(path)
    with pytest.raises(CorruptVideoError, match="no video stream"):
        decode_video(path)


@pytest.mark.timeout(30)
def test_truncated_avi_is_truncated(videos: dict[str, Path], tmp_path: Path) -> None:
    data = videos["noise_avi"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # the header survives, the frames do not
    frames = decode_video(cut)  # without a promised count, what decodes is returned
    assert 0 < len(frames) < 40
    with pytest.raises(TruncatedVideoError, match=f"decoded {len(frames)} of 40 frames"):
        decode_video(cut, expected_frames=40)


@pytest.mark.timeout(30)
def test_truncated_mp4_is_corrupt(videos: dict[str, Path], tmp_path: Path) -> None:
    # libx264 + mp4 writes the index (moov) last: cutting the file loses the index
    data = videos["noise_mp4"].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(CorruptVideoError, match="cannot open"):
        decode_video(cut, expected_frames=40)


@pytest.mark.timeout(30)
def test_truncated_faststart_mp4(tmp_path: Path) -> None:
    # with the index first, the cut lands inside a frame: a decode error, not a silent short read
    noise = np.random.default_rng(2).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    path = write_video(tmp_path / "fs.mp4", noise, movflags="+faststart")
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises((CorruptVideoError, TruncatedVideoError)):
        decode_video(cut, expected_frames=40)


@pytest.mark.timeout(30)
def test_bit_flipped_avi(videos: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(videos["noise_avi"].read_bytes())
    for i in range(len(data) // 3, 2 * len(data) // 3, 97):
        data[i] ^= 0x5A
    bad = tmp_path / "flip.avi"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptVideoError, match="decode error"):
        decode_video(bad, expected_frames=40)


@pytest.mark.timeout(30)
def test_bit_flipped_mp4_header(videos: dict[str, Path], tmp_path: Path) -> None:
    data = bytearray(videos["noise_mp4"].read_bytes())
    moov = data.rfind(b"moov")
    for i in range(moov + 8, len(data), 7):  # scramble the sample tables
        data[i] ^= 0xA5
    bad = tmp_path / "flip.mp4"
    bad.write_bytes(bytes(data))
    with pytest.raises(VideoError) as exc:
        decode_video(bad, expected_frames=40)
    assert isinstance(exc.value, CorruptVideoError | TruncatedVideoError)


# --- speed -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [64, 224])
def test_decode_speed(tmp_path: Path, size: int) -> None:
    n = 120
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    frames = np.stack([np.roll(base, 2 * t, axis=1) for t in range(n)])
    path = write_video(tmp_path / f"s{size}.mp4", frames)
    decode_video(path)  # warm-up
    start = time.perf_counter()
    out = decode_video(path)
    rate = n / (time.perf_counter() - start)
    log.warning("decode %dx%d H.264: %.0f frames/s", size, size, rate)
    assert out.shape == (n, size, size, 3)
    assert rate > 50  # loose: a shared 2-core machine; ~1,000-4,000 frames/s measured
