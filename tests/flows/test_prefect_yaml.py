"""prefect.yaml and the served deployments declare the same flows; parameters mirror CLI."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml
from prefect.flows import load_flow_from_entrypoint

from pipeline import cli
from pipeline.orchestration.deployments import DEPLOYMENT_NAME, DEPLOYMENTS

REPO = Path(__file__).resolve().parents[2]

CLI_COMMAND = {
    "extract-features": "extract",
    "train-aam": "train",
    "tune-aam": "tune",
    "sanitize-store": "sanitize",
    "evaluate-probes": "evaluate",
    "publish-store": "publish",
}
RENAMED = {"split": "splits", "method": "methods"}
"""CLI options given once per value (--split a --split b) are one list/dict flow parameter."""
FLOW_ONLY = {"dask_address", "n_workers"}
"""Scale-out parameters of the flows (the CLI has its own --scheduler / --workers)."""
CLI_ONLY = {"as_json"}
"""--json: how the CLI prints its result (a flow returns it)."""


@pytest.fixture(scope="module")
def prefect_yaml() -> dict:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())


def test_prefect_yaml_parses_as_prefect_reads_it(prefect_yaml):
    from prefect.cli.deploy._models import PrefectYamlModel  # a dependency: fail, never skip

    model = PrefectYamlModel.model_validate(prefect_yaml)
    assert len(model.deployments) == len(DEPLOYMENTS)


def test_prefect_yaml_matches_the_served_deployments(prefect_yaml):
    entries = prefect_yaml["deployments"]
    assert [e["entrypoint"] for e in entries] == [d.entrypoint for d in DEPLOYMENTS]
    for entry, spec in zip(entries, DEPLOYMENTS, strict=True):
        assert entry["name"] == DEPLOYMENT_NAME
        assert entry["work_pool"]["name"] == "anon-store"
        path, function = entry["entrypoint"].split(":")
        assert (REPO / path).is_file(), path
        flow = load_flow_from_entrypoint(f"{REPO / path}:{function}")
        assert flow.name == spec.flow_name


def test_served_deployments_are_named_default_with_cli_parameters():
    from prefect.utilities.callables import parameter_schema

    from flows.deployments import build_deployments, load_flows

    deployments, flows = build_deployments(), load_flows()
    assert [(d.flow_name, d.name) for d in deployments] == [
        (s.flow_name, DEPLOYMENT_NAME) for s in DEPLOYMENTS
    ]
    assert set(flows) == set(CLI_COMMAND)  # every flow has its CLI twin, named here
    for name, flow in flows.items():
        schema = parameter_schema(flow).model_dump()
        command = getattr(cli, CLI_COMMAND[name], None)
        assert callable(command), f"flow {name} has no CLI command {CLI_COMMAND[name]!r}"
        options = {
            n: p for n, p in inspect.signature(command).parameters.items() if n not in CLI_ONLY
        }
        assert set(schema["properties"]) - FLOW_ONLY == {RENAMED.get(n, n) for n in options}
        required = {RENAMED.get(n, n) for n, p in options.items() if p.default is p.empty}
        assert set(schema.get("required", [])) == required, name
