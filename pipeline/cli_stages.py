"""The pipeline's stages on the command line: extract, train, tune, sanitize, evaluate, audit.

Each reads --input and writes --output (docs/cli.md); results go to stdout (--json: as JSON),
progress bars and notes to stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli_choices import (
    Arch,
    Attacker,
    AttackSource,
    Baseline,
    ExtractPrecision,
    Preset,
    SanitizePrecision,
    TunePrivacy,
)
from pipeline.cli_common import (
    Address,
    Device,
    Json,
    SanitizeScheduler,
    aliased,
    choice,
    choice_list,
)
from pipeline.cli_progress import note, out, progress_bar, result, result_json
from pipeline.errors import AnonStoreError

app = typer.Typer()

BREAK_LOCK_HELP = (
    "Break the store's writer lock left by a dead (killed) run or a run on another host; "
    "a lock held by a live process of this host is never broken"
)


def resolve_encoder_with_progress(
    encoder: str, before_build: Callable[[], object] | None = None
) -> str:
    """Build the cached tiny encoder with a progress bar before a stage needs it;
    `before_build` checks the stage's input first, so bad input is not minutes away."""
    if encoder != "tiny":
        return encoder
    from pipeline.encoders import tiny
    from pipeline.errors import EncoderError

    try:
        return str(tiny.tiny_encoder_path(build_if_missing=False))
    except EncoderError:
        pass
    if before_build is not None:
        before_build()
    with progress_bar("building tiny encoder (once, minutes)") as bar:
        return str(
            tiny.tiny_encoder_path(
                build_if_missing=True, progress=lambda stage, d, t: bar(d, t, stage=stage)
            )
        )


def parse_seeds(seeds: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise AnonStoreError(f"--seeds takes comma-separated integers, got {seeds!r}") from None


def names(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


# ---------------------------------------------------------------- extract


@app.command(cls=aliased({"--manifest": "--input"}))
def extract(
    input: Annotated[
        Path, typer.Option("--input", help="manifest.parquet (the videos it lists are read)")
    ],
    output: Annotated[str, typer.Option(help="Raw store to write (path or s3:// URL)")],
    encoder: Annotated[str, typer.Option(help="Model directory, hub id, or 'tiny'")] = "tiny",
    device: Device = "auto",
    devices: Annotated[
        str | None,
        typer.Option(help="Several GPUs of this machine, e.g. cuda:0,cuda:1 (one encoder each)"),
    ] = None,
    precision: Annotated[
        str, choice(ExtractPrecision, "precision", "The encoder's arithmetic")
    ] = "auto",
    batch_size: Annotated[int, typer.Option(help="Clips per forward pass")] = 64,
    workers: Annotated[
        int | None,
        typer.Option(help="Decode worker processes (default: cores - 2 on GPU, cores on CPU)"),
    ] = None,
    clips_per_video: Annotated[int, typer.Option()] = 5,
    static_clips: Annotated[int, typer.Option()] = 10,
    split: Annotated[list[str] | None, typer.Option(help="Splits to extract (repeat)")] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a store made differently (the same one resumes)")
    ] = False,
    videos_per_chunk: Annotated[
        int | None, typer.Option(help="Videos per chunk and commit (default: ~4 MB chunks)")
    ] = None,
    break_lock: Annotated[bool, typer.Option(help=BREAK_LOCK_HELP)] = False,
    append: Annotated[
        bool,
        typer.Option(
            help="Add the manifest's videos the complete store lacks (same encoder and settings; "
            "existing rows unchanged)"
        ),
    ] = False,
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
    as_json: Json = False,
) -> None:
    """Encode every clip once with a frozen video encoder into a raw Zarr store.

    The videos are those the manifest (--input) lists; rerunning the same command resumes.
    """
    from pipeline.extract import ExtractConfig
    from pipeline.extract import extract as run_extract

    config = ExtractConfig(
        device=device,
        devices=devices or None,
        precision=precision,
        batch_size=batch_size,
        workers=workers,
        clips_per_video=clips_per_video,
        static_clips=static_clips,
        splits=split or None,
        overwrite=overwrite,
        append=append,
        videos_per_chunk=videos_per_chunk,
        break_lock=break_lock,
        video_root=str(video_root) if video_root is not None else None,
        allow_outside_root=allow_outside_root,
        trust_remote_code=trust_remote_code,
        record_paths=record_paths,
    )
    from pipeline.extract.run import read_manifest_for

    source = resolve_encoder_with_progress(encoder, lambda: read_manifest_for(input, config))
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

        done = run_extract(input, source, output, config, progress=report)
    if as_json:
        result_json(asdict(done))
    elif done.action == "unchanged":
        result(f"{done.output} is already complete with these settings: nothing to do")
    else:
        result(
            f"{done.action} {done.output}: {done.videos} videos ({done.failed} failed), "
            f"{done.clips_encoded} clips in {done.seconds:.1f} s"
        )


# ---------------------------------------------------------------- train


PRESET_HELP = (
    "Named recipe the other flags override: recommended (the default; protects) | reference "
    "(the paper's weights; barely anonymizes at small scale)"
)


@app.command(cls=aliased())
def train(
    input: Annotated[str, typer.Option("--input", help="Complete raw store")],
    output: Annotated[Path, typer.Option(help="Adapter directory to write")],
    preset: Annotated[str, choice(Preset, "preset", PRESET_HELP)] = "recommended",
    epochs: Annotated[
        int | None,
        typer.Option(
            help="Joint epochs, exactly [preset; recommended: 120 or 2,280 steps, the longer]"
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Videos per step")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate [preset]")] = None,
    arch: Annotated[str | None, choice(Arch, "architecture", "Adapter architecture [preset]")] = (
        None
    ),
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
    break_lock: Annotated[
        bool, typer.Option(help="Break OUTPUT's lock left by a dead run or a run on another host")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option(help="Replace an adapter directory made by other settings")
    ] = False,
    as_json: Json = False,
) -> None:
    """Train the Anonymizing Adapter Module over a raw store's cached latents.

    Settings come from --preset (default: recommended); flags given explicitly override it, and
    config.json records the preset and the resolved weights. Rerunning the same command after a
    crash or kill resumes from the last validation's checkpoint (or restarts cleanly when it
    does not match) and says which.
    """
    from pipeline.aam.from_store import train_aam
    from pipeline.aam.presets import preset_config
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
        break_lock=break_lock,
    )
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

        trained = train_aam(
            input, output, config, progress=report, on_validation=on_validation, notify=note
        )
    if as_json:
        result_json({k: v for k, v in asdict(trained).items() if k != "history"})
        return
    best = trained.best
    held = (
        f"features {format_bytes(trained.feature_bytes)} in memory"
        if trained.data_mode == "memory"
        else f"streamed, at most {format_bytes(trained.memory_bytes)} of features held"
    )
    resumed = (
        "" if trained.resumed_from is None else f", resumed after epoch {trained.resumed_from}"
    )
    result(
        f"adapter written to {trained.output}: selected epoch {trained.best_epoch}, val action "
        f"top-1 {best.get('action_top1', float('nan')):.3f}, static retrieval "
        f"{best.get('static_retrieval', float('nan')):.3f}, clip retrieval "
        f"{best.get('clip_retrieval', float('nan')):.3f} ({trained.seconds:.1f} s, {held}"
        f"{resumed})"
    )


