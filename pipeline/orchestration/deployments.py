"""The project's Prefect deployments (one `default` per flow) and which API they talk to."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.orchestration.server import local_api_url

DEPLOYMENT_NAME = "default"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: the same list feeds `serve` (flows/deployments.py) and prefect.yaml."""

    flow_name: str
    """The flow's name, as in `prefect deployment run FLOW/default`."""
    entrypoint: str
    """path/to/file.py:function, relative to the project root (what prefect.yaml holds)."""
    description: str
    tags: tuple[str, ...] = ("anon-store",)

    @property
    def module(self) -> str:
        return self.entrypoint.split(":")[0].removesuffix(".py").replace("/", ".")

    @property
    def function(self) -> str:
        return self.entrypoint.split(":")[1]

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{DEPLOYMENT_NAME}"


DEPLOYMENTS: tuple[DeploymentSpec, ...] = (
    DeploymentSpec(
        "extract-features",
        "flows/extract_features.py:extract_features",
        "videos + manifest -> raw feature store (one cached task per shard; dask scale-out)",
    ),
    DeploymentSpec(
        "train-aam",
        "flows/train_aam.py:train_aam_flow",
        "raw store -> trained Anonymizing Adapter Module",
    ),
    DeploymentSpec(
        "tune-aam",
        "flows/tune_aam.py:tune_aam_flow",
        "raw store -> a search over the adapter's loss weights; the most private adapter within "
        "the utility tolerance",
    ),
    DeploymentSpec(
        "sanitize-store",
        "flows/sanitize_store.py:sanitize_store",
        "raw store + adapter -> sanitized store (dask scale-out)",
    ),
    DeploymentSpec(
        "evaluate-probes",
        "flows/evaluate_probes.py:evaluate_probes",
        "utility and attacker probes on raw, sanitized and baseline features -> report",
    ),
    DeploymentSpec(
        "publish-store",
        "flows/publish_store.py:publish_store",
        "audited sanitized store -> verified copy at a downstream location (the publish gate)",
    ),
)


def resolve_api_url(api_url: str | None = None, home: str | Path | None = None) -> str:
    """The Prefect API to serve against: `api_url`, else PREFECT_API_URL (environment or the
    active Prefect profile), else the local server started by `anon-store server start`."""
    if api_url:
        return api_url.rstrip("/")
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"].rstrip("/")
    from prefect.settings import get_current_settings

    configured = get_current_settings().api.url
    if configured:
        return str(configured).rstrip("/")
    local = local_api_url(home)
    if local:
        return local
    raise ConfigError(
        "no Prefect API configured: run `anon-store server start` (a local server) or set "
        "PREFECT_API_URL"
    )
