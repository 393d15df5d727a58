"""The `anon-store` command line: wires library functions to typer commands and rich output."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from pipeline.cli_progress import console, progress_bar
from pipeline.errors import AnonStoreError

app = typer.Typer(
    name="anon-store",
    help="A privacy-preserving feature store for video understanding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
manifest_app = typer.Typer(help="Build manifests from existing data sets.", no_args_is_help=True)
encoder_app = typer.Typer(help="The tiny default encoder.", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")
app.add_typer(encoder_app, name="encoder")


def _register_orchestration() -> None:
    from pipeline.orchestration.commands import register

    register(app)  # `anon-store serve` and `anon-store server start|stop|status`


_register_orchestration()

Device = Annotated[str, typer.Option(help="auto | cpu | cuda")]
BREAK_LOCK_HELP = (
    "Break the store's writer lock left by a dead (killed) run or a run on another host; "
    "a lock held by a live process of this host is never broken"
)


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


# ---------------------------------------------------------------- data


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Directory to write videos and manifest.parquet")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same benchmark)")] = 0,
    scale: Annotated[str, typer.Option(help="tiny | small | default")] = "default",
    workers: Annotated[int, typer.Option(help="Rendering processes (0 = one per core)")] = 0,
    world: Annotated[
        str, typer.Option(help="World family: default | robots | critters | townsfolk")
    ] = "default",
) -> None:
    """Generate the synthetic privacy-video benchmark (real H.264 mp4 files + manifest)."""
    from pipeline.data.synth import SynthConfig, generate_benchmark

    config = SynthConfig(scale=scale, seed=seed, workers=workers or None, world=world)
    with progress_bar("rendering videos") as update:
        summary = generate_benchmark(out, config, progress=lambda d, t: update(d, t))
    _print_benchmark(summary)


def _print_benchmark(summary: Any) -> None:
    table = Table(title=f"synthetic benchmark ({summary.config.world} world): {summary.out_dir}")
    table.add_column("split")
    table.add_column("videos", justify="right")
    for split, count in summary.counts.items():
        table.add_row(split, str(count))
    console.print(table)
    console.print(
        f"{summary.num_videos} videos, {summary.bytes_on_disk / 1e6:.1f} MB, "
        f"{summary.seconds:.1f} s",
        highlight=False,
    )


@manifest_app.command("import")
def manifest_import(
    layout: Annotated[str, typer.Argument(help="ucf101 | hmdb51 | csv")],
    source: Annotated[Path, typer.Argument(help="Data root (ucf101/hmdb51) or CSV file")],
    out: Annotated[Path, typer.Option(help="manifest.parquet to write")],
    splits_dir: Annotated[
        Path | None, typer.Option(help="Official split files (ucf101/hmdb51)")
    ] = None,
    split_id: Annotated[int, typer.Option(help="Official split number (1-3)")] = 1,
) -> None:
    """Build a manifest from a UCF101 or HMDB51 tree, or from a generic CSV."""
    from pipeline.data import importers

    if layout == "csv":
        manifest = importers.import_csv(source, out)
    elif layout in ("ucf101", "hmdb51"):
        if splits_dir is None:
            raise AnonStoreError(f"--splits-dir is required for the {layout} layout")
        importer = importers.import_ucf101 if layout == "ucf101" else importers.import_hmdb51
        manifest = importer(source, splits_dir, split_id=split_id, out_manifest=out)
    else:
        raise AnonStoreError(f"unknown layout {layout!r}: use ucf101, hmdb51 or csv")
    console.print(f"wrote {out} with {len(manifest)} videos")


# ---------------------------------------------------------------- encoders


@encoder_app.command("build-tiny")
def encoder_build_tiny(
    out: Annotated[Path | None, typer.Option(help="Directory (default: the user cache)")] = None,
    pretrain_manifest: Annotated[
        Path | None, typer.Option(help="Manifest with a pretrain split (default: generate one)")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Build (train) the tiny default VideoMAE encoder on the benchmark's pretrain split."""
    from pipeline.encoders import tiny

    with progress_bar("building tiny encoder", "steps") as bar:

        def update(stage: str, done: int, total: int) -> None:
            bar(done, total, stage=stage)

        if out is None:
            path = tiny.tiny_encoder_path(build_if_missing=True, progress=update)
            console.print(f"tiny encoder at {path}")
            return
        if pretrain_manifest is None:
            raise AnonStoreError("--pretrain-manifest is required with --out")
        report = tiny.build_tiny_encoder(
            pretrain_manifest, out, tiny.TinyEncoderConfig(seed=seed), progress=update
        )
    _print_json(report.to_json() if hasattr(report, "to_json") else vars(report))


