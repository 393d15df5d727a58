"""Kinetics-400 importer on a tiny fake tree: quoted labels, split names, old test.csv, gaps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.data.importers import IMPORTERS, import_kinetics400
from pipeline.data.synth.encode import write_mp4
from pipeline.errors import ManifestError


def video(path: Path, frames: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, np.zeros((frames, 16, 16, 3), np.uint8), fps=30)


@pytest.fixture
def kinetics(tmp_path: Path) -> Path:
    root = tmp_path / "kinetics400"
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split,is_cc\n"
        '"air drumming",--nQbRBEz2s,104,114,train,0\n'  # id starting with "-"
        '"dancing, ballet",a_b-C_d_e_f,3,13,train,0\n'  # comma inside the quoted label
        "  passing American football (in game) ,0wR5jVB-WPk,417,427,train,1\n"
        '"air drumming",zzzzzzzzzzz,0,10,train,0\n'  # not downloaded
        '"air drumming",--nQbRBEz2s,104,114,train,0\n'  # repeated row
    )
    (ann / "val.csv").write_text(  # the split column says "validate": the file name decides
        'label,youtube_id,time_start,time_end,split\n"dancing, ballet",VaLiD_00001,20,30,validate\n'
    )
    (ann / "test.csv").write_text(  # an old copy: no label column
        "youtube_id,time_start,time_end,split\nTeSt_000001,0,10,test\n"
    )
    # class folders for train, flat folders for val and test
    video(root / "train" / "air_drumming" / "--nQbRBEz2s_000104_000114.mp4", 9)
    video(root / "train" / "dancing_ballet" / "a_b-C_d_e_f_000003_000013.mp4", 10)
    video(root / "train" / "passing" / "0wR5jVB-WPk_000417_000427.mp4", 11)
    # the CVDF replacement for a corrupted clip wins over the original
    (root / "train" / "passing" / "0wR5jVB-WPk_000417_000427.mp4").write_bytes(b"corrupt")
    replacement = root / "replacement" / "replacement_for_corrupted_k400"
    video(replacement / "0wR5jVB-WPk_000417_000427.mp4", 11)
    video(root / "val" / "VaLiD_00001_000020_000030.mp4", 12)
    video(root / "test" / "TeSt_000001_000000_000010.mp4", 13)
    return root


def test_kinetics400_rows(kinetics: Path) -> None:
    result = import_kinetics400(kinetics)
    m = result.manifest
    classes = ("air drumming", "dancing, ballet", "passing American football (in game)")
    assert m.info.name == "kinetics400" and m.info.actions == classes
    t = m.table.to_pydict()
    assert t["video_id"] == [
        "--nQbRBEz2s_000104_000114", "a_b-C_d_e_f_000003_000013", "0wR5jVB-WPk_000417_000427",
        "VaLiD_00001_000020_000030", "TeSt_000001_000000_000010",
    ]  # fmt: skip
    assert t["split"] == ["train", "train", "train", "val", "test"]
    assert t["action"] == [0, 1, 2, 1, -1]
    assert t["kind"] == ["trimmed"] * 5
    assert t["num_frames"] == [9, 10, 11, 12, 13]
    assert t["path"][2].startswith("replacement/")
    assert result.skipped == {"missing_video": 1, "duplicate_row": 1, "unlabelled": 1}
    assert "\n" not in result.summary
    assert result.summary.startswith("kinetics400: 5 videos (train 3, val 1, test 1) in ")
    assert "1 listed videos not on disk (zzzzzzzzzzz_000000_000010)" in result.summary
    assert "1 test rows without a label (kept, action -1) (test.csv:2)" in result.summary


def test_kinetics400_splits_option_keeps_class_order(kinetics: Path, tmp_path: Path) -> None:
    (kinetics / "annotations" / "val.csv").rename(kinetics / "annotations" / "validate.csv")
    result = IMPORTERS["kinetics400"].run(kinetics, tmp_path / "m.parquet", splits="val")
    t = result.manifest.table.to_pydict()
    assert t["split"] == ["val"] and t["action"] == [1]  # same index as with every split
    assert len(result.manifest.info.actions) == 3
    (kinetics / "annotations" / "test.csv").unlink()
    result = import_kinetics400(kinetics, tmp_path / "m2.parquet", splits="test,train")
    assert result.skipped["missing_split"] == 1
    assert "requested splits without annotations on disk (test)" in result.summary


@pytest.mark.parametrize(
    "row, message",
    [
        ("dancing, ballet,x1234567890,1,11,train", r"train\.csv:3: 6 fields where the header"),
        ('"air drumming",x1234567890,1,ten,train', r"train\.csv:3: time_start / time_end"),
        ('"air drumming",x1234567890,11,1,train', r"train\.csv:3: time_start / time_end"),
        (",x1234567890,1,11,train", r"train\.csv:3: empty label"),
    ],
)
def test_kinetics400_broken_line(kinetics: Path, row: str, message: str) -> None:
    (kinetics / "annotations" / "train.csv").write_text(
        "label,youtube_id,time_start,time_end,split\n"
        '"air drumming",--nQbRBEz2s,104,114,train\n' + row + "\n"
    )
    with pytest.raises(ManifestError, match=message):
        import_kinetics400(kinetics)


def test_kinetics400_missing_annotations(kinetics: Path) -> None:
    for f in (kinetics / "annotations").iterdir():
        f.unlink()
    with pytest.raises(ManifestError, match="no Kinetics annotation CSVs"):
        import_kinetics400(kinetics)
