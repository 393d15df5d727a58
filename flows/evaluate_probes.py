"""Prefect flow `evaluate-probes`: a thin wrapper over pipeline.probes.evaluate."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from pipeline.errors import ConfigError
from pipeline.probes import BASELINES, EvalConfig, evaluate


@flow(name="evaluate-probes")
def evaluate_probes(
    raw: str,
    report: str,
    sanitized: str | None = None,
    baselines: list[str] | None = None,
    methods: dict[str, str] | None = None,
    seeds: list[int] | None = None,
    fast: bool = False,
    workers: int = 1,
) -> dict[str, Any]:
    """Run utility and attacker probes for raw, sanitized and baseline features; write a report."""
    logger = get_run_logger()
    stores: dict[str, Any] = {"raw": raw}
    if sanitized:
        stores["aam"] = sanitized
    for name in baselines or []:
        if name not in BASELINES:
            raise ConfigError(f"unknown baseline {name!r}: choose from {sorted(BASELINES)}")
        stores[name] = BASELINES[name]
    stores.update(methods or {})
    chosen = tuple(seeds or (0, 1, 2))
    make = EvalConfig.fast if fast else EvalConfig
    config = make(seeds=chosen, workers=workers)
    result = evaluate(stores, report, config)
    logger.info("report written to %s", result.markdown_path)
    create_markdown_artifact(
        markdown=result.markdown(), key="evaluate-probes-report", description=report
    )
    create_table_artifact(
        key="evaluate-probes-summary",
        table=[{"method": name, **values} for name, values in result.summary.items()],
        description="summary metrics (fractions)",
    )
    return {"report": str(result.json_path), "summary": result.summary}
