"""What a world's pixels give away without any learned encoder: is it a fair held-out test?

    python -m benchmarks.world_bounds --world townsfolk [--world robots ...] --workdir DIR \
        [--scale small] [--json out.json]

For each world, renders the benchmark (or reuses DIR/<world>), cuts every video into the clips
extraction makes (64 px, 16 frames) and scores two hand-built descriptors with the probes'
protocol: the linear action top-1 (train -> test) of the camera-compensated motion statistics
(`pipeline.encoders.targets.motion_statistics`, 125 numbers per clip, mean over a video's clips),
and the MLP attacker's person cMAP (privacy_train -> privacy_test, static clips) of the colour
and colour x edge histograms (`colour_histogram`, `texture_histogram`), with chance. They are
references, not upper bounds: a learned encoder can do better. But when the motion statistics
reach far less than 80% linear action on a world and an encoder trained on that very world
does no better (FINDINGS in docs/privacy.md), the world's actions are not observable at 64 px
in 16 frames, and no encoder built elsewhere will meet the held-out bar there.
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
from pipeline.data.manifest import read_manifest
from pipeline.data.synth import SynthConfig, generate_benchmark
from pipeline.encoders.targets import colour_histogram, motion_statistics, texture_histogram


def _descriptors(root: Path, split: str, static: bool) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, descriptors [videos, n]) of one split: motion statistics of the normal
    clips, or colour + texture histograms (frequencies ** 0.25) of the static clips."""
    manifest = read_manifest(root / "manifest.parquet")
    table = manifest.table.to_pydict()
    sampling = ClipSampling()
    rows = np.flatnonzero(np.asarray(table["split"]) == split)
    out = []
    for i in rows:
        frames = decode_video(root / table["path"][i])
        clips = sample_video(frames, sampling, video_key=table["video_id"][i], with_windows=False)
        if static:
            x = clips.static
            d = torch.cat([colour_histogram(x, 4), texture_histogram(x, 3)], 1).pow(0.25)
        else:
            d = motion_statistics(clips.clips)
        out.append(d.mean(0).numpy())
    return rows, np.stack(out)


def world_bounds(root: Path) -> dict[str, Any]:
    """Linear action top-1 of the motion statistics, MLP person cMAP of the histograms."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    manifest = read_manifest(root / "manifest.parquet")
    table = manifest.table.to_pydict()
    actions = np.asarray(table["action"])
    train, x_train = _descriptors(root, "train", static=False)
    test, x_test = _descriptors(root, "test", static=False)
    scale = StandardScaler().fit(x_train)
    probe = LogisticRegression(max_iter=5000, C=0.5).fit(scale.transform(x_train), actions[train])
    top1 = float((probe.predict(scale.transform(x_test)) == actions[test]).mean())

    ptrain, p_train = _descriptors(root, "privacy_train", static=True)
    ptest, p_test = _descriptors(root, "privacy_test", static=True)
    scale = StandardScaler().fit(p_train)
    per_attribute, chance = {}, []
    for name, attribute in manifest.info.attributes.items():
        if attribute.role != "person":
            continue
        labels = np.asarray(table[f"attr_{name}"])
        mlp = MLPClassifier((128,), max_iter=2000, random_state=0)
        mlp.fit(scale.transform(p_train), labels[ptrain])
        scores = mlp.predict_proba(scale.transform(p_test))
        truth = labels[ptest]
        values = [v for v in mlp.classes_ if (truth == v).any()]
        column = {v: list(mlp.classes_).index(v) for v in values}
        per_attribute[name] = float(
            np.mean([average_precision_score(truth == v, scores[:, column[v]]) for v in values])
        )
        chance.append(float(np.mean([(truth == v).mean() for v in values])))
    return {
        "motion_linear_action_top1": round(top1, 3),
        "histogram_mlp_person_cmap": round(float(np.mean(list(per_attribute.values()))), 3),
        "chance_person_cmap": round(float(np.mean(chance)), 3),
        "per_attribute_ap": {k: round(v, 3) for k, v in per_attribute.items()},
        "videos": {
            "train": len(train),
            "test": len(test),
            "privacy_train": len(ptrain),
            "privacy_test": len(ptest),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", action="append", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    for world in args.world:
        root = args.workdir / world
        if not (root / "manifest.parquet").is_file():
            generate_benchmark(root, SynthConfig(scale=args.scale, world=world))
        results[world] = world_bounds(root)
        print(world, json.dumps(results[world]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
