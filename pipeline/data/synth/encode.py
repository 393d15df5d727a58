"""Write frames as an H.264 mp4 with PyAV, deterministically (one encoder thread)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_mp4(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    *,
    fps: float = 25.0,
    crf: int = 18,
    preset: str = "veryfast",
) -> int:
    """Encode uint8 [T, H, W, 3] RGB frames (H, W even) to ``path``; returns the bytes written.

    libx264 in yuv420p, one thread, no mbtree: the same frames always give the same bytes. The
    file appears atomically (written next to ``path``, then renamed).
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 [T, H, W, 3] frames, got {frames.dtype} {frames.shape}")
    _, height, width, _ = frames.shape
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            # mbtree (x264's lookahead-based quantiser tree) makes the output depend on what
            # earlier encodes left in memory at these tiny frame sizes: same frames, different
            # bytes. Without it, one thread gives the same bytes in any process, in any order.
            stream.options = {
                "crf": str(crf),
                "preset": preset,
                "threads": "1",
                "x264-params": "no-mbtree=1",
            }
            stream.codec_context.thread_count = 1
            for frame in frames:
                packets = stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24"))
                container.mux(packets)
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size
