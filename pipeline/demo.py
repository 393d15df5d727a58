"""The end-to-end demo: benchmark, tiny encoder, extract, train, sanitize, evaluate."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.aam.from_store import TrainAAMConfig, train_aam
from pipeline.aam.presets import preset_config
from pipeline.aam.trainer import TrainConfig
from pipeline.errors import ConfigError
from pipeline.extract import ExtractConfig, extract

log = logging.getLogger(__name__)

HELDOUT_SPLITS = ("train", "val", "test", "privacy_train", "privacy_test")
"""The held-out world's splits: adapter training and selection, the action probe, the attackers."""

ABLATIONS: dict[str, dict[str, float]] = {
    "aam_reference_objective": {"w_spread": 0.0, "w_swap": 0.0},
    "aam_no_privacy_loss": {"w_b": 0.0, "w_motion": 0.0, "w_spread": 0.0, "w_swap": 0.0},
    "aam_no_consistency": {"w_lc": 0.0},
    "aam_no_task_loss": {"w_t": 0.0},
}
"""The reference method's objectives alone (no appearance-removal extensions, same weights
otherwise), and the ablations of METHOD.md: the adapter trained without one of its objectives
(every privacy term off for "no privacy loss")."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs; defaults finish in minutes on 2 CPU cores."""

    scale: str = "default"
    """Benchmark scale: tiny | small | default."""
    seed: int = 0
    """Benchmark seed."""
    adapter_seeds: tuple[int, ...] = (0, 1, 2)
    """One adapter per seed for the headline method; probe seed i runs on adapter i."""
    training: TrainConfig = field(default_factory=lambda: preset_config().training)
    """Adapter training: the `recommended` preset, i.e. what `anon-store train` does with no
    flags (the reference objectives with weights tuned at this scale plus the appearance-removal
    extensions, pipeline.aam.losses and pipeline.aam.presets)."""
    arch: str = field(default_factory=lambda: preset_config().arch)
    """Adapter architecture (the preset's: attention over the clips of one video)."""
    ablations: bool = False
    """Also train and evaluate the ablations (one adapter each, seed 0): about 4 more minutes on
    2 cores, so `anon-store demo --ablations` only (the README's ablation rows come from it)."""
    baselines: tuple[str, ...] = ("leace",)
    """Baselines evaluated on the raw store."""
    fast_probes: bool = False
    """Smaller probe budgets (for tests)."""
    heldout_world: str | None = "townsfolk"
    """A synthetic world that neither the tiny encoder's build nor the choice of the recommended
    recipe saw: the demo also trains the default adapters on it (no re-tuning) and judges them
    (the held-out table). None skips it."""
    heldout_scale: str = "small"
    """Scale of the held-out world's benchmark (small keeps the demo within its minutes)."""
    sanitize_workers: int | None = None
    """Threads for sanitize (None = one per core)."""
    workers: int | None = None
    """Worker processes for training the adapters and for evaluating the methods side by side
    (None = one per core; the numbers do not depend on it)."""


@dataclass(frozen=True)
class DemoResult:
    """Paths and timings of a demo run."""

    workdir: str
    raw_store: str
    report_dir: str
    summary: dict[str, Any]
    table: str
    seconds: dict[str, float]
    heldout_table: str | None = None
    """The held-out world's table (raw vs the default adapters), None when skipped."""
    heldout_report_dir: str | None = None


Stage = Callable[[str], Any]


def _adapter(
    raw: Path, out: Path, config: DemoConfig, seed: int, changes: dict[str, float]
) -> Path:
    from pipeline.threads import torch_threads

    training = dataclasses.replace(config.training, seed=seed, **changes)
    # One thread: the adapter's matrices are small, and a second spinning thread made each step
    # 10-60x slower on a loaded 2-core machine (benchmarks/training.py).
    with torch_threads(1):
        train_aam(raw, out, TrainAAMConfig(training=training, arch=config.arch, overwrite=True))
    return out


def _eval_config(config: DemoConfig, **changes: Any) -> Any:
    """Probe seed i on adapter seed i (3 probe seeds for a single adapter); fast budgets for
    tests."""
    from pipeline.probes import EvalConfig

    one = len(config.adapter_seeds) <= 1
    seeds = (0, 1, 2) if one else tuple(range(len(config.adapter_seeds)))
    make = EvalConfig.fast if config.fast_probes else EvalConfig
    return make(seeds=seeds, workers=_workers(config), **changes)


