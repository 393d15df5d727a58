"""Manifest schema: round trip, content hash, inference and one test per kind of bad input."""

from __future__ import annotations

import math
import os
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.data.manifest import (
    METADATA_KEY,
    SEGMENT_TYPE,
    AttributeInfo,
    DatasetInfo,
    Manifest,
    read_manifest,
    write_manifest,
)
from pipeline.errors import ManifestError

INFO = DatasetInfo(
    name="toy",
    actions=("run", "jump", "wave"),
    attributes={
        "hat": AttributeInfo(("no", "yes")),
        "scene": AttributeInfo(("beach", "city", "forest"), role="context"),
    },
    anomaly_types=("fight", "fall"),
)


def _rows() -> list[dict]:
    return [
        dict(video_id="a", path="v/a.mp4", split="train", action=0, attr_hat=1, attr_scene=0,
             fps=25.0, num_frames=32),
        dict(video_id="b", path="v/b.mp4", split="test", action=2, attr_hat=-1, attr_scene=2,
             fps=25.0, num_frames=20),
        dict(video_id="c", path="v/c.mp4", split="tad_test", kind="untrimmed", action=-1,
             attr_hat=0, attr_scene=1, fps=30.0, num_frames=40,
             segments=[{"start": 0, "end": 10, "label": 1}, {"start": 20, "end": 40, "label": 2}]),
        dict(video_id="d", path="v/d.mp4", split="anomaly_test", kind="anomaly", action=-1,
             attr_hat=0, attr_scene=1, fps=30.0, num_frames=40,
             segments=[{"start": 5, "end": 15, "label": 1}]),
    ]  # fmt: skip


@pytest.fixture
def good(tmp_path: Path) -> Path:
    (tmp_path / "v").mkdir()
    for r in _rows():
        (tmp_path / r["path"]).write_bytes(b"not decoded by the manifest")
    return write_manifest(tmp_path / "manifest.parquet", _rows(), INFO)


def _table(path: Path) -> pa.Table:
    return pq.read_table(path)


def _write_bad(path: Path, table: pa.Table, *, keep_info: bool = True) -> Path:
    meta = {METADATA_KEY: INFO.to_json().encode()} if keep_info else None
    bad = path.with_name("bad.parquet")
    pq.write_table(table.replace_schema_metadata(meta), bad)
    return bad


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, name, values) if i >= 0 else table.append_column(name, values)


def _expect(bad: Path, *fragments: str, **kw) -> str:
    with pytest.raises(ManifestError) as exc:
        read_manifest(bad, **kw)
    message = str(exc.value)
    assert "\n" not in message
    assert str(bad) in message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- round trip, hash, helpers ---------------------------------------------------------------


def test_round_trip(good: Path) -> None:
    m = read_manifest(good)
    assert isinstance(m, Manifest) and len(m) == 4
    assert m.info == INFO
    assert m.root == good.parent.absolute()
    assert m.attribute_names == ("hat", "scene")
    assert m.person_attributes == ("hat",) and m.context_attributes == ("scene",)
    assert m.video_paths() == [(good.parent / r["path"]).resolve() for r in _rows()]
    t = m.table
    assert t.column_names == [
        "video_id", "path", "split", "kind", "action", "attr_hat", "attr_scene",
        "fps", "num_frames", "segments", "anomalous",
    ]  # fmt: skip
    assert t.schema.field("action").type == pa.int32()
    assert t.schema.field("anomalous").type == pa.int8()
    assert t.schema.field("segments").type == SEGMENT_TYPE
    assert t.column("kind").to_pylist() == ["trimmed", "trimmed", "untrimmed", "anomaly"]
    # defaults: empty segments, anomalous from kind and segments
    assert t.column("segments").to_pylist()[0] == []
    assert t.column("anomalous").to_pylist() == [-1, -1, -1, 1]
    assert t.column("segments").to_pylist()[2][1] == {"start": 20, "end": 40, "label": 2}


