"""Merging manifests: rows in order, paths re-rooted, one vocabulary, refusals in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.data.manifest import AttributeInfo, DatasetInfo, read_manifest, write_manifest
from pipeline.data.merge import merge_manifests
from pipeline.errors import ManifestError

YES_NO = AttributeInfo(("no", "yes"))


def _images(root: Path, *, ids: tuple[str, ...] = ("i0", "i1"), face=YES_NO) -> Path:
    (root / "vispr").mkdir(parents=True, exist_ok=True)
    rows = [
        {"video_id": v, "path": f"img/{v}.jpg", "split": "privacy_train", "action": -1,
         "kind": "image", "attr_face": 1}
        for v in ids
    ]  # fmt: skip
    info = DatasetInfo(name="vispr", attributes={"face": face, "nudity": YES_NO})
    for row in rows:
        row["attr_nudity"] = 0
    return write_manifest(root / "vispr" / "manifest.parquet", rows, info)


def _videos(root: Path, actions: tuple[str, ...] = ("brush_hair", "cartwheel")) -> Path:
    (root / "pa").mkdir(parents=True, exist_ok=True)
    rows = [
        {"video_id": "v0", "path": "clips/v0.avi", "split": "privacy_test", "action": 1,
         "fps": 30.0, "num_frames": 40, "attr_face": 1,
         "attribute_segments": [{"attribute": "face", "start": 0, "end": 10, "value": 1}]},
    ]  # fmt: skip
    info = DatasetInfo(name="pa-hmdb51", actions=actions, attributes={"face": YES_NO})
    return write_manifest(root / "pa" / "manifest.parquet", rows, info)


def test_merge_rows_paths_and_vocabulary(tmp_path: Path) -> None:
    merged = merge_manifests([_images(tmp_path), _videos(tmp_path)], tmp_path / "m.parquet")
    table = merged.table.to_pydict()
    assert table["video_id"] == ["i0", "i1", "v0"]
    assert table["path"] == ["vispr/img/i0.jpg", "vispr/img/i1.jpg", "pa/clips/v0.avi"]
    assert table["kind"] == ["image", "image", "trimmed"]
    assert table["attr_nudity"] == [0, 0, -1]  # PA rows lack the attribute: unknown
    assert table["attribute_segments"][2] == [
        {"attribute": "face", "start": 0, "end": 10, "value": 1}
    ]
    assert merged.info.name == "vispr+pa-hmdb51"
    assert merged.info.actions == ("brush_hair", "cartwheel")
    assert list(merged.info.attributes) == ["face", "nudity"]
    assert read_manifest(tmp_path / "m.parquet", check_files=False).sha256 == merged.sha256


def test_merge_refusals(tmp_path: Path) -> None:
    a = _images(tmp_path)
    with pytest.raises(ManifestError, match="at least two manifests"):
        merge_manifests([a], tmp_path / "m.parquet")
    with pytest.raises(ManifestError, match=r"video_id 'i0' is in .*vispr.* and in .*other"):
        other = tmp_path / "other"
        merge_manifests([a, _images(other)], tmp_path / "m.parquet")
    other = tmp_path / "x"
    conflicting = _images(other, ids=("j0",), face=AttributeInfo(("hidden", "visible")))
    with pytest.raises(ManifestError, match=r"attribute 'face' is \('no', 'yes'\)"):
        merge_manifests([a, conflicting], tmp_path / "m.parquet")
    b = _videos(tmp_path)
    c = _videos(tmp_path / "c", actions=("a", "b", "c"))
    with pytest.raises(ManifestError, match="different action classes"):
        merge_manifests([b, c], tmp_path / "m.parquet")
    inner = tmp_path / "vispr" / "deeper"
    inner.mkdir()
    with pytest.raises(ManifestError, match="is outside"):
        merge_manifests([a, b], inner / "m.parquet")
    assert not (tmp_path / "m.parquet").exists() and not (inner / "m.parquet").exists()
    merged = merge_manifests([a, b], inner / "m.parquet", allow_outside_root=True)
    assert Path(merged.table.column("path")[0].as_py()).is_absolute()


def test_merge_cli(tmp_path: Path, run_cli) -> None:
    a, b = _images(tmp_path), _videos(tmp_path)
    code, out, err = run_cli("manifest", "merge", str(a), str(b), "--output", str(tmp_path / "m"))
    assert code == 0, err
    assert "with 3 rows (privacy_train 2, privacy_test 1) from 2 manifests" in out
    code, out, err = run_cli("manifest", "merge", str(a), str(b), "--output", str(tmp_path / "m"))
    assert code != 0 and "--overwrite" in err
