"""CLI commands `anon-store serve` and `anon-store server start|stop|status` (typer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli_progress import console, note, result
from pipeline.orchestration import server as local_server

Home = Annotated[
    Path | None, typer.Option(help="PREFECT_HOME of the local server (default: ./.prefect)")
]

server_app = typer.Typer(
    help="A local Prefect server (SQLite under ./.prefect) for the flows and the UI.",
    no_args_is_help=True,
)


@server_app.command("start")
def server_start(
    port: Annotated[int, typer.Option(help="Port on the host")] = local_server.DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to bind")] = local_server.DEFAULT_HOST,
    home: Home = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the health check")] = 90.0,
    ui: Annotated[bool, typer.Option(help="Serve the Prefect UI too")] = True,
) -> None:
    """Start a Prefect server in the background and wait until it is healthy."""
    with console.status("starting the Prefect server"):
        status = local_server.start_server(host=host, port=port, home=home, timeout=timeout, ui=ui)
    note(f"Prefect server healthy at {status.url} (pid {status.pid}, log {status.log})")
    print(f"export PREFECT_API_URL={status.url}")


@server_app.command("stop")
def server_stop(
    home: Home = None,
    grace: Annotated[float, typer.Option(help="Seconds between SIGTERM and SIGKILL")] = 10.0,
) -> None:
    """Stop the local server and every process it started."""
    before = local_server.server_status(home=home)
    local_server.stop_server(home=home, grace=grace)
    if before.running:
        result(f"stopped the Prefect server at {before.url} (pid {before.pid})")
    else:
        result(f"no Prefect server running from {before.home}")


@server_app.command("status")
def server_status(
    home: Home = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show url, pid and health of the local server; exit 1 unless it is healthy."""
    status = local_server.server_status(home=home)
    if as_json:
        print(json.dumps(status.to_json()))
    elif status.running:
        health = "healthy" if status.healthy else "NOT healthy"
        result(f"running at {status.url} (pid {status.pid}), {health}; log {status.log}")
    else:
        result(f"not running (PREFECT_HOME {status.home})")
    if not status.healthy:
        raise typer.Exit(1)


def serve(
    api_url: Annotated[
        str | None, typer.Option(help="Prefect API (default: PREFECT_API_URL, else local server)")
    ] = None,
    home: Home = None,
    limit: Annotated[int | None, typer.Option(help="Concurrent flow runs at most")] = None,
) -> None:
    """Serve the deployments extract-features, train-aam, sanitize-store and evaluate-probes
    (each named `default`) until interrupted; trigger them with `prefect deployment run`."""
    from flows.deployments import serve_deployments

    serve_deployments(api_url, home=home, limit=limit)


def register(app: typer.Typer) -> None:
    """Add `serve` and `server start|stop|status` to the anon-store CLI."""
    app.add_typer(server_app, name="server")
    app.command()(serve)
