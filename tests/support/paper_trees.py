"""Tiny fake copies of the paper's data sets in their official layouts (Kinetics-400, THUMOS14,
UCF-Crime, VISPR), with real mp4 / jpg files whose content depends on the labels, so that every
probe has something to find, and with some of each data set's pitfalls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.data.synth.encode import write_mp4

SIZE = 32
COLOURS = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 230], [220, 200, 40]], np.float32)
DIRECTIONS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], np.float32)


def clip(path: Path, label: int, *, frames: int = 24, fps: int = 30, seed: int = 0) -> None:
    """A square of the label's colour moving in the label's direction over a noisy background."""
    rng = np.random.default_rng(seed)
    video = rng.integers(60, 110, (frames, SIZE, SIZE, 3)).astype(np.float32)
    start = rng.uniform(8, 16, size=2)
    for t in range(frames):
        x, y = (start + DIRECTIONS[label % 4] * t * 0.4).astype(int) % (SIZE - 8)
        video[t, y : y + 8, x : x + 8] = COLOURS[label % 4]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, np.clip(video, 0, 255).astype(np.uint8), fps=fps)


def kinetics400(root: Path) -> Path:
    """3 classes (one label quoted with a comma), 6 train / 2 val / 2 test videos each, class
    folders for train only, and one annotated video that was never downloaded."""
    classes = ["air drumming", "dancing, ballet", "juggling balls"]
    ann = root / "annotations"
    ann.mkdir(parents=True)
    counts = {"train": 6, "val": 2, "test": 2}
    for s, (split, per_class) in enumerate(counts.items()):
        lines = ["label,youtube_id,time_start,time_end,split"]
        for c, name in enumerate(classes):
            for i in range(per_class):
                youtube_id = f"{split[:2]}{c}{i:02d}xxxxxxx"[:11]
                lines.append(f'"{name}",{youtube_id},10,20,{split}')
                folder = root / split / name.replace(" ", "_") if split == "train" else root / split
                seed = 1000 * s + 100 * c + i
                clip(folder / f"{youtube_id}_000010_000020.mp4", c, seed=seed)
        if split == "train":
            lines.append('"air drumming",NOTDOWNLOAD,0,10,train')
        (ann / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


THUMOS_VAL = "TH14_Temporal_annotations_validation/annotation"
THUMOS_TEST = "TH14_Temporal_Annotations_Test/annotations/annotation"


def thumos14(root: Path) -> Path:
    """4 validation and 3 test videos of 96 frames at 30 fps with two classes of actions in
    seconds (odd whitespace, an Ambiguous row, a segment running past the end)."""
    classes = {7: "BaseballPitch", 9: "BasketballDunk"}
    files: dict[str, list[str]] = {}
    for split, folder, ann, count in (
        ("validation", "validation", THUMOS_VAL, 4),
        ("test", "test", THUMOS_TEST, 3),
    ):
        for i in range(count):
            name = f"video_{split}_{i + 1:07d}"
            label = i % 2
            clip(root / folder / f"{name}.mp4", label, frames=96, seed=100 + i)
            suffix = "val" if split == "validation" else "test"
            key = f"{ann}/{list(classes.values())[label]}_{suffix}.txt"
            files.setdefault(key, []).append(f"{name}  0.8\t2.2 ")
            if i == 0:
                files.setdefault(key, []).append(f"{name} 2.5 3.9")  # past the end (3.2 s)
                files[f"{ann}/Ambiguous_{suffix}.txt"] = [f"{name} 0.1 0.5"]
    files[f"{THUMOS_VAL}/Class Index_Detection.txt"] = [f"{k} {v}" for k, v in classes.items()]
    for name, lines in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def ucf_crime(root: Path) -> Path:
    """Abnormal (Abuse, Arson) and normal videos of 64 frames in mixed folder layouts, the train
    list, and the test intervals (inclusive frames, -1 for a missing second interval)."""
    train, test = [], []
    for i in range(4):
        clip(root / "Anomaly-Videos" / "Abuse" / f"Abuse{i + 1:03d}_x264.mp4", 0, frames=64, seed=i)
        train.append(f"Abuse/Abuse{i + 1:03d}_x264.mp4")
        normal = f"Normal_Videos{i + 1:03d}_x264.mp4"
        clip(root / "Training-Normal-Videos" / normal, 2, frames=64, seed=20 + i)
        train.append(f"Training_Normal_Videos_Anomaly/{normal}")
    for i in range(3):
        name = f"Arson{i + 11:03d}_x264.mp4"
        clip(root / "Videos" / "Arson" / "Arson" / name, 0, frames=64, seed=40 + i)
        test.append(f"{name}  Arson  10  40  -1  -1  ")
        normal = f"Normal_Videos_{i + 3:03d}_x264.mp4"
        clip(root / "Testing_Normal_Videos_Anomaly" / normal, 2, frames=64, seed=60 + i)
        test.append(f"{normal}\tNormal\t-1\t-1\t-1\t-1")
    splits = root / "Anomaly_Train_Test_splits"
    splits.mkdir(parents=True)
    (splits / "Anomaly_Train.txt").write_text("\n".join(train) + "\n")
    (splits / "Temporal_Anomaly_Annotation_for_Testing_Videos.txt").write_text(
        "\n".join(test) + "\n"
    )
    return root


VISPR_LABELS = ("a4_gender", "a9_face_complete", "a10_face_partial", "a17_color")


def vispr(root: Path, *, train: int = 16, test: int = 8) -> Path:
    """Images whose colour blocks show their privacy labels (one grey image), JSON labels with
    paths relative to the root, and the split list files."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        listed = []
        for i in range(count):
            image_id = f"2017_{1 if split == 'train' else 2}{i:07d}"
            labels = [a for a in VISPR_LABELS if rng.uniform() < 0.5] or ["a0_safe"]
            pixels = rng.integers(60, 110, (40, 48, 3)).astype(np.float32)
            for j, attribute in enumerate(VISPR_LABELS):
                if attribute in labels:
                    pixels[4 + 9 * j : 12 + 9 * j, 4:40] = COLOURS[j]
            image = Image.fromarray(pixels.astype(np.uint8))
            if i == 1:
                image = image.convert("L")  # a grey image
            path = root / "images" / f"{split}2017" / f"{image_id}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
            doc = {"image_path": f"images/{split}2017/{image_id}.jpg", "labels": labels}
            ann = root / "annotations" / f"{split}2017" / f"{image_id}.json"
            ann.parent.mkdir(parents=True, exist_ok=True)
            ann.write_text(json.dumps(doc))
            listed.append(f"annotations/{split}2017/{image_id}.json")
        (root / f"{split}2017.txt").write_text("\n".join(listed) + "\n")
    return root