def _resolve_encoder_with_progress(encoder: str) -> str:
    """Build the cached tiny encoder with a progress bar before a stage needs it."""
    if encoder != "tiny":
        return encoder
    from pipeline.encoders import tiny
    from pipeline.errors import EncoderError

    try:
        return str(tiny.tiny_encoder_path(build_if_missing=False))
    except EncoderError:
        pass
    with progress_bar("building tiny encoder (once, minutes)") as bar:
        return str(
            tiny.tiny_encoder_path(
                build_if_missing=True, progress=lambda stage, d, t: bar(d, t, stage=stage)
            )
        )


# ---------------------------------------------------------------- extract


@app.command()
def extract(
    manifest: Annotated[Path, typer.Option(help="manifest.parquet")],
    output: Annotated[str, typer.Option(help="Raw store to write (path or s3:// URL)")],
    encoder: Annotated[str, typer.Option(help="Model directory, hub id, or 'tiny'")] = "tiny",
    device: Device = "auto",
    precision: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Clips per forward pass")] = 64,
    workers: Annotated[int, typer.Option(help="Decode threads running ahead")] = 2,
    clips_per_video: Annotated[int, typer.Option()] = 5,
    static_clips: Annotated[int, typer.Option()] = 10,
    split: Annotated[list[str] | None, typer.Option(help="Splits to extract (repeat)")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a store made differently")] = False,
    videos_per_chunk: Annotated[
        int | None, typer.Option(help="Videos per chunk and commit (default: ~4 MB chunks)")
    ] = None,
    break_lock: Annotated[bool, typer.Option(help=BREAK_LOCK_HELP)] = False,
    video_root: Annotated[
        Path | None,
        typer.Option(help="Directory the manifest's paths are relative to (default: its own)"),
    ] = None,
    allow_outside_root: Annotated[
        bool,
        typer.Option(help="Accept manifest paths leaving the root (absolute, '..', symlinks out)"),
    ] = False,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Let transformers run Python code shipped with the encoder")
    ] = False,
    record_paths: Annotated[
        bool, typer.Option(help="Record the encoder's absolute directory in the store's attrs")
    ] = False,
) -> None:
    """Encode every clip once with a frozen video encoder into a raw Zarr store."""
    from pipeline.extract import ExtractConfig
    from pipeline.extract import extract as run_extract

    config = ExtractConfig(
        device=device,
        precision=precision,
        batch_size=batch_size,
        workers=workers,
        clips_per_video=clips_per_video,
        static_clips=static_clips,
        splits=tuple(split) if split else None,
        overwrite=overwrite,
        videos_per_chunk=videos_per_chunk,
        break_lock=break_lock,
        video_root=str(video_root) if video_root is not None else None,
        allow_outside_root=allow_outside_root,
        trust_remote_code=trust_remote_code,
        record_paths=record_paths,
    )
    source = _resolve_encoder_with_progress(encoder)
    started = time.perf_counter()
    with progress_bar("extracting", "videos") as update:

        def report(p: Any) -> None:
            rate = p.clips_done / max(time.perf_counter() - started, 1e-9)
            update(
                p.videos_done,
                p.videos_total,
                clips=p.clips_done,
                **{"clips/s": f"{rate:.0f}"},
                failed=p.failed,
            )

        result = run_extract(manifest, source, output, config, progress=report)
    if result.action == "unchanged":
        console.print(f"{result.output} is already complete with these settings: nothing to do")
        return
    console.print(
        f"{result.action} {result.output}: {result.videos} videos ({result.failed} failed), "
        f"{result.clips_encoded} clips in {result.seconds:.1f} s"
    )


# ---------------------------------------------------------------- train


PRESET_HELP = (
    "Named recipe the other flags override: recommended (the default; protects) | reference "
    "(the paper's weights; barely anonymizes at small scale)"
)


