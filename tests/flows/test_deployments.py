"""Every deployment end to end, as users run them: a real server, `python -m
flows.deployments` serving, and `prefect deployment run FLOW/default --param ...` per stage."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from uuid import UUID

import pytest

from pipeline.orchestration.deployments import DEPLOYMENTS
from pipeline.orchestration.server import terminate_tree
from pipeline.store.reader import open_store
from store_schema import validate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
TERMINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _deployment_exists(url: str, full_name: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/deployments/name/{full_name}", timeout=5) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def served(prefect_server, prefect_api, tmp_path_factory):
    """`python -m flows.deployments` in its own process group until the module is done."""
    work = tmp_path_factory.mktemp("serve")
    log = work / "serve.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server.url,
        "PREFECT_HOME": str(work / "prefect-home"),
        # The runner polls for scheduled runs every 10 s by default: pick runs up at once.
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.deployments", "--api-url", prefect_server.url],
            cwd=work,  # flows load from the installed package, not from the working directory
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    handle = {"url": prefect_server.url, "log": log, "env": env, "proc": proc, "ready": False}
    try:
        # Registration is awaited by the first run, so that the benchmark and the encoder are
        # made while the serving process starts.
        yield handle
    finally:
        terminate_tree(proc.pid, grace=5)
        proc.wait(timeout=10)


def _wait_registered(served: dict, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    proc, log = served["proc"], served["log"]
    while not served["ready"]:
        served["ready"] = all(_deployment_exists(served["url"], d.full_name) for d in DEPLOYMENTS)
        assert proc.poll() is None, f"serve exited ({proc.returncode}):\n{_tail(log)}"
        assert time.monotonic() < deadline, f"deployments not registered:\n{_tail(log)}"
        time.sleep(0 if served["ready"] else 0.5)


def _param(value) -> str:
    # Strings as users type them (prefect falls back to the raw string); the rest as JSON.
    return value if isinstance(value, str) else json.dumps(value)


def run_deployment(served: dict, name: str, params: dict, timeout: float = 180) -> float:
    """`prefect deployment run NAME -p k=v ...`, then poll the flow run with the Prefect
    client until it ends; returns seconds from the command to the COMPLETED state."""
    from prefect.client.orchestration import get_client

    _wait_registered(served)
    command = [PREFECT, "deployment", "run", name]
    for key, value in params.items():
        command += ["--param", f"{key}={_param(value)}"]
    started = time.perf_counter()
    created = subprocess.run(
        command, env=served["env"], capture_output=True, text=True, timeout=120, check=False
    )
    assert created.returncode == 0, created.stdout + created.stderr
    match = re.search(r"UUID: ([0-9a-f-]{36})", created.stdout)
    assert match, created.stdout
    run_id = UUID(match.group(1))
    with get_client(sync_client=True) as client:
        while True:
            flow_run = client.read_flow_run(run_id)
            state = flow_run.state.type.value if flow_run.state else "PENDING"
            if state in TERMINAL:
                break
            assert time.perf_counter() - started < timeout, (
                f"{name} still {state} after {timeout} s:\n{_tail(served['log'])}"
            )
            time.sleep(0.5)
    seconds = time.perf_counter() - started
    assert state == "COMPLETED", f"{name} ended {state}:\n{_tail(served['log'], 80)}"
    return seconds


def test_every_deployment_runs_the_pipeline(served, tiny_benchmark, tiny_encoder_dir, tmp_path):
    raw, adapter = tmp_path / "raw.zarr", tmp_path / "adapter"
    sanitized, report = tmp_path / "sanitized.zarr", tmp_path / "report"
    seconds = {}
    seconds["extract"] = run_deployment(
        served,
        "extract-features/default",
        {
            "input": str(tiny_benchmark / "manifest.parquet"),
            "encoder": str(tiny_encoder_dir),
            "output": str(raw),
            "videos_per_chunk": 8,
            "batch_size": 16,
        },
    )
    assert validate(str(raw)) == []
    assert open_store(raw, kind="raw").status == "complete"

    seconds["train"] = run_deployment(
        served, "train-aam/default", {"input": str(raw), "output": str(adapter), "epochs": 2}
    )
    assert (adapter / "model.safetensors").is_file()

    seconds["tune"] = run_deployment(
        served,
        "tune-aam/default",
        {
            "input": str(raw),
            "output": str(tmp_path / "tuned"),
            "trials": 1,
            "max_epochs": 1,
            "workers": 1,
        },
    )
    assert (tmp_path / "tuned" / "chosen" / "model.safetensors").is_file()

    seconds["sanitize"] = run_deployment(
        served,
        "sanitize-store/default",
        {"input": str(raw), "adapter": str(adapter), "output": str(sanitized)},
    )
    assert validate(str(sanitized)) == []
    assert open_store(sanitized, kind="sanitized").meta["input_store_id"] == (
        open_store(raw).store_id
    )

    seconds["evaluate"] = run_deployment(
        served,
        "evaluate-probes/default",
        {
            "input": str(raw),
            "sanitized": str(sanitized),
            "output": str(report),
            "fast": True,
            "seeds": [0],
        },
    )
    assert set(json.loads((report / "report.json").read_text())["summary"]) == {"raw", "aam"}
    print("seconds from `prefect deployment run` to COMPLETED:", seconds)
