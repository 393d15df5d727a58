"""Image rows of a manifest become static clips only: augmented crops for training images, one
centre crop for the others, no normal clips or windows; the store validates, probes read it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.data.clips import ClipSampling, sample_image
from pipeline.data.decode import decode_image
from pipeline.data.manifest import AttributeInfo, DatasetInfo, write_manifest
from pipeline.errors import ConfigError, CorruptVideoError
from pipeline.extract import ExtractConfig, extract
from pipeline.probes.features import load_features
from pipeline.store.reader import open_store
from store_schema import VIDEO_FAILED, VIDEO_OK, validate

INFO = DatasetInfo(name="images", actions=("a",), attributes={"face": AttributeInfo(("no", "yes"))})


def _photo(path: Path, seed: int, mode: str = "RGB", size: tuple[int, int] = (48, 36)) -> None:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory, tiny_benchmark: Path) -> Path:
    """Ten images (RGB jpg, grey png, palette png, RGBA webp; one broken) and one real video."""
    root = tmp_path_factory.mktemp("images")
    (root / "img").mkdir()
    modes = ["RGB", "L", "P", "RGBA", "RGB"]
    suffixes = [".jpg", ".png", ".png", ".webp", ".JPG"]
    rows = []
    for i in range(10):
        name = f"img/p{i}{suffixes[i % 5]}"
        _photo(root / name, i, modes[i % 5])
        split = "privacy_train" if i < 6 else "privacy_test"
        rows.append({"video_id": f"p{i}", "path": name, "split": split, "action": -1,
                     "attr_face": i % 2, "kind": "image"})  # fmt: skip
    (root / "img" / "broken.png").write_bytes(b"\x89PNG not really")
    rows.append({"video_id": "broken", "path": "img/broken.png", "split": "privacy_test",
                 "action": -1, "attr_face": 1, "kind": "image"})  # fmt: skip
    video = next((tiny_benchmark / "videos").rglob("*.mp4"))
    shutil.copy(video, root / "v.mp4")
    rows.append({"video_id": "v", "path": "v.mp4", "split": "privacy_train", "action": 0,
                 "attr_face": 1})  # fmt: skip
    write_manifest(root / "manifest.parquet", rows, INFO)
    return root


@pytest.fixture(scope="module")
def image_store(image_tree: Path, tiny_encoder_dir: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("image_store") / "raw.zarr"
    config = ExtractConfig(static_clips=4, clips_per_video=2, videos_per_chunk=4, batch_size=8)
    extract(image_tree / "manifest.parquet", str(tiny_encoder_dir), out, config)
    return out


def test_decode_image_modes(tmp_path: Path) -> None:
    for mode in ("RGB", "L", "P", "RGBA", "CMYK"):
        path = tmp_path / f"x_{mode}.png" if mode != "CMYK" else tmp_path / "x.jpg"
        _photo(path, 0, mode)
        frames = decode_image(path)
        assert frames.shape == (1, 36, 48, 3) and frames.dtype == np.uint8
        expected = np.asarray(Image.open(path).convert("RGB"))
        assert np.array_equal(frames[0], expected)


def test_decode_image_exif_orientation(tmp_path: Path) -> None:
    """A photo stored sideways with EXIF orientation 6 (rotate 90 cw to view) stands upright."""
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # a white band on the stored image's left
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(tmp_path / "side.png", exif=exif)
    frames = decode_image(tmp_path / "side.png")
    assert frames.shape == (1, 40, 20, 3)  # width and height swapped
    assert frames[0, :10].min() == 255 and frames[0, 30:].max() == 0  # the band is now on top


@pytest.mark.parametrize("content", [b"", b"garbage" * 20])
def test_decode_image_unreadable(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(CorruptVideoError, match=r"bad\.jpg: corrupt .*not a readable image"):
        decode_image(path)
    with pytest.raises(CorruptVideoError, match="no such file"):
        decode_image(tmp_path / "absent.jpg")


def test_sample_image_views() -> None:
    sampling = ClipSampling(frames_per_clip=4, static_clips=5, size=16)
    image = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 30, 40, 3), np.uint8))
    train = sample_image(image, sampling, video_key="a", augmented=True)
    test = sample_image(image, sampling, video_key="a", augmented=False)
    assert train.static.shape == (5, 4, 3, 16, 16) and test.static.shape == (1, 4, 3, 16, 16)
    assert train.clips.shape[0] == 0 and train.windows.shape[0] == 0
    assert (train.static_frames == 0).all() and len(train.clip_starts) == 0
    # Each crop is one frame repeated T times; the 5 training crops differ from one another.
    assert torch.equal(train.static[:, 0], train.static[:, 3])
    assert len({train.static[i, 0].sum().item() for i in range(5)}) == 5
    # Seeded by the key: the same image and key give the same crops, another key others.
    again = sample_image(image, sampling, video_key="a", augmented=True)
    other = sample_image(image, sampling, video_key="b", augmented=True)
    assert torch.equal(again.static, train.static) and not torch.equal(other.static, train.static)
    with pytest.raises(ConfigError, match="static_clips must be >= 1"):
        sample_image(image, ClipSampling(static_clips=0), video_key="a", augmented=True)


def test_image_store_layout(image_store: Path) -> None:
    store = open_store(image_store)
    group, videos = store.group, store.videos
    kinds = list(videos["kind"])
    image = np.array([k == "image" for k in kinds])
    status = np.asarray(group["status"][:])
    ids = list(videos["video_id"])
    assert status[ids.index("broken")] == VIDEO_FAILED
    assert "not a readable image" in str(group["failure_reason"][ids.index("broken")])
    ok = status == VIDEO_OK
    clip = np.asarray(group["clip_features"][:])
    static = np.asarray(group["static_features"][:])
    # Images: no normal clips (NaN, start -1), every static slot filled from frame 0.
    assert np.isnan(clip[image]).all() and (np.asarray(group["clip_start"][:])[image] == -1).all()
    assert (
        np.isfinite(static[ok]).all()
        and (np.asarray(group["static_frame"][:])[ok & image] == 0).all()
    )
    assert np.isfinite(clip[~image]).all()
    split = np.asarray(list(videos["split"]))
    train, test = ok & image & (split == "privacy_train"), ok & image & (split == "privacy_test")
    # Training images: distinct augmented crops; test images: one centre crop in every slot.
    assert all(len(np.unique(static[i], axis=0)) == 4 for i in np.flatnonzero(train))
    assert all((static[i] == static[i, 0]).all() for i in np.flatnonzero(test))
    assert validate(image_store) == [] and validate(image_store, deep=True) == []


def test_image_store_probe_features(image_store: Path) -> None:
    features = load_features(image_store)
    train = features["privacy_train"]
    # Image rows are kept although their clip features are NaN (they have none), the video too.
    assert sorted(train.video_id) == ["p0", "p1", "p2", "p3", "p4", "p5", "v"]
    assert len(features["privacy_test"]) == 4  # the broken image failed


def test_images_need_static_clips(image_tree: Path, tiny_encoder_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="rows are images, which become static clips only"):
        extract(
            image_tree / "manifest.parquet",
            str(tiny_encoder_dir),
            tmp_path / "raw.zarr",
            ExtractConfig(static_clips=0),
        )
    assert not (tmp_path / "raw.zarr").exists()


def test_probes_on_an_image_store(image_store: Path) -> None:
    from pipeline.aam.from_store import usable_rows
    from pipeline.probes import EvalConfig
    from pipeline.probes.evaluate import run_probes

    features = load_features(image_store)
    config = EvalConfig.fast(seeds=(0,), probes=("action", "privacy"), attackers=("linear",))
    results = run_probes(features, config)
    assert results["action"]["skipped"] == "no videos in split(s) train, test"
    assert results["privacy_linear_clip"]["skipped"] == (
        "no normal clips in privacy_test (images have none)"
    )
    run = results["privacy_linear_static"]["runs"][0]
    assert 0 <= run["cmap_person"] <= 1 and run["chance_person"] > 0
    # Training the adapter needs normal clips: only the one video of the split is usable.
    store = open_store(image_store)
    rows = usable_rows(store, "privacy_train")
    assert list(store.videos["video_id"][rows]) == ["v"]
