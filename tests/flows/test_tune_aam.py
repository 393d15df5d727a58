"""The `tune-aam` flow against a real Prefect server: same search, artifact, paths returned."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

if str(Path(__file__).parents[1]) not in sys.path:  # tests/, for the store builders
    sys.path.insert(0, str(Path(__file__).parents[1]))


def test_tune_aam_flow_returns_the_chosen_trial_and_records_the_trials(prefect_api, tmp_path):
    from aam.tune_helpers import write_tune_store
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    from flows.tune_aam import tune_aam_flow
    from pipeline.aam.checkpoint import load_adapter

    store = write_tune_store(tmp_path / "raw.zarr", videos=100)
    out = tmp_path / "tuned"
    state = tune_aam_flow(
        input=str(store), output=str(out), trials=2, workers=1, max_epochs=1,
        memory_budget="64MB", return_state=True,
    )  # fmt: skip
    result = state.result()
    assert result["chosen"] in ("preset-recommended", "preset-reference")
    assert result["privacy_source"] == "attacker"
    assert Path(result["report"]) == out / "tune.md" and Path(result["plot"]).is_file()
    assert load_adapter(result["chosen_dir"]).config["training"]["epochs"] == 1
    with get_client(sync_client=True) as client:
        # this run's artifact: other tests run tune-aam on the same server
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["tune-aam-trials"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            )
        )
    assert len(artifacts) == 1
    rows = artifacts[0].data
    rows = json.loads(rows) if isinstance(rows, str) else rows  # a table is stored as JSON
    assert {row["trial"] for row in rows} == {"preset-recommended", "preset-reference"}
    assert all(row["w_class"] == 0 for row in rows)  # a searched weight; both presets leave it 0
