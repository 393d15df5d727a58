"""Prefect flow `evaluate-probes`: a thin wrapper over pipeline.probes.evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.runtime import forward_library_logs
from pipeline.cli_choices import Baseline
from pipeline.cli_outputs import check_report_dir, staged_dir
from pipeline.probes import BASELINES, EvalConfig, evaluate
from pipeline.probes.report import EvalReport


@flow(name="evaluate-probes")
def evaluate_probes(
    input: str,
    output: str,
    sanitized: str | None = None,
    baselines: list[Baseline] | None = None,
    methods: dict[str, str] | None = None,
    seeds: list[int] | None = None,
    fast: bool = False,
    workers: int = 1,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run utility and attacker probes for the raw store `input` (method "raw"), `sanitized`
    (method "aam"), baselines and further `methods`; write the report into `output`.

    An existing non-empty `output` is refused unless `overwrite` (as `anon-store evaluate`)."""
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
        if replace:
            with staged_dir(output) as staging:
                result = EvalReport(evaluate(stores, staging, config).data, Path(output))
        else:
            result = evaluate(stores, output, config)
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
