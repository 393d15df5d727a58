"""Property tests of bad input: damaged videos, out-of-range configs, broken manifests given to
`anon-store extract`. Each answer is frames, a per-video failure recorded in the store, or one
line of error with a non-zero exit and nothing written; never a traceback, never a hang."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.data.clips import ClipSampling, VideoClips, sample_video
from pipeline.data.decode import decode_video, probe_video
from pipeline.errors import ConfigError, VideoError, VideoTooShortError
from pipeline.extract import ExtractConfig, extract
from pipeline.store.reader import open_store
from store_schema import VIDEO_FAILED, VIDEO_OK, validate

SCALE = int(os.environ.get("ANON_STORE_FUZZ_SCALE", "1"))
"""Multiplies every max_examples here: ANON_STORE_FUZZ_SCALE=50 for a long fuzzing session."""
DECODE_TIMEOUT_S = 30.0
"""A decode of a 32-frame 64x64 video takes ~10 ms; anything near this limit is a hang."""
FAILURE_REASONS = ("corrupt", "truncated", "too_short", "unreadable")
MP4_BOXES = (b"ftyp", b"moov", b"mvhd", b"tkhd", b"mdhd", b"hdlr", b"stsd", b"avc1", b"avcC",
             b"stts", b"stss", b"stsc", b"stsz", b"stco", b"mdat")  # fmt: skip
"""mp4 boxes whose fields a damage may overwrite (a random flip rarely lands in the header)."""


def _slow_settings(max_examples: int) -> settings:
    """Hypothesis settings of the tests that decode or extract: no deadline, fixtures allowed."""
    return settings(
        max_examples=max_examples * SCALE,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


# --------------------------------------------------------------------------- damaged videos


@st.composite
def damage(draw: st.DrawFn, data: bytes) -> bytes:
    """Real mp4 bytes after truncation, bit flips, zeroed or overwritten ranges, or spliced
    pieces; sometimes nothing at all."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["truncate", "flip", "zero", "junk", "splice", "empty", "box"]))
        n = len(out)
        if op == "empty" or n == 0:
            out = bytearray()
            break
        where = draw(st.integers(0, n - 1))
        if op == "box":  # overwrite a field of an mp4 header box: codec id, frame counts, ...
            box = out.find(draw(st.sampled_from(MP4_BOXES)))
            if box >= 0:
                where = box + draw(st.integers(0, 24))
                value = draw(st.sampled_from([b"\x7f\xff\xff\xff", b"\x00" * 4, b"xxxx"])
                             | st.binary(min_size=1, max_size=8))  # fmt: skip
                out[where : where + len(value)] = value
        elif op == "truncate":
            out = out[:where]
        elif op == "flip":
            for position in draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=64)):
                out[position] ^= 1 << draw(st.integers(0, 7))
        elif op == "zero":
            size = draw(st.integers(1, 4096))
            out[where : where + size] = bytes(len(out[where : where + size]))
        elif op == "junk":
            junk = draw(st.binary(min_size=1, max_size=256))
            out[where : where + len(junk)] = junk
        else:
            other = draw(st.integers(0, n - 1))
            out = out[: min(where, other)] + out[max(where, other) :]
    return bytes(out)


def _within(seconds: float, fn, *args, **kwargs):
    """fn(*args) in a worker thread; fails the test if it does not return in time (a hang)."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(fn, *args, **kwargs)
        try:
            return future.result(timeout=seconds)
        except TimeoutError:
            pytest.fail(f"{fn.__name__} did not return within {seconds} s: it hangs")


def _outcome(fn, path: Path, **kwargs):
    """fn's result, or the VideoError it raised; any other exception fails the test."""

    def call():
        try:
            return fn(path, **kwargs)
        except VideoError as error:
            return error

    return _within(DECODE_TIMEOUT_S, call)


@pytest.fixture(scope="module")
def mp4s(tiny_benchmark: Path) -> list[bytes]:
    """Bytes of a few real H.264 mp4 files of the synthetic benchmark (trimmed and untrimmed)."""
    table = pq.read_table(tiny_benchmark / "manifest.parquet").to_pylist()
    picks = [r for r in table if r["kind"] == "trimmed"][:3]
    picks += [r for r in table if r["kind"] != "trimmed"][:1]
    return [(tiny_benchmark / r["path"]).read_bytes() for r in picks]


