"""Commands on stores: validate and inspect (one store, positional), export and import-h5."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli_choices import ExportFormat
from pipeline.cli_common import Json, aliased, choice
from pipeline.cli_progress import error, out, progress_bar, result, result_json

app = typer.Typer()

Store = Annotated[str, typer.Argument(help="Store path or URL", show_default=False)]


@app.command()
def validate(
    store: Store,
    deep: Annotated[
        bool, typer.Option(help="Also read every metadata document and every chunk (checksums)")
    ] = False,
    as_json: Json = False,
) -> None:
    """Check a store against the schema; list the problems on stdout and exit 1 if any."""
    from store_schema import validate as validate_store

    problems = list(validate_store(store))
    read = None
    if deep:
        from store_schema.deep import check_chunks

        report = check_chunks(store)
        problems += report.problems
        read = {
            "metadata_documents": report.metadata_documents,
            "chunks": report.chunks,
            "arrays": report.arrays,
        }
    if as_json:
        result_json({"store": store, "valid": not problems, "problems": problems, "read": read})
    elif problems:
        for problem in problems:
            result(f"problem: {problem}")
    else:
        counts = (
            f" ({read['metadata_documents']} metadata documents, {read['chunks']} chunks of "
            f"{read['arrays']} arrays read)"
            if read
            else ""
        )
        result(f"{store}: valid{counts}")
    if problems:
        if not as_json:
            error(f"{store} is not valid: {len(problems)} problem(s)")
        raise typer.Exit(1)


@app.command()
def inspect(store: Store, as_json: Json = False) -> None:
    """Show a store's kind, status, encoder, sampling, counts, shapes and size on disk."""
    from pipeline.store.reader import open_store
    from pipeline.store.summary import summarize

    summary = summarize(open_store(store, require_complete=False))
    if as_json:
        result_json(summary)
        return
    rows: list[tuple[str, str]] = [
        (key, str(summary[key]))
        for key in ("kind", "status", "store_id", "provenance", "created_at", "completed_at")
    ]
    encoder = summary["encoder"]
    rows.append(
        (
            "encoder",
            f"{encoder['name']} ({encoder['family']}, {encoder['pooling']} "
            f"pooling, D={encoder['hidden_size']})",
        )
    )
    sampling = summary["sampling"] or {}
    rows.append(
        ("sampling", ", ".join(f"{k}={v}" for k, v in sampling.items() if k not in ("mean", "std")))
    )
    videos = summary["videos"]
    rows.append(
        (
            "videos",
            f"{videos['total']} ({videos['ok']} ok, {videos['failed']} failed, "
            f"{videos['pending']} pending)",
        )
    )
    if videos["failure_reasons"]:
        rows.append(("failures", json.dumps(videos["failure_reasons"])))
    rows.append(("splits", ", ".join(f"{k}={v['ok']}" for k, v in summary["splits"].items())))
    for name, array in summary["arrays"].items():
        rows.append((name, f"{tuple(array['shape'])} {array['dtype']} dims={array['dims']}"))
    rows.append(("size on disk", f"{summary['size_bytes'] / 1e6:.1f} MB"))
    rows.append(("version", f"{summary['version']} ({summary['history_entries']} history entries)"))
    audit = summary["audit"] or {}
    audit_summary = audit.get("summary") or {}
    worst = audit_summary.get("max_leakage_person")
    audited = "n/a" if worst is None else f"{worst:.3f}"
    unmeasured = audit_summary.get("unmeasured_settings") or []
    if unmeasured:
        audited = f"{audited} (unmeasured: {', '.join(unmeasured)})"
    rows.append(
        (
            "audit",
            "none (run `anon-store audit`)"
            if summary["audit_state"] == "none"
            else f"{summary['audit_state']}: {audit.get('date')}, version "
            f"{audit.get('store_version')}, worst leakage {audited}",
        )
    )
    if summary["published"]:
        published = summary["published"]
        origin = f"{published['from_store_id']} v{published['from_version']}"
        rows.append(("published", f"{published['at']} from {origin}"))
    table = Table(title=escape(str(summary["location"])), show_header=False)
    for key, value in rows:
        table.add_row(escape(key), escape(value))
    out.print(table)


