"""Stage benchmarks as side-by-side ratios.

    python -m benchmarks run [--quick] [--json out.json]     # CPU (or CUDA when present)
    python -m benchmarks gpu [--smoke] [--json out.json]     # VideoMAE-Base on CUDA (gpu.py)

`run` generates the synthetic benchmark (tiny with --quick, small otherwise), builds a random
VideoMAE of the tiny encoder's architecture (or uses the cached tiny encoder, or --encoder DIR),
then measures extraction, decoding, training, sanitize, codecs and growth. Every benchmark runs
the variants it compares alternately in one process (sanitize: one child process per run, for
peak memory), on the same data, `repetitions` times, and reports medians and ratios. Nothing is
downloaded. The JSON has a top-level `ratios` object; a short table is printed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import encoder_source, machine, rnd

RATIO_KEYS = (
    "extract_vs_encoder",
    "extract_vs_ceiling",
    "extract_vs_encoder_224",
    "decode_process_scaling",
    "extract_vs_naive",
    "train_cached_vs_reencode",
    "train_loader_efficiency",
    "sanitize_vs_copy",
    "sanitize_memory_growth",
    "append_vs_reextract",
)
TARGETS = {
    "extract_vs_encoder": ">= 0.9 (GPU; CPU: extract_vs_ceiling)",
    "extract_vs_ceiling": ">= 0.9",
    "extract_vs_encoder_224": ">= 0.9",
    "decode_process_scaling": ">= 1.7 (2 idle cores)",
    "extract_vs_naive": ">= 3",
    "train_cached_vs_reencode": "> 1 (what the store saves)",
    "train_loader_efficiency": ">= 0.91 (overhead <= 10%)",
    "sanitize_vs_copy": ">= 0.8",
    "sanitize_memory_growth": "~1 (flat)",
    "append_vs_reextract": "<< 1 (~ the new share + fixed costs)",
}
SPLITS = ("train", "val", "test", "tad_train", "tad_test")


class _Clock:
    """Progress lines on stderr with the elapsed time (the quick run has a 5-minute budget)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f} s] {message}", file=sys.stderr)


