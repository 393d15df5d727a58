"""PA-HMDB51 importer on a tiny fake tree: frame-level attribute segments, codes, binarisation."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.data.importers import HMDB51_CLASSES, IMPORTERS, import_pa_hmdb51
from pipeline.data.importers.vispr import PAPER_ATTRIBUTES
from pipeline.data.manifest import read_manifest
from pipeline.errors import ManifestError

BRUSH = "April_09_brush_hair_u_nm_np1_ba_goo_0.avi"
WHEEL = "Bodenturnen_cartwheel_f_cm_np1_le_med_0.avi"


def avi(path: Path, frames: int) -> None:
    """A real 16x16 mpeg4 .avi, like HMDB51's files."""
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
def pa(tmp_path: Path) -> tuple[Path, Path]:
    root, videos = tmp_path / "PA_HMDB51", tmp_path / "hmdb51"
    avi(videos / "brush_hair" / BRUSH, 30)
    avi(videos / "cartwheel" / WHEEL, 20)
    folder = root / "PrivacyAttributes"
    folder.mkdir(parents=True)
    brush = {
        BRUSH: {
            "skin_color": [[0, 29, 1]],
            "relationship": [[0, 29, 0]],
            "face": [[0, 9, 2], [10, 29, 1]],
            "nudity": [[0, 29, 0]],
            "gender": [[0, 14, [1, 2]], [15, 40, 2]],  # a list of codes; runs past 30 frames
            "review": True,
            "note": "",
        },
        "Not_downloaded_brush_hair_0.avi": {"gender": [[0, 5, 1]], "review": True},
    }
    wheel = {  # no "note"; nothing visible
        WHEEL: {a: [[0, 19, 0]] for a in ("skin_color", "relationship", "face", "nudity", "gender")}
        | {"review": False}
    }
    (folder / "brush_hair.json").write_text(json.dumps(brush, indent=2))
    (folder / "cartwheel.json").write_text(json.dumps(wheel))
    return root, videos


def _segments(row: dict, attribute: str) -> list[tuple[int, int, int]]:
    return [
        (s["start"], s["end"], s["value"])
        for s in row["attribute_segments"]
        if s["attribute"] == attribute
    ]


def test_pa_hmdb51_binary(pa: tuple[Path, Path], tmp_path: Path) -> None:
    root, videos = pa
    result = import_pa_hmdb51(root, tmp_path / "pa.parquet", videos=videos)
    m = result.manifest
    assert m.info.actions == HMDB51_CLASSES and m.attribute_names == PAPER_ATTRIBUTES
    rows = m.table.to_pylist()
    assert [r["video_id"] for r in rows] == [BRUSH[:-4], WHEEL[:-4]]
    assert [r["action"] for r in rows] == [0, 1]
    assert [r["split"] for r in rows] == ["privacy_test"] * 2
    assert rows[0]["path"] == f"hmdb51/brush_hair/{BRUSH}" and rows[0]["num_frames"] == 30
    brush, wheel = rows
    # video level: any positive frame
    assert {a: brush[f"attr_{a}"] for a in PAPER_ATTRIBUTES} == {
        "a4_gender": 1, "a9_face_complete": 1, "a10_face_partial": 1, "a12_semi_nudity": 0,
        "a17_color": 1, "a64_rel_personal": 0, "a65_rel_social": -1,
    }  # fmt: skip
    assert {a: wheel[f"attr_{a}"] for a in PAPER_ATTRIBUTES} == dict.fromkeys(
        PAPER_ATTRIBUTES[:-1], 0
    ) | {"a65_rel_social": -1}
    # frame level: inclusive [s, e] -> [s, e + 1), clipped to the 30 frames
    assert _segments(brush, "a4_gender") == [(0, 15, 1), (15, 30, 1)]
    assert _segments(brush, "a9_face_complete") == [(0, 10, 1), (10, 30, 0)]
    assert _segments(brush, "a10_face_partial") == [(0, 10, 1), (10, 30, 1)]
    assert _segments(brush, "a64_rel_personal") == [(0, 30, 0)]
    assert _segments(brush, "a65_rel_social") == []
    assert _segments(wheel, "a17_color") == [(0, 20, 0)]
    assert m.attribute_segments()[1] == wheel["attribute_segments"]
    assert result.skipped == {"missing_video": 1, "segment_clipped": 1}
    assert result.summary.startswith("pa_hmdb51: 2 videos (privacy_test 2) in ")
    assert "1 listed videos not on disk (Not_downloaded_brush_hair_0.avi)" in result.summary
    text = (root / "PrivacyAttributes" / "brush_hair.json").read_text().splitlines()
    line = next(i + 1 for i, t in enumerate(text) if '"gender"' in t)  # the attribute's line
    assert f"1 segments clipped to the video end (brush_hair.json:{line})" in result.summary
    assert read_manifest(result.path).sha256 == m.sha256


