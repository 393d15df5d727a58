"""Serve one `default` deployment per flow: `python -m flows.deployments` (no work pool needed)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import pipeline
from pipeline.errors import AnonStoreError
from pipeline.orchestration.deployments import DEPLOYMENT_NAME, DEPLOYMENTS, resolve_api_url
from pipeline.orchestration.server import is_healthy, resolve_home

log = logging.getLogger(__name__)


def load_flows() -> dict[str, Any]:
    """The flow objects of every deployment, by flow name."""
    flows = {}
    for spec in DEPLOYMENTS:
        flow = getattr(importlib.import_module(spec.module), spec.function)
        if flow.name != spec.flow_name:
            raise RuntimeError(f"{spec.entrypoint} is flow {flow.name!r}, not {spec.flow_name!r}")
        flows[spec.flow_name] = flow
    return flows


def build_deployments() -> list[Any]:
    """RunnerDeployments named `default`. Module-path entrypoints: flow runs load the flows
    from the installed package, whatever the working directory of the serving process."""
    from prefect.deployments.runner import EntrypointType

    flows = load_flows()
    return [
        flows[spec.flow_name].to_deployment(
            name=DEPLOYMENT_NAME,
            description=spec.description,
            tags=list(spec.tags),
            version=pipeline.__version__,
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        for spec in DEPLOYMENTS
    ]


def serve_deployments(
    api_url: str | None = None, *, home: str | Path | None = None, limit: int | None = None
) -> None:
    """Register the deployments with the Prefect API and run their flow runs here, each in
    its own subprocess, until interrupted (Ctrl-C / SIGTERM). `limit`: concurrent runs at most.

    The API is `api_url`, else PREFECT_API_URL, else the local server started from `home`.
    """
    url = resolve_api_url(api_url, home)
    if not is_healthy(url):
        raise AnonStoreError(
            f"no healthy Prefect API at {url}: start one with `anon-store server start` or set "
            "PREFECT_API_URL"
        )
    # Flow-run subprocesses inherit the environment: they must report to the same API, and keep
    # task results (the shard cache) next to the local server's database unless told otherwise.
    os.environ["PREFECT_API_URL"] = url
    os.environ.setdefault("PREFECT_HOME", str(resolve_home(home)))
    from prefect import serve
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        deployments = build_deployments()
        log.info("serving %s against %s", ", ".join(s.full_name for s in DEPLOYMENTS), url)
        # Stopping the server process must not pause the deployments: runs created while it is
        # down wait for the next `serve` instead of being refused.
        serve(*deployments, limit=limit, pause_on_shutdown=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m flows.deployments", description=__doc__)
    parser.add_argument("--api-url", help="Prefect API (default: PREFECT_API_URL or local)")
    parser.add_argument("--home", help="PREFECT_HOME of the local server (default: .prefect)")
    parser.add_argument("--limit", type=int, help="Concurrent flow runs at most")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API poll otherwise
    try:
        serve_deployments(args.api_url, home=args.home, limit=args.limit)
    except AnonStoreError as error:
        print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
