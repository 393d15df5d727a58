"""THUMOS14 importer on a tiny fake tree in the official layout, with the data set's pitfalls."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.importers import IMPORTERS, import_thumos14
from pipeline.data.manifest import read_manifest
from pipeline.data.synth.encode import write_mp4
from pipeline.errors import ManifestError


def video(path: Path, frames: int, fps: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, np.zeros((frames, 16, 16, 3), np.uint8), fps=fps)


VAL = "TH14_Temporal_annotations_validation/annotation"
TEST = "TH14_Temporal_Annotations_Test/annotations/annotation"


@pytest.fixture
def thumos(tmp_path: Path) -> Path:
    root = tmp_path / "thumos14"
    video(root / "validation" / "video_validation_0000051.mp4", 90, 30)  # 3 s
    video(root / "validation" / "video_validation_0000052.mp4", 75, 25)  # 3 s at 25 fps
    video(root / "test" / "video_test_0000004.mp4", 60, 30)
    video(root / "test" / "video_test_0000270.mp4", 60, 30)  # known bad
    video(root / "test" / "video_test_0001292.mp4", 60, 30)  # only Ambiguous
    # video_validation_0000099 is annotated but not downloaded
    files = {
        f"{VAL}/Class Index_Detection.txt": "7 BaseballPitch\n9 BasketballDunk\n"
        "26 CliffDiving\n33 Diving\n",
        f"{VAL}/BaseballPitch_val.txt": "video_validation_0000051  0.5  1.2\n"
        "video_validation_0000051 2.5 3.6\n"  # runs past the end (3 s)
        "video_validation_0000052\t1.0\t2.0   \n"
        "\n"
        "video_validation_0000052 3.5 4.0\n"  # starts after the end
        "video_validation_0000099 1.0 2.0\n",
        f"{VAL}/CliffDiving_val.txt": "video_validation_0000051\t1.5\t2.0\n",
        f"{VAL}/Diving_val.txt": "video_validation_0000051 1.5 2.0\n",
        f"{VAL}/Ambiguous_val.txt": "video_validation_0000051 2.1 2.5\n",
        f"{TEST}/BaseballPitch_test.txt": "video_test_0000004 0.2 1.0\n"
        "video_test_0000270 0.1 0.5\n",
        f"{TEST}/Ambiguous_test.txt": "video_test_0001292 0.3 0.9\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_thumos14_rows_segments_and_summary(thumos: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="pipeline.data.importers"):
        result = import_thumos14(thumos)
    m = result.manifest
    assert result.path == thumos / "manifest.parquet"
    # alphabetical order of the 20 names (here the 4 of the class index), not the UCF101 ids
    assert m.info.actions == ("BaseballPitch", "BasketballDunk", "CliffDiving", "Diving")
    t = m.table.to_pydict()
    assert t["video_id"] == [
        "video_test_0000004", "video_validation_0000051", "video_validation_0000052",
    ]  # fmt: skip
    assert t["split"] == ["tad_test", "tad_train", "tad_train"]
    assert t["kind"] == ["untrimmed"] * 3 and t["action"] == [-1] * 3
    assert t["fps"] == [30.0, 30.0, 25.0] and t["num_frames"] == [60, 90, 75]
    assert t["path"][1] == "validation/video_validation_0000051.mp4"
    seg = [[(s["start"], s["end"], s["label"]) for s in row] for row in t["segments"]]
    assert seg[0] == [(6, 30, 0)]
    # 30 fps; CliffDiving is also Diving; the Ambiguous 2.1-2.5 is gone; 2.5-3.6 clipped to 90
    assert seg[1] == [(15, 36, 0), (45, 60, 2), (45, 60, 3), (75, 90, 0)]
    # 25 fps: its own frame rate converts seconds; the segment after the end is dropped
    assert seg[2] == [(25, 50, 0)]
    assert result.skipped == {
        "ambiguous_segment": 2,
        "only_ambiguous": 1,
        "known_bad": 1,
        "missing_video": 1,
        "segment_clipped": 1,
        "segment_past_end": 1,
    }
    line = result.summary
    assert "\n" not in line
    assert line.startswith("thumos14: 3 videos (tad_test 1, tad_train 2), 6 segments in ")
    for fragment in (
        "1 known-bad videos dropped (video_test_0000270)",
        "2 Ambiguous segments excluded",
        "1 videos with only Ambiguous segments (video_test_0001292)",
        "1 listed videos not on disk (video_validation_0000099)",
        "1 segments clipped to the video end (BaseballPitch_val.txt:2)",
        "1 segments starting after the video end dropped (BaseballPitch_val.txt:5)",
    ):
        assert fragment in line
    assert line in caplog.messages
    assert read_manifest(result.path).sha256 == m.sha256


def test_thumos14_options(thumos: Path, tmp_path: Path) -> None:
    result = import_thumos14(
        thumos, tmp_path / "plain.parquet", split_names="plain", keep_bad=True, splits="test"
    )
    t = result.manifest.table.to_pydict()
    assert t["video_id"] == ["video_test_0000004", "video_test_0000270"]
    assert t["split"] == ["test", "test"]
    assert "known_bad" not in result.skipped
    via_registry = IMPORTERS["thumos14"].run(thumos, tmp_path / "r.parquet", splits="val")
    assert set(via_registry.manifest.table.column("split").to_pylist()) == {"tad_train"}


def test_thumos14_without_class_index(thumos: Path) -> None:
    (thumos / VAL / "Class Index_Detection.txt").unlink()
    m = import_thumos14(thumos).manifest
    assert m.info.actions == ("BaseballPitch", "CliffDiving", "Diving")


@pytest.mark.parametrize(
    "text, message",
    [
        ("video_validation_0000051 1.0\n", r"BaseballPitch_val\.txt:2: expected '<video>"),
        ("video_validation_0000051 1.0 abc\n", r"BaseballPitch_val\.txt:2: 'abc' is not a time"),
        ("video_test_0000004 1.0 2.0\n", r"BaseballPitch_val\.txt:2: 'video_test_0000004' is not"),
    ],
)
def test_thumos14_broken_line(thumos: Path, text: str, message: str) -> None:
    (thumos / VAL / "BaseballPitch_val.txt").write_text("video_validation_0000051 0.5 1.2\n" + text)
    with pytest.raises(ManifestError, match=message):
        import_thumos14(thumos)


def test_thumos14_unknown_class_and_duplicate_files(thumos: Path) -> None:
    (thumos / VAL / "Surfing_val.txt").write_text("video_validation_0000051 0.5 1.2\n")
    with pytest.raises(ManifestError, match=r"Surfing_val\.txt: class 'Surfing' is not in"):
        import_thumos14(thumos)
    (thumos / VAL / "Surfing_val.txt").unlink()
    copy = thumos / "copy" / "Diving_val.txt"
    copy.parent.mkdir()
    copy.write_text("video_validation_0000051 1.5 2.0\n")
    with pytest.raises(ManifestError, match="two annotation files for Diving"):
        import_thumos14(thumos)
    # naming the annotation folder resolves it
    result = import_thumos14(thumos, annotations=thumos / "TH14_Temporal_annotations_validation")
    assert len(result.manifest) == 2
