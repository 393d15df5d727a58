"""Clip sampling: the frames of clips, static clips and windows of a video, and preprocessing.

Everything here works on a whole decoded video at once: frames are gathered with index arrays and
each needed frame is resized once in a single batched call, never in a Python loop per frame.
Output layout: float32 [batch, T, 3, size, size], what transformers' VideoMAE takes as
``pixel_values``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.errors import ConfigError, VideoTooShortError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
STATIC_ASPECT: tuple[float, float] = (3 / 4, 4 / 3)
MAX_COUNT = 4096
"""Upper bound of clip lengths, per-video clip counts and sizes: far above any encoder or
protocol, so that a typo fails here with one line rather than as an allocation larger than
memory (pipeline.extract.config checks its clip counts against it too)."""
_LIMITS = dict.fromkeys(("frames_per_clip", "clips_per_video", "static_clips", "size"), MAX_COUNT)


@dataclass(frozen=True)
class ClipSampling:
    """How a video is cut into clips, static clips and windows, and how frames are normalised."""

    frames_per_clip: int = 16
    """Frames in one clip (T)."""
    frame_stride: int = 1
    """Distance between consecutive frames of a clip; a clip spans (T - 1) * stride + 1 frames."""
    clips_per_video: int = 5
    """Normal clips per video (K), evenly spaced, first at frame 0, last flush with the end."""
    static_clips: int = 10
    """Static clips per video (S): one frame each, repeated T times; 0 disables them."""
    size: int = 64
    """Output height and width in pixels (short side resized to it, then centre crop)."""
    window_stride: int = 8
    """Frames between the starts of consecutive sliding windows (untrimmed / anomaly videos)."""
    seed: int = 0
    """Seeds the static-clip augmentation together with each video's key."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    """Per-channel mean (RGB, on the 0..1 scale) subtracted after resizing."""
    std: tuple[float, float, float] = IMAGENET_STD
    """Per-channel standard deviation (RGB, on the 0..1 scale) divided by after the mean."""
    static_crop_scale: tuple[float, float] = (0.8, 1.0)
    """Range of the area fraction of the random resized crop applied to static frames."""
    static_flip: bool = True
    """Flip static frames horizontally with probability 0.5."""

    def __post_init__(self) -> None:
        for name in ("frames_per_clip", "frame_stride", "clips_per_video", "size", "window_stride"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ConfigError(f"sampling.{name} must be a positive integer, got {value!r}")
        if (
            isinstance(self.static_clips, bool)
            or not isinstance(self.static_clips, int | np.integer)
            or self.static_clips < 0
        ):
            raise ConfigError(f"sampling.static_clips must be >= 0, got {self.static_clips!r}")
        for name, high in _LIMITS.items():
            if getattr(self, name) > high:
                raise ConfigError(
                    f"sampling.{name} must be at most {high}, got {getattr(self, name)}"
                )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer):
            raise ConfigError(f"sampling.seed must be an integer, got {self.seed!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            try:
                value = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                raise ConfigError(f"sampling.{name} must be 3 numbers, got {value!r}") from None
            if len(value) != 3 or not all(math.isfinite(v) for v in value):
                raise ConfigError(f"sampling.{name} must be 3 finite numbers, got {value!r}")
            object.__setattr__(self, name, value)
        if min(self.std) <= 0:
            raise ConfigError(f"sampling.std must be positive, got {self.std!r}")
        try:
            lo, hi = (float(v) for v in self.static_crop_scale)
        except (TypeError, ValueError):
            raise ConfigError(
                f"sampling.static_crop_scale must be (low, high), got {self.static_crop_scale!r}"
            ) from None
        if not 0 < lo <= hi <= 1:
            raise ConfigError(
                f"sampling.static_crop_scale must satisfy 0 < low <= high <= 1, got {(lo, hi)}"
            )
        object.__setattr__(self, "static_crop_scale", (lo, hi))
        object.__setattr__(self, "static_flip", bool(self.static_flip))

    @property
    def clip_span(self) -> int:
        """Frames covered by one clip from its first to its last frame."""
        return (self.frames_per_clip - 1) * self.frame_stride + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists), e.g. for store attributes."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipSampling:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ConfigError(f"unknown sampling field(s): {', '.join(unknown)}")
        for key in ("mean", "std", "static_crop_scale"):
            if key in known and isinstance(known[key], list):
                known[key] = tuple(known[key])
        return cls(**known)


