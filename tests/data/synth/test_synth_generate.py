"""generate_benchmark: real H.264 files, a valid manifest, determinism, safe output directories."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.data.manifest import read_manifest
from pipeline.data.synth import (
    ACTIONS,
    SPLITS,
    SynthConfig,
    generate_benchmark,
    make_video_spec,
    read_benchmark_summary,
    render_video,
    write_mp4,
)
from pipeline.errors import ConfigError

TINY = SynthConfig(scale="tiny", workers=1)


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "bench"
    calls = []
    summary = generate_benchmark(out, TINY, progress=lambda d, t: calls.append((d, t)))
    return out, summary, calls


def test_summary_and_files(bench):
    out, summary, calls = bench
    assert summary.counts == {s: TINY.count(s) for s in SPLITS}
    assert summary.kinds == {"anomaly": 8, "trimmed": 34, "untrimmed": 5}
    assert summary.bytes_on_disk > 0 and summary.seconds > 0
    doc = json.loads((out / "benchmark.json").read_text())
    assert doc["status"] == "complete" and doc["dataset"]["actions"] == list(ACTIONS)
    assert read_benchmark_summary(out) == summary.__class__(
        **{**summary.__dict__, "seconds": doc["seconds"]}
    )
    assert calls[0] == (0, summary.num_videos) and calls[-1] == (summary.num_videos,) * 2
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_manifest_is_valid_and_complete(bench):
    out, summary, _ = bench
    m = read_manifest(out)  # checks that every file exists
    assert m.sha256 == summary.manifest_sha256
    assert m.info.name == "anon-synth"
    assert m.person_attributes == ("skin", "gender", "clothing", "hat")
    assert m.context_attributes == ("scene",)
    t = m.table.to_pylist()
    assert {r["split"] for r in t} == set(SPLITS)
    for r in t:
        assert r["path"] == f"videos/{r['split']}/{r['video_id']}.mp4"
        assert r["fps"] == 25.0
        if r["kind"] == "trimmed":
            assert r["num_frames"] == 32 and r["action"] >= 0 and r["segments"] == []
            assert r["anomalous"] == -1
        elif r["kind"] == "untrimmed":
            assert r["num_frames"] == 64 and r["action"] == -1 and r["segments"]
        else:
            assert r["anomalous"] == int(bool(r["segments"]))
    assert {r["anomalous"] for r in t if r["kind"] == "anomaly"} == {0, 1}
    bias = [r for r in t if r["split"] == "bias_train"]
    assert all(r["attr_gender"] == (r["action"] >= 5) for r in bias)


def test_files_are_h264_mp4_with_the_promised_frames(bench):
    out, _, _ = bench
    m = read_manifest(out)
    for path, row in zip(m.video_paths(), m.table.to_pylist(), strict=True):
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            assert c.format.name.startswith("mov,mp4")
            assert stream.codec_context.name == "h264"
            assert stream.codec_context.pix_fmt == "yuv420p"
            assert (stream.width, stream.height) == (64, 64)
            assert float(stream.average_rate) == 25.0
            n = sum(1 for _ in c.decode(video=0))
        assert n == row["num_frames"]


def test_decoded_frames_match_the_renderer(bench):
    out, _, _ = bench
    spec = make_video_spec(TINY, "train", 2)
    decoded = _decode(out / "videos" / "train" / f"{spec.video_id}.mp4")
    rendered = render_video(spec).frames
    assert decoded.shape == rendered.shape
    assert np.abs(decoded.astype(int) - rendered).mean() < 6  # crf 18 + 4:2:0 chroma


def test_same_seed_same_bytes_any_worker_count(bench, tmp_path):
    out, summary, _ = bench
    again = generate_benchmark(tmp_path / "again", SynthConfig(scale="tiny", workers=2))
    assert again.manifest_sha256 == summary.manifest_sha256
    assert (tmp_path / "again" / "manifest.parquet").read_bytes() == (
        out / "manifest.parquet"
    ).read_bytes()
    for path in sorted((out / "videos").rglob("*.mp4")):
        twin = tmp_path / "again" / path.relative_to(out)
        assert np.array_equal(_decode(path), _decode(twin)), path.name
        assert path.read_bytes() == twin.read_bytes(), path.name


def test_other_seed_differs(bench, tmp_path):
    out, summary, _ = bench
    other = generate_benchmark(tmp_path / "seed1", SynthConfig(scale="tiny", seed=1, workers=1))
    assert other.manifest_sha256 != summary.manifest_sha256
    name = "videos/test/test_00000.mp4"
    assert not np.array_equal(_decode(out / name), _decode(tmp_path / "seed1" / name))


def test_only_some_splits(bench, tmp_path):
    out, _, _ = bench
    cfg = SynthConfig(scale="tiny", splits=("pretrain",), workers=1)
    summary = generate_benchmark(tmp_path / "pre", cfg)
    assert summary.counts == {"pretrain": 4}
    assert {r["split"] for r in read_manifest(tmp_path / "pre").table.to_pylist()} == {"pretrain"}
    for path in sorted((tmp_path / "pre" / "videos").rglob("*.mp4")):
        assert path.read_bytes() == (out / path.relative_to(tmp_path / "pre")).read_bytes()


def test_refuses_a_foreign_non_empty_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        generate_benchmark(tmp_path, TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    file = tmp_path / "notes.txt"
    with pytest.raises(ConfigError, match="not a directory"):
        generate_benchmark(file, TINY)


def test_regenerates_over_a_previous_benchmark(tmp_path):
    cfg = SynthConfig(scale="tiny", splits=("val", "tad_test"), workers=1)
    first = generate_benchmark(tmp_path, cfg)
    (tmp_path / "extra.txt").write_text("kept")
    stale = tmp_path / "videos" / "val" / "stale.mp4"
    stale.write_bytes(b"old")
    second = generate_benchmark(tmp_path, SynthConfig(scale="tiny", splits=("val",), workers=1))
    assert second.counts == {"val": 2} and first.counts == {"val": 2, "tad_test": 2}
    assert (tmp_path / "extra.txt").read_text() == "kept"
    assert not stale.exists() and not (tmp_path / "videos" / "tad_test").exists()
    read_manifest(tmp_path)


def test_interrupted_benchmark_can_be_regenerated(tmp_path):
    cfg = SynthConfig(scale="tiny", splits=("val",), workers=1)
    generate_benchmark(tmp_path, cfg)
    doc = json.loads((tmp_path / "benchmark.json").read_text())
    doc["status"] = "incomplete"
    (tmp_path / "benchmark.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match="no complete"):
        read_benchmark_summary(tmp_path)
    assert generate_benchmark(tmp_path, cfg).counts == {"val": 2}


def test_encoding_is_byte_stable_within_a_process(tmp_path):
    # x264's mbtree made the n-th encode in a process differ from the first; it is switched off.
    a = render_video(make_video_spec(TINY, "tad_test", 0)).frames
    b = render_video(make_video_spec(TINY, "train", 1)).frames
    outputs = []
    for k in range(3):
        write_mp4(tmp_path / f"a{k}.mp4", a)
        write_mp4(tmp_path / f"b{k}.mp4", b)
        outputs.append((tmp_path / f"a{k}.mp4").read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
