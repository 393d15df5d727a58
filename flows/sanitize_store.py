"""Prefect flow `sanitize-store`: a thin wrapper over pipeline.sanitize.sanitize."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.artifacts import store_summary_markdown
from flows.runtime import Device, SanitizeScheduler, forward_library_logs, retry_transient
from pipeline.cli_choices import SanitizePrecision
from pipeline.orchestration.cluster import dask_scheduler
from pipeline.sanitize import SanitizeConfig, SanitizeProgress, sanitize
from pipeline.store.reader import open_store
from pipeline.store.summary import summarize


@task(name="sanitize", retries=1, retry_delay_seconds=10, retry_condition_fn=retry_transient)
def sanitize_task(input: str, adapter: str, output: str, config: SanitizeConfig) -> dict[str, Any]:
    """Anonymize every embedding of `input` into `output`; a retry resumes where it stopped."""
    logger = get_run_logger()
    every = {"next": 0}

    def log_progress(p: SanitizeProgress) -> None:
        if p.chunks_done >= every["next"] or p.chunks_done == p.chunks_total:
            rate = p.bytes_written / max(p.seconds, 1e-9) / 1e6
            logger.info("chunks %d/%d, %.1f MB/s", p.chunks_done, p.chunks_total, rate)
            every["next"] = p.chunks_done + max(1, p.chunks_total // 10)

    return asdict(sanitize(input, adapter, output, config, progress=log_progress))


@flow(name="sanitize-store")
def sanitize_store(
    input: str,
    adapter: str,
    output: str,
    scheduler: SanitizeScheduler = "threads",
    workers: int | None = None,
    chunks_per_task: int = 1,
    batch_size: int = 1024,
    precision: SanitizePrecision = "float64",
    device: Device = "cpu",
    overwrite: bool = False,
    dask_address: str | None = None,
    n_workers: int | None = None,
    break_lock: bool = False,
) -> dict[str, Any]:
    """Write `output`, a sanitized copy of the raw store `input` through the adapter `adapter`.

    `dask_address` (an existing cluster) or `n_workers` (a LocalCluster for this run) replace
    `scheduler`: the library's chunk tasks then run on the dask workers, each writing its own
    chunks; the output is bit-identical to a single-process run.
    """
    logger = get_run_logger()
    with forward_library_logs(), dask_scheduler(dask_address, n_workers) as address:
        config = SanitizeConfig(
            scheduler=address or scheduler,
            workers=workers,
            chunks_per_task=chunks_per_task,
            batch_size=batch_size,
            precision=precision,
            device=device,
            overwrite=overwrite,
            break_lock=break_lock,
        )
        result = sanitize_task(input, adapter, output, config)
    rate = result["bytes_written"] / max(result["seconds"], 1e-9) / 1e6
    logger.info(
        "%s %s: %d videos, %d/%d chunk groups written, %.1f MB/s",
        result["action"],
        result["output"],
        result["videos"],
        result["chunks_written"],
        result["chunks_total"],
        rate,
    )
    create_markdown_artifact(
        markdown=store_summary_markdown(summarize(open_store(result["output"]))),
        key="sanitize-store-store",
        description=f"sanitized store {result['output']}",
    )
    create_table_artifact(
        key="sanitize-store-run",
        table=[
            {
                "action": result["action"],
                "scheduler": "dask" if address else scheduler,
                "chunks_written": result["chunks_written"],
                "MB_written": round(result["bytes_written"] / 1e6, 2),
                "seconds": round(result["seconds"], 2),
                "MB_per_s": round(rate, 1),
                "adapter_sha256": result["adapter_sha256"][:16],
            }
        ],
        description="this run's throughput",
    )
    return result
