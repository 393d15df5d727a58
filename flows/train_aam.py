"""Prefect flow `train-aam`: a thin wrapper over pipeline.aam.from_store.train_aam."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.runtime import Device, forward_library_logs
from pipeline.aam.from_store import train_aam
from pipeline.aam.presets import DEFAULT_PRESET, preset_config
from pipeline.aam.streaming import parse_bytes
from pipeline.cli_choices import Arch, Preset

METRIC_KEYS = ("epoch", "action_top1", "static_retrieval", "clip_retrieval", "val_mse")


@flow(name="train-aam")
def train_aam_flow(
    input: str,
    output: str,
    preset: Preset = DEFAULT_PRESET,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    arch: Arch | None = None,
    w_lc: float | None = None,
    w_t: float | None = None,
    w_b: float | None = None,
    w_motion: float | None = None,
    w_spread: float | None = None,
    w_swap: float | None = None,
    w_class: float | None = None,
    device: Device = "cpu",
    seed: int = 0,
    val_every: int = 2,
    memory_budget: str | None = None,
    stream: bool = False,
    resume: bool = True,
    overwrite: bool = False,
    break_lock: bool = False,
) -> dict[str, Any]:
    """Train the Anonymizing Adapter Module over the raw store `input`; write it to `output`.

    Settings come from `preset` (default: recommended); parameters given (not None) override it.
    """
    logger = get_run_logger()
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

    def on_validation(record: dict[str, Any]) -> None:
        logger.info(
            "epoch %s: action top-1 %.4f, static retrieval %.4f, clip retrieval %.4f",
            record["epoch"],
            record["action_top1"],
            record["static_retrieval"],
            record["clip_retrieval"],
        )

    def notify(message: str) -> None:
        (logger.warning if message.startswith("warning:") else logger.info)(message)

    with forward_library_logs():
        result = train_aam(input, output, config, on_validation=on_validation, notify=notify)
    create_table_artifact(
        key="train-aam-metrics",
        table=[{k: r.get(k) for k in METRIC_KEYS} for r in result.history],
        description=f"validation metrics; selected epoch {result.best_epoch}",
    )
    return {"output": result.output, "best_epoch": result.best_epoch, "best": result.best}
