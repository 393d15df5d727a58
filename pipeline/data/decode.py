"""Video decoding with PyAV: every frame decoded once, in order, to uint8 RGB (all, or those kept).

Errors are per video (subclasses of VideoError) so extraction can record them and move on:

- CorruptVideoError: empty or missing file, not a container, no video stream, or the decoder
  rejected a packet. Decode errors are fatal for the video (no "skip bad packets" mode): a video
  with holes would silently feed concealed garbage into the features. Note that H.264 has no
  checksums, so some bit flips inside slice data decode "successfully" into wrong pixels; those
  cannot be detected here.
- TruncatedVideoError: fewer frames decoded than ``expected_frames`` (the manifest's count)
  minus ``tolerance``, e.g. a file cut short whose container still opens.
- VideoTooShortError: fewer than ``min_frames`` frames (too short for one clip).

Memory: a minute of 1080p at 30 fps is ~11 GB of RGB. Pass ``short_side`` to downscale every
frame inside libswscale while decoding (AREA interpolation: a proper box filter for downscaling,
so nothing aliases; frames are never upscaled). The clip sampler resizes to ``ClipSampling.size``
anyway, so decoding with ``short_side`` of at least that size loses nothing the encoder would see.
The output array is preallocated from the container's frame count (no list + stack copy),
capped by the file size so that a damaged header claiming billions of frames costs nothing.

Speed: codec threads (``thread_type="AUTO"``) are used only for frames of at least 1280x720.
Measured on the 2-core dev machine, H.264 300 frames, frames/s single-threaded vs AUTO threads:
64x64 ~4,000 vs ~3,000; 224x224 ~1,900-2,700 vs ~1,500-2,000; 320x240 (UCF101-like) mpeg4 avi
~2,800 vs ~2,800, H.264 ~1,400 vs ~1,300; 1920x1080 ~120 vs ~105-150 (noisy). Small videos are
dominated by the RGB conversion and per-frame overhead, and extraction already decodes several
videos at once in worker threads (pipeline/data/prefetch.py), so codec threads would only compete
for the same cores. Pass ``threads=True`` to force them.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from pipeline.errors import (
    CorruptVideoError,
    TruncatedVideoError,
    VideoError,
    VideoTooShortError,
)

log = logging.getLogger(__name__)

# Frames with at least this many pixels are decoded with codec threads.
THREAD_MIN_PIXELS = 1280 * 720
_INTERPOLATION = "AREA"
_FALLBACK_FRAMES = 64  # initial buffer when the header's frame count cannot be allocated

DECODER = "pyav"
"""Name of the decoder this module is (recorded in raw stores; see decoder_identity)."""


def decoder_identity() -> dict[str, str]:
    """What decoded a store's videos: the decoder's name, PyAV's version and libavcodec's (two
    FFmpeg builds may round a frame differently; the store's attrs record both)."""
    codec = av.library_versions.get("libavcodec", ())
    return {"name": DECODER, "pyav": str(av.__version__), "libavcodec": ".".join(map(str, codec))}


def probe_video(path: str | os.PathLike[str]) -> tuple[int, float, int, int]:
    """(num_frames, fps, width, height) from the container header, without decoding.

    num_frames is the header's frame count; containers without one (e.g. some mkv/webm) are
    demuxed packet by packet (still no decoding). fps is the average frame rate, NaN if unknown.
    Raises CorruptVideoError when the file cannot be opened or has no video stream.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        num_frames = int(stream.frames or 0)
        if num_frames <= 0:
            try:
                num_frames = sum(1 for p in container.demux(stream) if p.size > 0)
            except av.FFmpegError as e:
                raise CorruptVideoError(path, f"demux error: {_msg(e)}") from None
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else math.nan
        ctx = stream.codec_context
        return num_frames, fps, int(ctx.width), int(ctx.height)


def decode_video(
    path: str | os.PathLike[str],
    *,
    expected_frames: int | None = None,
    min_frames: int = 1,
    tolerance: int = 0,
    short_side: int | None = None,
    threads: bool | None = None,
    keep: np.ndarray | None = None,
) -> np.ndarray:
    """Decode every frame of the first video stream to a uint8 array [T, H, W, 3] (RGB).

    expected_frames: the manifest's frame count; fewer than ``expected_frames - tolerance``
        decoded frames raise TruncatedVideoError (None or a negative value: no check). More
        frames than expected are returned as decoded.
    min_frames: fewer decoded frames raise VideoTooShortError.
    short_side: downscale each frame so its shorter side is at most this many pixels (aspect
        ratio kept, never upscaled); pick at least ClipSampling.size.
    threads: use codec threads; None decides from the frame size (THREAD_MIN_PIXELS).
    keep: indices of the frames wanted (e.g. ``clips.frames_used``); every frame is still
        decoded (the codec needs them) but only these are converted to RGB, the others are left
        zero. Conversion is about half of decoding's CPU, and a 10 s video sampled into 5 clips
        of 16 frames uses a third of its frames. None: all.
    """
    with _open(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        width, height = int(ctx.width), int(ctx.height)
        if width <= 0 or height <= 0:
            raise CorruptVideoError(path, f"invalid frame size {width}x{height}")
        out_w, out_h = _target_size(width, height, short_side)
        resize = (out_w, out_h) != (width, height)
        if threads is None:
            threads = width * height >= THREAD_MIN_PIXELS
        if threads:
            stream.thread_type = "AUTO"
        buffer = _frame_buffer(path, stream, expected_frames, (out_h, out_w))
        # One converter for the whole video: frame.to_ndarray(format=...) builds a new swscale
        # context for every frame, which cost 60% of decoding 64 px videos (3x slower, same
        # pixels).
        reformatter = VideoReformatter()
        wanted = _wanted(keep, len(buffer))
        n = 0
        try:
            for frame in container.decode(stream):
                if n == len(buffer):  # the header under-counted: grow geometrically
                    bigger = _empty(path, 2 * len(buffer), (out_h, out_w))
                    bigger[:n] = buffer[:n]
                    buffer = bigger
                    wanted = _wanted(keep, len(buffer))
                if wanted is not None and not wanted[n]:
                    buffer[n] = 0  # decoded (later frames depend on it), not converted
                    n += 1
                    continue
                if resize or frame.width != width or frame.height != height:
                    # A mid-stream size change is scaled to the first frame's output size.
                    rgb = reformatter.reformat(
                        frame, format="rgb24", width=out_w, height=out_h,
                        interpolation=_INTERPOLATION,
                    )  # fmt: skip
                else:
                    rgb = reformatter.reformat(frame, format="rgb24")
                buffer[n] = rgb.to_ndarray()
                n += 1
        except (av.FFmpegError, ValueError) as e:
            raise CorruptVideoError(path, f"decode error after {n} frames: {_msg(e)}") from None
    if n == 0:
        raise CorruptVideoError(path, "no frame could be decoded")
    if expected_frames is not None and expected_frames >= 0 and n < expected_frames - tolerance:
        raise TruncatedVideoError(path, f"decoded {n} of {expected_frames} frames")
    if n < min_frames:
        raise VideoTooShortError(path, f"{n} frames, need at least {min_frames}")
    if expected_frames is not None and expected_frames >= 0 and n > expected_frames:
        log.debug("%s: decoded %d frames, manifest says %d", path, n, expected_frames)
    # Copy only when the buffer over-allocated, so the result does not pin unused memory.
    return buffer if n == len(buffer) else buffer[:n].copy()


def _wanted(keep: np.ndarray | None, frames: int) -> np.ndarray | None:
    """bool [frames]: which frames to convert (None: all)."""
    if keep is None:
        return None
    keep = np.asarray(keep, dtype=np.int64)
    wanted = np.zeros(frames, dtype=bool)
    wanted[keep[(keep >= 0) & (keep < frames)]] = True
    return wanted


def _frame_buffer(
    path: str | os.PathLike[str], stream: Any, expected_frames: int | None, hw: tuple[int, int]
) -> np.ndarray:
    """The output array, sized from the header's (or the manifest's) frame count.

    A damaged header can claim billions of frames: a coded frame takes at least one byte of the
    file, so the count is capped by the file size, and an allocation that still fails falls back
    to a small buffer that grows as frames really decode.
    """
    claimed = max(int(stream.frames or 0), int(expected_frames or 0), 1)
    hint = min(claimed, max(1, Path(path).stat().st_size))
    try:
        return np.empty((hint, *hw, 3), dtype=np.uint8)
    except MemoryError:
        return _empty(path, min(hint, _FALLBACK_FRAMES), hw)


def _empty(path: str | os.PathLike[str], frames: int, hw: tuple[int, int]) -> np.ndarray:
    try:
        return np.empty((frames, *hw, 3), dtype=np.uint8)
    except MemoryError:
        gigabytes = frames * hw[0] * hw[1] * 3 / 1e9
        raise VideoError(
            path, f"{frames} frames of {hw[1]}x{hw[0]} ({gigabytes:.1f} GB) do not fit in memory"
        ) from None


def _target_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    if short_side is None or min(width, height) <= short_side:
        return width, height
    if short_side < 1:
        raise ValueError(f"short_side must be >= 1, got {short_side}")
    scale = short_side / min(width, height)

    if width <= height:
        return short_side, max(1, round(height * scale))
    return max(1, round(width * scale)), short_side


def _open(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open a file for decoding; every failure becomes a CorruptVideoError."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as e:
        raise CorruptVideoError(path, f"cannot open: {e.strerror or e}") from None
    if not p.is_file():
        raise CorruptVideoError(path, "not a regular file")
    if size == 0:
        raise CorruptVideoError(path, "empty file")
    try:
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
        raise CorruptVideoError(path, f"cannot open: {_msg(e)}") from None
    if not container.streams.video:
        container.close()
        raise CorruptVideoError(path, "no video stream")
    if container.streams.video[0].codec_context is None:
        # A damaged codec id in the header: the stream exists, but nothing can decode it.
        container.close()
        raise CorruptVideoError(path, "unknown video codec")
    return container


def _msg(e: BaseException) -> str:
    """One short line: FFmpeg's message without the errno and the (already known) file name."""
    text = " ".join(str(e).split())
    text = re.sub(r"\[Errno -?\d+\] ", "", text)
    filename = getattr(e, "filename", None)
    if filename:
        text = text.replace(f": '{filename}'", "")
    return text if len(text) <= 200 else text[:197] + "..."


def decode_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode a still image (jpg, png, webp, ...) to uint8 RGB [1, H, W, 3].

    Pillow decodes it (PyAV would too, but its JPEG colour conversion is off by ~1 grey level on
    average and it ignores EXIF orientation, which phone photos rely on to stand upright). Grey,
    palette, CMYK and alpha images become 3-channel RGB (alpha dropped). Raises
    CorruptVideoError when the file is missing or not an image Pillow can read.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            rgb = np.array(upright.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise CorruptVideoError(path, "no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        # Pillow quotes the path: the reason is stored in the store, which names no local path.
        detail = _msg(e).replace(f" '{path}'", "").replace(f" {path}", "")
        raise CorruptVideoError(path, f"not a readable image: {detail}") from None
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 1:
        raise CorruptVideoError(path, f"invalid image size {rgb.shape}")
    return rgb[None]
