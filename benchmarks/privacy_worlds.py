"""Privacy and utility of training recipes on the raw stores of several worlds, side by side.

    python -m benchmarks.privacy_worlds --store WORLD=raw.zarr [--store ...] --out DIR \
        [--variant NAME[:key=value,...]] [--seeds 0,1,2] [--workers 2] [--epochs N]

For every store and every variant (a preset, optionally with settings changed: `recommended`,
`reference`, `recommended:w_class=10,w_swap=0`), one adapter is trained per seed (side by side
in worker processes, one torch thread each), applied in memory with sanitize's kernel, and
judged by `evaluate`'s action probe and privacy attackers (MLP and linear, on static and on
normal clips; probe seed i on adapter i, so intervals cover both). Prints and writes
(DIR/privacy_worlds.json) the cut of each attacker's person cMAP relative to the raw features,
the action top-1 change in points, and the raw features' own numbers (chance included).
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

SETTINGS = {
    "mlp_static": ("privacy_mlp_static", "cmap_person"),
    "mlp_clip": ("privacy_mlp_clip", "cmap_person"),
    "linear_static": ("privacy_linear_static", "cmap_person"),
    "linear_clip": ("privacy_linear_clip", "cmap_person"),
    "action": ("action", "top1"),
}


def parse_variant(text: str) -> tuple[str, str, dict[str, Any]]:
    """ "name[:k=v,...]" -> (label, preset, overrides); numbers parsed, anything else (arch,
    selection_privacy) kept a string."""
    preset, _, rest = text.partition(":")
    overrides: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            overrides[key] = float(value)
        except ValueError:
            overrides[key] = value
        if key == "epochs":
            overrides[key] = int(float(value))
    return text, preset, overrides


def _train(raw: str, out: str, preset: str, overrides: dict[str, Any], seed: int) -> str:
    from pipeline.aam.from_store import train_aam
    from pipeline.aam.presets import preset_config
    from pipeline.threads import torch_threads

    if (Path(out) / "model.safetensors").is_file():
        return out  # finished in an earlier run of this script
    config = preset_config(preset, {**overrides, "seed": seed}, overwrite=True)
    with torch_threads(1):
        train_aam(raw, out, config)
    return out


def run(
    stores: dict[str, str],
    out: Path,
    variants: list[str],
    seeds: tuple[int, ...],
    workers: int,
) -> dict[str, Any]:
    from pipeline.probes import EvalConfig, evaluate
    from pipeline.sanitize.in_memory import adapter_transform

    out.mkdir(parents=True, exist_ok=True)
    parsed = [parse_variant(v) for v in variants]
    jobs = {
        (world, label, seed): (raw, str(out / world / "adapters" / f"{_slug(label)}-s{seed}"),
                               preset, overrides, seed)
        for world, raw in stores.items()
        for label, preset, overrides in parsed
        for seed in seeds
    }  # fmt: skip
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {key: pool.submit(_train, *job) for key, job in jobs.items()}
        adapters = {key: f.result() for key, f in futures.items()}
    train_seconds = time.perf_counter() - started
    print(f"[{train_seconds:.0f} s] trained {len(adapters)} adapters", file=sys.stderr)
    results: dict[str, Any] = {"seeds": list(seeds), "variants": variants, "worlds": {}}
    for world, raw in stores.items():
        methods: dict[str, Any] = {"raw": raw}
        for label, _, _ in parsed:
            methods[label] = [adapter_transform(adapters[(world, label, s)]) for s in seeds]
        config = EvalConfig(seeds=seeds, probes=("action", "privacy"), workers=workers)
        report = evaluate(methods, out / world / "report", config, ablations=[])
        results["worlds"][world] = _summarise(report.data)
        print(format_table(world, results["worlds"][world]), file=sys.stderr)
    results["seconds"] = round(time.perf_counter() - started, 1)
    (out / "privacy_worlds.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _metric(method: dict[str, Any], probe: str, key: str) -> tuple[float, float, list[float]]:
    entry = method["probes"][probe]
    runs = [r[key] for r in entry["runs"] if r.get(key) is not None]
    m = entry["metrics"][key]
    return float(m["mean"]), float(m.get("ci") or 0.0), [float(r) for r in runs]


def _summarise(report: dict[str, Any]) -> dict[str, Any]:
    methods = report["methods"]
    raw = methods["raw"]
    chance = _metric(raw, "privacy_mlp_static", "chance_person")[0]
    summary: dict[str, Any] = {"chance_person": chance, "methods": {}}
    raw_means = {name: _metric(raw, *where)[0] for name, where in SETTINGS.items()}
    for name, method in methods.items():
        row: dict[str, Any] = {}
        for setting, where in SETTINGS.items():
            mean, ci, runs = _metric(method, *where)
            row[setting] = {"mean": mean, "ci": ci, "runs": runs}
            if setting == "action":
                row[setting]["change_points"] = 100 * (mean - raw_means[setting])
            else:
                row[setting]["cut"] = 1 - mean / raw_means[setting]
                cuts = [1 - r / raw_means[setting] for r in runs]
                row[setting]["cut_runs"] = cuts
        summary["methods"][name] = row
    return summary


def format_table(world: str, summary: dict[str, Any]) -> str:
    lines = [f"{world} (chance {100 * summary['chance_person']:.1f})",
             "| method | MLP static | MLP normal | linear static | linear normal | action |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in summary["methods"].items():
        cells = []
        for setting in SETTINGS:
            m = row[setting]
            text = f"{100 * m['mean']:.1f} ± {100 * m['ci']:.1f}"
            if "cut" in m and name != "raw":
                text += f" ({-100 * m['cut']:+.1f}%)"
            if "change_points" in m and name != "raw":
                text += f" ({m['change_points']:+.1f})"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", action="append", required=True, help="WORLD=raw.zarr")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", action="append", default=None)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    stores = dict(item.split("=", 1) for item in args.store)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    run(stores, args.out, args.variant or ["recommended"], seeds, args.workers)


if __name__ == "__main__":
    main()