def _workers(config: DemoConfig) -> int:
    return config.workers or os.cpu_count() or 1


Job = tuple[Path, Path, int, dict[str, float]]
"""(raw store, adapter directory, seed, weight changes) of one adapter to train."""


def _seed_jobs(raw: Path, out: Path, seeds: Sequence[int], prefix: str = "") -> dict[str, Job]:
    """One default-recipe adapter per seed on `raw`, into out/aam_seed<seed>."""
    return {f"{prefix}aam_seed{s}": (raw, out / f"aam_seed{s}", s, {}) for s in seeds}


def _train_adapters(jobs: dict[str, Job], config: DemoConfig) -> dict[str, Path]:
    """Train every job into its directory; independent jobs run side by side in worker
    processes (one torch thread each, in the order given), so the result does not depend on the
    count."""
    workers = min(len(jobs), _workers(config))
    if workers <= 1:
        return {
            name: _adapter(raw, out, config, seed, ch)
            for name, (raw, out, seed, ch) in jobs.items()
        }
    context = multiprocessing.get_context("spawn")  # no forked torch / thread state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            name: pool.submit(_adapter, raw, out, config, seed, changes)
            for name, (raw, out, seed, changes) in jobs.items()
        }
        return {name: future.result() for name, future in futures.items()}


def run_demo(
    workdir: str | Path,
    config: DemoConfig | None = None,
    *,
    encoder: str = "tiny",
    reporter: Callable[[str, str], None] | None = None,
    progress_for: Callable[[str], Any] | None = None,
) -> DemoResult:
    """Run every stage on the embedded default benchmark; each stage reuses finished outputs.

    ``reporter(stage, message)`` receives one line per finished stage; ``progress_for(stage)``
    may return a progress callback for a stage (the CLI passes rich bars).
    """
    from pipeline.data.synth import SynthConfig, generate_benchmark
    from pipeline.data.synth.config import SPLITS
    from pipeline.encoders.tiny import resolve_encoder_source
    from pipeline.extract.config import DEFAULT_EXCLUDED_SPLITS
    from pipeline.probes import BASELINES, evaluate
    from pipeline.sanitize import SanitizeConfig, sanitize
    from pipeline.sanitize.in_memory import adapter_transform

    config = config or DemoConfig()
    work = Path(workdir)
    if work.exists() and not work.is_dir():
        raise ConfigError(f"{work} exists and is not a directory: choose another --output")
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    say = reporter or (lambda stage, message: log.info("%s: %s", stage, message))
    bar = progress_for or (lambda stage: None)

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = fn()
        seconds[stage] = round(time.perf_counter() - started, 1)
        say(stage, f"done in {seconds[stage]:.1f} s")
        return value

    bench = work / "benchmark"
    if not (bench / "manifest.parquet").exists():
        # Not the pretrain split: extraction leaves it out, and the tiny encoder's build renders
        # its own. The other videos do not depend on it (SynthConfig.splits).
        splits = tuple(s for s in SPLITS if s not in DEFAULT_EXCLUDED_SPLITS)
        synth = SynthConfig(scale=config.scale, seed=config.seed, splits=splits)
        timed("synth", lambda: generate_benchmark(bench, synth, progress=bar("synth")))
    source = timed("encoder", lambda: resolve_encoder_source(encoder))
    raw = work / "raw.zarr"
    timed(
        "extract",
        # overwrite: a store left by an older encoder is re-extracted (the same one is a no-op).
        lambda: extract(bench / "manifest.parquet", source, raw, ExtractConfig(overwrite=True),
                        progress=bar("extract")),
    )  # fmt: skip

    heldout_work = work / f"heldout-{config.heldout_world}"
    heldout_raw = None
    if config.heldout_world:
        heldout_raw = _heldout_store(heldout_work, source, config, timed, bar)

    def sanitized(name: str, adapter: Path) -> str:
        out = work / "sanitized" / f"{name}.zarr"
        sanitize(raw, adapter, out, SanitizeConfig(overwrite=True, workers=config.sanitize_workers))
        return str(out)

    def train_and_sanitize() -> tuple[dict[str, Any], list[Path]]:
        # The first adapter goes through the real sanitize stage into a store; the other seeds
        # and the ablations are applied in memory by the same kernel (adapter_transform), which
        # saves writing a full store per adapter.
        # The held-out world's adapter (the first seed only: judged with 3 probe seeds, the
        # minutes go to the default benchmark's table; benchmarks/privacy_worlds.py runs 3 adapter
        # seeds per world) trains beside the default benchmark's, in the same pool, first: at
        # small scale the recipe's 2,280 steps are its 570 epochs.
        heldout_jobs: dict[str, Job] = {}
        if heldout_raw is not None:
            first = config.adapter_seeds[:1]
            heldout_jobs = _seed_jobs(heldout_raw, heldout_work / "adapters", first, "heldout/")
        jobs = {**heldout_jobs, **_seed_jobs(raw, work / "adapters", config.adapter_seeds)}
        if config.ablations:
            jobs.update({name: (raw, work / "adapters" / name, 0, changes)
                         for name, changes in ABLATIONS.items()})  # fmt: skip
        adapters = _train_adapters(jobs, config)
        aam = [
            sanitized(name, adapters[name]) if k == 0 else adapter_transform(adapters[name])
            for k, name in enumerate(f"aam_seed{seed}" for seed in config.adapter_seeds)
        ]
        stores: dict[str, Any] = {"aam": aam}
        stores.update(
            {name: adapter_transform(adapters[name]) for name in jobs if name in ABLATIONS}
        )
        return stores, [adapters[name] for name in heldout_jobs]

    stores, heldout_adapters = timed("train+sanitize", train_and_sanitize)
    methods: dict[str, Any] = {"raw": str(raw), "aam": stores.pop("aam")}
    methods.update({name: BASELINES[name] for name in config.baselines})
    methods.update(stores)
    eval_config = _eval_config(config)
    report_dir = work / "report"
    report = timed(
        "evaluate", lambda: evaluate(methods, report_dir, eval_config, progress=bar("evaluate"))
    )
    heldout = None
    if heldout_raw is not None:
        heldout = _heldout_evaluate(heldout_work, heldout_raw, config, heldout_adapters, timed, bar)
    return DemoResult(
        workdir=str(work),
        raw_store=str(raw),
        report_dir=str(report_dir),
        summary=report.summary,
        table=report.headline_table(),
        seconds=seconds,
        heldout_table=None if heldout is None else heldout.headline_table(),
        heldout_report_dir=None if heldout is None else str(heldout.output_dir),
    )


