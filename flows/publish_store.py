"""Prefect flow `publish-store`: a thin wrapper over pipeline.store.publish.publish."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.runtime import forward_library_logs
from pipeline.store.publish import DEFAULT_MAX_LEAKAGE, publish


@flow(name="publish-store")
def publish_store(
    input: str,
    output: str,
    max_leakage: float = DEFAULT_MAX_LEAKAGE,
    overwrite: bool = False,
    break_lock: bool = False,
    allow_unmeasured: bool = False,
) -> dict[str, Any]:
    """Copy the sanitized store `input` to `output` if it is audited at its current version
    with leakage <= `max_leakage`; every object is verified by sha256 (pipeline.store.publish).
    `allow_unmeasured`: also when the audit could read no cut (raw attackers near chance)."""
    logger = get_run_logger()
    with forward_library_logs():
        published = publish(
            input, output, max_leakage=max_leakage, overwrite=overwrite, break_lock=break_lock,
            allow_unmeasured=allow_unmeasured,
        )  # fmt: skip
    result = asdict(published)
    audited = published.audit_line()
    logger.info(
        "published %s (store %s, version %d): %d objects verified, %s",
        result["destination"],
        result["store_id"],
        result["store_version"],
        result["objects"],
        audited,
    )
    create_markdown_artifact(
        key="publish",
        markdown=(
            f"Published `{result['destination']}` from store `{result['store_id']}` version "
            f"{result['store_version']}: {result['objects']} objects, {result['bytes']} bytes, "
            f"sha256-verified; {audited}."
        ),
        description="publish-store",
    )
    return result
