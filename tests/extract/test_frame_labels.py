"""Frame-level attribute labels (PA-HMDB51-style segments) label each static clip by its frame;
sanitize carries them; evaluation scores static clips against them besides the video label."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.manifest import AttributeInfo, DatasetInfo, read_manifest, write_manifest
from pipeline.extract import ExtractConfig, extract
from pipeline.extract.plan import static_frame_labels
from pipeline.probes import EvalConfig
from pipeline.probes.attacker import IndicatorColumns
from pipeline.probes.evaluate import run_probes
from pipeline.probes.features import load_features
from pipeline.sanitize import SanitizeConfig, sanitize
from pipeline.store.reader import open_store
from store_schema import validate
from tests.sanitize.stores import make_adapter

INFO = DatasetInfo(
    name="framed",
    actions=("a", "b"),
    attributes={"face": AttributeInfo(("no", "yes")), "skin": AttributeInfo(("x", "y", "z"))},
)


def test_static_frame_labels_rule() -> None:
    frames = np.array([0, 5, 10, 15])
    segments = [
        {"attribute": "face", "start": 0, "end": 6, "value": 1},
        {"attribute": "face", "start": 4, "end": 12, "value": 0},  # overlaps: the larger wins
        {"attribute": "skin", "start": 15, "end": 16, "value": 2},
        {"attribute": "other", "start": 0, "end": 16, "value": 1},  # not asked for
    ]
    labels = static_frame_labels(segments, frames, ["face", "skin"])
    assert labels["face"].tolist() == [1, 1, 0, -1]
    assert labels["skin"].tolist() == [-1, -1, -1, 2]
    assert set(labels) == {"face", "skin"}


@pytest.fixture(scope="module")
def framed_store(tmp_path_factory, tiny_benchmark: Path, tiny_encoder_dir: Path) -> Path:
    """Twelve tiny benchmark videos; the first half of each shows a face, the rest does not."""
    root = tmp_path_factory.mktemp("framed")
    source = read_manifest(tiny_benchmark / "manifest.parquet").table.to_pylist()
    trimmed = [r for r in source if r["kind"] == "trimmed"][:12]
    rows = []
    for i, row in enumerate(trimmed):
        name = f"v{i}.mp4"
        shutil.copy(tiny_benchmark / row["path"], root / name)
        n = int(row["num_frames"])
        half = n // 2
        split = "privacy_train" if i < 6 else "privacy_test"
        rows.append({
            "video_id": f"v{i}", "path": name, "split": split,
            "action": i % 2, "fps": row["fps"], "num_frames": n, "attr_face": 1, "attr_skin": i % 3,
            "attribute_segments": [
                {"attribute": "face", "start": 0, "end": half, "value": 1},
                {"attribute": "face", "start": half, "end": n, "value": 0},
            ],
        })  # fmt: skip
    write_manifest(root / "manifest.parquet", rows, INFO)
    out = root / "raw.zarr"
    config = ExtractConfig(static_clips=6, clips_per_video=2, videos_per_chunk=4, batch_size=16)
    extract(root / "manifest.parquet", str(tiny_encoder_dir), out, config)
    return out


def test_static_clip_labels_follow_their_frames(framed_store: Path) -> None:
    store = open_store(framed_store)
    assert store.meta["dataset"]["frame_labels"] == ["face"]  # skin has no segments
    assert "static_attr_skin" not in store.group
    frames = np.asarray(store.group["static_frame"][:])
    labels = np.asarray(store.group["static_attr_face"][:])
    half = (np.asarray(store.group["num_frames"][:]) // 2)[:, None]
    assert np.array_equal(labels, (frames < half).astype(np.int16))
    assert {0, 1} <= set(labels.ravel().tolist())  # both halves are sampled
    assert validate(framed_store) == []
    attrs = dict(store.group["static_attr_face"].attrs)
    assert attrs["flag_meanings"] == "unknown no yes"


def test_validate_rejects_undeclared_frame_labels(framed_store: Path, tmp_path: Path) -> None:
    from pipeline.store.writer import read_attrs, write_attrs

    copy = tmp_path / "copy.zarr"
    shutil.copytree(framed_store, copy)
    import zarr

    group = zarr.open_group(copy, mode="r+", use_consolidated=False)
    meta = read_attrs(group)
    meta["dataset"]["frame_labels"] = ["ghost"]
    write_attrs(group, meta)
    problems = validate(copy)
    assert "dataset.frame_labels names 'ghost', which is not in dataset.attributes" in problems
    assert "array 'static_attr_face' is not declared in dataset.frame_labels" in problems


def test_frame_labels_in_probe_features_and_sanitized_store(
    framed_store: Path, tmp_path: Path
) -> None:
    features = load_features(framed_store)
    test = features["privacy_test"]
    assert features.dataset.frame_labels == ("face",)
    assert test.static_attributes["face"].shape == test.static.shape[:2]
    columns = IndicatorColumns.of(features.dataset)
    # "face" is a presence attribute (no / yes): only its "yes" column is scored.
    assert list(zip(columns.attribute, columns.value, strict=True)) == [
        ("face", 1), ("skin", 0), ("skin", 1), ("skin", 2),
    ]  # fmt: skip
    targets, known = columns.encode_static_frames(test)
    assert np.array_equal(targets[:, 0], test.static_attributes["face"].ravel() == 1)
    # skin has no frame labels: every static clip carries its video's label.
    assert np.array_equal(targets[:, 1:].argmax(1), np.repeat(test.attributes["skin"], 6))
    assert known.all()

    sha = open_store(framed_store).encoder["weights_sha256"]
    adapter = make_adapter(tmp_path / "adapter", dim=features.feature_dim, encoder_sha=sha)
    out = tmp_path / "sanitized.zarr"
    sanitize(framed_store, adapter, out, SanitizeConfig(workers=1))
    assert validate(out) == []
    raw, clean = open_store(framed_store), open_store(out)
    assert np.array_equal(raw.group["static_attr_face"][:], clean.group["static_attr_face"][:])


def test_evaluation_scores_frames_besides_videos(framed_store: Path) -> None:
    features = load_features(framed_store)
    config = EvalConfig.fast(seeds=(0,), probes=("privacy",), attackers=("linear",))
    results = run_probes(features, config)
    assert set(results) == {"privacy_linear_static", "privacy_linear_clip", "privacy_linear_frame"}
    video_level = results["privacy_linear_static"]["runs"][0]
    frame_level = results["privacy_linear_frame"]["runs"][0]
    # Every test video has a face somewhere (video label 1) but only half its frames do: the
    # chance level of the face column differs between the two scorings.
    assert video_level["chance_face"] == pytest.approx(1.0)
    assert frame_level["chance_face"] == pytest.approx(
        float((features["privacy_test"].static_attributes["face"] == 1).mean())
    )