@_slow_settings(80)
@given(data=st.data())
def test_damaged_mp4_decodes_or_fails_per_video(mp4s: list[bytes], tmp_path: Path, data) -> None:
    original = data.draw(st.sampled_from(mp4s), label="video")
    damaged = data.draw(damage(original), label="damage")
    path = tmp_path / "damaged.mp4"
    path.write_bytes(damaged)
    probed = _outcome(probe_video, path)
    assert isinstance(probed, VideoError | tuple)
    expected = data.draw(st.sampled_from([None, 32, 10**6]), label="expected_frames")
    short_side = data.draw(st.sampled_from([None, 16]), label="short_side")
    result = _outcome(decode_video, path, expected_frames=expected, short_side=short_side)
    if isinstance(result, VideoError):
        message = str(result)
        assert "\n" not in message and result.reason in FAILURE_REASONS, message
        if not damaged:
            assert result.reason == "corrupt" and "empty file" in message
    else:
        assert result.dtype == np.uint8 and result.ndim == 4 and result.shape[-1] == 3
        assert len(result) >= 1 and (expected is None or len(result) >= expected)


@pytest.mark.parametrize("box", MP4_BOXES, ids=lambda b: b.decode())
def test_every_header_field_overwritten(mp4s: list[bytes], tmp_path: Path, box: bytes) -> None:
    """A systematic sweep random draws rarely reach: each 32-bit field of the first 24 bytes of
    each header box set to junk, to zero and to 2**31 - 1 (before the fixes, a junk codec id in
    stsd raised AttributeError and a huge stts count asked numpy for 24 TiB)."""
    data = mp4s[0]
    start = data.find(box)
    assert start >= 0, box
    path = tmp_path / "damaged.mp4"
    for offset in range(0, 24, 4):
        for value in (b"xxxx", b"\x00" * 4, b"\x7f\xff\xff\xff"):
            damaged = bytearray(data)
            damaged[start + offset : start + offset + 4] = value
            path.write_bytes(bytes(damaged))
            assert isinstance(_outcome(probe_video, path), VideoError | tuple)
            result = _outcome(decode_video, path)
            if isinstance(result, VideoError):
                assert "\n" not in str(result) and result.reason in FAILURE_REASONS
            else:
                assert result.dtype == np.uint8 and result.ndim == 4 and len(result) >= 1


# --------------------------------------------------------------------------- configs

_ANY_VALUE = st.one_of(
    st.integers(-3, 40),
    st.integers(),
    st.floats(allow_nan=True),
    st.none(),
    st.booleans(),
    st.text(max_size=4),
    st.just(np.int64(4)),
    st.lists(st.integers(0, 3), max_size=4),
)
_SAMPLING_FIELDS = ("frames_per_clip", "frame_stride", "clips_per_video", "static_clips", "size",
                    "window_stride", "seed", "mean", "std", "static_crop_scale")  # fmt: skip


@settings(max_examples=150 * SCALE, deadline=None)
@given(
    fields=st.dictionaries(st.sampled_from(_SAMPLING_FIELDS), _ANY_VALUE, max_size=4),
    num_frames=st.integers(1, 48),
)
def test_clip_sampling_is_valid_or_a_config_error(fields: dict, num_frames: int) -> None:
    """Any field values: a ConfigError, or a sampling that cuts any video into clips of the
    promised shapes - or says the video is too short for one clip."""
    try:
        sampling = ClipSampling(**fields)
    except ConfigError as error:
        assert "\n" not in str(error)
        return
    small = sampling.size <= 24 and sampling.clips_per_video * sampling.frames_per_clip <= 400
    if not small or sampling.static_clips > 64:
        return  # valid, but too large to sample here quickly
    frames = torch.randint(0, 256, (num_frames, 20, 28, 3), dtype=torch.uint8)
    try:
        clips = sample_video(frames, sampling, video_key="v", with_windows=True)
    except VideoTooShortError as error:
        assert num_frames < sampling.clip_span, error
        return
    assert num_frames >= sampling.clip_span
    assert isinstance(clips, VideoClips)
    shape = (sampling.frames_per_clip, 3, sampling.size, sampling.size)
    assert tuple(clips.clips.shape) == (sampling.clips_per_video, *shape)
    assert tuple(clips.static.shape) == (sampling.static_clips, *shape)
    assert clips.clip_starts.min() >= 0
    assert clips.clip_starts.max() + sampling.clip_span <= num_frames
    assert torch.isfinite(clips.clips).all() and torch.isfinite(clips.static).all()