def test_sha256_stable_across_writes_and_locations(good: Path, tmp_path: Path) -> None:
    m = read_manifest(good)
    assert len(m.sha256) == 64
    assert read_manifest(good).sha256 == m.sha256
    other = tmp_path / "elsewhere"
    (other / "v").mkdir(parents=True)
    for r in _rows():
        (other / r["path"]).write_bytes(b"x")
    # rewrite from the normalised table, with different chunking and compression
    table = pa.concat_tables([m.table.slice(0, 1), m.table.slice(1)])
    out = other / "manifest.parquet"
    write_manifest(out, table, m.info)
    pq.write_table(pq.read_table(out), other / "gz.parquet", compression="gzip")
    assert read_manifest(out).sha256 == m.sha256
    assert read_manifest(other / "gz.parquet").sha256 == m.sha256
    # content changes change the hash
    renamed = DatasetInfo("toy", ("sprint", "jump", "wave"), INFO.attributes, INFO.anomaly_types)
    write_manifest(out, m.table, renamed)
    assert read_manifest(out).sha256 != m.sha256
    write_manifest(out, _set(m.table, "action", pa.array([1, 2, -1, -1], pa.int32())), INFO)
    assert read_manifest(out).sha256 != m.sha256


def test_split_helpers(good: Path) -> None:
    m = read_manifest(good)
    assert m.split_indices("train", "test").tolist() == [0, 1]
    assert m.split_indices("val").tolist() == []
    sub = m.select("tad_test")
    assert sub.video_ids == ["c"] and sub.sha256 != m.sha256
    with pytest.raises(ManifestError, match="unknown split"):
        m.split_indices("training")


def test_write_validates_first(tmp_path: Path) -> None:
    rows = _rows()
    rows[1]["action"] = 7
    out = tmp_path / "manifest.parquet"
    with pytest.raises(ManifestError, match=r"row 1 \(video_id 'b'\), column 'action'"):
        write_manifest(out, rows, INFO)
    assert not out.exists()


def test_write_to_directory_and_int64_input(tmp_path: Path) -> None:
    table = pa.table(
        {
            "video_id": ["x", "y"],
            "path": ["x.mp4", "y.mp4"],
            "split": ["train", "val"],
            "action": pa.array([0, 2], pa.int64()),  # safe cast to int32
            "attr_hat": pa.array([1, 0], pa.int16()),
            "attr_scene": pa.array([0, 0], pa.uint8()),
            "num_frames": pa.array([16, 17], pa.int64()),
            "fps": pa.array([24, 30], pa.int64()),
        }
    )
    out = write_manifest(tmp_path, table, INFO)
    assert out == tmp_path / "manifest.parquet"
    m = read_manifest(tmp_path, check_files=False)
    assert m.table.schema.field("num_frames").type == pa.int32()
    assert m.table.column("fps").to_pylist() == [24.0, 30.0]


def test_handmade_manifest_infers_info(tmp_path: Path) -> None:
    table = pa.table(
        {
            "video_id": ["a", "b", "c"],
            "path": ["a.mp4", "b.mp4", "c.mp4"],
            "split": ["train", "train", "test"],
            "action": [0, 4, -1],
            "attr_skin": [3, 0, -1],
            "attr_scene": [1, 1, 0],
            "num_frames": [10, 10, 10],
            "fps": [25.0, 25.0, 25.0],
        }
    )
    pq.write_table(table, tmp_path / "manifest.parquet")
    m = read_manifest(tmp_path / "manifest.parquet", check_files=False)
    assert m.info.name == tmp_path.name
    assert m.info.actions == ("0", "1", "2", "3", "4")
    assert m.info.attributes["skin"] == AttributeInfo(("0", "1", "2", "3"), "person")
    assert m.info.attributes["scene"].role == "context"
    assert m.person_attributes == ("skin",)


