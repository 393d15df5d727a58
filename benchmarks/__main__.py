"""`python -m benchmarks run [--quick] --json out.json`: stage benchmarks as side-by-side ratios."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch


def _machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--quick", action="store_true", help="small data, fewer repetitions")
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--encoder", default="tiny", help="encoder directory or 'tiny'")
    parser.add_argument("--scale", default=None, help="benchmark scale (default: tiny if --quick)")
    args = parser.parse_args()

    from benchmarks import extraction
    from pipeline.data.synth import SynthConfig, generate_benchmark
    from pipeline.encoders.tiny import resolve_encoder_source

    scale = args.scale or ("tiny" if args.quick else "small")
    repetitions = 2 if args.quick else 3
    work = Path(tempfile.mkdtemp(prefix="anon-store-bench-"))
    splits = ("train", "val", "test", "tad_train", "tad_test")
    generate_benchmark(work / "bench", SynthConfig(scale=scale, seed=0, splits=splits))
    encoder = resolve_encoder_source(args.encoder)
    results = {
        "machine": _machine(),
        "repetitions": repetitions,
        "scale": scale,
        "extraction": extraction.run(work / "bench" / "manifest.parquet", encoder, repetitions),
    }
    results["ratios"] = {
        "extract_vs_encoder": results["extraction"]["extract_vs_encoder"],
        "extract_vs_naive": results["extraction"]["extract_vs_naive"],
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
