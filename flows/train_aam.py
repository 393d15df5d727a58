"""Prefect flow `train-aam`: a thin wrapper over pipeline.aam.from_store.train_aam."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from pipeline.aam.from_store import TrainAAMConfig, train_aam
from pipeline.aam.streaming import parse_bytes
from pipeline.aam.trainer import TrainConfig

METRIC_KEYS = ("epoch", "action_top1", "static_retrieval", "clip_retrieval", "val_mse")


@flow(name="train-aam")
def train_aam_flow(
    input: str,
    output: str,
    epochs: int = 30,
    batch_size: int = 64,
    lr: float = 1e-3,
    arch: str = "mlp",
    w_lc: float = 100.0,
    w_t: float = 1.0,
    w_b: float = 1.0,
    w_motion: float = 0.0,
    w_spread: float = 0.0,
    w_swap: float = 0.0,
    device: str = "cpu",
    seed: int = 0,
    val_every: int = 2,
    memory_budget: str | None = None,
    stream: bool = False,
    resume: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train the Anonymizing Adapter Module over the raw store `input`; write it to `output`."""
    logger = get_run_logger()
    config = TrainAAMConfig(
        training=TrainConfig(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            w_lc=w_lc,
            w_t=w_t,
            w_b=w_b,
            w_motion=w_motion,
            w_spread=w_spread,
            w_swap=w_swap,
            device=device,
            seed=seed,
            val_every=val_every,
        ),
        arch=arch,
        memory_budget_bytes=None if memory_budget is None else parse_bytes(memory_budget),
        stream=stream,
        resume=resume,
        overwrite=overwrite,
    )

    def on_validation(record: dict[str, Any]) -> None:
        logger.info(
            "epoch %s: action top-1 %.4f, static retrieval %.4f, clip retrieval %.4f",
            record["epoch"],
            record["action_top1"],
            record["static_retrieval"],
            record["clip_retrieval"],
        )

    # notify: how features are held (memory / stream) and whether a checkpoint was resumed.
    result = train_aam(input, output, config, on_validation=on_validation, notify=logger.info)
    create_table_artifact(
        key="train-aam-metrics",
        table=[{k: r.get(k) for k in METRIC_KEYS} for r in result.history],
        description=f"validation metrics; selected epoch {result.best_epoch}",
    )
    return {"output": result.output, "best_epoch": result.best_epoch, "best": result.best}
