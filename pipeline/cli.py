"""The `anon-store` command line: wires library functions to typer commands and rich output.

One vocabulary (docs/cli.md): every stage reads --input and writes --output; results go to
stdout (--json: as JSON), progress bars, notes and logs to stderr; exit 0 ok, 1 error (one
line), 2 usage (the parser refused the command line). The stages live in cli_stages.py, the
store commands in cli_stores.py; this module has the application, its global options, the
data commands and the demo.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli_choices import HeldoutWorld, Layout, Scale, World, check_choice
from pipeline.cli_common import Json, aliased, checked, choice
from pipeline.cli_progress import (
    configure,
    console,
    error,
    flush_deprecations,
    note,
    out,
    progress_bar,
    result,
    result_json,
    unconfigure,
)
from pipeline.cli_stages import app as stages_app
from pipeline.cli_stages import audit, evaluate, extract, sanitize, train, tune  # noqa: F401
from pipeline.cli_stores import app as stores_app
from pipeline.cli_stores import export, history, import_h5, inspect, migrate, publish, validate  # noqa: F401
from pipeline.errors import AnonStoreError, ConfigError, StoreError

try:  # recent typer vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer on click
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

PROG = "anon-store"

app = typer.Typer(
    name=PROG,
    help="A privacy-preserving feature store for video understanding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
manifest_app = typer.Typer(help="Build manifests from existing data sets.", no_args_is_help=True)
encoder_app = typer.Typer(help="The tiny default encoder.", no_args_is_help=True)
app.add_typer(stages_app)
app.add_typer(stores_app)
app.add_typer(manifest_app, name="manifest")
app.add_typer(encoder_app, name="encoder")


def _register_orchestration() -> None:
    from pipeline.orchestration.commands import register

    register(app)  # `anon-store serve` and `anon-store server start|stop|status`


_register_orchestration()


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("anon-store")
    except PackageNotFoundError:  # a source tree without installation
        from pipeline import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        print(f"{PROG} {package_version()}")
        raise typer.Exit()


@app.callback()
def global_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            expose_value=False,
            help="Print the version and exit",
        ),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option("--verbose", "-v", count=True, help="Log more on stderr: -v INFO, -vv DEBUG"),
    ] = 0,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Errors only on stderr: no progress bars, notes or warnings"
        ),
    ] = False,
) -> None:
    """A privacy-preserving feature store for video understanding.

    Every stage reads --input and writes --output; results go to stdout (--json for JSON),
    progress and logs to stderr. Exit codes: 0 ok, 1 error, 2 usage. See docs/cli.md.
    """
    configure(verbose=verbose, quiet=quiet)


# ---------------------------------------------------------------- data


@app.command(cls=aliased({"--out": "--output"}))
def synth(
    output: Annotated[Path, typer.Option(help="Directory to write videos and manifest.parquet")],
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same benchmark)")] = 0,
    scale: Annotated[str, choice(Scale, "scale", "Benchmark size")] = "default",
    workers: Annotated[int, typer.Option(help="Rendering processes (0 = one per core)")] = 0,
    world: Annotated[
        str, choice(World, "synth world", "World family: default | robots | critters | townsfolk")
    ] = "default",
    overwrite: Annotated[
        bool, typer.Option(help="Replace a complete benchmark in OUTPUT (an interrupted one is)")
    ] = False,
    as_json: Json = False,
) -> None:
    """Generate the synthetic privacy-video benchmark (real H.264 mp4 files + manifest)."""
    from pipeline.cli_outputs import check_outside_stores, is_zarr_store
    from pipeline.data.synth import SynthConfig, generate_benchmark
    from pipeline.data.synth.generate import SUMMARY_FILENAME

    check_outside_stores(output)
    if is_zarr_store(output):
        raise StoreError(f"{output} is a zarr store: choose another directory")
    _refuse_complete_benchmark(output / SUMMARY_FILENAME, overwrite)
    config = SynthConfig(scale=scale, seed=seed, workers=workers or None, world=world)
    with progress_bar("rendering videos") as update:
        summary = generate_benchmark(output, config, progress=lambda d, t: update(d, t))
    if as_json:
        result_json({**summary.to_dict(), "output": str(summary.out_dir)})
        return
    table = Table(title=f"synthetic benchmark ({summary.config.world} world): "
                  f"{escape(str(summary.out_dir))}")  # fmt: skip
    table.add_column("split")
    table.add_column("videos", justify="right")
    for split, count in summary.counts.items():
        table.add_row(escape(split), str(count))
    out.print(table)
    result(
        f"{summary.num_videos} videos, {summary.bytes_on_disk / 1e6:.1f} MB, "
        f"{summary.seconds:.1f} s"
    )


def _refuse_complete_benchmark(summary_file: Path, overwrite: bool) -> None:
    try:
        status = json.loads(summary_file.read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return
    if status == "complete" and not overwrite:
        raise StoreError(
            f"{summary_file.parent} holds a synthetic benchmark: pass --overwrite to replace it"
        )


@manifest_app.command("import", cls=aliased({"--out": "--output"}, positional=("--input",)))
def manifest_import(
    layout: Annotated[
        str,
        typer.Argument(
            parser=checked(partial(check_choice, literal=Layout, what="layout")),
            metavar="LAYOUT",
            help="ucf101 | hmdb51 | csv | kinetics400 | thumos14 | ucf-crime | vispr | pa-hmdb51 "
            "| ntu-rgbd (docs/data.md: each layout's tree and options)",
            show_default=False,
        ),
    ],
    input: Annotated[Path, typer.Option("--input", help="The data set's root (csv: the file)")],
    output: Annotated[Path, typer.Option(help="manifest.parquet to write")],
    splits_dir: Annotated[Path | None, typer.Option(help="[ucf101, hmdb51] split files")] = None,
    split_id: Annotated[int | None, typer.Option(help="[ucf101, hmdb51] split 1-3")] = None,
    name: Annotated[str | None, typer.Option(help="[csv] data set name")] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="[kinetics400, thumos14, ucf-crime] annotation folder")
    ] = None,
    splits: Annotated[
        str | None, typer.Option(help="[kinetics400, thumos14, vispr] splits, comma-separated")
    ] = None,
    split_names: Annotated[
        str | None,
        typer.Option(help="[thumos14, ucf-crime, vispr, pa-hmdb51, ntu-rgbd] protocol | plain"),
    ] = None,
    keep_bad: Annotated[bool, typer.Option(help="[thumos14] keep known bad videos")] = False,
    attributes: Annotated[str | None, typer.Option(help="[vispr] paper | all")] = None,
    videos: Annotated[Path | None, typer.Option(help="[pa-hmdb51] the HMDB51 videos")] = None,
    labels: Annotated[str | None, typer.Option(help="[pa-hmdb51] binary | codes")] = None,
    face_reading: Annotated[str | None, typer.Option(help="[pa-hmdb51] common | fine")] = None,
    gender_map: Annotated[
        Path | None, typer.Option(help="[ntu-rgbd] performer -> gender (JSON or CSV)")
    ] = None,
    protocol: Annotated[str | None, typer.Option(help="[ntu-rgbd] xsub | xview | xset")] = None,
    train_performers: Annotated[
        str | None, typer.Option(help="[ntu-rgbd] training performers, comma-separated")
    ] = None,
    subset: Annotated[str | None, typer.Option(help="[ntu-rgbd] all | ntu60")] = None,
    allow_outside_root: Annotated[
        bool, typer.Option(help="Accept paths that leave the data root")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing manifest")] = False,
    as_json: Json = False,
) -> None:
    """Build a manifest from a data set in its official layout, or from a generic CSV."""
    from pipeline.cli_outputs import check_output_file
    from pipeline.data.importers import IMPORTERS

    options = {
        "splits_dir": splits_dir, "split_id": split_id, "name": name,
        "annotations": annotations, "splits": splits, "split_names": split_names,
        "keep_bad": keep_bad, "attributes": attributes, "videos": videos, "labels": labels,
        "face_reading": face_reading, "gender_map": gender_map, "protocol": protocol,
        "train_performers": train_performers, "subset": subset,
        "allow_outside_root": allow_outside_root,
    }  # fmt: skip
    given = {key: value for key, value in options.items() if value not in (None, False)}
    spec = IMPORTERS[layout]
    accepted = {option.name for option in spec.options}
    foreign = sorted(set(given) - accepted)
    if foreign:
        flags = ", ".join("--" + key.replace("_", "-") for key in foreign)
        raise ConfigError(f"{flags}: not an option of the {layout} layout (docs/data.md)")
    check_output_file(output, overwrite=overwrite)
    done = spec.run(input, output, **given)
    if as_json:
        result_json(
            {
                "output": str(output),
                "layout": layout,
                "videos": len(done.manifest),
                "skipped": done.skipped,
                "summary": done.summary,
            }
        )
        return
    result(f"wrote {output} with {len(done.manifest)} videos; {done.summary}")


@manifest_app.command("merge", cls=aliased({"--out": "--output"}))
def manifest_merge(
    inputs: Annotated[
        list[Path],
        typer.Argument(metavar="MANIFEST...", help="Manifests to merge (two or more), in order"),
    ],
    output: Annotated[Path, typer.Option(help="manifest.parquet to write")],
    allow_outside_root: Annotated[
        bool, typer.Option(help="Accept videos outside the output's directory (absolute paths)")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing manifest")] = False,
    as_json: Json = False,
) -> None:
    """Merge manifests of several data sets (e.g. VISPR + PA-HMDB51) into one."""
    from pipeline.cli_outputs import check_output_file
    from pipeline.data.merge import merge_manifests

    check_output_file(output, overwrite=overwrite)
    merged = merge_manifests(inputs, output, allow_outside_root=allow_outside_root)
    splits = merged.table.column("split").to_pylist()
    counts = {s: splits.count(s) for s in dict.fromkeys(splits)}
    if as_json:
        result_json({"output": str(output), "videos": len(merged), "splits": counts})
        return
    per_split = ", ".join(f"{split} {count}" for split, count in counts.items())
    result(f"wrote {output} with {len(merged)} rows ({per_split}) from {len(inputs)} manifests")


# ---------------------------------------------------------------- encoders


@encoder_app.command(
    "build-tiny", cls=aliased({"--out": "--output", "--pretrain-manifest": "--input"})
)
def encoder_build_tiny(
    input: Annotated[
        Path | None,
        typer.Option("--input", help="Manifest with a pretrain split (required with --output)"),
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Directory to write (default: the user cache)")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
    motion_weight: Annotated[
        float,
        typer.Option(
            help="Weight of the self-supervised motion objective (0: off, the default recipe; "
            "5 keeps motions the pretrain labels never named: docs/encoder.md). Needs --output"
        ),
    ] = 0.0,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a tiny encoder already in OUTPUT")
    ] = False,
    as_json: Json = False,
) -> None:
    """Build (train) the tiny default VideoMAE encoder on a benchmark's pretrain split."""
    from pipeline.cli_outputs import check_output_dir, staged_dir
    from pipeline.encoders import tiny
    from pipeline.encoders.registry import TINY_MANIFEST

    with progress_bar("building tiny encoder", "steps") as bar:

        def update(stage: str, done: int, total: int) -> None:
            bar(done, total, stage=stage)

        if output is None:
            if input is not None:
                raise AnonStoreError("--input needs --output (the cache builds its own)")
            if motion_weight:
                raise AnonStoreError("--motion-weight needs --output (the cache holds the "
                                     "default recipe, which --encoder tiny uses)")  # fmt: skip
            path = tiny.tiny_encoder_path(build_if_missing=True, progress=update)
            report = None
        else:
            if input is None:
                raise AnonStoreError("--input (a manifest with a pretrain split) is required "
                                     "with --output")  # fmt: skip
            check_output_dir(output, overwrite=False, inputs=[input])
            config = tiny.TinyEncoderConfig(seed=seed, motion_weight=motion_weight)
            existing = output.is_dir() and any(output.iterdir())
            if existing and not (output / TINY_MANIFEST).is_file():
                raise StoreError(f"{output} exists, is not empty and holds no tiny encoder")
            if existing and not overwrite:
                raise StoreError(f"{output} holds a tiny encoder: pass --overwrite to replace it")
            if existing:
                with staged_dir(output) as staging:
                    report = tiny.build_tiny_encoder(input, staging, config, progress=update)
            else:
                report = tiny.build_tiny_encoder(input, output, config, progress=update)
            path = output
    built = None if report is None else asdict(report)
    if as_json:
        result_json({"path": str(path), "report": built})
    elif built is None:
        result(f"tiny encoder at {path}")
    else:
        accuracy = built.get("heldout_accuracy")
        held = "" if accuracy is None else f", held-out top-1 {accuracy:.3f}"
        result(f"tiny encoder written to {path}: {built['steps']} steps in "
               f"{built['total_seconds']:.0f} s{held}")  # fmt: skip