@app.command()
def train(
    input: Annotated[str, typer.Option("--input", help="Complete raw store")],
    output: Annotated[Path, typer.Option(help="Adapter directory to write")],
    preset: Annotated[str, typer.Option(help=PRESET_HELP)] = "recommended",
    epochs: Annotated[int | None, typer.Option(help="Joint epochs [preset]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Videos per step")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate [preset]")] = None,
    arch: Annotated[str | None, typer.Option(help="mlp | attention [preset]")] = None,
    w_lc: Annotated[float | None, typer.Option(help="Latent-consistency weight [preset]")] = None,
    w_t: Annotated[float | None, typer.Option(help="Seen-task weight [preset]")] = None,
    w_b: Annotated[float | None, typer.Option(help="Static-clip privacy weight [preset]")] = None,
    w_motion: Annotated[
        float | None, typer.Option(help="Normal-clip privacy weight (extension) [preset]")
    ] = None,
    w_spread: Annotated[
        float | None, typer.Option(help="Static-spread weight (extension) [preset]")
    ] = None,
    w_swap: Annotated[
        float | None, typer.Option(help="Appearance-swap invariance weight (extension) [preset]")
    ] = None,
    w_class: Annotated[
        float | None, typer.Option(help="Same-action swap invariance weight (extension) [preset]")
    ] = None,
    device: Device = "cpu",
    seed: Annotated[int, typer.Option()] = 0,
    val_every: Annotated[int, typer.Option(help="Validate (and checkpoint) every N epochs")] = 2,
    memory_budget: Annotated[
        str | None,
        typer.Option(help="Memory for features, e.g. 2GB; stream from the store above it"),
    ] = None,
    stream: Annotated[bool, typer.Option(help="Stream features even when they fit")] = False,
    resume: Annotated[
        bool, typer.Option(help="Resume from the checkpoint in OUTPUT/.checkpoint if it matches")
    ] = True,
    overwrite: Annotated[bool, typer.Option()] = False,
) -> None:
    """Train the Anonymizing Adapter Module over a raw store's cached latents.

    Settings come from --preset (default: recommended); flags given explicitly override it, and
    config.json records the preset and the resolved weights. Rerunning the same command after a
    crash or kill resumes from the last validation's checkpoint (or restarts cleanly when it
    does not match) and says which.
    """
    from pipeline.aam.from_store import train_aam
    from pipeline.aam.presets import describe_config, preset_config
    from pipeline.aam.streaming import format_bytes, parse_bytes

    overrides = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "arch": arch,
        "w_lc": w_lc,
        "w_t": w_t,
        "w_b": w_b,
        "w_motion": w_motion,
        "w_spread": w_spread,
        "w_swap": w_swap,
        "w_class": w_class,
        "device": device,
        "seed": seed,
        "val_every": val_every,
    }
    config = preset_config(
        preset,
        overrides,
        memory_budget_bytes=None if memory_budget is None else parse_bytes(memory_budget),
        stream=stream,
        resume=resume,
        overwrite=overwrite,
    )
    console.print(describe_config(config), highlight=False, soft_wrap=True)
    last: dict[str, Any] = {}
    with progress_bar("training adapter", "epochs") as update:

        def on_validation(record: dict[str, Any]) -> None:
            last.update(record)

        def report(done: int, total: int) -> None:
            fields = {}
            if last:
                fields = {
                    "top1": f"{last.get('action_top1', float('nan')):.3f}",
                    "static-retr": f"{last.get('static_retrieval', float('nan')):.3f}",
                    "L_B": f"{last.get('train_l_b') or float('nan'):.3f}",
                }
            update(done, total, **fields)

        result = train_aam(
            input,
            output,
            config,
            progress=report,
            on_validation=on_validation,
            notify=lambda message: console.print(message, highlight=False, soft_wrap=True),
        )
    best = result.best
    held = (
        f"features {format_bytes(result.feature_bytes)} in memory"
        if result.data_mode == "memory"
        else f"streamed, at most {format_bytes(result.memory_bytes)} of features held"
    )
    resumed = "" if result.resumed_from is None else f", resumed after epoch {result.resumed_from}"
    console.print(
        f"adapter written to {result.output}: selected epoch {result.best_epoch}, val action "
        f"top-1 {best.get('action_top1', float('nan')):.3f}, static retrieval "
        f"{best.get('static_retrieval', float('nan')):.3f}, clip retrieval "
        f"{best.get('clip_retrieval', float('nan')):.3f} ({result.seconds:.1f} s, {held}"
        f"{resumed})"
    )


# ---------------------------------------------------------------- tune