@app.command(cls=aliased({"--out": "--output"}, positional=("--input",)))
def export(
    input: Annotated[str, typer.Option("--input", help="Complete store to export (path or URL)")],
    format: Annotated[
        str,
        choice(
            ExportFormat,
            "format",
            "h5 (one file) | npy (one file per video) | parquet (one row per clip)",
            "--format",
        ),
    ],
    output: Annotated[Path, typer.Option(help="Directory to write (never a zarr store)")],
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace earlier export files, or a zarr store at OUTPUT as a whole"),
    ] = False,
    as_json: Json = False,
) -> None:
    """Export a store's features as HDF5, one .npy per video, or Parquet (one row per clip)."""
    from pipeline.cli_outputs import check_output_dir, staged_dir
    from pipeline.interop import export as run_export

    replace_store = check_output_dir(output, overwrite=overwrite, inputs=[input])
    with progress_bar("exporting", "videos") as update:

        def report(p: object) -> None:
            update(p.videos_done, p.videos_total)

        if replace_store:
            with staged_dir(output) as staging:
                done = run_export(input, format, staging, progress=report)
            done = replace(done, output=str(output))
        else:
            done = run_export(input, format, output, overwrite=overwrite, progress=report)
    if as_json:
        result_json(asdict(done))
        return
    result(
        f"exported {done.videos} videos ({done.skipped} skipped) as {done.format} to "
        f"{done.output}: {len(done.files)} files, {done.bytes_written / 1e6:.1f} MB"
    )


@app.command("import-h5", cls=aliased(positional=("--input",)))
def import_h5(
    input: Annotated[
        Path,
        typer.Option("--input", help="HDF5 feature cache: one [clips, D] dataset per video"),
    ],
    manifest: Annotated[Path, typer.Option(help="manifest.parquet naming the videos")],
    output: Annotated[str, typer.Option(help="Raw store to write (path or URL)")],
    clips_per_video: Annotated[
        int | None, typer.Option(help="Resample every video to this many clips")
    ] = None,
    split: Annotated[list[str] | None, typer.Option(help="Splits to import (repeat)")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing store")] = False,
    break_lock: Annotated[
        bool, typer.Option(help="Break the store's lock left by a dead run or another host's")
    ] = False,
    as_json: Json = False,
) -> None:
    """Turn an existing HDF5 feature cache into a raw store (provenance: imported)."""
    from pipeline.interop import import_h5 as run_import

    with progress_bar("importing", "videos") as update:
        done = run_import(
            input, manifest, output, overwrite=overwrite, clips_per_video=clips_per_video,
            splits=tuple(split) if split else None, progress=update, break_lock=break_lock,
        )  # fmt: skip
    if as_json:
        result_json(asdict(done))
        return
    result(
        f"{done.action} {output}: {done.videos} videos ({done.failed} failed), "
        f"{done.clips_per_video} clips per video, D={done.feature_dim}"
    )


@app.command()
def history(store: Store, as_json: Json = False) -> None:
    """Print a store's version and its history: created, appended, sanitized, audited, ..."""
    from pipeline.store.reader import open_store
    from pipeline.store.summary import history_lines

    meta = open_store(store, require_complete=False).meta
    if as_json:
        result_json(
            {"store": store, "version": meta.get("version"), "history": meta.get("history")}
        )
        return
    for line in history_lines(meta):
        result(line)


@app.command()
def migrate(
    store: Store,
    break_lock: Annotated[
        bool, typer.Option(help="Break the store's lock left by a dead run or another host's")
    ] = False,
    as_json: Json = False,
) -> None:
    """Upgrade a complete store of an older schema in place (resumable; values kept)."""
    from pipeline.store.migrate import migrate_store

    done = migrate_store(store, break_lock=break_lock)
    if as_json:
        result_json(asdict(done))
        return
    result(
        f"migrated {done.store} from schema v{done.from_version} to v{done.to_version} "
        f"({done.padding_rows_removed} padding rows removed)"
    )


@app.command()
def publish(
    input: Annotated[str, typer.Option("--input", help="Audited sanitized store (path or URL)")],
    output: Annotated[str, typer.Option(help="Destination (local path or s3:// URL)")],
    max_leakage: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Worst audited leakage allowed, (cMAP - chance) / (raw cMAP - chance)",
        ),
    ] = 0.5,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a store anon-store published at OUTPUT")
    ] = False,
    break_lock: Annotated[
        bool, typer.Option(help="Break OUTPUT's lock left by a dead run or another host's")
    ] = False,
    allow_unmeasured: Annotated[
        bool,
        typer.Option(
            help="Publish even if the audit could read no cut (the raw features' attackers "
            "were near chance on every setting) as long as the store's attackers found nothing"
        ),
    ] = False,
    as_json: Json = False,
) -> None:
    """Copy a sanitized store downstream if its current audit allows it (the publish gate)."""
    from pipeline.store.publish import publish as run_publish

    done = run_publish(
        input, output, max_leakage=max_leakage, overwrite=overwrite, break_lock=break_lock,
        allow_unmeasured=allow_unmeasured,
    )  # fmt: skip
    if as_json:
        result_json(asdict(done))
        return
    result(
        f"published {done.destination}: store {done.store_id} version {done.store_version}, "
        f"{done.objects} objects ({done.bytes / 1e6:.1f} MB) verified, {done.audit_line()}"
    )