def _heldout_store(
    work: Path,
    encoder_source: str,
    config: DemoConfig,
    timed: Callable[[str, Callable[[], Any]], Any],
    bar: Callable[[str], Any],
) -> Path:
    """Synth and extract the held-out world (what the action probe and attackers read)."""
    from pipeline.data.synth import SynthConfig, generate_benchmark

    bench = work / "benchmark"
    if not (bench / "manifest.parquet").exists():
        # Only what the action probe and the attackers read: the long untrimmed / anomaly videos
        # and the pretrain split would double the minutes this costs.
        synth = SynthConfig(scale=config.heldout_scale, seed=config.seed,
                            world=config.heldout_world, splits=HELDOUT_SPLITS)  # fmt: skip
        timed("heldout synth", lambda: generate_benchmark(bench, synth, progress=bar("synth")))
    raw = work / "raw.zarr"
    timed(
        "heldout extract",
        lambda: extract(bench / "manifest.parquet", encoder_source, raw,
                        ExtractConfig(overwrite=True), progress=bar("extract")),
    )  # fmt: skip
    return raw


def _heldout_evaluate(
    work: Path,
    raw: Path,
    config: DemoConfig,
    adapters: list[Path],
    timed: Callable[[str, Callable[[], Any]], Any],
    bar: Callable[[str], Any],
) -> Any:
    """Judge the default adapters on the held-out world: action probe and privacy attackers,
    raw vs aam."""
    from pipeline.probes import evaluate
    from pipeline.sanitize.in_memory import adapter_transform

    heldout = dataclasses.replace(config, adapter_seeds=config.adapter_seeds[:1])
    methods = {"raw": str(raw), "aam": [adapter_transform(a) for a in adapters]}
    eval_config = _eval_config(heldout, probes=("action", "privacy"))
    return timed(
        "heldout evaluate",
        lambda: evaluate(methods, work / "report", eval_config, progress=bar("evaluate")),
    )
