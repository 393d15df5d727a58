"""extract(): real mp4 files, a real transformers model, a real zarr store on disk."""

from __future__ import annotations

import dataclasses
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import xarray as xr
import zarr
from transformers import VideoMAEModel

from pipeline.data.clips import sample_video
from pipeline.data.decode import decode_video
from pipeline.encoders.registry import load_encoder
from pipeline.errors import AnonStoreError, EncoderError, ManifestError, StoreError
from pipeline.extract import ExtractConfig, extract
from pipeline.extract.plan import sampling_for
from pipeline.store.lock import StoreLockedError
from pipeline.store.reader import open_store
from store_schema import VIDEO_FAILED, VIDEO_OK, validate

CONFIG = ExtractConfig(videos_per_chunk=8, batch_size=16)


def _tree_snapshot(path: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}


def test_store_is_complete_valid_and_readable_without_anon_store(raw_store):
    assert validate(str(raw_store)) == []
    store = open_store(raw_store, kind="raw")
    assert store.status == "complete"
    import av

    decoder = store.meta["decoder"]
    assert decoder["name"] == "pyav" and decoder["pyav"] == av.__version__
    ok = store.videos["status"] == VIDEO_OK
    assert ok.all()
    clips = store.group["clip_features"][:]
    assert np.isfinite(clips).all() and clips.shape[1:] == (5, 32)
    windows = store.videos["window_count"]
    kinds = store.videos["kind"]
    assert (windows[kinds == "trimmed"] == 0).all() and (windows[kinds != "trimmed"] > 0).all()
    ds = xr.open_zarr(str(raw_store))
    assert ds["static_features"].dims == ("video", "static", "feature")
    plain = zarr.open_group(str(raw_store), mode="r")
    np.testing.assert_array_equal(plain["clip_features"][:], clips)


def test_embeddings_equal_calling_transformers_directly(
    raw_store, tiny_benchmark, tiny_encoder_dir
):
    store = open_store(raw_store)
    encoder = load_encoder(str(tiny_encoder_dir), device="cpu")
    sampling = sampling_for(encoder, CONFIG)
    model = VideoMAEModel.from_pretrained(str(tiny_encoder_dir)).eval()
    table = pq.read_table(tiny_benchmark / "manifest.parquet").to_pylist()
    by_id = {row["video_id"]: row for row in table}
    for kind in ("trimmed", "untrimmed"):
        video = int(np.flatnonzero(store.videos["kind"] == kind)[0])
        row = by_id[str(store.videos["video_id"][video])]
        frames = decode_video(tiny_benchmark / row["path"])
        sampled = sample_video(frames, sampling, video_key=row["video_id"], with_windows=True)
        with torch.inference_mode():
            direct = model(pixel_values=sampled.clips).last_hidden_state.mean(dim=1).numpy()
            static = model(pixel_values=sampled.static.contiguous())
            static = static.last_hidden_state.mean(dim=1).numpy()
        np.testing.assert_allclose(store.group["clip_features"][video], direct, atol=1e-5)
        np.testing.assert_allclose(store.group["static_features"][video], static, atol=1e-5)
        np.testing.assert_array_equal(store.group["clip_start"][video], sampled.clip_starts)
        if kind == "untrimmed":
            with torch.inference_mode():
                win = model(pixel_values=sampled.windows).last_hidden_state.mean(dim=1).numpy()
            offset = int(store.videos["window_offset"][video])
            rows = store.group["window_features"][offset : offset + len(win)]
            np.testing.assert_allclose(rows, win, atol=1e-5)
            assert (store.group["window_video"][offset : offset + len(win)] == video).all()


def test_rerun_on_complete_store_is_a_noop(raw_store, tiny_benchmark, tiny_encoder_dir):
    before = _tree_snapshot(raw_store)
    result = extract(tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), raw_store, CONFIG)
    assert result.action == "unchanged" and result.clips_encoded == 0
    assert _tree_snapshot(raw_store) == before


def test_different_settings_refused_unless_overwrite(tmp_path, tiny_benchmark, tiny_encoder_dir):
    manifest, out = tiny_benchmark / "manifest.parquet", tmp_path / "raw.zarr"
    small = ExtractConfig(splits=("val", "train"), clips_per_video=2, static_clips=2)
    extract(manifest, str(tiny_encoder_dir), out, small)
    before = _tree_snapshot(out)
    changed = ExtractConfig(splits=("val", "train"), clips_per_video=3, static_clips=2)
    with pytest.raises(StoreError, match="--overwrite"):
        extract(manifest, str(tiny_encoder_dir), out, changed)
    assert _tree_snapshot(out) == before
    overwritten = ExtractConfig(
        splits=("val", "train"), clips_per_video=3, static_clips=2, overwrite=True
    )
    result = extract(manifest, str(tiny_encoder_dir), out, overwritten)
    assert result.action == "created"
    assert open_store(out).group["clip_features"].shape[1] == 3