def test_pa_hmdb51_fine_face_and_codes(pa: tuple[Path, Path], tmp_path: Path) -> None:
    root, videos = pa
    fine = import_pa_hmdb51(root, tmp_path / "f.parquet", videos=videos, face_reading="fine")
    brush = fine.manifest.table.to_pylist()[0]
    assert _segments(brush, "a10_face_partial") == [(0, 10, 0), (10, 30, 1)]
    codes = IMPORTERS["pa-hmdb51"].run(
        root, tmp_path / "c.parquet", videos=videos, labels="codes", split_names="plain"
    )
    m = codes.manifest
    assert m.attribute_names == ("skin_color", "relationship", "face", "nudity", "gender")
    assert m.info.attributes["gender"].values == ("unidentifiable", "male", "female")
    brush = m.table.to_pylist()[0]
    assert brush["split"] == "test"
    assert _segments(brush, "gender") == [(0, 15, 1), (0, 15, 2), (15, 30, 2)]
    assert brush["attr_gender"] == -1  # male and female both seen: see the segments
    assert brush["attr_face"] == 2  # ordinal: the largest code
    assert (brush["attr_skin_color"], brush["attr_nudity"]) == (1, 0)


def test_pa_hmdb51_videos_outside_the_manifest_folder(pa: tuple[Path, Path]) -> None:
    root, videos = pa
    with pytest.raises(ManifestError, match="outside the manifest's directory"):
        import_pa_hmdb51(root, videos=videos)  # the manifest would go to the PA-HMDB51 root
    result = import_pa_hmdb51(root, videos=videos, allow_outside_root=True)
    assert result.path == root / "manifest.parquet"
    assert result.manifest.video_paths()[0] == (videos / "brush_hair" / BRUSH).resolve()


@pytest.mark.parametrize(
    "segment, message",
    [
        ([5, 2, 1], r"brush_hair\.json:3: video '.*', gender: \[5, 2, 1\] is not \[start, end"),
        ([0, 2, 7], r"brush_hair\.json:3: video '.*', gender: code 7 is not one of 0\.\.2"),
        ([0, 2, []], r"brush_hair\.json:3: video '.*', gender: \[0, 2, \[\]\] is not"),
        ("0-2", r"brush_hair\.json:3: video '.*', gender: '0-2' is not"),
    ],
)
def test_pa_hmdb51_broken_segment(pa: tuple[Path, Path], segment: object, message: str) -> None:
    root, videos = pa
    doc = {BRUSH: {"gender": [[0, 3, 1], segment]}}
    (root / "PrivacyAttributes" / "brush_hair.json").write_text(json.dumps(doc, indent=1))
    with pytest.raises(ManifestError, match=message):
        import_pa_hmdb51(root, videos=videos, allow_outside_root=True)


def test_pa_hmdb51_broken_files(pa: tuple[Path, Path]) -> None:
    root, videos = pa
    file = root / "PrivacyAttributes" / "cartwheel.json"
    file.write_text('{\n "x.avi": {\n  "gender": [[0, 1, 1]],\n }\n}')
    with pytest.raises(ManifestError, match=r"cartwheel\.json:4: not valid JSON"):
        import_pa_hmdb51(root, videos=videos, allow_outside_root=True)
    file.unlink()
    (root / "PrivacyAttributes" / "juggle.json").write_text("{}")
    with pytest.raises(ManifestError, match=r"juggle\.json: 'juggle' is not an HMDB51 class"):
        import_pa_hmdb51(root, videos=videos, allow_outside_root=True)