_EXTRACT_FIELDS = ("batch_size", "workers", "clips_per_video", "static_clips", "frame_stride",
                   "window_stride", "seed", "videos_per_chunk", "window_chunk", "splits",
                   "overwrite", "device", "feature_compression")  # fmt: skip


@settings(max_examples=150 * SCALE, deadline=None)
@given(fields=st.dictionaries(st.sampled_from(_EXTRACT_FIELDS), _ANY_VALUE, max_size=4))
def test_extract_config_is_valid_or_a_config_error(fields: dict) -> None:
    try:
        config = ExtractConfig(**fields)
    except ConfigError as error:
        assert "\n" not in str(error)
        return
    for name in ("batch_size", "clips_per_video", "frame_stride", "window_stride"):
        value = getattr(config, name)
        assert isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1
    assert config.static_clips >= 0 and (config.workers is None or config.workers >= 0)
    assert config.splits is None or all(isinstance(s, str) for s in config.splits)


# --------------------------------------------------------------------------- extract


def _cli(*args: object) -> tuple[int, str]:
    """`anon-store ARGS` in this process: (exit code, stderr)."""
    from pipeline import cli

    err = io.StringIO()
    code = 0
    with (
        mock.patch.object(sys, "argv", ["anon-store", *map(str, args)]),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            cli.main()
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, err.getvalue()


def _one_line_error(code: int, err: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def small_bench(tiny_benchmark: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The val and train videos of the tiny benchmark with their manifest (8 videos)."""
    out = tmp_path_factory.mktemp("small-bench")
    rows = [
        r
        for r in pq.read_table(tiny_benchmark / "manifest.parquet").to_pylist()
        if r["split"] in ("train", "val")
    ]
    for r in rows:
        (out / r["path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(tiny_benchmark / r["path"], out / r["path"])
    source = pq.read_table(tiny_benchmark / "manifest.parquet")
    table = pa.Table.from_pylist(rows, schema=source.schema)
    pq.write_table(table, out / "manifest.parquet")
    return out


@_slow_settings(5)
@given(data=st.data())
def test_extract_records_every_damaged_video_and_goes_on(
    small_bench: Path, tiny_encoder_dir: Path, data
) -> None:
    rows = pq.read_table(small_bench / "manifest.parquet").to_pylist()
    # The first video stays intact: a run where every video fails is refused as a whole.
    damaged = data.draw(
        st.lists(st.integers(1, len(rows) - 1), min_size=1, max_size=4, unique=True),
        label="damaged rows",
    )
    with tempfile.TemporaryDirectory() as tmp:
        bench = Path(tmp) / "bench"
        shutil.copytree(small_bench, bench)
        for i in damaged:
            file = bench / rows[i]["path"]
            file.write_bytes(data.draw(damage(file.read_bytes()), label=f"damage {i}"))
        out = Path(tmp) / "raw.zarr"
        config = ExtractConfig(clips_per_video=2, static_clips=2, batch_size=8, workers=1)
        result = _within(
            120, extract, bench / "manifest.parquet", str(tiny_encoder_dir), out, config
        )
        store = open_store(out)
        assert validate(str(out)) == []
        status = store.videos["status"]
        reasons = store.videos["failure_reason"]
        ids = list(store.videos["video_id"])
        for i, row in enumerate(rows):
            v = ids.index(row["video_id"])
            if i not in damaged:
                assert status[v] == VIDEO_OK, (row["video_id"], reasons[v])
            if status[v] == VIDEO_FAILED:
                assert str(reasons[v]).split(":")[0] in FAILURE_REASONS, reasons[v]
                assert np.isnan(store.group["clip_features"][v]).all()
            else:
                assert status[v] == VIDEO_OK and reasons[v] == ""
                assert np.isfinite(store.group["clip_features"][v]).all()
        assert result.failed == int((status == VIDEO_FAILED).sum())


BAD_PATHS = ["../outside.mp4", "/etc/hostname", "", "missing/é.mp4", "a\x00b",
             "videos/../../x.mp4", "v" * 4000]  # fmt: skip


@st.composite
def broken_manifest(draw: st.DrawFn, bench: Path) -> pa.Table:
    """The small benchmark's manifest with one kind of damage."""
    table = pq.read_table(bench / "manifest.parquet")
    n, names = table.num_rows, table.column_names
    kind = draw(st.sampled_from(["drop", "extra", "retype", "dupe", "path", "id", "value"]))
    if kind == "drop":
        table = table.drop_columns([draw(st.sampled_from(["video_id", "path", "split", "action"]))])
    elif kind == "extra":
        name = draw(st.text(min_size=1, max_size=10).filter(lambda c: c not in names))
        table = table.append_column(name, pa.array([1] * n))
    elif kind == "retype":
        name = draw(st.sampled_from(names))
        wrong = {"fps": ["x", True, None], "split": [2.5, True, None]}.get(
            name, [1.5, "x", True, None]
        )  # a float fps is right, and so might be a string split
        values = [draw(st.sampled_from(wrong))] * n
        table = table.set_column(names.index(name), name, pa.array(values))
    elif kind == "dupe":
        ids = table.column("video_id").to_pylist()
        ids[draw(st.integers(1, n - 1))] = ids[0]
        table = table.set_column(0, "video_id", pa.array(ids))
    elif kind == "path":
        paths = table.column("path").to_pylist()
        paths[draw(st.integers(0, n - 1))] = draw(st.sampled_from(BAD_PATHS))
        table = table.set_column(names.index("path"), "path", pa.array(paths))
    elif kind == "id":
        ids = table.column("video_id").to_pylist()
        ids[draw(st.integers(0, n - 1))] = draw(st.sampled_from(["", "  ", None]))
        table = table.set_column(0, "video_id", pa.array(ids, pa.string()))
    else:
        name = draw(st.sampled_from(["action", "attr_skin", "num_frames", "fps", "anomalous"]))
        values = table.column(name).to_pylist()
        bad = [-7, 0] if name in ("num_frames", "fps") else [-7, 100]
        values[draw(st.integers(0, n - 1))] = draw(st.sampled_from(bad))
        typ = table.schema.field(name).type
        table = table.set_column(names.index(name), name, pa.array(values, typ))
    return table


@_slow_settings(25)
@given(data=st.data())
def test_extract_cli_refuses_a_broken_manifest_in_one_line(
    small_bench: Path, tiny_encoder_dir: Path, tmp_path: Path, data
) -> None:
    table = data.draw(broken_manifest(small_bench), label="manifest")
    manifest = small_bench / "broken.parquet"
    pq.write_table(table, manifest)
    out = tmp_path / "raw.zarr"
    shutil.rmtree(out, ignore_errors=True)
    code, err = _cli(
        "extract", "--manifest", manifest, "--encoder", tiny_encoder_dir, "--output", out,
        "--device", "cpu",
    )  # fmt: skip
    _one_line_error(code, err)
    assert not out.exists()


_HUGE = st.integers(10**9, 10**15)
OUT_OF_RANGE = st.one_of(
    st.tuples(st.just("--batch-size"), st.integers(-(10**6), 0)),
    st.tuples(st.just("--workers"), st.integers(-(10**6), -1) | _HUGE),
    st.tuples(st.just("--clips-per-video"), st.integers(-(10**6), 0) | _HUGE),
    st.tuples(st.just("--static-clips"), st.integers(-(10**6), -1) | _HUGE),
    st.tuples(st.just("--videos-per-chunk"), st.integers(-(10**6), 0)),
)


@_slow_settings(20)
@given(option_value=OUT_OF_RANGE)
def test_extract_cli_refuses_out_of_range_numbers(
    small_bench: Path, tiny_encoder_dir: Path, tmp_path: Path, option_value: tuple[str, int]
) -> None:
    option, value = option_value
    out = tmp_path / "raw.zarr"
    code, err = _cli(
        "extract", "--manifest", small_bench / "manifest.parquet", "--encoder", tiny_encoder_dir,
        "--output", out, "--device", "cpu", option, value,
    )  # fmt: skip
    _one_line_error(code, err)
    assert not out.exists()


def test_extract_refuses_clips_longer_than_every_video(
    small_bench: Path, tiny_encoder_dir: Path, tmp_path: Path
) -> None:
    """Every video is 32 frames; a stride of 8 makes the tiny 8-frame clip span 57 frames."""
    out = tmp_path / "raw.zarr"
    with pytest.raises(ConfigError, match="shorter than one clip"):
        extract(
            small_bench / "manifest.parquet",
            str(tiny_encoder_dir),
            out,
            ExtractConfig(frame_stride=8),
        )
    assert not out.exists()
