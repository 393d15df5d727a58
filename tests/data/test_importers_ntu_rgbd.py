"""NTU RGB+D importer on a tiny fake tree: sample names, splits, the user's gender mapping."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.data.importers import IMPORTERS, import_ntu_rgbd
from pipeline.errors import ConfigError, ManifestError

SAMPLES = ("S001C001P001R001A001", "S001C002P003R002A055", "S002C003P002R001A061")


def avi(path: Path, frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=30)
        s.width = s.height = 16
        s.pix_fmt = "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            c.mux(s.encode(frame))
        c.mux(s.encode())


@pytest.fixture
def ntu(tmp_path: Path) -> Path:
    root = tmp_path / "ntu"
    for i, sample in enumerate(SAMPLES):
        avi(root / "nturgb+d_rgb" / f"{sample}_rgb.avi", 10 + i)
    avi(root / "nturgb+d_rgb" / "calibration.avi", 5)  # not a sample: ignored
    (tmp_path / "genders.json").write_text(
        json.dumps({"male": ["P001", "2"], "female": [3]}, indent=1)
    )
    return root


def test_ntu_rgbd_rows_with_json_genders(ntu: Path) -> None:
    result = import_ntu_rgbd(ntu, gender_map=ntu.parent / "genders.json")
    m = result.manifest
    assert m.info.actions == tuple(f"A{i:03d}" for i in range(1, 121))  # A061 present: NTU-120
    assert m.attribute_names == ("gender",)
    assert m.info.attributes["gender"].values == ("male", "female")
    t = m.table.to_pydict()
    assert t["video_id"] == list(SAMPLES)
    assert t["action"] == [0, 54, 60]
    # cross-subject: P001 and P002 train, P003 test
    assert t["split"] == ["bias_train", "bias_test", "bias_train"]
    assert t["attr_gender"] == [0, 1, 0]
    assert t["num_frames"] == [10, 11, 12]
    assert t["path"][0] == "nturgb+d_rgb/S001C001P001R001A001_rgb.avi"
    assert result.skipped == {}
    assert result.summary.startswith("ntu_rgbd: 3 videos (bias_train 2, bias_test 1) in ")
    assert result.summary.endswith("; nothing skipped")


def test_ntu_rgbd_csv_genders_and_protocols(ntu: Path, tmp_path: Path) -> None:
    (tmp_path / "genders.csv").write_text(
        "filename,label,gender\nS001C001P001R001A001_rgb.avi,0,f\nS002C003P002R001A061,60, M \n"
    )
    result = IMPORTERS["ntu-rgbd"].run(
        ntu, tmp_path / "m.parquet", gender_map=tmp_path / "genders.csv", protocol="xview",
        split_names="plain",
    )  # fmt: skip
    t = result.manifest.table.to_pydict()
    assert t["attr_gender"] == [1, -1, 0]  # the CSV does not cover the second sample
    assert t["split"] == ["test", "train", "train"]  # camera 1 is the test view
    assert result.skipped == {"no_gender": 1}
    assert "(kept, gender -1) (S001C002P003R002A055)" in result.summary
    xset = import_ntu_rgbd(ntu, tmp_path / "x.parquet", protocol="xset", subset="ntu60")
    t = xset.manifest.table.to_pydict()
    assert t["video_id"] == list(SAMPLES[:2]) and t["split"] == ["bias_test", "bias_test"]
    assert xset.manifest.info.actions[-1] == "A060" and xset.manifest.attribute_names == ()
    assert xset.skipped == {"not_ntu60": 1}
    assert "no gender map given" in xset.summary
    own = import_ntu_rgbd(ntu, tmp_path / "o.parquet", train_performers="P003")
    assert own.manifest.table.column("split").to_pylist() == [
        "bias_test",
        "bias_train",
        "bias_test",
    ]


def test_ntu_rgbd_bad_gender_maps(ntu: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{\n "male": ["P001"],\n "female": ["P001"]\n}')
    with pytest.raises(ManifestError, match=r"bad\.json:3: performer P001 is listed as both"):
        import_ntu_rgbd(ntu, gender_map=bad)
    bad.write_text('{\n "male": ["P001", "someone"]\n}')
    with pytest.raises(ConfigError, match=r"bad\.json:2: 'someone' is not a performer"):
        import_ntu_rgbd(ntu, gender_map=bad)
    csv = tmp_path / "bad.csv"
    csv.write_text("filename,label,gender\nS001C001P001R001A001,0,m\nS001C002P003R002A055,54,x\n")
    with pytest.raises(ManifestError, match=r"bad\.csv:3: gender 'x' is not m/f/male/female"):
        import_ntu_rgbd(ntu, gender_map=csv)
    csv.write_text("filename,label,gender\nclip_0001.avi,0,m\n")
    with pytest.raises(ManifestError, match=r"bad\.csv:2: 'clip_0001\.avi' is not an NTU sample"):
        import_ntu_rgbd(ntu, gender_map=csv)
    with pytest.raises(ConfigError, match="gender map not found"):
        import_ntu_rgbd(ntu, gender_map=tmp_path / "nope.json")
    with pytest.raises(ConfigError, match="train_performers sets the xsub split"):
        import_ntu_rgbd(ntu, protocol="xview", train_performers="1")
