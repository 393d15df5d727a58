"""The end-to-end demo on the tiny benchmark: every stage runs and the report has every method."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import zarr
from transformers import VideoMAEModel

from pipeline.aam.trainer import TrainConfig
from pipeline.demo import ABLATIONS, DemoConfig, run_demo
from pipeline.encoders.registry import weights_sha256
from pipeline.probes.report import DASH, HEADLINE_COLUMNS
from store_schema import decode_meta

TRAINING = TrainConfig(epochs=2, batch_size=4, head_warmup_epochs=1, w_lc=1.0, w_b=3.0,
                       w_spread=10.0, w_swap=1.0)  # fmt: skip


def test_demo_runs_every_stage_and_reports(tmp_path, tiny_encoder_dir):
    config = DemoConfig(
        scale="tiny",
        adapter_seeds=(0, 1, 2),
        training=TRAINING,
        fast_probes=True,
        ablations=True,  # `anon-store demo --ablations`; make demo leaves them out
        sanitize_workers=1,
        workers=2,  # adapters trained and methods evaluated in worker processes
        heldout_scale="tiny",
    )
    stages: list[str] = []
    result = run_demo(
        tmp_path, config, encoder=str(tiny_encoder_dir),
        reporter=lambda stage, message: stages.append(stage),
    )  # fmt: skip
    # The held-out world is extracted first so that its adapter trains in the same pool.
    assert stages == ["synth", "encoder", "extract", "heldout synth", "heldout extract",
                      "train+sanitize", "evaluate", "heldout evaluate"]  # fmt: skip
    heldout_adapter = tmp_path / f"heldout-{config.heldout_world}" / "adapters" / "aam_seed0"
    assert (heldout_adapter / "model.safetensors").is_file()
    report = json.loads((Path(result.report_dir) / "report.json").read_text())
    assert set(report["summary"]) == {"raw", "aam", "leace", *ABLATIONS}
    assert report["methods"]["aam"]["notes"]["feature_sets"] == 3
    # the headline table's raw row holds report.json's numbers, privacy and action measured
    raw_row = _headline_row(report, "raw")
    assert result.table.splitlines().count(raw_row) == 1, (raw_row, result.table)
    assert DASH not in raw_row.split(" | ")[1:5], raw_row
    assert "\n| aam |" in result.table
    # the held-out world: its own data set, judged on action and privacy, raw vs the adapters
    heldout = json.loads((Path(result.heldout_report_dir) / "report.json").read_text())
    assert set(heldout["summary"]) == {"raw", "aam"}
    from pipeline.data.synth.worlds import get_world

    world = get_world(config.heldout_world)
    assert tuple(heldout["dataset"]["actions"]) == world.actions
    assert set(heldout["dataset"]["attributes"]) == set(world.attributes)
    assert "feature_sets" not in heldout["methods"]["aam"]["notes"]  # one adapter there
    assert list(heldout["config"]["seeds"]) == [0, 1, 2]  # judged with 3 probe seeds
    assert result.heldout_table is not None and "\n| aam |" in result.heldout_table
    # one adapter per seed and ablation; only the first seed is written as a sanitized store,
    # the others are applied in memory by the same kernel
    assert len(list((tmp_path / "adapters").iterdir())) == 3 + len(ABLATIONS)
    assert [p.name for p in (tmp_path / "sanitized").glob("*.zarr")] == ["aam_seed0.zarr"]
    # the reference-objective comparison really drops both extensions, and only them
    saved = json.loads((tmp_path / "adapters" / "aam_reference_objective" / "config.json")
                       .read_text())["losses"]  # fmt: skip
    assert (saved["w_spread"], saved["w_swap"], saved["w_b"]) == (0.0, 0.0, 3.0)
    saved = json.loads((tmp_path / "adapters" / "aam_seed0" / "config.json").read_text())
    assert (saved["losses"]["w_spread"], saved["losses"]["w_swap"]) == (10.0, 1.0)

    # trained in a worker process or here, an adapter is the same
    from pipeline.demo import _adapter

    again = _adapter(tmp_path / "raw.zarr", tmp_path / "again", config, 1, {})
    assert weights_sha256(again) == weights_sha256(tmp_path / "adapters" / "aam_seed1")

    # A rerun after the encoder changed (an upgrade) re-extracts instead of refusing the old store.
    model = VideoMAEModel.from_pretrained(tiny_encoder_dir)
    with torch.no_grad():
        model.embeddings.patch_embeddings.projection.weight.mul_(1.5)
    model.save_pretrained(tmp_path / "other-encoder")
    quick = dataclasses.replace(
        config, adapter_seeds=(0,), ablations=False, baselines=(), heldout_world=None
    )
    run_demo(tmp_path, quick, encoder=str(tmp_path / "other-encoder"))
    assert _encoder_sha(tmp_path / "raw.zarr") == weights_sha256(tmp_path / "other-encoder")
    assert _encoder_sha(tmp_path / "raw.zarr") != weights_sha256(tiny_encoder_dir)


def _encoder_sha(store: Path) -> str:
    return decode_meta(zarr.open_group(store, mode="r").attrs["anon_store"])["encoder"][
        "weights_sha256"
    ]


def _headline_row(report: dict, method: str) -> str:
    """The headline table's markdown row of `method`, written out from report.json: percent,
    "mean ± CI" ("?" without an interval, a dash where not measured), one cell per column."""
    cells = [method]
    for _, probe, metric, _ in HEADLINE_COLUMNS:
        probes = report["methods"][method].get("probes", {})
        entry = probes.get(probe, {}).get("metrics", {}).get(metric)
        if entry is None or entry.get("mean") is None:
            cells.append(DASH)
        else:
            ci = "?" if entry.get("ci") is None else f"{100 * entry['ci']:.1f}"
            cells.append(f"{100 * entry['mean']:.1f} ± {ci}")
    return "| " + " | ".join(cells) + " |"
