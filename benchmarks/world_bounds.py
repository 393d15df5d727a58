"""What a world's pixels give away without any learned encoder: is it a fair held-out test?

    python -m benchmarks.world_bounds --world townsfolk [--world robots ...] --workdir DIR \
        [--scale small] [--size 64] [--json out.json]

For each world, renders the benchmark's probed splits (or reuses DIR/<world>-<scale>-<size>px),
cuts every video into the clips extraction makes (64 px, 16 frames) and hands two hand-built
descriptors, in place of an encoder's embeddings, to the probes `evaluate` runs: the linear
action probe (train -> test, weight decay chosen on val) on the camera-compensated motion
statistics of each normal clip (`pipeline.encoders.targets.motion_statistics`, 125 numbers),
and the MLP attacker's person cMAP (privacy_train -> privacy_test, static clips) on the colour
and colour x edge histograms of each static clip (`colour_histogram`, `texture_histogram`),
with chance; `--size` renders and cuts at another resolution (do the pixels, or the encoder,
limit a world?). They are references, not upper bounds: a learned encoder can do better. But
when the motion statistics reach far less than 80% linear action on a world and an encoder
trained on that very world does no better (docs/privacy.md), the world's actions are not
observable at 64 px in 16 frames, and no encoder built elsewhere will meet the held-out bar
there.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.data.clips import ClipSampling, sample_video
from pipeline.data.decode import decode_video
from pipeline.data.manifest import Manifest, read_manifest
from pipeline.data.synth import SynthConfig, generate_benchmark
from pipeline.data.synth.generate import read_benchmark_summary
from pipeline.encoders.targets import colour_histogram, motion_statistics, texture_histogram
from pipeline.probes.action import action_probe
from pipeline.probes.attacker import attack
from pipeline.probes.features import AttributeSpec, DatasetSpec, VideoSet

PROBED_SPLITS = ("train", "val", "test", "privacy_train", "privacy_test")


def descriptor_set(root: Path, manifest: Manifest, split: str, size: int) -> VideoSet:
    """A split's videos with descriptors in place of embeddings: motion statistics per normal
    clip, colour + texture histograms (frequencies ** 0.25) per static clip, cut at `size` px."""
    table = manifest.table.to_pydict()
    sampling = ClipSampling(size=size)
    rows = np.flatnonzero(np.asarray(table["split"]) == split)
    motion, histograms = [], []
    for i in rows:
        frames = decode_video(root / table["path"][i])
        clips = sample_video(frames, sampling, video_key=table["video_id"][i], with_windows=False)
        motion.append(motion_statistics(clips.clips).numpy())
        static = torch.cat(
            [colour_histogram(clips.static, 4), texture_histogram(clips.static, 3)], 1
        )
        histograms.append(static.pow(0.25).numpy())
    return VideoSet(
        video_id=np.asarray(table["video_id"])[rows],
        clip=np.stack(motion).astype(np.float32),
        static=np.stack(histograms).astype(np.float32),
        action=np.asarray(table["action"])[rows],
        attributes={n: np.asarray(table[f"attr_{n}"])[rows] for n in manifest.info.attributes},
    )


def world_bounds(root: Path) -> dict[str, Any]:
    """Linear action top-1 of the motion statistics, MLP person cMAP of the histograms, with
    clips cut at the size the benchmark in `root` was rendered at."""
    size = read_benchmark_summary(root).config.frame_size
    manifest = read_manifest(root / "manifest.parquet")
    info = manifest.info
    dataset = DatasetSpec(
        actions=tuple(info.actions),
        attributes={
            n: AttributeSpec(n, tuple(a.values), a.role) for n, a in info.attributes.items()
        },
    )
    splits = {s: descriptor_set(root, manifest, s, size) for s in PROBED_SPLITS}
    action = action_probe(splits["train"], splits["val"], splits["test"], len(info.actions), 0)
    privacy = attack(splits["privacy_train"], splits["privacy_test"], dataset, kind="mlp",
                     source="static", seed=0)  # fmt: skip
    return {
        "motion_linear_action_top1": round(action["top1"], 3),
        "histogram_mlp_person_cmap": round(privacy["cmap_person"], 3),
        "chance_person_cmap": round(privacy["chance_person"], 3),
        "per_attribute_ap": {n: round(privacy[f"ap_{n}"], 3) for n in dataset.person_attributes},
        "videos": {s: len(v) for s, v in splits.items()},
        "size": size,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", action="append", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--size", type=int, default=64, help="frame and clip size in pixels")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for world in args.world:
        root = args.workdir / f"{world}-{args.scale}-{args.size}px"
        if not (root / "manifest.parquet").is_file():
            config = SynthConfig(scale=args.scale, world=world, frame_size=args.size,
                                 splits=PROBED_SPLITS)  # fmt: skip
            generate_benchmark(root, config)
        results[world] = world_bounds(root)
        print(world, json.dumps(results[world]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
