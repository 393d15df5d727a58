"""Prefect flow `tune-aam`: a thin wrapper over pipeline.aam.tune.tune."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.runtime import Address, Device, forward_library_logs
from pipeline.aam.streaming import parse_bytes
from pipeline.aam.tune import TuneConfig, tune
from pipeline.aam.tune.space import SEARCHED_WEIGHTS
from pipeline.cli_choices import TunePrivacy

PARAM_KEYS = ("arch", "epochs", *SEARCHED_WEIGHTS)
"""What the trials artifact shows of each trial's params: w_lc, w_b, w_spread, w_swap, w_motion,
w_class (the searched weights)."""


@flow(name="tune-aam")
def tune_aam_flow(
    input: str,
    output: str,
    trials: int = 20,
    workers: int | None = None,
    scheduler: Address | None = None,
    seed: int = 0,
    tolerance: float = 1.0,
    privacy: TunePrivacy = "auto",
    max_epochs: int | None = None,
    device: Device = "cpu",
    memory_budget: str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Search the adapter's loss weights, architecture and epochs on the raw store `input`;
    the chosen adapter goes to `output`/chosen, the report to `output`/tune.md."""
    logger = get_run_logger()
    config = TuneConfig(
        trials=trials,
        seed=seed,
        tolerance=tolerance,
        privacy=privacy,
        max_epochs=max_epochs,
        workers=workers,
        scheduler=scheduler,
        device=device,
        memory_budget_bytes=None if memory_budget is None else parse_bytes(memory_budget),
        overwrite=overwrite,
    )
    with forward_library_logs():
        result = tune(input, output, config, notify=logger.info)
    create_table_artifact(
        key="tune-aam-trials",
        table=[
            {
                "trial": r["trial_id"],
                **{k: r["params"][k] for k in PARAM_KEYS},
                "val_top1": r["utility"],
                "privacy": r["privacy"],
                "frontier": r["trial_id"] in result.frontier,
                "chosen": r["trial_id"] == result.chosen["trial_id"],
                "seconds": r["seconds"],
            }
            for r in result.trials
        ],
        description=f"trials by privacy ({result.privacy_source}); chosen "
        f"{result.chosen['trial_id']}: {result.reason}",
    )
    logger.info(
        "chosen %s: %s; adapter in %s", result.chosen["trial_id"], result.reason, result.chosen_dir
    )
    return {
        "chosen": result.chosen["trial_id"],
        "params": result.chosen["params"],
        "utility": result.chosen["utility"],
        "privacy": result.chosen["privacy"],
        "privacy_source": result.privacy_source,
        "qualified": result.qualified,
        "raw": {"utility": result.raw["utility"], "privacy": result.raw["privacy"]},
        "chosen_dir": result.chosen_dir,
        "report": result.report_markdown,
        "report_json": result.report_json,
        "plot": result.plot,
    }