def pa_hmdb51(root: Path, *, frames: int = 40) -> tuple[Path, Path]:
    """PA-HMDB51's annotation folder and HMDB51 .avi files (4 videos of 2 classes): a face (the
    colour block VISPR's fake images use for a10_face_partial) shows in the first half of each
    video only, and the JSON says so with inclusive frame ranges (one code given as a list)."""
    import av

    annotations, videos = root / "PA_HMDB51", root / "hmdb51"
    folder = annotations / "PrivacyAttributes"
    folder.mkdir(parents=True)
    half = frames // 2
    for action in ("brush_hair", "cartwheel"):
        entries = {}
        for i in range(2):
            name = f"clip{i}_{action}_f_cm_np1_le_med_{i}.avi"
            path = videos / action / name
            path.parent.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(i)
            with av.open(str(path), "w") as container:
                stream = container.add_stream("mpeg4", rate=30)
                stream.width = stream.height = SIZE
                stream.pix_fmt = "yuv420p"
                for t in range(frames):
                    pixels = rng.integers(60, 110, (SIZE, SIZE, 3)).astype(np.uint8)
                    if t < half:
                        pixels[8:16, 4:28] = COLOURS[2].astype(np.uint8)
                    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                    container.mux(stream.encode(frame))
                container.mux(stream.encode())
            entries[name] = {
                "face": [[0, half - 1, [1]], [half, frames - 1, 0]],
                "gender": [[0, frames - 1, 1]],
                "review": True,
            }
        (folder / f"{action}.json").write_text(json.dumps(entries, indent=1))
    return annotations, videos
