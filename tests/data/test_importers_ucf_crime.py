"""UCF-Crime importer on a tiny fake tree: mixed download layouts, inclusive intervals, pitfalls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.data.importers import IMPORTERS, import_ucf_crime
from pipeline.data.importers.ucf_crime import ANOMALY_TYPES
from pipeline.data.synth.encode import write_mp4
from pipeline.errors import ManifestError

TEST_FILE = "Temporal_Anomaly_Annotation_for_Testing_Videos.txt"


def video(path: Path, frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, np.zeros((frames, 16, 16, 3), np.uint8), fps=30)


@pytest.fixture
def crime(tmp_path: Path) -> Path:
    root = tmp_path / "UCF_Crimes"
    # folder layouts of different downloads, resolved by file name
    video(root / "Anomaly-Videos-Part-1" / "Abuse" / "Abuse001_x264.mp4", 12)
    video(root / "Anomaly-Videos-Part-1" / "Abuse" / "Abuse028_x264.mp4", 20)
    video(root / "Videos" / "Arson" / "Arson" / "Arson011_x264.mp4", 25)  # doubled folder
    video(root / "Videos" / "Burglary" / "Burglary005_x264.mp4", 30)
    video(root / "Training-Normal-Videos-Part-1" / "Normal_Videos001_x264.mp4", 14)
    video(root / "Testing_Normal_Videos_Anomaly" / "Normal_Videos_003_x264.mp4", 16)
    # a train-style name that the test normal must not be confused with
    video(root / "Training-Normal-Videos-Part-1" / "Normal_Videos003_x264.mp4", 18)
    splits = root / "Anomaly_Train_Test_splits"
    splits.mkdir()
    (splits / "Anomaly_Train.txt").write_text(
        "Abuse/Abuse001_x264.mp4\n"
        "Training_Normal_Videos_Anomaly/Normal_Videos001_x264.mp4\r\n"
        "Arrest/Arrest002_x264.mp4\n"  # not downloaded
        "  \n"
        "Abuse/Abuse028_x264.mp4\n"  # also a test video: kept as test
    )
    (splits / TEST_FILE).write_text(
        "Arson011_x264.mp4  Arson  5  9  20  29  \n"  # double spaces, trailing blanks
        "Normal_Videos_003_x264.mp4\tNormal\t-1\t-1\t-1\t-1\n"
        "Abuse028_x264.mp4 Abuse 2 6 -1 -1\n"
        "Burglary005_x264.mp4 Burglary 40 45 -1 -1\n"  # starts after the end (30 frames)
        "Abuse028_x264.mp4 Abuse 2 6 -1 -1\n"  # repeated line
    )
    return root


def test_ucf_crime_rows(crime: Path) -> None:
    result = import_ucf_crime(crime)
    m = result.manifest
    assert m.info.name == "ucf_crime" and m.info.anomaly_types == ANOMALY_TYPES
    assert m.info.actions == ()
    rows = {r["video_id"]: r for r in m.table.to_pylist()}
    assert sorted(rows) == [
        "Abuse001_x264", "Abuse028_x264", "Arson011_x264", "Burglary005_x264",
        "Normal_Videos001_x264", "Normal_Videos_003_x264",
    ]  # fmt: skip

    def check(vid: str, split: str, anomalous: int, segments: list[tuple[int, int, int]]) -> None:
        row = rows[vid]
        assert (row["split"], row["kind"], row["action"]) == (split, "anomaly", -1), vid
        assert row["anomalous"] == anomalous, vid
        assert [(s["start"], s["end"], s["label"]) for s in row["segments"]] == segments, vid

    arson, abuse = ANOMALY_TYPES.index("Arson"), ANOMALY_TYPES.index("Abuse")
    # train anomalies: no segments but anomalous, set explicitly
    check("Abuse001_x264", "anomaly_train", 1, [])
    check("Normal_Videos001_x264", "anomaly_train", 0, [])
    # inclusive ends: 5..9 -> [5, 10); 20..29 -> [20, 30) clipped to the 25 frames
    check("Arson011_x264", "anomaly_test", 1, [(5, 10, arson), (20, 25, arson)])
    check("Abuse028_x264", "anomaly_test", 1, [(2, 7, abuse)])
    check("Burglary005_x264", "anomaly_test", 1, [])  # its only interval starts past the end
    check("Normal_Videos_003_x264", "anomaly_test", 0, [])
    assert rows["Normal_Videos_003_x264"]["path"].startswith("Testing_Normal_Videos_Anomaly/")
    assert rows["Arson011_x264"]["path"] == "Videos/Arson/Arson/Arson011_x264.mp4"
    assert rows["Arson011_x264"]["num_frames"] == 25
    assert result.skipped == {
        "duplicate_row": 1,
        "in_both_lists": 1,
        "missing_video": 1,
        "segment_clipped": 1,
        "segment_past_end": 1,
    }
    assert "\n" not in result.summary
    assert result.summary.startswith(
        "ucf_crime: 6 videos (anomaly_train 2, anomaly_test 4), 3 segments in "
    )
    assert "1 listed videos not on disk (Arrest002_x264.mp4)" in result.summary
    assert f"segments clipped to the video end ({TEST_FILE}:1)" in result.summary


def test_ucf_crime_other_annotation_name_and_plain_splits(crime: Path, tmp_path: Path) -> None:
    splits = crime / "Anomaly_Train_Test_splits"
    (splits / TEST_FILE).rename(splits / "Temporal_Anomaly_Annotation.txt")
    result = IMPORTERS["ucf-crime"].run(crime, tmp_path / "m.parquet", split_names="plain")
    assert sorted(set(result.manifest.table.column("split").to_pylist())) == ["test", "train"]
    assert result.manifest.table.column("path")[0].as_py().startswith("UCF_Crimes/")


def test_ucf_crime_two_different_annotation_files(crime: Path) -> None:
    other = crime / "copy" / TEST_FILE
    other.parent.mkdir()
    other.write_text("Arson011_x264.mp4 Arson 1 2 -1 -1\n")
    with pytest.raises(ManifestError, match="2 different files named"):
        import_ucf_crime(crime)
    # an identical copy is the same file
    other.write_bytes((crime / "Anomaly_Train_Test_splits" / TEST_FILE).read_bytes())
    assert len(import_ucf_crime(crime).manifest) == 6


@pytest.mark.parametrize(
    "line, message",
    [
        ("Arson011_x264.mp4 Arson 5 9 20", r":2: expected '<video> <Class>"),
        ("Arson011_x264.mp4 Arsonn 5 9 -1 -1", r":2: unknown class 'Arsonn'"),
        ("Arson011_x264.mp4 Arson 5 x -1 -1", r":2: the interval bounds must be frame numbers"),
        ("Arson011_x264.mp4 Arson 9 5 -1 -1", r":2: bad interval 9 5"),
        ("Arson011_x264.mp4 Arson 5 -1 -1 -1", r":2: bad interval 5 -1"),
        ("Normal_Videos_003_x264.mp4 Normal 1 5 -1 -1", r":2: a Normal video with an anomaly"),
    ],
)
def test_ucf_crime_broken_test_line(crime: Path, line: str, message: str) -> None:
    file = crime / "Anomaly_Train_Test_splits" / TEST_FILE
    file.write_text("Abuse028_x264.mp4 Abuse 2 6 -1 -1\n" + line + "\n")
    with pytest.raises(ManifestError, match=TEST_FILE + message):
        import_ucf_crime(crime)


def test_ucf_crime_broken_train_line(crime: Path) -> None:
    file = crime / "Anomaly_Train_Test_splits" / "Anomaly_Train.txt"
    file.write_text("Abuse/Abuse001_x264.mp4\nMystery/Thing001_x264.mp4\n")
    with pytest.raises(ManifestError, match=r"Anomaly_Train\.txt:2: cannot tell the class"):
        import_ucf_crime(crime)
    file.unlink()
    with pytest.raises(ManifestError, match="no UCF-Crime train list found"):
        import_ucf_crime(crime)