@app.command()
def tune(
    input: Annotated[str, typer.Option("--input", help="Complete raw store")],
    output: Annotated[Path, typer.Option(help="Directory for the trials, report and chosen/")],
    trials: Annotated[int, typer.Option(help="Trials in all: the presets, then samples")] = 20,
    workers: Annotated[
        int | None,
        typer.Option(help="Trials trained side by side in worker processes (default: cores)"),
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Run the trials on a dask cluster: tcp://host:8786")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the samples, the training and the probes")] = 0,
    tolerance: Annotated[
        float, typer.Option(help="Val top-1 a trial may lose vs raw features, in points")
    ] = 1.0,
    privacy: Annotated[
        str, typer.Option(help="auto | attacker (within privacy_train) | proxy (label-free, val)")
    ] = "auto",
    max_epochs: Annotated[
        int | None, typer.Option(help="Cap every trial's epochs (a quick first look)")
    ] = None,
    device: Device = "cpu",
    memory_budget: Annotated[
        str | None, typer.Option(help="Memory for one trial's features, e.g. 2GB")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Start over in an output made by a different search")
    ] = False,
) -> None:
    """Search the adapter's loss weights, architecture and epochs; keep the most private
    adapter within the tolerance of raw features' val top-1 (copied to OUTPUT/chosen).

    Rerunning the same command skips finished trials and resumes unfinished ones.
    """
    from pipeline.aam.streaming import parse_bytes
    from pipeline.aam.tune import TuneConfig
    from pipeline.aam.tune import tune as run_tune
    from pipeline.aam.tune.space import SEARCHED_WEIGHTS

    config = TuneConfig(
        trials=trials,
        seed=seed,
        tolerance=tolerance,
        privacy=privacy,
        max_epochs=max_epochs,
        workers=workers,
        scheduler=scheduler,
        device=device,
        memory_budget_bytes=None if memory_budget is None else parse_bytes(memory_budget),
        overwrite=overwrite,
    )
    with progress_bar("tuning", "trials") as update:
        result = run_tune(
            input,
            output,
            config,
            progress=update,
            notify=lambda message: console.print(message, highlight=False, soft_wrap=True),
        )
    table = Table(title=f"trials by privacy ({result.privacy_source}; lower is better)")
    weights = SEARCHED_WEIGHTS
    for column in ("trial", "arch", "epochs", *weights):
        table.add_column(column)
    table.add_column("val top-1", justify="right")
    table.add_column("privacy", justify="right")

    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    table.add_row(
        "raw features",
        *[""] * (2 + len(weights)),
        cell(result.raw["utility"]),
        cell(result.raw["privacy"]),
    )
    for r in result.trials:
        p = r["params"]
        mark = " (chosen)" if r["trial_id"] == result.chosen["trial_id"] else ""
        table.add_row(
            r["trial_id"] + mark,
            p["arch"],
            str(p["epochs"]),
            *(f"{p[k]:g}" for k in weights),
            cell(r["utility"]),
            cell(r["privacy"]),
        )
    console.print(table)
    chosen = result.chosen
    console.print(
        f"chosen: {chosen['trial_id']} (val top-1 {cell(chosen['utility'])}, privacy "
        f"{cell(chosen['privacy'])}; raw {cell(result.raw['utility'])} / "
        f"{cell(result.raw['privacy'])}): {result.reason}; adapter in {result.chosen_dir}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(
        f"table: {result.report_markdown} ({result.report_json}, {result.plot})",
        highlight=False,
        soft_wrap=True,
    )


# ---------------------------------------------------------------- sanitize and interop


@app.command()
def sanitize(
    input: Annotated[str, typer.Option("--input", help="Complete raw store (path or URL)")],
    adapter: Annotated[Path, typer.Option(help="Adapter directory from `anon-store train`")],
    output: Annotated[str, typer.Option(help="Sanitized store to write (path or URL)")],
    scheduler: Annotated[
        str, typer.Option(help="threads | processes | synchronous | tcp://dask-scheduler:8786")
    ] = "threads",
    workers: Annotated[int | None, typer.Option(help="Parallel tasks (default: cores)")] = None,
    chunks_per_task: Annotated[int, typer.Option(help="Store chunks per task")] = 1,
    batch_size: Annotated[int, typer.Option(help="Clips per adapter forward pass")] = 1024,
    precision: Annotated[str, typer.Option(help="float64 (reproducible) | float32")] = "float64",
    device: Device = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing anon-store store")] = False,
    break_lock: Annotated[bool, typer.Option(help=BREAK_LOCK_HELP)] = False,
) -> None:
    """Apply a trained adapter to every embedding of a raw store into a sanitized store."""
    from pipeline.sanitize import SanitizeConfig
    from pipeline.sanitize import sanitize as run_sanitize

    config = SanitizeConfig(
        scheduler=scheduler, workers=workers, chunks_per_task=chunks_per_task,
        batch_size=batch_size, precision=precision, device=device, overwrite=overwrite,
        break_lock=break_lock,
    )  # fmt: skip
    with progress_bar("sanitizing", "chunks") as update:

        def report(p: Any) -> None:
            rate = p.bytes_written / 1e6 / max(p.seconds, 1e-9)
            update(p.chunks_done, p.chunks_total, **{"MB/s": f"{rate:.1f}"})

        result = run_sanitize(input, adapter, output, config, progress=report)
    if result.action == "unchanged":
        console.print(f"{result.output} is already complete for this input and adapter")
        return
    console.print(
        f"{result.action} {result.output}: {result.videos} videos, {result.chunks_written} "
        f"chunks, {result.bytes_written / 1e6:.1f} MB in {result.seconds:.1f} s "
        f"(adapter {result.adapter_sha256[:12]})"
    )


@app.command()
def export(
    store: Annotated[str, typer.Argument(help="Store path or URL")],
    format: Annotated[str, typer.Option("--format", help="h5 | npy | parquet")],
    out: Annotated[Path, typer.Option(help="Output directory")],
    overwrite: Annotated[bool, typer.Option()] = False,
) -> None:
    """Export a store's features as HDF5, one .npy per video, or Parquet (one row per clip)."""
    from pipeline.interop import export as run_export

    with progress_bar("exporting", "videos") as update:
        result = run_export(
            store, format, out, overwrite=overwrite,
            progress=lambda p: update(p.videos_done, p.videos_total),
        )  # fmt: skip
    console.print(
        f"exported {result.videos} videos ({result.skipped} skipped) as {result.format} to "
        f"{result.output}: {len(result.files)} files, {result.bytes_written / 1e6:.1f} MB"
    )


@app.command("import-h5")
def import_h5(
    h5: Annotated[
        Path, typer.Argument(help="HDF5 feature cache: one [clips, D] dataset per video")
    ],
    manifest: Annotated[Path, typer.Option(help="manifest.parquet naming the videos")],
    output: Annotated[str, typer.Option(help="Raw store to write")],
    clips_per_video: Annotated[
        int | None, typer.Option(help="Resample every video to this many clips")
    ] = None,
    split: Annotated[list[str] | None, typer.Option(help="Splits to import (repeat)")] = None,
    overwrite: Annotated[bool, typer.Option()] = False,
) -> None:
    """Turn an existing HDF5 feature cache into a raw store (provenance: imported)."""
    from pipeline.interop import import_h5 as run_import

    with progress_bar("importing", "videos") as update:
        result = run_import(
            h5, manifest, output, overwrite=overwrite, clips_per_video=clips_per_video,
            splits=tuple(split) if split else None, progress=update,
        )  # fmt: skip
    console.print(
        f"{result.action} {output}: {result.videos} videos ({result.failed} failed), "
        f"{result.clips_per_video} clips per video, D={result.feature_dim}"
    )


# ---------------------------------------------------------------- evaluate


def _parse_named(values: list[str] | None, option: str) -> dict[str, str]:
    named = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise AnonStoreError(f"{option} takes NAME=STORE, got {value!r}")
        named[name] = path
    return named


@app.command()
def evaluate(
    raw: Annotated[str, typer.Option(help="Complete raw store")],
    report: Annotated[Path, typer.Option(help="Directory for report.json, report.md, plot")],
    sanitized: Annotated[str | None, typer.Option(help="Sanitized store (method 'aam')")] = None,
    baselines: Annotated[str, typer.Option(help="Comma-separated: leace, inlp")] = "",
    method: Annotated[
        list[str] | None, typer.Option(help="Further sanitized store as NAME=STORE (repeat)")
    ] = None,
    seeds: Annotated[str, typer.Option(help="Probe seeds, comma-separated")] = "0,1,2",
    fast: Annotated[bool, typer.Option(help="Small probe budgets (rougher numbers)")] = False,
    workers: Annotated[
        int, typer.Option(help="Methods evaluated side by side in worker processes")
    ] = 1,
) -> None:
    """Probe utility (action, detection, anomaly, bias) and privacy (attackers) per method."""
    from pipeline.probes import BASELINES, EvalConfig
    from pipeline.probes import evaluate as run_evaluate

    stores: dict[str, Any] = {"raw": raw}
    if sanitized:
        stores["aam"] = sanitized
    for name in [b.strip() for b in baselines.split(",") if b.strip()]:
        if name not in BASELINES:
            raise AnonStoreError(f"unknown baseline {name!r}: choose from {sorted(BASELINES)}")
        stores[name] = BASELINES[name]
    stores.update(_parse_named(method, "--method"))
    try:
        seed_values = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise AnonStoreError(f"--seeds takes comma-separated integers, got {seeds!r}") from None
    make = EvalConfig.fast if fast else EvalConfig
    config = make(seeds=seed_values, workers=workers)
    with progress_bar("evaluating", "probe runs") as update:
        result = run_evaluate(stores, report, config, progress=update)
    console.print(result.headline_table())
    console.print(f"report: {result.markdown_path}, {result.json_path}, {result.plot_path}")


def _names(value: str, option: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise AnonStoreError(f"{option} takes comma-separated names, got {value!r}")
    return names


@app.command()
def audit(
    sanitized: Annotated[str, typer.Option(help="Sanitized store to audit (path or URL)")],
    privacy_split: Annotated[
        str, typer.Option(help="Split prefix (privacy: privacy_train/_test) or TRAIN,TEST")
    ] = "privacy",
    raw: Annotated[
        str | None, typer.Option(help="The raw store it was made from, for the leakage ratio")
    ] = None,
    seeds: Annotated[str, typer.Option(help="Attacker seeds, comma-separated")] = "0,1,2",
    attackers: Annotated[str, typer.Option(help="Comma-separated: mlp, linear")] = "mlp,linear",
    sources: Annotated[str, typer.Option(help="Comma-separated: static, clip")] = "static,clip",
    fast: Annotated[bool, typer.Option(help="Small attacker budgets (rougher numbers)")] = False,
    write: Annotated[
        bool, typer.Option(help="Record the figures in the store's attrs (anon_store.audit)")
    ] = True,
    allow_other_raw: Annotated[
        bool, typer.Option(help="Compare with a raw store the input was not made from")
    ] = False,
    break_lock: Annotated[bool, typer.Option(help=BREAK_LOCK_HELP)] = False,
) -> None:
    """Attack a sanitized store's privacy split; record cMAP, chance and leakage in its attrs."""
    from pipeline.probes.audit import AuditConfig, audit_table_rows
    from pipeline.probes.audit import audit as run_audit

    try:
        seed_values = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise AnonStoreError(f"--seeds takes comma-separated integers, got {seeds!r}") from None
    settings = dict(
        seeds=seed_values,
        attackers=_names(attackers, "--attackers"),
        sources=_names(sources, "--sources"),
    )
    if fast:
        settings["attacker"] = AuditConfig.fast().attacker
    config = AuditConfig.for_split(privacy_split, **settings)
    with progress_bar("auditing", "attacker runs") as update:
        result = run_audit(
            sanitized, config, raw=raw, write=write, allow_other_raw=allow_other_raw,
            break_lock=break_lock, progress=update,
        )  # fmt: skip
    table = Table(title=f"privacy audit of {sanitized} ({config.train_split} -> "
                  f"{config.test_split}, {len(config.seeds)} seeds)")  # fmt: skip
    for column in ("attacker / items", "cMAP person", "chance", "raw cMAP", "leakage"):
        table.add_column(column)
    for row in audit_table_rows(result.record):
        table.add_row(*row)
    console.print(table)
    where = "recorded in the store's attrs (anon_store.audit)" if result.written else "not written"
    console.print(f"audit {where}", soft_wrap=True)


# ---------------------------------------------------------------- stores


@app.command()
def validate(
    store: Annotated[str, typer.Argument(help="Store path or URL")],
    deep: Annotated[
        bool, typer.Option(help="Also read every metadata document and every chunk (checksums)")
    ] = False,
) -> None:
    """Check a store against the schema; exit non-zero with the list of problems."""
    from rich.markup import escape

    from store_schema import validate as validate_store

    problems = validate_store(store)
    read = ""
    if deep:
        from store_schema.deep import check_chunks

        report = check_chunks(store)
        problems += report.problems
        read = (
            f" ({report.metadata_documents} metadata documents, {report.chunks} chunks of "
            f"{report.arrays} arrays read)"
        )
    if problems:
        for problem in problems:
            console.print(f"[red]problem:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"{store}: valid{read}", soft_wrap=True)


@app.command()
def inspect(
    store: Annotated[str, typer.Argument(help="Store path or URL")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show a store's kind, status, encoder, sampling, counts, shapes and size on disk."""
    from pipeline.store.reader import open_store
    from pipeline.store.summary import summarize

    summary = summarize(open_store(store, require_complete=False))
    if as_json:
        print(json.dumps(summary, default=str, indent=2))
        return
    table = Table(title=str(summary["location"]), show_header=False)
    for key in ("kind", "status", "store_id", "provenance", "created_at", "completed_at"):
        table.add_row(key, str(summary[key]))
    encoder = summary["encoder"]
    table.add_row(
        "encoder",
        f"{encoder['name']} ({encoder['family']}, {encoder['pooling']} "
        f"pooling, D={encoder['hidden_size']})",
    )
    sampling = summary["sampling"] or {}
    table.add_row(
        "sampling", ", ".join(f"{k}={v}" for k, v in sampling.items() if k not in ("mean", "std"))
    )
    videos = summary["videos"]
    table.add_row(
        "videos",
        f"{videos['total']} ({videos['ok']} ok, {videos['failed']} failed, "
        f"{videos['pending']} pending)",
    )
    if videos["failure_reasons"]:
        table.add_row("failures", json.dumps(videos["failure_reasons"]))
    table.add_row("splits", ", ".join(f"{k}={v['ok']}" for k, v in summary["splits"].items()))
    for name, array in summary["arrays"].items():
        table.add_row(name, f"{tuple(array['shape'])} {array['dtype']} dims={array['dims']}")
    table.add_row("size on disk", f"{summary['size_bytes'] / 1e6:.1f} MB")
    console.print(table)


# ---------------------------------------------------------------- demo


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where benchmark, stores and report go")] = Path(
        "demo"
    ),
    scale: Annotated[str, typer.Option(help="tiny | small | default")] = "default",
    seed: Annotated[int, typer.Option()] = 0,
    fast_probes: Annotated[bool, typer.Option(help="Smaller probe budgets")] = False,
    heldout_world: Annotated[
        str,
        typer.Option(help="World neither the encoder nor the recipe was chosen on; none = skip"),
    ] = "townsfolk",
) -> None:
    """Run the whole pipeline on the embedded default and print the privacy-utility table."""
    from contextlib import ExitStack

    from pipeline.demo import DemoConfig, run_demo

    with ExitStack() as outer:
        stage_bar = outer.enter_context(ExitStack())

        def progress_for(stage: str) -> Any:
            # rich allows one live display at a time: close the previous stage's bar first
            stage_bar.close()
            update = stage_bar.enter_context(progress_bar(stage))
            if stage == "synth":
                return lambda done, total: update(done, total)
            if stage == "extract":
                return lambda p: update(p.videos_done, p.videos_total, failed=p.failed)
            return update

        result = run_demo(
            workdir,
            DemoConfig(
                scale=scale,
                seed=seed,
                fast_probes=fast_probes,
                heldout_world=None if heldout_world == "none" else heldout_world,
                heldout_scale="tiny" if scale == "tiny" else "small",
            ),
            reporter=lambda stage, message: console.print(f"[bold]{stage}[/bold]: {message}"),
            progress_for=progress_for,
        )
    console.print(result.table)
    if result.heldout_table is not None:
        console.print(f"held-out world {heldout_world} (not seen by the encoder's build or the "
                      "recipe's choice; the default adapters, no re-tuning):")  # fmt: skip
        console.print(result.heldout_table)
    total = sum(result.seconds.values())
    console.print(f"stage times (s): {result.seconds}, total {total:.0f} s")
    console.print(f"report: {result.report_dir}/report.md")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 1, never a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except AnonStoreError as error:
        console.print(
            f"[red]error:[/red] {str(error).splitlines()[0] if str(error) else error}",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("interrupted: committed work is kept; rerun the same command to resume")
        sys.exit(130)