def _write_tiny_video(path: Path, frames: int, fps: int = 20) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        for i in range(frames):
            img = np.full((32, 32, 3), 8 * i, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_missing_fps_and_num_frames_are_probed(tmp_path: Path) -> None:
    _write_tiny_video(tmp_path / "a.mp4", 18, fps=20)
    (tmp_path / "b.mp4").write_text("not a video")
    rows = [
        {"video_id": "a", "path": "a.mp4", "split": "train", "action": 0},
        {"video_id": "b", "path": "b.mp4", "split": "train", "action": 1},
    ]
    out = write_manifest(tmp_path, rows, DatasetInfo("p", actions=("x", "y")))
    assert "num_frames" not in pq.read_schema(out).names  # left to the reader to probe
    m = read_manifest(out)
    assert m.table.column("num_frames").to_pylist() == [18, -1]  # b cannot be probed: unknown
    fps = m.table.column("fps").to_pylist()
    assert fps[0] == 20.0 and math.isnan(fps[1])
    unprobed = read_manifest(out, check_files=False)
    assert unprobed.table.column("num_frames").to_pylist() == [-1, -1]


# --- one test per bad input ------------------------------------------------------------------


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.parquet")


@pytest.mark.parametrize("content", [b"", b"video_id,path\na,b\n", b"PAR1" + b"\0" * 64])
def test_not_parquet(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "manifest.parquet"
    bad.write_bytes(content)
    _expect(bad, "not a readable parquet file")


def test_corrupt_parquet(good: Path) -> None:
    data = bytearray(good.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    bad = good.with_name("bad.parquet")
    bad.write_bytes(bytes(data[: len(data) - 10]))
    _expect(bad, "not a readable parquet file")


def test_missing_required_column(good: Path) -> None:
    bad = _write_bad(good, _table(good).drop_columns(["split"]))
    _expect(bad, "column 'split'", "missing required column")


def test_unknown_column(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "num_frame", pa.array([1, 2, 3, 4])))
    _expect(bad, "column 'num_frame'", "unknown column")


def test_action_as_strings(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "action", pa.array(["run", "wave", "x", "y"])))
    _expect(bad, "row 0 (video_id 'a')", "column 'action'", "expected int32, got string", "'run'")


def test_float_action_refused(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "action", pa.array([0.0, 1.5, 1.0, 1.0])))
    _expect(bad, "column 'action'", "expected int32, got double")


def test_integer_overflow(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "action", pa.array([0, 1, 2**40, 0], pa.int64())))
    _expect(bad, "row 2 (video_id 'c')", "column 'action'", "does not fit int32")


def test_null_value(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "attr_hat", pa.array([1, None, 0, 0], pa.int32())))
    _expect(bad, "row 1 (video_id 'b')", "column 'attr_hat'", "null value")


def test_null_video_id(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "video_id", pa.array(["a", "b", None, "d"])))
    _expect(bad, "row 2 (video_id None)", "column 'video_id'", "null value")


def test_empty_video_id(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "video_id", pa.array(["a", "", "c", "d"])))
    _expect(bad, "row 1", "column 'video_id'", "empty video_id")


def test_duplicate_video_id_names_both_rows(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "video_id", pa.array(["a", "b", "a", "d"])))
    _expect(bad, "row 2 (video_id 'a')", "column 'video_id'", "duplicate", "row 0")


def test_unknown_split(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "split", pa.array(["train", "training", "t", "t"])))
    _expect(bad, "row 1 (video_id 'b')", "column 'split'", "unknown split 'training'")


def test_unknown_kind(good: Path) -> None:
    kinds = pa.array(["trimmed", "clip", "untrimmed", "anomaly"])
    bad = _write_bad(good, _set(_table(good), "kind", kinds))
    _expect(bad, "row 1 (video_id 'b')", "column 'kind'", "unknown kind 'clip'")


def test_action_out_of_range(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "action", pa.array([0, 3, -1, -1], pa.int32())))
    _expect(bad, "row 1 (video_id 'b')", "column 'action'", "out of range -1..2")


def test_attribute_out_of_range(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "attr_scene", pa.array([0, 1, 2, -2], pa.int32())))
    _expect(bad, "row 3 (video_id 'd')", "column 'attr_scene'", "attribute value -2")


def test_attribute_column_not_in_info(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "attr_age", pa.array([0, 0, 0, 0], pa.int32())))
    _expect(bad, "column 'attr_age'", "no attribute 'age'")


def test_attribute_in_info_without_column(good: Path) -> None:
    bad = _write_bad(good, _table(good).drop_columns(["attr_hat"]))
    _expect(bad, "column 'attr_hat'", "column is missing")


def test_bad_metadata_json(good: Path) -> None:
    bad = good.with_name("bad.parquet")
    pq.write_table(_table(good).replace_schema_metadata({METADATA_KEY: b"{not json"}), bad)
    _expect(bad, "not valid JSON")


def test_missing_video_file(good: Path) -> None:
    (good.parent / "v" / "c.mp4").unlink()
    _expect(good, "row 2 (video_id 'c')", "column 'path'", "video file not found")
    assert len(read_manifest(good, check_files=False)) == 4


