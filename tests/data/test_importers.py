"""Importers on small fake UCF101, HMDB51 and CSV trees made of real video files."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.data.decode import decode_video
from pipeline.data.importers import import_csv, import_hmdb51, import_ucf101
from pipeline.data.manifest import read_manifest
from pipeline.errors import ManifestError


def write_video(path: Path, frames: int, fps: int = 25) -> Path:
    """A real 32x32 video: mp4 -> H.264, avi -> mpeg4."""
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "mpeg4" if path.suffix == ".avi" else "libx264"
    rng = np.random.default_rng(frames)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        for _ in range(frames):
            img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


# --- UCF101 ----------------------------------------------------------------------------------

UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "HandstandPushups"]


@pytest.fixture
def ucf(tmp_path: Path) -> tuple[Path, Path]:
    root, lists = tmp_path / "UCF-101", tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text(
        "".join(f"{i + 1} {c}\r\n" for i, c in enumerate(UCF_CLASSES))
    )
    train, test = [], []
    for ci, cls in enumerate(UCF_CLASSES):
        # the real dataset's files say "HandStand" where the lists say "Handstand"
        file_cls = "HandStandPushups" if cls == "HandstandPushups" else cls
        for g, c in ((1, 1), (8, 1), (8, 2)):
            name = f"v_{file_cls}_g{g:02d}_c{c:02d}.avi"
            write_video(root / cls / name, 16 + 4 * ci + c)
            listed = f"{cls}/v_{cls}_g{g:02d}_c{c:02d}.avi"
            (test if g == 1 else train).append(listed if ci == 2 else f"{cls}/{name}")
            if g != 1:
                train[-1] += f" {ci + 1}"
    (lists / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (lists / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root, lists


def test_import_ucf101(ucf: tuple[Path, Path]) -> None:
    root, lists = ucf
    m = import_ucf101(root, lists)
    assert (root / "manifest.parquet").is_file()
    assert len(m) == 9
    assert m.info.name == "ucf101" and m.info.actions == tuple(UCF_CLASSES)
    t = m.table.to_pydict()
    assert sorted(set(t["split"])) == ["test", "train"]
    assert t["split"].count("train") == 6
    row = t["video_id"].index("v_Basketball_g08_c02")
    assert t["action"][row] == 1 and t["split"][row] == "train"
    assert t["path"][row] == "Basketball/v_Basketball_g08_c02.avi"  # relative to the manifest
    assert t["num_frames"][row] == 16 + 4 + 2 and t["fps"][row] == 25.0
    # case-insensitive match of the listed HandstandPushups files
    assert "v_HandStandPushups_g01_c01" in t["video_id"]
    # the manifest reads back on its own, and the probed counts match decoding
    again = read_manifest(root / "manifest.parquet")
    assert again.sha256 == m.sha256
    assert len(decode_video(again.video_paths()[row])) == t["num_frames"][row]


def test_import_ucf101_manifest_above_root(ucf: tuple[Path, Path]) -> None:
    root, lists = ucf
    m = import_ucf101(root, lists, out_manifest=root.parent / "ucf.parquet")
    assert m.table.column("path")[0].as_py().startswith("UCF-101/")
    with pytest.raises(ManifestError, match="outside the manifest's directory"):
        import_ucf101(root, lists, out_manifest=root / "ApplyEyeMakeup" / "m.parquet")


def test_ucf101_missing_split_file(ucf: tuple[Path, Path]) -> None:
    root, lists = ucf
    with pytest.raises(ManifestError, match=r"trainlist02\.txt: split file not found"):
        import_ucf101(root, lists, split_id=2)
    (lists / "classInd.txt").unlink()
    with pytest.raises(ManifestError, match=r"classInd\.txt: split file not found"):
        import_ucf101(root, lists)


def test_ucf101_unknown_class(ucf: tuple[Path, Path]) -> None:
    root, lists = ucf
    with open(lists / "testlist01.txt", "a") as f:
        f.write("Surfing/v_Surfing_g01_c01.avi\n")
    with pytest.raises(ManifestError, match=r"testlist01\.txt:4: class folder .*Surfing"):
        import_ucf101(root, lists)


def test_ucf101_missing_video(ucf: tuple[Path, Path]) -> None:
    root, lists = ucf
    (root / "Basketball" / "v_Basketball_g01_c01.avi").unlink()
    with pytest.raises(ManifestError, match=r"testlist01\.txt:2: video .*not found"):
        import_ucf101(root, lists)


def test_ucf101_label_disagrees_with_folder(ucf: tuple[Path, Path]) -> None:
    root, lists = ucf
    text = (lists / "trainlist01.txt").read_text().replace("c01.avi 1", "c01.avi 2", 1)
    (lists / "trainlist01.txt").write_text(text)
    with pytest.raises(ManifestError, match=r"trainlist01\.txt:1: label 2 .*disagrees"):
        import_ucf101(root, lists)


# --- HMDB51 ----------------------------------------------------------------------------------

HMDB_CLASSES = ["brush_hair", "cartwheel"]


@pytest.fixture
def hmdb(tmp_path: Path) -> tuple[Path, Path]:
    root, splits = tmp_path / "hmdb51", tmp_path / "splits" / "testTrainMulti_7030_splits"
    splits.mkdir(parents=True)
    for ci, cls in enumerate(HMDB_CLASSES):
        lines = []
        for k, tag in enumerate(["1", "2", "0", "1"]):
            name = f"Some_Movie_{cls}_u_nm_np1_fr_goo_{k}.avi"
            write_video(root / cls / name, 20 + k + ci)
            lines.append(f"{name} {tag} ")
        (splits / f"{cls}_test_split1.txt").write_text("\n".join(lines) + "\n")
    return root, splits.parent


def test_import_hmdb51(hmdb: tuple[Path, Path]) -> None:
    root, splits = hmdb
    m = import_hmdb51(root, splits)  # the parent of testTrainMulti_7030_splits works too
    assert m.info.name == "hmdb51" and m.info.actions == tuple(HMDB_CLASSES)
    t = m.table.to_pydict()
    assert len(m) == 6  # the "0" lines are left out
    assert t["split"].count("train") == 4 and t["split"].count("test") == 2
    row = t["video_id"].index("Some_Movie_cartwheel_u_nm_np1_fr_goo_1")
    assert t["action"][row] == 1 and t["split"][row] == "test"
    assert t["num_frames"][row] == 22
    assert not any(v.endswith("_goo_2") for v in t["video_id"])
    m2 = import_hmdb51(root, splits / "testTrainMulti_7030_splits")
    assert m2.sha256 == m.sha256


def test_hmdb51_missing_splits(hmdb: tuple[Path, Path]) -> None:
    root, splits = hmdb
    with pytest.raises(ManifestError, match=r"no '<class>_test_split2\.txt' files"):
        import_hmdb51(root, splits, split_id=2)
    with pytest.raises(ManifestError, match="split directory not found"):
        import_hmdb51(root, root / "nope")


def test_hmdb51_missing_class_folder(hmdb: tuple[Path, Path]) -> None:
    root, splits = hmdb
    (splits / "testTrainMulti_7030_splits" / "dive_test_split1.txt").write_text("x.avi 1\n")
    with pytest.raises(ManifestError, match=r"dive_test_split1\.txt: class folder .* not found"):
        import_hmdb51(root, splits)


def test_hmdb51_missing_video_and_bad_line(hmdb: tuple[Path, Path]) -> None:
    root, splits = hmdb
    split_file = splits / "testTrainMulti_7030_splits" / "cartwheel_test_split1.txt"
    split_file.write_text(split_file.read_text() + "ghost.avi 2\n")
    with pytest.raises(ManifestError, match=r"cartwheel_test_split1\.txt:5: video .*ghost"):
        import_hmdb51(root, splits)
    split_file.write_text("ghost.avi 3\n")
    with pytest.raises(ManifestError, match=r"cartwheel_test_split1\.txt:1: expected"):
        import_hmdb51(root, splits)


# --- CSV -------------------------------------------------------------------------------------


@pytest.fixture
def csv_tree(tmp_path: Path) -> Path:
    write_video(tmp_path / "clips" / "a.mp4", 18, fps=30)
    write_video(tmp_path / "clips" / "b.avi", 24)
    write_video(tmp_path / "clips" / "c.mp4", 20)
    return tmp_path


def test_import_csv_integer_labels(csv_tree: Path) -> None:
    (csv_tree / "videos.csv").write_text(
        "video_id,path,split,action,attr_hat,attr_scene,kind,num_frames,fps\n"
        "a,clips/a.mp4,train,0,1,0,trimmed,,\n"
        "b,clips/b.avi,val,2,,1,,24,25\n"
        "c,clips/c.mp4,test,-1,0,2,untrimmed,,\n"
    )
    m = import_csv(csv_tree / "videos.csv")
    assert m.root == csv_tree.absolute()
    t = m.table.to_pydict()
    assert t["action"] == [0, 2, -1] and t["attr_hat"] == [1, -1, 0]
    assert t["kind"] == ["trimmed", "trimmed", "untrimmed"]
    assert t["num_frames"] == [18, 24, 20]  # a and c probed
    assert t["fps"][0] == 30.0
    assert m.info.actions == ("0", "1", "2")
    assert m.person_attributes == ("hat",) and m.context_attributes == ("scene",)


def test_import_csv_named_labels_and_out_dir(csv_tree: Path) -> None:
    (csv_tree / "meta").mkdir()
    (csv_tree / "meta" / "list.csv").write_text(
        "video_id,path,split,action,attr_gender\n"
        "a,../clips/a.mp4,train,wave,female\n"
        "b,../clips/b.avi,train,run,\n"
        "c,../clips/c.mp4,test,wave,male\n"
    )
    m = import_csv(csv_tree / "meta" / "list.csv", csv_tree / "manifest.parquet")
    assert m.info.actions == ("run", "wave")
    assert m.info.attributes["gender"].values == ("female", "male")
    t = m.table.to_pydict()
    assert t["action"] == [1, 0, 1] and t["attr_gender"] == [0, -1, 1]
    assert t["path"] == ["clips/a.mp4", "clips/b.avi", "clips/c.mp4"]
    assert not math.isnan(t["fps"][1])
    # a manifest next to the CSV cannot reach ../clips without permission
    with pytest.raises(ManifestError, match="outside the manifest's directory"):
        import_csv(csv_tree / "meta" / "list.csv")
    m2 = import_csv(csv_tree / "meta" / "list.csv", allow_outside_root=True)
    assert m2.video_paths()[0] == (csv_tree / "clips" / "a.mp4").resolve()


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("d,clips/missing.mp4,train,0", r"list\.csv:3 \(video_id 'd'\), column 'path': video file"),
        ("d,clips/c.mp4,training,0", r"list\.csv:3 \(video_id 'd'\), column 'split': unknown"),
        ("d,clips/c.mp4,train,", r"list\.csv:3 \(video_id 'd'\), column 'action': empty"),
        ("d,clips/c.mp4,train,jump", r"list\.csv:2 \(video_id 'a'\), column 'action': mixes"),
        (
            "a,clips/c.mp4,train,1",
            r"list\.csv:3 \(video_id 'a'\), column 'video_id': duplicate .* line 2",
        ),
    ],
)
def test_import_csv_errors(csv_tree: Path, line: str, fragment: str) -> None:
    (csv_tree / "list.csv").write_text(
        f"video_id,path,split,action\na,clips/a.mp4,train,0\n{line}\n"
    )
    with pytest.raises(ManifestError, match=fragment):
        import_csv(csv_tree / "list.csv")


def test_import_csv_bad_header(csv_tree: Path) -> None:
    (csv_tree / "list.csv").write_text("video_id,path,action\na,clips/a.mp4,0\n")
    with pytest.raises(ManifestError, match="column 'split': missing"):
        import_csv(csv_tree / "list.csv")
    (csv_tree / "list.csv").write_text(
        "video_id,path,split,action,notes\na,clips/a.mp4,train,0,x\n"
    )
    with pytest.raises(ManifestError, match="column 'notes': unknown column"):
        import_csv(csv_tree / "list.csv")
    with pytest.raises(ManifestError, match="CSV file not found"):
        import_csv(csv_tree / "nope.csv")


def test_cli_layouts_are_the_importer_registry():
    import typing

    from pipeline.cli_choices import Layout
    from pipeline.data.importers import IMPORTERS

    assert list(typing.get_args(Layout)) == list(IMPORTERS)
