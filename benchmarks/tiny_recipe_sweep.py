"""Tiny-encoder recipe sweep: build recipe variants, extract the benchmark with each, probe raw.

Each variant is scored the way issue 3 scores the default encoder: a linear action probe on the
raw features of the benchmark's test split and MLP / linear attackers on the privacy split
(person attributes, static and normal clips). Variants run in parallel processes (sharing one
GPU when there is one: training the tiny model is launch-bound, so several fit side by side).

    python -m benchmarks.tiny_recipe_sweep --workdir /tmp/sweep --device cuda --json sweep.json
    python -m benchmarks.tiny_recipe_sweep --smoke --workdir /tmp/sweep_smoke   # CPU, seconds

The build's wall time on 2 CPU cores is not measured here (a GPU sweep says nothing about it):
steps x seconds_per_step from a short CPU build does.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

log = logging.getLogger("benchmarks.tiny_recipe_sweep")


def _variant(tubelet: int, steps: int, appearance: str = "none", weight: float = 1.0) -> dict:
    return dict(
        tubelet_size=tubelet,
        motion_filters=64 if tubelet == 4 else 96,
        max_steps=steps,
        appearance=appearance,
        appearance_weight=weight,
    )


VARIANTS: dict[str, dict[str, Any]] = {
    "t4_1500": _variant(4, 1500),
    "t4_1000_attr": _variant(4, 1000, "attributes", 0.5),
    "t8_1500_attr": _variant(8, 1500, "attributes", 0.5),
    "t8_1500_thumb": _variant(8, 1500, "thumbnail"),
    "t16_2000": _variant(16, 2000),
    "t16_2000_attr": _variant(16, 2000, "attributes", 0.5),
    "t16_2000_thumb": _variant(16, 2000, "thumbnail"),
    "t16_4000_attr": _variant(16, 4000, "attributes", 0.5),
    "t16_2000_hist": {**_variant(16, 2000, "histogram"), "histogram_power": 0.5},
    "t16_2000_hist3": {**_variant(16, 2000, "histogram", 3.0), "histogram_power": 0.5},
    "t16_2000_hist8": {**_variant(16, 2000, "histogram", 8.0), "histogram_power": 0.5},
    "t16_2000_hist3_p25": {**_variant(16, 2000, "histogram", 3.0), "histogram_power": 0.25},
    "default": {},  # the current TinyEncoderConfig defaults
}
EVAL_SPLITS = ("train", "val", "test", "privacy_train", "privacy_test")


def _generate(workdir: Path, scale: str, seeds: tuple[int, ...]) -> tuple[str, list[str]]:
    """The evaluation benchmark (seed 0, scored splits) and pretrain splits for every seed."""
    from pipeline.data.synth import SynthConfig, generate_benchmark

    bench = generate_benchmark(
        workdir / "bench", SynthConfig(scale=scale, seed=0, splits=EVAL_SPLITS)
    )
    pretrain = [
        generate_benchmark(
            workdir / f"pretrain-{s}", SynthConfig(scale=scale, seed=s, splits=("pretrain",))
        ).manifest_path
        for s in seeds
    ]
    return str(bench.manifest_path), [str(p) for p in pretrain]


def run_variant(
    name: str,
    overrides: dict[str, Any],
    bench_manifest: str,
    pretrain_manifests: list[str],
    workdir: str,
    device: str,
    eval_seeds: tuple[int, ...],
    threads: int,
) -> dict[str, Any]:
    """Build, extract and probe one recipe variant; returns its scores."""
    import torch

    from pipeline.encoders.tiny import TinyEncoderConfig, build_tiny_encoder
    from pipeline.extract import ExtractConfig, extract
    from pipeline.probes.evaluate import EvalConfig, evaluate

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(message)s")
    out = Path(workdir) / name
    config = replace(TinyEncoderConfig(), **overrides)
    t0 = time.perf_counter()
    report = build_tiny_encoder(pretrain_manifests, out / "encoder", config, device=device)
    built = time.perf_counter() - t0
    extract(
        bench_manifest,
        str(out / "encoder"),
        out / "raw.zarr",
        ExtractConfig(device=device, workers=threads, splits=EVAL_SPLITS, batch_size=128),
    )
    extracted = time.perf_counter() - t0 - built
    ev = evaluate(
        {"raw": str(out / "raw.zarr")},
        out / "report",
        EvalConfig(seeds=eval_seeds, probes=("action", "privacy"), threads=threads),
    )
    data = json.loads((out / "report" / "report.json").read_text())
    del ev
    return {
        "variant": name,
        "recipe": {k: v for k, v in asdict(config).items() if k in overrides},
        "build": asdict(report),
        "seconds": {"build": round(built, 1), "extract": round(extracted, 1)},
        "summary": data["summary"]["raw"],
        "summary_ci": data["summary_ci"]["raw"],
        "privacy_probes": {
            k: v.get("metrics")
            for k, v in data["methods"]["raw"]["probes"].items()
            if k.startswith("privacy")
        },
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="torch/decode threads per variant")
    p.add_argument("--scale", default="default")
    p.add_argument("--json")
    p.add_argument("--smoke", action="store_true", help="tiny data, 20 steps, one variant")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    workdir = Path(args.workdir)
    names = args.variants.split(",")
    scale, seeds, eval_seeds = args.scale, (0, 1, 2), (0, 1, 2)
    variants = {n: dict(VARIANTS[n]) for n in names}
    if args.smoke:
        scale, seeds, eval_seeds = "tiny", (0,), (0,)
        variants = {n: {**v, "max_steps": 20, "heldout_videos": 2} for n, v in variants.items()}
    t0 = time.perf_counter()
    bench, pretrain = _generate(workdir, scale, seeds)
    log.info("data generated in %.0f s", time.perf_counter() - t0)
    results: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=args.parallel, mp_context=ctx) as pool:
        futures = {
            pool.submit(
                run_variant,
                n,
                v,
                bench,
                pretrain,
                str(workdir),
                args.device,
                eval_seeds,
                args.threads,
            ): n
            for n, v in variants.items()
        }
        for future in as_completed(futures):
            name = futures[future]
            try:
                results.append(future.result())
            except Exception as exc:  # one failed variant must not lose the others
                log.exception("variant %s failed", name)
                results.append({"variant": name, "error": repr(exc)})
            # Written after every variant: a run cut off at its time limit keeps what it finished.
            doc = {"device": args.device, "scale": scale, "cpus": os.cpu_count(),
                   "results": results}  # fmt: skip
            if args.json:
                Path(args.json).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    for r in results:
        s = r.get("summary") or {}
        b = r.get("build") or {}
        print(
            f"{r['variant']:16s} action {s.get('action_top1')} mlp_static "
            f"{s.get('privacy_cmap_mlp')} mlp_clip {s.get('privacy_cmap_mlp_motion')} linear "
            f"{s.get('privacy_cmap_linear')} chance {s.get('privacy_chance')} heldout "
            f"{b.get('heldout_accuracy')} s/step {b.get('seconds_per_step')} {r.get('error', '')}"
        )


if __name__ == "__main__":
    main()