@pytest.mark.parametrize("path", ["../outside.mp4", "v/../../outside.mp4"])
def test_path_escaping_with_dotdot(good: Path, path: str) -> None:
    (good.parent.parent / "outside.mp4").write_bytes(b"x")
    paths = pa.array(["v/a.mp4", path, "v/c.mp4", "v/d.mp4"])
    bad = _write_bad(good, _set(_table(good), "path", paths))
    _expect(bad, "row 1 (video_id 'b')", "column 'path'", "escapes the video root")
    assert len(read_manifest(bad, allow_outside_root=True)) == 4


def test_absolute_path(good: Path) -> None:
    absolute = str((good.parent / "v" / "b.mp4").absolute())
    paths = pa.array(["v/a.mp4", absolute, "v/c.mp4", "v/d.mp4"])
    bad = _write_bad(good, _set(_table(good), "path", paths))
    _expect(bad, "row 1 (video_id 'b')", "column 'path'", "absolute path")
    m = read_manifest(bad, allow_outside_root=True)
    assert m.video_paths()[1] == Path(absolute).resolve()


def test_symlink_escaping_root(good: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.mp4"
    outside.write_bytes(b"x")
    link = good.parent / "v" / "b.mp4"
    link.unlink()
    os.symlink(outside, link)
    _expect(good, "row 1 (video_id 'b')", "column 'path'", "outside the video root")
    assert len(read_manifest(good, allow_outside_root=True)) == 4


def test_segment_start_not_before_end(good: Path) -> None:
    segs = pa.array([[], [], [{"start": 10, "end": 10, "label": 0}], []], SEGMENT_TYPE)
    bad = _write_bad(good, _set(_table(good), "segments", segs))
    _expect(bad, "row 2 (video_id 'c')", "column 'segments'", "start must be < end")


def test_segment_beyond_num_frames(good: Path) -> None:
    segs = pa.array([[], [], [], [{"start": 30, "end": 41, "label": 0}]], SEGMENT_TYPE)
    bad = _write_bad(good, _set(_table(good), "segments", segs))
    _expect(bad, "row 3 (video_id 'd')", "column 'segments'", "beyond num_frames")


def test_segment_negative_start(good: Path) -> None:
    segs = pa.array([[], [], [{"start": -1, "end": 5, "label": 0}], []], SEGMENT_TYPE)
    bad = _write_bad(good, _set(_table(good), "segments", segs))
    _expect(bad, "row 2 (video_id 'c')", "column 'segments'", "start must be >= 0")


def test_segment_label_out_of_range(good: Path) -> None:
    # anomaly labels index anomaly_types (2 declared), not actions
    segs = pa.array([[], [], [], [{"start": 0, "end": 5, "label": 2}]], SEGMENT_TYPE)
    bad = _write_bad(good, _set(_table(good), "segments", segs))
    _expect(bad, "row 3 (video_id 'd')", "column 'segments'", "label out of range")


def test_segments_on_trimmed_video(good: Path) -> None:
    segs = pa.array([[{"start": 0, "end": 5, "label": 0}], [], [], []], SEGMENT_TYPE)
    bad = _write_bad(good, _set(_table(good), "segments", segs))
    _expect(bad, "row 0 (video_id 'a')", "column 'segments'", "trimmed videos")


def test_bad_num_frames_and_fps(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "num_frames", pa.array([32, 0, 40, 40], pa.int32())))
    _expect(bad, "row 1 (video_id 'b')", "column 'num_frames'", "must be >= 1")
    fps = pa.array([25.0, -1.0, 30.0, 30.0], pa.float32())
    bad = _write_bad(good, _set(_table(good), "fps", fps))
    _expect(bad, "row 1 (video_id 'b')", "column 'fps'", "must be > 0")


def test_anomalous_out_of_range(good: Path) -> None:
    bad = _write_bad(good, _set(_table(good), "anomalous", pa.array([0, 2, 0, 1], pa.int8())))
    _expect(bad, "row 1 (video_id 'b')", "column 'anomalous'", "out of range")


def test_empty_manifest(good: Path) -> None:
    bad = _write_bad(good, _table(good).slice(0, 0))
    _expect(bad, "no rows")
