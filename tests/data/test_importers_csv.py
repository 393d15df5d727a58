"""The generic CSV's optional columns (segments, anomalous, attribute_segments, image rows), the
manifest rules for images and frame-level attribute segments, and the importer registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from pipeline.data.importers import IMPORTERS, ImporterSpec, import_csv, run_importer
from pipeline.data.manifest import (
    ATTRIBUTE_SEGMENT_TYPE,
    AttributeInfo,
    DatasetInfo,
    read_manifest,
    write_manifest,
)
from pipeline.data.synth.encode import write_mp4
from pipeline.errors import ConfigError, ManifestError


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, frames in (("a.mp4", 20), ("b.mp4", 30), ("c.mp4", 12)):
        (tmp_path / "clips").mkdir(exist_ok=True)
        write_mp4(tmp_path / "clips" / name, np.zeros((frames, 16, 16, 3), np.uint8))
    (tmp_path / "img").mkdir()
    Image.fromarray(np.zeros((8, 6), np.uint8)).save(tmp_path / "img" / "grey.png")
    Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(tmp_path / "img" / "photo.JPG")
    (tmp_path / "img" / "broken.webp").write_bytes(b"RIFF....WEBP")
    return tmp_path


def _cell(value: object) -> str:
    return '"' + json.dumps(value).replace('"', '""') + '"'


def test_csv_segments_anomalous_images(tree: Path) -> None:
    rows = [
        "video_id,path,split,action,kind,segments,anomalous,attr_face,attribute_segments",
        "a,clips/a.mp4,tad_train,-1,untrimmed,"
        + _cell([{"start": 0, "end": 5, "label": "jump"}, {"start": 8, "end": 20, "label": "run"}])
        + ",,,",
        "b,clips/b.mp4,anomaly_test,-1,anomaly,"
        + _cell([{"start": 3, "end": 9, "label": "Arson"}])
        + ",1,visible,"
        + _cell([{"attribute": "face", "start": 0, "end": 10, "value": "visible"},
                 {"attribute": "attr_face", "start": 10, "end": 30, "value": "hidden"}]),
        "c,clips/c.mp4,anomaly_train,-1,anomaly,,1,,",  # anomalous without segments
        "g,img/grey.png,privacy_train,-1,image,,,hidden,",
        "p,img/photo.JPG,privacy_test,-1,image,,,visible,",
        "w,img/broken.webp,privacy_test,-1,image,,,,",
    ]  # fmt: skip
    (tree / "list.csv").write_text("\n".join(rows) + "\n")
    m = import_csv(tree / "list.csv")
    assert m.info.actions == ("jump", "run")
    assert m.info.anomaly_types == ("Arson",)
    assert m.info.attributes["face"].values == ("hidden", "visible")
    t = m.table.to_pydict()
    assert t["kind"] == ["untrimmed", "anomaly", "anomaly", "image", "image", "image"]
    assert t["segments"][0] == [
        {"start": 0, "end": 5, "label": 0},
        {"start": 8, "end": 20, "label": 1},
    ]
    assert t["segments"][1] == [{"start": 3, "end": 9, "label": 0}]
    assert t["anomalous"] == [-1, 1, 1, -1, -1, -1]
    assert t["fps"][3:] == [0.0, 0.0, 0.0]
    assert t["num_frames"] == [20, 30, 12, 1, 1, -1]  # the broken image is kept, unreadable
    assert t["attr_face"] == [-1, 1, -1, 0, 1, -1]
    assert m.attribute_segments()[1] == [
        {"attribute": "face", "start": 0, "end": 10, "value": 1},
        {"attribute": "face", "start": 10, "end": 30, "value": 0},
    ]
    assert m.attribute_segments()[0] == []
    # reading it back gives the same manifest, and a split without segments drops the column
    assert read_manifest(tree / "manifest.parquet").sha256 == m.sha256
    assert "attribute_segments" not in m.select("privacy_train").table.column_names


def test_csv_integer_segment_labels(tree: Path) -> None:
    (tree / "list.csv").write_text(
        "video_id,path,split,action,kind,segments\n"
        f"a,clips/a.mp4,tad_train,-1,untrimmed,{_cell([{'start': 1, 'end': 4, 'label': 2}])}\n"
        f"b,clips/b.mp4,anomaly_test,-1,anomaly,{_cell([{'start': 1, 'end': 4, 'label': 1}])}\n"
    )
    m = import_csv(tree / "list.csv")
    assert m.info.actions == ("0", "1", "2") and m.info.anomaly_types == ("0", "1")
    assert m.table.column("anomalous").to_pylist() == [-1, 1]


@pytest.mark.parametrize(
    "row, fragment",
    [
        ("untrimmed,[1,", r"list\.csv:2 \(video_id 'a'\), column 'segments': not JSON"),
        ("untrimmed," + _cell({"start": 1}), r"column 'segments': expected a JSON list"),
        ("untrimmed," + _cell([{"start": 1, "end": 2}]), r"column 'segments': .* expected the"),
        (
            "untrimmed," + _cell([{"start": 1.5, "end": 2, "label": 0}]),
            r"column 'segments': .* start must be an integer frame",
        ),
        (
            "trimmed," + _cell([{"start": 1, "end": 2, "label": 0}]),
            r"list\.csv:2 \(video_id 'a'\), column 'segments': a trimmed row has no segments",
        ),
    ],
)
def test_csv_bad_segments(tree: Path, row: str, fragment: str) -> None:
    (tree / "list.csv").write_text(
        f"video_id,path,split,action,kind,segments\na,clips/a.mp4,train,0,{row}\n"
    )
    with pytest.raises(ManifestError, match=fragment):
        import_csv(tree / "list.csv")


def test_csv_bad_anomalous_and_attribute_segments(tree: Path) -> None:
    (tree / "list.csv").write_text(
        "video_id,path,split,action,kind,anomalous\na,clips/a.mp4,train,0,anomaly,2\n"
    )
    with pytest.raises(ManifestError, match=r"list\.csv:2 .*'anomalous': expected -1, 0 or 1"):
        import_csv(tree / "list.csv")
    seg = _cell([{"attribute": "hat", "start": 0, "end": 2, "value": 1}])
    (tree / "list.csv").write_text(
        f"video_id,path,split,action,attr_face,attribute_segments\na,clips/a.mp4,train,0,1,{seg}\n"
    )
    with pytest.raises(ManifestError, match=r"attribute 'hat' has no attr_ column"):
        import_csv(tree / "list.csv")


# --- the manifest's image rows and attribute segments ----------------------------------------

INFO = DatasetInfo(name="t", actions=("a",), attributes={"face": AttributeInfo(("no", "yes"))})


def _rows(tree: Path, **changes: object) -> list[dict]:
    rows = [
        {"video_id": "v", "path": "clips/a.mp4", "split": "train", "action": 0, "attr_face": 1,
         "fps": 25.0, "num_frames": 20},
        {"video_id": "i", "path": "img/grey.png", "split": "train", "action": -1, "attr_face": 0,
         "kind": "image"},
    ]  # fmt: skip
    for key, value in changes.items():
        index, column = key.split("__")
        rows[int(index)][column] = value
    return rows


def test_manifest_image_defaults(tree: Path) -> None:
    file = write_manifest(tree / "m.parquet", _rows(tree), INFO)
    t = read_manifest(file).table.to_pydict()
    assert t["kind"] == ["trimmed", "image"]
    assert t["fps"] == [25.0, 0.0] and t["num_frames"] == [20, 1]  # NaN / missing -> 0 and 1
    assert "attribute_segments" not in t


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"1__fps": 30.0}, r"row 1 \(video_id 'i'\), column 'fps': an image has fps 0"),
        ({"1__num_frames": 2}, r"column 'num_frames': an image has num_frames 1"),
        ({"1__path": "clips/a.mp4"}, r"column 'path': an image row needs a path ending in"),
        ({"0__fps": 0.0}, r"row 0 .*column 'fps': fps must be > 0"),
        (
            {"1__segments": [{"start": 0, "end": 1, "label": 0}]},
            r"column 'segments': images must have no segments",
        ),
    ],
)
def test_manifest_image_rules(tree: Path, changes: dict, fragment: str) -> None:
    with pytest.raises(ManifestError, match=fragment):
        write_manifest(tree / "m.parquet", _rows(tree, **changes), INFO)


@pytest.mark.parametrize(
    "segment, fragment",
    [
        ({"attribute": "hat", "start": 0, "end": 2, "value": 1}, "no such attribute"),
        ({"attribute": "face", "start": 0, "end": 2, "value": 2}, "value out of range 0..1"),
        ({"attribute": "face", "start": 5, "end": 5, "value": 1}, "start must be < end"),
        ({"attribute": "face", "start": -1, "end": 5, "value": 1}, "start must be >= 0"),
        ({"attribute": "face", "start": 0, "end": 21, "value": 1}, "end beyond num_frames 20"),
    ],
)
def test_manifest_attribute_segment_rules(tree: Path, segment: dict, fragment: str) -> None:
    rows = _rows(tree, **{"0__attribute_segments": [segment]})
    with pytest.raises(ManifestError, match=r"row 0 \(video_id 'v'\), column 'attribute_segments'"):
        write_manifest(tree / "m.parquet", rows, INFO)
    with pytest.raises(ManifestError, match=fragment):
        write_manifest(tree / "m.parquet", rows, INFO)


def test_manifest_attribute_segments_type_and_hash(tree: Path) -> None:
    plain = read_manifest(write_manifest(tree / "a.parquet", _rows(tree), INFO))
    empty = _rows(tree, **{"0__attribute_segments": []})
    assert read_manifest(write_manifest(tree / "b.parquet", empty, INFO)).sha256 == plain.sha256
    segments = [[{"attribute": "face", "start": 0, "end": 3, "value": 1}], []]
    table = plain.table.append_column(
        "attribute_segments", pa.array(segments, ATTRIBUTE_SEGMENT_TYPE)
    )
    labelled = read_manifest(write_manifest(tree / "c.parquet", table, INFO))
    assert labelled.sha256 != plain.sha256
    assert labelled.table.column_names[-1] == "attribute_segments"
    wrong = plain.table.append_column("attribute_segments", pa.array([[1], []]))
    with pytest.raises(ManifestError, match="column 'attribute_segments': expected list<item"):
        write_manifest(tree / "d.parquet", wrong, INFO)


# --- registry ----------------------------------------------------------------------------------


def test_registry_lists_every_layout() -> None:
    assert list(IMPORTERS) == [
        "ucf101", "hmdb51", "csv", "kinetics400", "thumos14", "ucf-crime", "vispr",
        "pa-hmdb51", "ntu-rgbd",
    ]  # fmt: skip
    for layout, spec in IMPORTERS.items():
        assert isinstance(spec, ImporterSpec) and spec.layout == layout
        assert spec.help and "\n" not in spec.help and spec.source_help
        for opt in spec.options:
            assert opt.type in (str, int, bool, Path) and opt.help
            assert opt.flag == "--" + opt.name.replace("_", "-")
            assert opt.choices is None or opt.default in opt.choices
    assert [o.name for o in IMPORTERS["ucf101"].options if o.required] == ["splits_dir"]


def test_registry_runs_and_checks_options(tree: Path) -> None:
    (tree / "list.csv").write_text("video_id,path,split,action\na,clips/a.mp4,train,0\n")
    result = run_importer("csv", tree / "list.csv", tree / "out.parquet", name="mine")
    assert result.path == tree / "out.parquet" and len(result) == 1
    assert result.manifest.info.name == "mine"
    assert result.summary.startswith("mine: 1 videos (train 1) in ")
    with pytest.raises(ConfigError, match="csv has no option 'split_id'"):
        run_importer("csv", tree / "list.csv", split_id=2)
    with pytest.raises(ConfigError, match="ucf101 needs --splits-dir"):
        run_importer("ucf101", tree)
    with pytest.raises(ConfigError, match="--labels must be one of binary, codes"):
        run_importer("pa-hmdb51", tree, labels="raw")
    with pytest.raises(ConfigError, match="unknown layout 'ucf-101'"):
        run_importer("ucf-101", tree)


def test_bad_option_values_are_config_errors(tree: Path) -> None:
    from pipeline.data.importers import import_kinetics400, import_thumos14, import_vispr

    with pytest.raises(ConfigError, match="splits must be a comma-separated list of val, test"):
        import_thumos14(tree, splits="train")
    with pytest.raises(ConfigError, match="split_names must be one of protocol, plain"):
        import_thumos14(tree, split_names="official")
    with pytest.raises(ConfigError, match="splits must be a comma-separated list of train"):
        import_kinetics400(tree, splits="")
    with pytest.raises(ConfigError, match="attributes must be one of paper, all"):
        import_vispr(tree, attributes="some")
    with pytest.raises(ConfigError, match="--split-names must be one of protocol, plain"):
        run_importer("ucf-crime", tree, split_names="official")