@dataclass(frozen=True)
class VideoClips:
    """Everything the encoder needs from one video, as float32 [batch, T, 3, size, size] tensors."""

    clips: torch.Tensor
    """Normal clips [K, T, 3, S, S]."""
    clip_starts: np.ndarray
    """First frame of each normal clip [K] (int64)."""
    static: torch.Tensor
    """Static clips [S_static, T, 3, S, S]: each an augmented frame repeated T times. An expanded
    view (the T copies share memory): read it, batch it, move it; don't write into it."""
    static_frames: np.ndarray
    """Frame index of each static clip [S_static] (int64)."""
    windows: torch.Tensor
    """Sliding windows [W, T, 3, S, S]; W = 0 when windows were not asked for."""
    window_starts: np.ndarray
    """First frame of each window [W] (int64)."""
    num_frames: int
    """Frames in the decoded video."""


def clip_starts(num_frames: int, s: ClipSampling, *, video_key: str = "<video>") -> np.ndarray:
    """``s.clips_per_video`` evenly spaced clip starts: first 0, last ``num_frames - span``.

    Starts are rounded to whole frames and may repeat when the video is barely longer than a
    clip (overlap allowed). With one clip per video it is centred. Raises VideoTooShortError
    when the video is shorter than one clip.
    """
    last = _last_start(num_frames, s, video_key)
    k = s.clips_per_video
    if k == 1:
        return np.array([last // 2], dtype=np.int64)
    i = np.arange(k, dtype=np.int64)
    # round(i * last / (k - 1)) in exact integer arithmetic
    return (2 * i * last + (k - 1)) // (2 * (k - 1))


def static_frame_indices(num_frames: int, s: ClipSampling) -> np.ndarray:
    """``s.static_clips`` evenly spaced frames: the centres of S equal parts of the video.

    Centres rather than the ends avoid first and last frames (fades, black frames). A video
    with fewer frames than S repeats frames.
    """
    if s.static_clips == 0:
        return np.zeros(0, dtype=np.int64)
    if num_frames < 1:
        raise VideoTooShortError("<video>", f"{num_frames} frames")
    i = np.arange(s.static_clips, dtype=np.int64)
    return ((2 * i + 1) * num_frames) // (2 * s.static_clips)


def window_starts(num_frames: int, s: ClipSampling, *, video_key: str = "<video>") -> np.ndarray:
    """Sliding window starts 0, stride, 2*stride, ... plus one flush with the end if needed."""
    last = _last_start(num_frames, s, video_key)
    starts = np.arange(0, last + 1, s.window_stride, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, np.int64(last))
    return starts


def preprocess(frames: np.ndarray | torch.Tensor, s: ClipSampling | None = None) -> torch.Tensor:
    """uint8 RGB [..., T, H, W, 3] -> normalised float32 [..., T, 3, size, size].

    Centre crop of the largest square, resized with antialiased bilinear interpolation to
    size x size: the same as resizing the short side to ``size`` and centre-cropping, up to a
    sub-pixel shift of the crop, but it converts far fewer pixels. Resizing runs on uint8
    (torch's fast antialias kernel; rounding error <= 1 grey level), normalising in float32.
    """
    s = s or ClipSampling()
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.ndim < 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [..., T, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    lead = x.shape[:-3]
    flat = x.reshape(-1, *x.shape[-3:])
    out = _resize_square(flat, s.size)
    return _normalise(out, s).reshape(*lead, 3, s.size, s.size)


@dataclass(frozen=True, eq=False)
class PreparedClips:
    """What one video hands to the encoder, still in uint8: built where videos are decoded
    (worker processes), turned into float clips by :func:`materialise` where the encoder runs.

    Unique frames only: a normal clip costs at most T frames of size x size x 3 bytes (windows
    overlapping it share them) and a static clip ONE frame plus its crop box, instead of T float32
    frames each - 1.5 MB instead of 9.6 MB per normal clip at 224 px, 0.15 MB per static clip.
    """

    frames: torch.Tensor
    """uint8 [U, 3, size, size]: the unique frames of the clips and windows, centre square
    resized (contiguous)."""
    clip_rows: torch.Tensor
    """int64 [K, T]: rows of ``frames`` of each normal clip."""
    window_rows: torch.Tensor
    """int64 [W, T]: rows of ``frames`` of each window."""
    clip_starts: np.ndarray
    window_starts: np.ndarray
    static: torch.Tensor
    """uint8 [S' , 3, h, w]: the static frames with their short side resized to at most size
    (S' = 1 when one image gives every crop); with ``static_theta`` None, the finished
    size x size view."""
    static_theta: torch.Tensor | None
    """float32 [S, 2, 3]: each static clip's crop + flip as an affine grid; None: as it is."""
    static_frames: np.ndarray
    num_frames: int

    @property
    def nbytes(self) -> int:
        """Bytes that travel to the encoder's device for this video."""
        tensors = (self.frames, self.clip_rows, self.window_rows, self.static)
        extra = 0 if self.static_theta is None else self.static_theta.nbytes
        return sum(t.nbytes for t in tensors) + extra


def prepare_video(
    frames: np.ndarray | torch.Tensor,
    sampling: ClipSampling,
    *,
    video_key: str,
    with_windows: bool,
) -> PreparedClips:
    """A decoded video (uint8 [N, H, W, 3]) cut into its clips, static clips and windows, in
    uint8: every frame a clip or window uses is resized once; static crops are drawn from a
    generator seeded by ``(sampling.seed, video_key)`` through SHA-256, so they are the same in
    every process and whatever order videos are processed in.
    Raises VideoTooShortError (with ``video_key`` as the path) when N is less than one clip.
    """
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [N, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    n = int(x.shape[0])
    s = sampling
    c_starts, w_starts, c_idx, w_idx = _clip_frame_indices(n, s, video_key, with_windows)
    needed, inverse = np.unique(np.concatenate([c_idx.ravel(), w_idx.ravel()]), return_inverse=True)
    resized = _resize_square(x[torch.from_numpy(needed)], s.size).contiguous()
    rows = torch.from_numpy(inverse.astype(np.int64))
    s_idx = static_frame_indices(n, s)
    static, theta = _static_crops(x[torch.from_numpy(s_idx)], len(s_idx), s, video_key)
    return PreparedClips(
        frames=resized,
        clip_rows=rows[: c_idx.size].reshape(c_idx.shape),
        window_rows=rows[c_idx.size :].reshape(w_idx.shape),
        clip_starts=c_starts,
        window_starts=w_starts,
        static=static,
        static_theta=theta,
        static_frames=s_idx,
        num_frames=n,
    )


def prepare_image(
    image: np.ndarray | torch.Tensor,
    sampling: ClipSampling,
    *,
    video_key: str,
    augmented: bool,
) -> PreparedClips:
    """A still image (uint8 [1, H, W, 3]) as static clips only, as the paper does.

    ``augmented`` (training images): ``sampling.static_clips`` independently drawn random
    resized crops + flips of the image (seeded by ``(sampling.seed, video_key)`` like a video's
    static clips). Otherwise (evaluation images): ONE clip of the centre crop, the deterministic
    view a test image is scored on; the caller stores its embedding in every static slot. No
    normal clips and no windows: an image has no motion.
    """
    x = torch.as_tensor(image)
    if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[0] != 1 or x.shape[-1] != 3:
        raise ValueError(f"expected one uint8 image [1, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    s = sampling
    if s.static_clips < 1:
        raise ConfigError("images become static clips only: sampling.static_clips must be >= 1")
    if augmented:
        static, theta = _static_crops(x, s.static_clips, s, video_key)
    else:
        static, theta = _resize_square(x, s.size).contiguous(), None
    none = np.zeros(0, dtype=np.int64)
    no_rows = torch.zeros((0, s.frames_per_clip), dtype=torch.int64)
    return PreparedClips(
        frames=torch.zeros((0, 3, s.size, s.size), dtype=torch.uint8),
        clip_rows=no_rows,
        window_rows=no_rows,
        clip_starts=none,
        window_starts=none,
        static=static,
        static_theta=theta,
        static_frames=np.zeros(len(static) if theta is None else len(theta), dtype=np.int64),
        num_frames=1,
    )


def materialise(
    prepared: PreparedClips, sampling: ClipSampling, device: torch.device | str | None = None
) -> VideoClips:
    """The float32 clips [batch, T, 3, size, size] of a prepared video, built on `device` (the
    encoder's: normalising, gathering, cropping and repeating static frames run there, on the
    GPU when there is one). On the CPU the values are those sample_video always produced."""
    s, p = sampling, prepared
    shape = (s.frames_per_clip, 3, s.size, s.size)
    processed = _normalise(p.frames.to(device, non_blocking=True), s)  # [U, 3, S, S]
    clips = processed[p.clip_rows.to(processed.device).reshape(-1)]
    windows = processed[p.window_rows.to(processed.device).reshape(-1)]
    static = _normalise(p.static.to(device, non_blocking=True), s)
    if p.static_theta is not None:
        theta = p.static_theta.to(static.device)
        static = _crop(static, theta, s.size) if len(theta) else static.new_empty((0, *shape[1:]))
    return VideoClips(
        clips=clips.reshape(len(p.clip_rows), *shape),
        clip_starts=p.clip_starts,
        static=static[:, None].expand(len(static), *shape),
        static_frames=p.static_frames,
        windows=windows.reshape(len(p.window_rows), *shape),
        window_starts=p.window_starts,
        num_frames=p.num_frames,
    )


def sample_video(
    frames: np.ndarray | torch.Tensor,
    sampling: ClipSampling,
    *,
    video_key: str,
    with_windows: bool,
) -> VideoClips:
    """Cut a decoded video (uint8 [N, H, W, 3]) into float normal clips, static clips and windows
    on the CPU: :func:`prepare_video` then :func:`materialise`."""
    prepared = prepare_video(frames, sampling, video_key=video_key, with_windows=with_windows)
    return materialise(prepared, sampling)


def sample_image(
    image: np.ndarray | torch.Tensor,
    sampling: ClipSampling,
    *,
    video_key: str,
    augmented: bool,
) -> VideoClips:
    """A still image as float static clips on the CPU: prepare_image, then materialise."""
    prepared = prepare_image(image, sampling, video_key=video_key, augmented=augmented)
    return materialise(prepared, sampling)


def frames_used(
    num_frames: int, sampling: ClipSampling, *, video_key: str, with_windows: bool
) -> np.ndarray:
    """The sorted frame indices ``sample_video`` reads from a video of `num_frames` frames (its
    clips, windows and static frames): decoding can skip converting every other frame."""
    _, _, c_idx, w_idx = _clip_frame_indices(num_frames, sampling, video_key, with_windows)
    s_idx = static_frame_indices(num_frames, sampling)
    return np.unique(np.concatenate([c_idx.ravel(), w_idx.ravel(), s_idx]))


def _clip_frame_indices(
    n: int, s: ClipSampling, video_key: str, with_windows: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(clip starts [K], window starts [W], clip frames [K, T], window frames [W, T])."""
    offsets = np.arange(s.frames_per_clip, dtype=np.int64) * s.frame_stride
    c_starts = clip_starts(n, s, video_key=video_key)
    w_starts = (
        window_starts(n, s, video_key=video_key) if with_windows else np.zeros(0, dtype=np.int64)
    )
    return c_starts, w_starts, c_starts[:, None] + offsets, w_starts[:, None] + offsets


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from values, identical across processes (unlike Python's ``hash``)."""
    digest = hashlib.sha256("\0".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


# ---------------------------------------------------------------------------------------------


def _last_start(num_frames: int, s: ClipSampling, video_key: str) -> int:
    last = int(num_frames) - s.clip_span
    if last < 0:
        raise VideoTooShortError(
            video_key,
            f"{num_frames} frames, a clip needs {s.clip_span} "
            f"({s.frames_per_clip} frames, stride {s.frame_stride})",
        )
    return last


def _resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> uint8 [N, 3, size, size]: centre square, antialiased resize."""
    h, w = int(x.shape[1]), int(x.shape[2])
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, top : top + side, left : left + side].permute(0, 3, 1, 2)  # channels-last view
    if side == size:
        return x
    return _resize(x, (size, size))


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 [N, 3, H, W]; empty batches pass through."""
    if x.shape[0] == 0:
        return x.new_empty((0, x.shape[1], *hw))
    return F.interpolate(x, size=hw, mode="bilinear", antialias=True, align_corners=False)


def _normalise(x: torch.Tensor, s: ClipSampling) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> float32 (x / 255 - mean) / std, contiguous."""
    scale = torch.tensor([1 / (255 * v) for v in s.std], dtype=torch.float32).view(1, 3, 1, 1)
    shift = torch.tensor([m / v for m, v in zip(s.mean, s.std, strict=True)]).view(1, 3, 1, 1)
    # The input is usually a channels-last view of decoded frames: converting it into a
    # contiguous float buffer in one pass, then scaling in place, is 3x cheaper than float
    # arithmetic on the strided view followed by .contiguous() (same values, bit for bit).
    out = torch.empty(x.shape, dtype=torch.float32, device=x.device)
    out.copy_(x)
    return out.mul_(scale.to(x.device)).sub_(shift.float().to(x.device))


def _static_crops(
    x: torch.Tensor, count: int, s: ClipSampling, video_key: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 frames [F, H, W, 3] (F = count, or 1 frame for every crop) -> (the frames as uint8
    [F, 3, h, w] with the short side resized to ``size`` when larger, the crop + flip of each of
    `count` static clips as affine grids float32 [count, 2, 3]).

    The crop takes ``static_crop_scale`` of the frame's area with an aspect ratio in [3/4, 4/3]
    (log-uniform), clipped to the frame, at a uniformly random position, like torchvision's
    RandomResizedCrop but without its rejection loop; it is sampled at a scale near 1, where no
    antialiasing is needed (:func:`_crop`).
    """
    h, w = int(x.shape[1]), int(x.shape[2])
    rng = np.random.default_rng(stable_seed("static", s.seed, video_key))
    area = rng.uniform(*s.static_crop_scale, size=count)
    log_r = rng.uniform(math.log(STATIC_ASPECT[0]), math.log(STATIC_ASPECT[1]), size=count)
    pos = rng.uniform(0.0, 1.0, size=(count, 2))
    flip = rng.uniform(0.0, 1.0, size=count) < 0.5
    frames = x.permute(0, 3, 1, 2)
    if min(h, w) > s.size and len(frames):
        scale = s.size / min(h, w)
        frames = _resize(frames, (max(1, round(h * scale)), max(1, round(w * scale))))
    # Crop box as fractions of the frame: width fw, height fh, with fw * fh * w * h = area * w * h
    # and (fw * w) / (fh * h) = r.
    ratio = np.exp(log_r)
    fw = np.minimum(np.sqrt(area * ratio * h / w), 1.0)
    fh = np.minimum(np.sqrt(area / ratio * w / h), 1.0)
    cx = (pos[:, 0] * (1 - fw) + fw / 2) * 2 - 1  # centre in [-1, 1] grid coordinates
    cy = (pos[:, 1] * (1 - fh) + fh / 2) * 2 - 1
    sign = np.where(flip & s.static_flip, -1.0, 1.0)
    theta = np.zeros((count, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = fw * sign
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = fh
    theta[:, 1, 2] = cy
    return frames.contiguous(), torch.from_numpy(theta)


def _crop(frames: torch.Tensor, theta: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised float frames [F, 3, h, w] (F = len(theta), or 1 for all) -> the crops
    [len(theta), 3, size, size]: bilinear ``grid_sample``, all crops in one call."""
    n = len(theta)
    if len(frames) != n:
        frames = frames.expand(n, *frames.shape[1:]).contiguous()
    grid = F.affine_grid(theta, [n, 3, size, size], align_corners=False)
    return F.grid_sample(
        frames, grid, mode="bilinear", padding_mode="border", align_corners=False
    ).contiguous()