# ---------------------------------------------------------------- tune


@app.command(cls=aliased())
def tune(
    input: Annotated[str, typer.Option("--input", help="Complete raw store")],
    output: Annotated[Path, typer.Option(help="Directory for the trials, report and chosen/")],
    trials: Annotated[int, typer.Option(help="Trials in all: the presets, then samples")] = 20,
    workers: Annotated[
        int | None,
        typer.Option(help="Trials trained side by side in worker processes (default: cores)"),
    ] = None,
    scheduler: Address = None,
    seed: Annotated[int, typer.Option(help="Seeds the samples, the training and the probes")] = 0,
    tolerance: Annotated[
        float, typer.Option(help="Val top-1 a trial may lose vs raw features, in points")
    ] = 1.0,
    privacy: Annotated[
        str,
        choice(
            TunePrivacy,
            "privacy measure",
            "auto | attacker (within privacy_train) | proxy (label-free, val)",
        ),
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
    as_json: Json = False,
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
        found = run_tune(input, output, config, progress=update, notify=note)
    if as_json:
        result_json(
            {
                "chosen": found.chosen["trial_id"],
                "params": found.chosen["params"],
                "utility": found.chosen["utility"],
                "privacy": found.chosen["privacy"],
                "privacy_source": found.privacy_source,
                "qualified": found.qualified,
                "reason": found.reason,
                "raw": {"utility": found.raw["utility"], "privacy": found.raw["privacy"]},
                "chosen_dir": found.chosen_dir,
                "trials": found.trials,
                "failed": found.failed,
                "report": found.report_markdown,
                "report_json": found.report_json,
                "plot": found.plot,
            }
        )
        return
    from pipeline.aam.trainer import epochs_label

    table = Table(title=f"trials by privacy ({escape(found.privacy_source)}; lower is better)")
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
        cell(found.raw["utility"]),
        cell(found.raw["privacy"]),
    )
    for r in found.trials:
        p = r["params"]
        mark = " (chosen)" if r["trial_id"] == found.chosen["trial_id"] else ""
        table.add_row(
            escape(r["trial_id"] + mark),
            escape(str(p["arch"])),
            epochs_label(p["epochs"]),
            *(f"{p[k]:g}" for k in weights),
            cell(r["utility"]),
            cell(r["privacy"]),
        )
    out.print(table)
    chosen = found.chosen
    result(
        f"chosen: {chosen['trial_id']} (val top-1 {cell(chosen['utility'])}, privacy "
        f"{cell(chosen['privacy'])}; raw {cell(found.raw['utility'])} / "
        f"{cell(found.raw['privacy'])}): {found.reason}; adapter in {found.chosen_dir}"
    )
    result(f"table: {found.report_markdown} ({found.report_json}, {found.plot})")


# ---------------------------------------------------------------- sanitize


@app.command(cls=aliased())
def sanitize(
    input: Annotated[str, typer.Option("--input", help="Complete raw store (path or URL)")],
    adapter: Annotated[Path, typer.Option(help="Adapter directory from `anon-store train`")],
    output: Annotated[str, typer.Option(help="Sanitized store to write (path or URL)")],
    scheduler: SanitizeScheduler = "threads",
    workers: Annotated[int | None, typer.Option(help="Parallel tasks (default: cores)")] = None,
    chunks_per_task: Annotated[int, typer.Option(help="Store chunks per task")] = 1,
    batch_size: Annotated[int, typer.Option(help="Clips per adapter forward pass")] = 1024,
    precision: Annotated[
        str,
        choice(
            SanitizePrecision,
            "precision",
            "The adapter's arithmetic: float64 (reproducible) | float32",
        ),
    ] = "float64",
    device: Device = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing anon-store store")] = False,
    break_lock: Annotated[bool, typer.Option(help=BREAK_LOCK_HELP)] = False,
    as_json: Json = False,
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

        done = run_sanitize(input, adapter, output, config, progress=report)
    if as_json:
        result_json(asdict(done))
    elif done.action == "unchanged":
        result(f"{done.output} is already complete for this input and adapter")
    else:
        result(
            f"{done.action} {done.output}: {done.videos} videos, {done.chunks_written} "
            f"chunks, {done.bytes_written / 1e6:.1f} MB in {done.seconds:.1f} s "
            f"(adapter {done.adapter_sha256[:12]})"
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


@app.command(cls=aliased({"--raw": "--input", "--report": "--output"}))
def evaluate(
    output: Annotated[Path, typer.Option(help="Report directory (report.json, report.md, plot)")],
    input: Annotated[
        str | None,
        typer.Option("--input", help="Complete raw store (the reference method 'raw')"),
    ] = None,
    protocol: Annotated[
        Path | None,
        typer.Option(help="Protocol file (TOML): one raw store per protocol, and the methods"),
    ] = None,
    sanitized: Annotated[str | None, typer.Option(help="Sanitized store (method 'aam')")] = None,
    baselines: Annotated[
        str, choice_list(Baseline, "baseline", "Comma-separated: leace, inlp", allow_empty=True)
    ] = "",
    method: Annotated[
        list[str] | None, typer.Option(help="Further sanitized store as NAME=STORE (repeat)")
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(help="Probe seeds, comma-separated (default 0,1,2, or the protocol file's)"),
    ] = None,
    fast: Annotated[bool | None, typer.Option(help="Small probe budgets (rougher numbers)")] = None,
    workers: Annotated[
        int, typer.Option(help="Methods evaluated side by side in worker processes")
    ] = 1,
    overwrite: Annotated[
        bool,
        typer.Option(help="Write into a non-empty directory, or replace a zarr store there"),
    ] = False,
    as_json: Json = False,
) -> None:
    """Probe utility (action, detection, anomaly, bias) and privacy (attackers) per method."""
    from pipeline.cli_outputs import check_report_dir, write_report_dir
    from pipeline.probes import BASELINES, EvalConfig
    from pipeline.probes import evaluate as run_evaluate
    from pipeline.probes.protocol import check_evaluate_inputs, evaluate_protocol, read_protocol

    given = {
        "sanitized": sanitized is not None,
        "baselines": bool(baselines),
        "method": bool(method),
    }
    check_evaluate_inputs(input, None if protocol is None else str(protocol), given)
    chosen_seeds = parse_seeds(seeds) if seeds is not None else None
    stores: dict[str, Any] = {"raw": input}
    if protocol is not None:  # every protocol's store, one combined Table 1 report
        spec = read_protocol(protocol)
        inputs: list[Any] = [*spec.inputs(), protocol]
    else:
        if sanitized:
            stores["aam"] = sanitized
        for name in names(baselines):
            stores[name] = BASELINES[name]
        stores.update(_parse_named(method, "--method"))
        inputs = list(stores.values())
    # Refused before anything else is said (the config below may warn about few seeds).
    replace = check_report_dir(output, overwrite=overwrite, inputs=inputs)
    if protocol is not None:
        config = spec.eval_config(seeds=chosen_seeds, fast=fast, workers=workers)

        def run(into: Path, update: Any) -> Any:
            return evaluate_protocol(spec, into, config, progress=update)

    else:
        make = EvalConfig.fast if fast else EvalConfig
        config = make(seeds=chosen_seeds or EvalConfig.seeds, workers=workers)

        def run(into: Path, update: Any) -> Any:
            return run_evaluate(stores, into, config, progress=update)

    with progress_bar("evaluating", "probe runs") as update:
        report = write_report_dir(output, replace, lambda into: run(into, update))
    files = {"report_json": str(report.json_path), "report_markdown": str(report.markdown_path)}
    if protocol is not None:
        subs = ", ".join(str(report.sub_report_dir(p)) for p in report.data["protocols"])
        details, table = {"table": report.values()}, report.table()
        where = f"{report.markdown_path}, {report.json_path}; per protocol: {subs}"
    else:
        details = {"plot": str(report.plot_path), "summary": report.summary}
        table = report.headline_table()
        where = f"{report.markdown_path}, {report.json_path}, {report.plot_path}"
    if as_json:
        result_json({"output": str(output), **files, **details})
        return
    result(table)
    result(f"report: {where}")


# ---------------------------------------------------------------- audit


@app.command(cls=aliased({"--sanitized": "--input"}))
def audit(
    input: Annotated[
        str,
        typer.Option(
            "--input", help="Sanitized store to audit (path or URL); the audit goes to its attrs"
        ),
    ],
    output: Annotated[
        Path | None, typer.Option(help="Also write the audit record to this JSON file")
    ] = None,
    privacy_split: Annotated[
        str, typer.Option(help="Split prefix (privacy: privacy_train/_test) or TRAIN,TEST")
    ] = "privacy",
    raw: Annotated[
        str | None, typer.Option(help="The raw store it was made from, for the leakage ratio")
    ] = None,
    seeds: Annotated[str, typer.Option(help="Attacker seeds, comma-separated")] = "0,1,2",
    attackers: Annotated[
        str, choice_list(Attacker, "attacker", "Comma-separated: mlp, linear")
    ] = "mlp,linear",
    sources: Annotated[
        str, choice_list(AttackSource, "source", "Comma-separated: static, clip")
    ] = "static,clip",
    fast: Annotated[bool, typer.Option(help="Small attacker budgets (rougher numbers)")] = False,
    write: Annotated[
        bool, typer.Option(help="Record the figures in the store's attrs (anon_store.audit)")
    ] = True,
    allow_other_raw: Annotated[
        bool, typer.Option(help="Compare with a raw store the input was not made from")
    ] = False,
    break_lock: Annotated[bool, typer.Option(help=BREAK_LOCK_HELP)] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --output file")] = False,
    as_json: Json = False,
) -> None:
    """Attack a sanitized store's privacy split; record cMAP, chance and leakage in its attrs."""
    import json

    from pipeline.cli_outputs import check_output_file
    from pipeline.probes.audit import AuditConfig, audit_table_rows
    from pipeline.probes.audit import audit as run_audit

    settings = dict(seeds=parse_seeds(seeds), attackers=names(attackers), sources=names(sources))
    if fast:
        settings["attacker"] = AuditConfig.fast().attacker
    config = AuditConfig.for_split(privacy_split, **settings)
    if output is not None:
        check_output_file(output, overwrite=overwrite)
    with progress_bar("auditing", "attacker runs") as update:
        done = run_audit(
            input, config, raw=raw, write=write, allow_other_raw=allow_other_raw,
            break_lock=break_lock, progress=update,
        )  # fmt: skip
    record = {"store": done.store, "written": done.written, "audit": done.record}
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(record, indent=2, default=str))
    if as_json:
        result_json(record)
        return
    table = Table(
        title=f"privacy audit of {escape(input)} ({escape(config.train_split)} -> "
        f"{escape(config.test_split)}, {len(config.seeds)} seeds)"
    )
    for column in ("attacker / items", "cMAP person", "chance", "raw cMAP", "leakage"):
        table.add_column(column)
    for row in audit_table_rows(done.record):
        table.add_row(*(escape(str(cell)) for cell in row))
    out.print(table)
    where = "recorded in the store's attrs (anon_store.audit)" if done.written else "not written"
    result(f"audit {where}" + (f"; record in {output}" if output is not None else ""))
