"""The end-to-end demo on the tiny benchmark: every stage runs and the report has every method."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.aam.trainer import TrainConfig
from pipeline.demo import ABLATIONS, DemoConfig, run_demo


def test_demo_runs_every_stage_and_reports(tmp_path, tiny_encoder_dir):
    config = DemoConfig(
        scale="tiny",
        adapter_seeds=(0, 1, 2),
        training=TrainConfig(epochs=2, batch_size=4, head_warmup_epochs=1, w_lc=1.0, w_b=3.0),
        fast_probes=True,
        sanitize_workers=1,
    )
    stages: list[str] = []
    result = run_demo(
        tmp_path, config, encoder=str(tiny_encoder_dir),
        reporter=lambda stage, message: stages.append(stage),
    )  # fmt: skip
    assert stages == ["synth", "encoder", "extract", "train+sanitize", "evaluate"]
    report = json.loads((Path(result.report_dir) / "report.json").read_text())
    assert set(report["summary"]) == {"raw", "aam", "leace", *ABLATIONS}
    assert report["methods"]["aam"]["notes"]["feature_sets"] == 3
    assert "| raw" in result.table or "raw" in result.table
    # one adapter per seed and ablation; only the first seed is written as a sanitized store,
    # the others are applied in memory by the same kernel
    assert len(list((tmp_path / "adapters").iterdir())) == 3 + len(ABLATIONS)
    assert [p.name for p in (tmp_path / "sanitized").glob("*.zarr")] == ["aam_seed0.zarr"]