def _benchmark_copy(tiny_benchmark: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bench"
    shutil.copytree(tiny_benchmark, copy)
    return copy


def test_broken_videos_are_recorded_and_the_run_goes_on(tmp_path, tiny_benchmark, tiny_encoder_dir):
    bench = _benchmark_copy(tiny_benchmark, tmp_path)
    rows = pq.read_table(bench / "manifest.parquet").to_pylist()
    val = [r for r in rows if r["split"] == "val"]
    (bench / val[0]["path"]).write_bytes(b"this is not a video")
    data = (bench / val[1]["path"]).read_bytes()
    (bench / val[1]["path"]).write_bytes(data[: len(data) // 3])
    result = extract(
        bench / "manifest.parquet",
        str(tiny_encoder_dir),
        tmp_path / "raw.zarr",
        ExtractConfig(splits=("val", "train"), clips_per_video=2, static_clips=2),
    )
    assert result.failed == 2
    store = open_store(tmp_path / "raw.zarr")
    failed = store.videos["status"] == VIDEO_FAILED
    assert sorted(store.videos["video_id"][failed]) == sorted(r["video_id"] for r in val)
    assert all(
        r.split(":")[0] in ("corrupt", "truncated") for r in store.videos["failure_reason"][failed]
    )
    assert np.isnan(store.group["clip_features"][np.flatnonzero(failed)]).all()
    assert validate(str(tmp_path / "raw.zarr")) == []


def test_a_run_where_every_video_fails_exits_non_zero(
    tmp_path, tiny_benchmark, tiny_encoder_dir, run_cli
):
    bench = _benchmark_copy(tiny_benchmark, tmp_path)
    for row in pq.read_table(bench / "manifest.parquet").to_pylist():
        if row["split"] == "val":
            (bench / row["path"]).write_bytes(b"\x00" * 100)
    code, _, err = run_cli(
        "extract",
        "--manifest",
        bench / "manifest.parquet",
        "--encoder",
        tiny_encoder_dir,
        "--output",
        tmp_path / "raw.zarr",
        "--split",
        "val",
    )
    assert code == 1
    assert "all 2 videos failed" in err
    with pytest.raises(StoreError, match="not complete"):
        open_store(tmp_path / "raw.zarr")


def test_bad_inputs_one_line_error_nothing_written(
    tmp_path, tiny_benchmark, tiny_encoder_dir, run_cli
):
    manifest = tiny_benchmark / "manifest.parquet"
    out = tmp_path / "raw.zarr"
    code, _, err = run_cli(
        "extract",
        "--manifest",
        tmp_path / "nope.parquet",
        "--encoder",
        tiny_encoder_dir,
        "--output",
        out,
    )
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "weights.bin").write_bytes(b"123")
    code, _, err = run_cli(
        "extract", "--manifest", manifest, "--encoder", not_a_model, "--output", out
    )
    assert code == 1 and err.startswith("error:") and not out.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    before = _tree_snapshot(foreign)
    code, _, err = run_cli(
        "extract",
        "--manifest",
        manifest,
        "--encoder",
        tiny_encoder_dir,
        "--output",
        foreign,
        "--overwrite",
    )
    assert code == 1 and "not an anon-store store" in err
    assert _tree_snapshot(foreign) == before
    with pytest.raises(ManifestError):
        extract(tmp_path / "nope.parquet", str(tiny_encoder_dir), out, CONFIG)
    with pytest.raises(EncoderError):
        extract(manifest, str(not_a_model), out, CONFIG)
    with pytest.raises(AnonStoreError):
        extract(manifest, str(tiny_encoder_dir), out, ExtractConfig(splits=("no_such_split",)))
    assert not out.exists()


def _committed_videos(store: Path) -> int:
    try:
        status = zarr.open_group(str(store), mode="r")["status"][:]
    except Exception:  # not created yet, or a chunk being written right now
        return 0
    return int((status != 0).sum())


def _clips_left_to_encode(store: Path, reference: Path, videos_per_chunk: int = 8) -> int:
    """Clips a resumed run must encode: every clip (normal, static, window) of the videos in
    the shards of `store` not committed yet (a shard counts as committed when all its videos
    have a final status, as the writer decides it), counted on the complete `reference` store
    of the same manifest and settings."""
    status = zarr.open_group(str(store), mode="r")["status"]
    ref = open_store(reference)
    per_video = (
        ref.group["clip_features"].shape[1]
        + ref.group["static_features"].shape[1]
        + np.asarray(ref.videos["window_count"], dtype=np.int64)
    )
    assert (ref.videos["status"] == VIDEO_OK).all()  # every video of the reference is encoded
    left = 0
    for start in range(0, ref.num_videos, videos_per_chunk):
        stop = min(start + videos_per_chunk, ref.num_videos)
        try:
            committed = bool((np.asarray(status[start:stop]) != 0).all())
        except Exception:  # a status chunk torn by the kill: the shard is redone
            committed = False
        if not committed:
            left += int(per_video[start:stop].sum())
    return left


def test_killed_run_resumes_to_the_same_store(
    tmp_path, tiny_benchmark, tiny_encoder_dir, raw_store
):
    """SIGKILL a real extraction subprocess mid-run, rerun, compare with an uninterrupted run."""
    out = tmp_path / "raw.zarr"
    args = [
        sys.executable,
        "-m",
        "pipeline",
        "extract",
        "--manifest",
        str(tiny_benchmark / "manifest.parquet"),
        "--encoder",
        str(tiny_encoder_dir),
        "--output",
        str(out),
        "--videos-per-chunk",
        "8",
        "--batch-size",
        "16",
        "--workers",
        "0",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _committed_videos(out) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    committed = _committed_videos(out)
    total = open_store(raw_store).num_videos
    assert 0 < committed < total
    left = _clips_left_to_encode(out, raw_store)
    with pytest.raises(StoreError, match="not complete"):
        open_store(out)
    # The killed run's lock is left behind: a rerun names it as stale and changes nothing...
    before = _tree_snapshot(out)
    with pytest.raises(StoreLockedError, match=f"stale lock: .* pid {proc.pid} .*--break-lock"):
        extract(tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), out, CONFIG)
    assert _tree_snapshot(out) == before
    # ...until asked to break it.
    result = extract(
        tiny_benchmark / "manifest.parquet",
        str(tiny_encoder_dir),
        out,
        dataclasses.replace(CONFIG, break_lock=True),
    )
    assert result.action == "resumed"
    assert not Path(f"{out}.lock").exists()
    assert 0 < result.clips_encoded == left  # only what the killed run had not committed
    resumed, reference = open_store(out), open_store(raw_store)
    for name in ("clip_features", "static_features", "window_features", "status", "video_id"):
        np.testing.assert_array_equal(resumed.group[name][:], reference.group[name][:])
    assert validate(str(out)) == []


@pytest.mark.slow
def test_killed_at_several_random_points_still_ends_equal(
    tmp_path, tiny_benchmark, tiny_encoder_dir, raw_store
):
    """Three SIGKILLs at seeded random shard counts, each rerun breaking the dead run's lock."""
    out = tmp_path / "raw.zarr"
    args = [sys.executable, "-m", "pipeline", "extract",
            "--manifest", str(tiny_benchmark / "manifest.parquet"),
            "--encoder", str(tiny_encoder_dir), "--output", str(out),
            "--videos-per-chunk", "8", "--batch-size", "16", "--workers", "0"]  # fmt: skip
    total = open_store(raw_store).num_videos
    targets = np.sort(np.random.default_rng(3).choice(np.arange(1, total // 8), 3, replace=False))
    committed_before = 0
    for round_, shards in enumerate(targets):
        extra = ["--break-lock"] if round_ else []
        proc = subprocess.Popen([*args, *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while (
            _committed_videos(out) < 8 * shards
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
        committed = _committed_videos(out)
        assert committed_before <= committed < total  # nothing committed is lost
        committed_before = committed
    result = extract(tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), out,
                     dataclasses.replace(CONFIG, break_lock=True))  # fmt: skip
    assert result.action == "resumed"
    resumed, reference = open_store(out), open_store(raw_store)
    for name in ("clip_features", "static_features", "window_features", "status", "video_id"):
        np.testing.assert_array_equal(resumed.group[name][:], reference.group[name][:])
    assert validate(str(out)) == []