# ---------------------------------------------------------------- demo


@app.command(cls=aliased({"--workdir": "--output"}))
def demo(
    output: Annotated[
        Path, typer.Option(help="Directory for the benchmark, stores and report (reused)")
    ] = Path("demo"),
    scale: Annotated[str, choice(Scale, "scale", "Benchmark size")] = "default",
    seed: Annotated[int, typer.Option()] = 0,
    fast_probes: Annotated[bool, typer.Option(help="Smaller probe budgets")] = False,
    ablations: Annotated[
        bool,
        typer.Option(help="Also the reference objectives alone and the three ablations (+4 min)"),
    ] = False,
    heldout_world: Annotated[
        str,
        choice(
            HeldoutWorld,
            "held-out world",
            "World neither the encoder nor the recipe was chosen on; none = skip",
        ),
    ] = "townsfolk",
    as_json: Json = False,
) -> None:
    """Run the whole pipeline on the embedded default and print the privacy-utility table.

    Rerunning reuses every finished stage in OUTPUT.
    """
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

        done = run_demo(
            output,
            DemoConfig(
                scale=scale,
                seed=seed,
                fast_probes=fast_probes,
                ablations=ablations,
                heldout_world=None if heldout_world == "none" else heldout_world,
                heldout_scale="tiny" if scale == "tiny" else "small",
            ),
            reporter=lambda stage, message: note(f"{stage}: {message}"),
            progress_for=progress_for,
        )
    if as_json:
        result_json(asdict(done))
        return
    result(done.table)
    if done.heldout_table is not None:
        result(f"held-out world {heldout_world} (not seen by the encoder's build or the "
               "recipe's choice; the default adapters, no re-tuning):")  # fmt: skip
        result(done.heldout_table)
    total = sum(done.seconds.values())
    result(f"stage times (s): {done.seconds}, total {total:.0f} s")
    result(f"report: {done.report_dir}/report.md")


