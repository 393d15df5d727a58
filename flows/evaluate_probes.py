"""Prefect flow `evaluate-probes`: a thin wrapper over pipeline.probes.evaluate (and
pipeline.probes.protocol for a protocol file)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.runtime import forward_library_logs
from pipeline.cli_choices import Baseline
from pipeline.cli_outputs import check_report_dir, write_report_dir
from pipeline.probes import BASELINES, EvalConfig, evaluate
from pipeline.probes.protocol import (
    check_evaluate_inputs,
    evaluate_protocol,
    read_protocol,
)


@flow(name="evaluate-probes")
def evaluate_probes(
    output: str,
    input: str | None = None,
    protocol: str | None = None,
    sanitized: str | None = None,
    baselines: list[Baseline] | None = None,
    methods: dict[str, str] | None = None,
    seeds: list[int] | None = None,
    fast: bool | None = None,
    workers: int = 1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run utility and attacker probes for the raw store `input` (method "raw"), `sanitized`
    (method "aam"), baselines and further `methods`; write the report into `output`.

    Or, with `protocol` (a TOML file) instead of `input`: one raw store per protocol and the
    methods as the file names them; `seeds` / `fast` override its [evaluate].

    An existing non-empty `output` is refused unless `overwrite` (as `anon-store evaluate`)."""
    given = {"sanitized": bool(sanitized), "baselines": bool(baselines), "methods": bool(methods)}
    check_evaluate_inputs(input, protocol, given, spell=str)
    if protocol is not None:
        return _protocol(protocol, output, seeds, fast, workers, overwrite)
    logger = get_run_logger()
    stores: dict[str, Any] = {"raw": input}
    if sanitized:
        stores["aam"] = sanitized
    for name in baselines or []:
        stores[name] = BASELINES[name]
    stores.update(methods or {})
    replace = check_report_dir(
        output, overwrite=overwrite, inputs=stores.values(), flag="overwrite=true"
    )
    chosen = tuple(seeds or (0, 1, 2))
    make = EvalConfig.fast if fast else EvalConfig
    config = make(seeds=chosen, workers=workers)
    with forward_library_logs():
        result = write_report_dir(output, replace, lambda into: evaluate(stores, into, config))
    logger.info("report written to %s", result.markdown_path)
    create_markdown_artifact(
        markdown=result.markdown(), key="evaluate-probes-report", description=output
    )
    create_table_artifact(
        key="evaluate-probes-summary",
        table=[{"method": name, **values} for name, values in result.summary.items()],
        description="summary metrics (fractions)",
    )
    return {"report": str(result.json_path), "summary": result.summary}


def _protocol(
    protocol: str,
    output: str,
    seeds: list[int] | None,
    fast: bool | None,
    workers: int,
    overwrite: bool,
) -> dict[str, Any]:
    """evaluate-probes with a protocol file: the combined Table 1 report."""
    logger = get_run_logger()
    spec = read_protocol(protocol)
    replace = check_report_dir(
        output, overwrite=overwrite, inputs=[*spec.inputs(), protocol], flag="overwrite=true"
    )
    chosen = tuple(seeds) if seeds else None  # none given: the file's [evaluate]
    config = spec.eval_config(seeds=chosen, fast=fast, workers=workers)
    with forward_library_logs():
        report = write_report_dir(
            output, replace, lambda into: evaluate_protocol(spec, into, config)
        )
    logger.info("report written to %s", report.markdown_path)
    create_markdown_artifact(
        markdown=report.markdown(), key="evaluate-probes-report", description=output
    )
    create_table_artifact(
        key="evaluate-probes-summary",
        table=[{"method": name, **values} for name, values in report.values().items()],
        description="Table 1 metrics per protocol (fractions)",
    )
    return {"report": str(report.json_path), "table": report.values()}