def sizes(quick: bool) -> dict[str, Any]:
    """Workload sizes: --quick fits 5 minutes on 2 shared cores."""
    if quick:
        return {"scale": "tiny", "repetitions": 2, "latent_videos": 2000, "sanitize_videos": 1500}
    return {"scale": "small", "repetitions": 3, "latent_videos": 8000, "sanitize_videos": 5000}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks import append, codecs, decoding, extraction, growth, sanitize_vs_copy, training
    from pipeline.data.manifest import read_manifest, write_manifest
    from pipeline.data.synth import SynthConfig, generate_benchmark
    from pipeline.encoders.registry import load_encoder

    clock = _Clock()
    size = sizes(args.quick)
    if args.scale:
        size["scale"] = args.scale
    if args.repetitions:
        size["repetitions"] = args.repetitions
    reps = size["repetitions"]
    work = Path(tempfile.mkdtemp(prefix="anon-store-bench-"))
    results: dict[str, Any] = {"machine": machine(), "repetitions": reps, "sizes": size}
    try:
        bench = work / "bench"
        generate_benchmark(bench, SynthConfig(scale=size["scale"], seed=0, splits=SPLITS))
        manifest = bench / "manifest.parquet"
        encoder_dir, described = encoder_source(args.encoder, work)
        encoder = load_encoder(encoder_dir)
        results["encoder"] = {"source": described, "repr": repr(encoder)}
        clock(f"benchmark ({size['scale']}) and encoder ready: {described}")

        results["extraction"] = extraction.run(manifest, encoder_dir, reps)
        clock("extraction done")
        results["extraction_224"] = extraction.run_encoder_224(manifest, work, reps)
        clock("extraction with a ViT-S encoder at 224 px done")
        results["decoding"] = decoding.run(manifest, encoder, reps)
        results["decoding"]["processes"] = decoding.process_scaling(manifest, encoder, reps)
        results["bytes_per_clip"] = decoding.bytes_per_clip(manifest, encoder)
        clock("decoding done")

        # Growth of extract on the train + val videos, whose 4x store feeds training below.
        base = read_manifest(manifest).select("train", "val")
        base_path = write_manifest(bench / "train-val.parquet", base.table, base.info)
        raw_4x = work / "raw-4x.zarr"
        extract_growth = growth.extract_growth(base_path, encoder_dir, reps, keep=raw_4x)
        clock("extract growth done")
        appending = work / "append"
        appending.mkdir()
        results["append"] = append.run(
            Path(extract_growth["manifest_4x"]), encoder_dir, appending, reps
        )
        clock("append done")

        results["training"] = {
            "cached_vs_reencode": training.cached_vs_reencode(
                raw_4x, Path(extract_growth["manifest_4x"]), encoder, reps, batch_size=8
            ),
            "loader_efficiency": training.loader_efficiency(
                size["latent_videos"], encoder.hidden_size, reps
            ),
        }
        clock("training done")
        results["codecs"] = codecs.run(raw_4x, reps)
        clock("codecs done")

        sanitize_work = work / "sanitize"
        sanitize_work.mkdir()
        results["sanitize"] = sanitize_vs_copy.suite(
            sanitize_work, size["sanitize_videos"], encoder.hidden_size, reps
        )
        clock("sanitize done")
        results["growth"] = {
            "extract": extract_growth,
            "train": growth.train_growth(size["latent_videos"] // 2, encoder.hidden_size, reps),
            "sanitize": {
                "videos": {
                    k: size["sanitize_videos"] * int(k[:-1])
                    for k in results["sanitize"]["growth_seconds"]
                },
                "seconds": results["sanitize"]["growth_seconds"],
                "exponent": results["sanitize"]["growth_exponent"],
            },
        }
        clock("growth done")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ex, tr = results["extraction"], results["training"]
    bpc = results["bytes_per_clip"]
    results["ratios"] = {
        "extract_vs_encoder": ex["extract_vs_encoder"],
        "extract_vs_ceiling": ex["extract_vs_ceiling"],
        "extract_vs_encoder_224": results["extraction_224"]["extract_vs_encoder_224"],
        "decode_process_scaling": results["decoding"]["processes"]["decode_process_scaling"],
        "bytes_per_clip_to_encoder": {
            "normal": round(bpc["normal"]),
            "static": round(bpc["static"]),
        },
        "extract_vs_naive": ex["extract_vs_naive"],
        "train_cached_vs_reencode": tr["cached_vs_reencode"]["train_cached_vs_reencode"],
        "train_loader_efficiency": tr["loader_efficiency"]["train_loader_efficiency"],
        "sanitize_vs_copy": results["sanitize"]["sanitize_vs_copy"],
        "sanitize_memory_growth": results["sanitize"]["sanitize_memory_growth"],
        "append_vs_reextract": results["append"]["append_vs_reextract"],
        "machine": results["machine"],
        "repetitions": reps,
    }
    results["seconds"] = rnd(time.perf_counter() - clock.started, 1)
    return results


def table(results: dict[str, Any]) -> str:
    """The short table printed after a run (and pasted into the README)."""
    r = results["ratios"]
    ex, dec = results["extraction"], results["decoding"]
    tr = results["training"]
    san, cod, gro = results["sanitize"], results["codecs"], results["growth"]
    m = results["machine"]
    details = {
        "extract_vs_encoder": (
            f"pipeline {ex['pipeline_clips_per_s']:.0f} clips/s, encoder alone "
            f"{ex['encoder_alone_clips_per_s']:.0f} clips/s"
        ),
        "extract_vs_naive": f"naive loop {ex['naive_clips_per_s']:.1f} clips/s",
        "extract_vs_ceiling": (
            f"pipeline {ex['pipeline_clips_per_s']:.0f} clips/s, ceiling "
            f"{ex['ceiling_clips_per_s']:.0f} (encoder + decode CPU at the encoder's cores)"
        ),
        "extract_vs_encoder_224": (
            f"ViT-S 224 px: pipeline {results['extraction_224']['pipeline_clips_per_s']:.2f} "
            f"clips/s, encoder alone "
            f"{results['extraction_224']['encoder_alone_clips_per_s']:.2f} clips/s"
        ),
        "decode_process_scaling": (
            "decode + sample clips/s, processes: "
            + ", ".join(f"{n}: {v:.0f}" for n, v in dec["processes"]["clips_per_s"].items())
        ),
        "train_cached_vs_reencode": (
            f"epoch {tr['cached_vs_reencode']['cached_epoch_s'] * 1e3:.0f} ms cached vs "
            f"{tr['cached_vs_reencode']['reencode_epoch_s']:.2f} s re-encoding"
        ),
        "train_loader_efficiency": (
            f"epoch {tr['loader_efficiency']['epoch_s'] * 1e3:.0f} ms vs pure compute "
            f"{tr['loader_efficiency']['pure_compute_s'] * 1e3:.0f} ms"
        ),
        "sanitize_vs_copy": (
            f"{san['default_precision']}; float32 {san['vs_copy']['sanitize_float32']:.2f}, "
            f"no adapter {san['vs_copy']['pipeline_identity']:.2f}; CPU s: copy "
            f"{san['cpu_seconds']['copy']:.2f}, no adapter "
            f"{san['cpu_seconds']['pipeline_identity']:.2f}, "
            f"{san['cpu_seconds']['sanitize_' + san['default_precision']]:.2f}"
        ),
        "sanitize_memory_growth": (
            f"peak RSS growth {san['memory_growth_mb']['1x']:.0f} MB at 1x, "
            f"{san['memory_growth_mb']['4x']:.0f} MB at 4x"
        ),
        "append_vs_reextract": (
            f"{results['append']['new_videos']} new videos: append "
            f"{results['append']['append_s']:.1f} s vs re-extract "
            f"{results['append']['reextract_s']:.1f} s"
        ),
    }
    rows = [("ratio", "value", "target", "detail")]
    for key in RATIO_KEYS:
        rows.append((key, f"{r[key]:.2f}", TARGETS[key], details[key]))
    cpu = ex["cpu_ms_per_clip"]
    rows.append(
        (
            "extract CPU ms/clip",
            f"pipeline {cpu['pipeline']:.2f}",
            "",
            f"encoder alone {cpu['encoder_alone']:.2f}, decode + sample "
            f"{cpu['decode_and_sample']:.2f}: ceiling {ex['cpu_ceiling']:.2f} with every core busy",
        )
    )
    bpc = results["bytes_per_clip"]
    rows.append(
        (
            "bytes per clip to the encoder",
            f"normal {bpc['normal']:.0f}, static {bpc['static']:.0f}",
            "",
            f"uint8 unique frames; float32 clip before: {bpc['float32_clip_before']:.0f} "
            f"({bpc['size']} px)",
        )
    )
    fps = ", ".join(f"{n}: {v:.0f}" for n, v in dec["frames_per_s"].items())
    rows.append(
        (
            "decode frames/s by threads",
            fps,
            "",
            f"stops scaling at {dec['stops_scaling_at_workers']}",
        )
    )
    rows.append(
        (
            "growth exponent 1x-2x-4x",
            "extract {:.2f}, train {:.2f}, sanitize {:.2f}".format(
                gro["extract"]["exponent"], gro["train"]["exponent"], gro["sanitize"]["exponent"]
            ),
            "~1 (linear)",
            "",
        )
    )
    rows.append(
        (
            "features zstd-1 vs none",
            f"saves {cod['zstd1_saves'] * 100:.0f}%",
            "",
            f"write {cod['zstd1_write_vs_none']:.2f}x, read {cod['zstd1_read_vs_none']:.2f}x",
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        f"machine: {m['cpus']} CPU cores ({m['processor']}), torch {m['torch']}, "
        f"cuda {m['cuda'] or 'none'}, load average at start {m['load_average_at_start'][0]}; "
        f"{results['repetitions']} repetitions, medians; {results.get('seconds')} s",
    ]
    for i, row in enumerate(rows):
        lines.append(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if i == 0:
            lines.append("-|-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["run", "gpu"])
    parser.add_argument("--quick", action="store_true", help="small data, 2 repetitions (< 5 min)")
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--encoder", default="tiny", help="encoder directory, or 'tiny'")
    parser.add_argument("--scale", default=None, help="synthetic benchmark scale (tiny | small)")
    parser.add_argument("--repetitions", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="gpu: tiny sizes (runs on CPU)")
    args = parser.parse_args(argv)
    if args.command == "gpu":
        from benchmarks import gpu

        gpu.main(["--json", str(args.json)] * bool(args.json) + ["--smoke"] * args.smoke)
        return
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(table(results))


if __name__ == "__main__":
    main()
