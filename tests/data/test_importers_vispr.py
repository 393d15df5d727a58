"""VISPR importer on a tiny fake tree of generated images: image rows, the 7 paper attributes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.data.importers import IMPORTERS, import_vispr
from pipeline.data.importers.vispr import PAPER_ATTRIBUTES
from pipeline.data.manifest import read_manifest
from pipeline.errors import ManifestError


def image(path: Path, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(len(path.name)).integers(0, 256, (12, 10, 3), np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)


def annotation(root: Path, split: str, image_id: str, labels: list[str], **extra: str) -> None:
    path = root / "annotations" / f"{split}2017" / f"{image_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"image_path": f"images/{split}2017/{image_id}.jpg", "labels": labels, **extra}
    path.write_text(json.dumps(doc, indent=2))


@pytest.fixture
def vispr(tmp_path: Path) -> Path:
    root = tmp_path / "vispr"
    image(root / "images" / "train2017" / "2017_10001018.jpg")
    image(root / "images" / "train2017" / "2017_10001019.jpg", mode="L")  # a grey image
    (root / "images" / "train2017" / "2017_10001021.jpg").write_bytes(b"not a jpeg")
    image(root / "images" / "test" / "2017_20000001.jpg")  # not where its JSON says
    annotation(root, "train", "2017_10001018", ["a10_face_partial", "a16_race", "a4_gender"])
    annotation(root, "train", "2017_10001019", ["a0_safe"])
    annotation(root, "train", "2017_10001020", ["a17_color"])  # its image is missing
    annotation(root, "train", "2017_10001021", ["a65_rel_social"])  # unreadable image
    annotation(root, "test", "2017_20000001", ["a64_rel_personal", "a9_face_complete"])
    (root / "train2017.txt").write_text(
        "annotations/train2017/2017_10001018.json\n"
        "annotations/train2017/2017_10001019.json\n"
        "annotations/train2017/2017_10001020.json\n"
        "annotations/train2017/2017_10001021.json\n"
        "annotations/train2017/2017_19999999.json\n"  # listed, not on disk
    )
    (root / "test2017.txt").write_text("annotations/test2017/2017_20000001.json\n")
    (root / "attributes.tsv").write_text(
        "attribute_id\tdescription\n"
        + "".join(
            f"{a}\t{a.split('_', 1)[1]}\n" for a in ("a0_safe", "a16_race", *PAPER_ATTRIBUTES)
        )
    )
    return root


def test_vispr_image_rows(vispr: Path) -> None:
    result = import_vispr(vispr)
    m = result.manifest
    assert m.info.name == "vispr" and m.info.actions == ()
    assert m.attribute_names == PAPER_ATTRIBUTES and m.person_attributes == PAPER_ATTRIBUTES
    assert all(a.values == ("no", "yes") for a in m.info.attributes.values())
    t = m.table.to_pydict()
    assert t["video_id"] == ["2017_10001018", "2017_10001019", "2017_10001021", "2017_20000001"]
    assert t["split"] == ["privacy_train"] * 3 + ["privacy_test"]
    assert t["kind"] == ["image"] * 4 and t["action"] == [-1] * 4
    assert t["fps"] == [0.0] * 4
    assert t["num_frames"] == [1, 1, -1, 1]  # the unreadable image is kept for extraction
    assert t["path"][3] == "images/test/2017_20000001.jpg"  # found by its file name
    assert t["anomalous"] == [-1] * 4 and t["segments"] == [[]] * 4

    def attrs(i: int) -> list[str]:
        return [a for a in PAPER_ATTRIBUTES if t[f"attr_{a}"][i] == 1]

    assert attrs(0) == ["a4_gender", "a10_face_partial"]  # a16_race is not a paper attribute
    assert attrs(1) == []  # a0_safe: every attribute 0
    assert attrs(2) == ["a65_rel_social"]
    assert attrs(3) == ["a9_face_complete", "a64_rel_personal"]
    assert t["attr_a4_gender"][1] == 0
    assert result.skipped == {
        "missing_split": 1,
        "missing_image": 1,
        "missing_annotation": 1,
        "unreadable": 1,
    }
    assert result.summary.startswith("vispr: 4 images (privacy_train 3, privacy_test 1) in ")
    assert "1 listed images not on disk (images/train2017/2017_10001020.jpg)" in result.summary
    assert "1 listed annotation files not on disk (train2017.txt:5)" in result.summary
    assert "requested splits without annotations on disk (val)" in result.summary
    assert "\n" not in result.summary
    assert read_manifest(result.path).sha256 == m.sha256


def test_vispr_all_attributes_and_plain_splits(vispr: Path, tmp_path: Path) -> None:
    result = IMPORTERS["vispr"].run(
        vispr, tmp_path / "m.parquet", attributes="all", split_names="plain", splits="train"
    )
    m = result.manifest
    assert m.attribute_names == ("a0_safe", "a16_race", *PAPER_ATTRIBUTES)
    t = m.table.to_pydict()
    assert t["split"] == ["train"] * 3
    assert t["attr_a16_race"] == [1, 0, 0] and t["attr_a0_safe"] == [0, 1, 0]
    assert t["path"][0] == "vispr/images/train2017/2017_10001018.jpg"


def test_vispr_without_list_file_reads_the_folder(vispr: Path) -> None:
    (vispr / "test2017.txt").unlink()
    result = import_vispr(vispr, splits="test")
    assert result.manifest.video_ids == ["2017_20000001"]


def test_vispr_broken_annotations(vispr: Path) -> None:
    bad = vispr / "annotations" / "train2017" / "2017_10001019.json"
    bad.write_text('{\n  "image_path": "images/train2017/2017_10001019.jpg",\n  "labels": [a0]\n}')
    with pytest.raises(ManifestError, match=r"2017_10001019\.json:3: not valid JSON"):
        import_vispr(vispr)
    bad.write_text('{\n  "image_path": "images/train2017/2017_10001019.jpg",\n  "labels": "a0"\n}')
    with pytest.raises(ManifestError, match=r"2017_10001019\.json:3: 'labels' must be a list"):
        import_vispr(vispr)
    annotation(vispr, "train", "2017_10001019", ["a99_unknown"])
    with pytest.raises(ManifestError, match=r"2017_10001019\.json:4: label 'a99_unknown' is not"):
        import_vispr(vispr, attributes="all")
    (vispr / "train2017.txt").write_text("annotations/train2017/2017_10001018.json extra\n")
    with pytest.raises(ManifestError, match=r"train2017\.txt:1: expected"):
        import_vispr(vispr)
