"""Prefect flow `extract-features`: plan the store, one cached task per shard, then finish it."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.context import TaskRunContext

from flows.artifacts import store_summary_markdown
from flows.runtime import Device, forward_library_logs, retry_transient, shard_task_runner
from pipeline.cli_choices import ExtractPrecision
from pipeline.extract import ExtractConfig
from pipeline.orchestration.extract_shards import (
    ExtractionJob,
    extract_shard,
    finish_extraction,
    prepare_extraction,
    uncommitted_shards,
)
from pipeline.store.location import StoreLocation
from pipeline.store.lock import StoreLock
from pipeline.store.reader import open_store
from pipeline.store.summary import summarize

SHARD_COLUMNS = ("shard", "videos", "failed", "clips_encoded", "seconds", "skipped", "cached")


def shard_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """A shard's identity: the job fingerprint (manifest content hash, encoder identity incl. its
    weights hash, sampling, splits, chunking), the store it goes into, and the shard index.

    The store id is part of the key so that a store deleted and extracted again is really
    extracted again; a rerun into the same store finds every finished shard cached.
    """
    job: ExtractionJob = parameters["job"]
    return f"anon-store-extract-{job.fingerprint[:32]}-{job.store_id}-{parameters['shard']}"


@task(name="plan-extraction", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient)
def plan_extraction_task(
    manifest: str, encoder: str, output: str, config: ExtractConfig
) -> ExtractionJob:
    """Read the manifest, identify the encoder, create the store (or find what is left)."""
    job = prepare_extraction(manifest, encoder, output, config)
    get_run_logger().info(
        "%s %s: %d videos in %d shards, %d to extract",
        job.action,
        job.output,
        job.videos,
        job.num_shards,
        len(job.todo),
    )
    return job


@task(
    name="extract-shard",
    task_run_name="extract-shard-{shard}",
    retries=2,
    retry_delay_seconds=[5, 30],
    retry_condition_fn=retry_transient,
    cache_key_fn=shard_cache_key,
    persist_result=True,
    result_serializer="json",  # a cached result is read back: JSON, never pickle
)
def extract_shard_task(job: ExtractionJob, shard: int) -> dict[str, Any]:
    """Decode, encode and commit one shard (its own chunks only); idempotent."""
    with forward_library_logs():  # also on a dask worker, where the flow's handler is not
        report = extract_shard(job, shard)
    get_run_logger().info(
        "shard %d: %s %d videos (%d failed), %d clips in %.1f s",
        shard,
        "already committed:" if report.skipped else "extracted",
        report.videos,
        report.failed,
        report.clips_encoded,
        report.seconds,
    )
    return asdict(report)


@task(
    name="finish-extraction", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient
)
def finish_extraction_task(job: ExtractionJob, clips_encoded: int) -> dict[str, Any]:
    """Check every shard is committed and mark the store complete."""
    return asdict(finish_extraction(job, clips_encoded))


@task(name="uncommitted-shards", retries=2, retry_delay_seconds=5)
def uncommitted_shards_task(job: ExtractionJob) -> list[int]:
    return uncommitted_shards(job)


@flow(name="extract-shards")
def extract_shards(job: ExtractionJob, shards: list[int], refresh: bool = False) -> list[dict]:
    """Run shard tasks on this flow's task runner (one process, or a dask cluster); each report
    says whether it came from the cache (the shard was finished by an earlier run)."""
    shard_task = extract_shard_task.with_options(refresh_cache=True) if refresh else None
    futures = (shard_task or extract_shard_task).map(job=unmapped(job), shard=shards)
    futures.wait()
    return [{**f.result(), "cached": f.state.name == "Cached"} for f in futures]


@flow(name="extract-features")
def extract_features(
    input: str,
    output: str,
    encoder: str = "tiny",
    device: Device = "auto",
    devices: list[Device] | None = None,
    precision: ExtractPrecision = "auto",
    batch_size: int = 64,
    workers: int | None = None,
    clips_per_video: int = 5,
    static_clips: int = 10,
    splits: list[str] | None = None,
    overwrite: bool = False,
    videos_per_chunk: int | None = None,
    dask_address: str | None = None,
    n_workers: int | None = None,
    break_lock: bool = False,
    video_root: str | None = None,
    allow_outside_root: bool = False,
    trust_remote_code: bool = False,
    record_paths: bool = False,
    append: bool = False,
) -> dict[str, Any]:
    """Encode every clip of the videos the manifest `input` lists once into the raw store at
    `output` (resumable, cached per shard). `dask_address` (an existing cluster) or `n_workers`
    (a local one) spread the shards over dask workers; each writes only its own chunks.

    The flow run holds the store's writer lock from planning to completion (shard tasks write
    under it), so no other run writes the store meanwhile; `break_lock` breaks a lock left by a
    dead run (pipeline.store.lock). The library's log records go to the run's logs.

    `append`: add the manifest's videos the complete store lacks (pipeline.extract.append; in
    this process, which takes the lock itself).

    `devices` (e.g. ["cuda:0", "cuda:1"]): one local dask worker per device, each pinned to its
    own (with `dask_address`, the cluster's workers are numbered 0, 1, ... the same way)."""
    if devices and not dask_address and not n_workers:
        n_workers = len(devices)
    config = ExtractConfig(
        device=device,
        devices=devices or None,
        precision=precision,
        batch_size=batch_size,
        workers=workers,
        clips_per_video=clips_per_video,
        static_clips=static_clips,
        splits=splits or None,
        overwrite=overwrite,
        append=append,
        videos_per_chunk=videos_per_chunk,
        break_lock=break_lock,
        video_root=video_root,
        allow_outside_root=allow_outside_root,
        trust_remote_code=trust_remote_code,
        record_paths=record_paths,
    )
    if append:
        with forward_library_logs():
            return _append(input, output, encoder, config)
    with (
        forward_library_logs(),
        StoreLock(StoreLocation.parse(output), break_lock=break_lock, command=_command(output)),
    ):
        return _extract_features(input, output, encoder, config, dask_address, n_workers)


def _append(manifest: str, output: str, encoder: str, config: ExtractConfig) -> dict[str, Any]:
    from pipeline.encoders.tiny import resolve_encoder_source
    from pipeline.extract import extract

    result = asdict(extract(manifest, resolve_encoder_source(encoder), output, config))
    get_run_logger().info(
        "%s %s: %d new videos, %d failed", result["action"], output, result["videos"],
        result["failed"],
    )  # fmt: skip
    _store_artifact(output)
    return result


def _command(output: str) -> str:
    try:
        from prefect.runtime import flow_run

        return f"prefect flow run {flow_run.name} (extract-features {output})"
    except Exception:
        return f"prefect flow extract-features {output}"


def _extract_features(
    manifest: str,
    output: str,
    encoder: str,
    config: ExtractConfig,
    dask_address: str | None,
    n_workers: int | None,
) -> dict[str, Any]:
    logger = get_run_logger()
    runner = shard_task_runner(dask_address, n_workers)
    job = plan_extraction_task(manifest, encoder, output, config)
    reports: list[dict] = []
    if job.action != "unchanged":
        shards = list(range(job.num_shards))
        reports = extract_shards.with_options(task_runner=runner)(job, shards)
        missing = uncommitted_shards_task(job)
        if missing:  # a cached result for a shard the store lacks (the store was tampered with)
            logger.warning("shards %s are cached but not in the store: extracting them", missing)
            rerun = extract_shards.with_options(task_runner=runner)(job, missing, refresh=True)
            reports = [r for r in reports if r["shard"] not in missing] + rerun
    clips = sum(r["clips_encoded"] for r in reports if not r["cached"])
    result = finish_extraction_task(job, clips)
    logger.info(
        "%s %s: %d videos, %d failed, %d clips encoded",
        result["action"],
        result["output"],
        result["videos"],
        result["failed"],
        clips,
    )
    _store_artifact(job.output)
    if reports:
        create_table_artifact(
            key="extract-features-shards",
            table=[{k: r[k] for k in SHARD_COLUMNS} for r in sorted(reports, key=_shard)],
            description=(
                "per-shard work (cached: finished by an earlier run of this flow; skipped: "
                "committed by another run, e.g. the CLI)"
            ),
        )
    return result


def _shard(report: dict) -> int:
    return int(report["shard"])


def _store_artifact(output: str) -> None:
    create_markdown_artifact(
        markdown=store_summary_markdown(summarize(open_store(output))),
        key="extract-features-store",
        description=f"raw store {output}",
    )