# ---------------------------------------------------------------- entry point


def main() -> None:
    """Entry point: exit 0 ok; 1 for an error, one line on stderr and never a traceback (every
    pipeline.errors.AnonStoreError); 2 when the command line is wrong (a usage error)."""
    try:
        code = run(sys.argv[1:])
    finally:
        unconfigure()
    sys.exit(code)


def run(args: list[str]) -> int:
    """Run the CLI on `args`; returns the exit code (main() without sys.exit)."""
    code = _run(args)
    if code == 0:
        flush_deprecations()
    return code


def _run(args: list[str]) -> int:
    try:
        code = app(args=args, prog_name=PROG, standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError:
        return 2  # the help was printed
    except click_exceptions.UsageError as usage:
        context = usage.ctx
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        error(" ".join(usage.format_message().split()) + hint)
        return 2
    except click_exceptions.ClickException as failure:
        error(failure.format_message())
        return failure.exit_code
    except typer.Abort:
        error("aborted")
        return 1
    except AnonStoreError as failure:
        error(str(failure) or type(failure).__name__)
        return 1
    except KeyboardInterrupt:
        code = 130
    if code == 130:  # typer turns Ctrl-C into exit code 130
        console.print("interrupted: committed work is kept; rerun the same command to resume",
                      markup=False)  # fmt: skip
    return code if isinstance(code, int) else 0
