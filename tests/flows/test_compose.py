"""docker-compose.yml and the Dockerfile, checked without a Docker engine: services, wiring, the
environment names the code reads, and the install step the README documents."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pipeline.store import location

REPO = Path(__file__).resolve().parents[2]
ANON_STORE_SERVICES = ("flows", "dask-scheduler", "dask-worker-1", "dask-worker-2")
RUNS_TASKS = ("flows", "dask-worker-1", "dask-worker-2")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _published(service: dict) -> set[int]:
    return {int(str(p).split(":")[-1]) for p in service.get("ports", [])}


def test_services_images_and_ports(compose):
    services = compose["services"]
    assert set(services) >= {
        "postgres", "prefect-server", "minio", *ANON_STORE_SERVICES
    }  # fmt: skip
    for name, service in services.items():
        assert "image" in service or "build" in service, name
    for name in ANON_STORE_SERVICES:  # all built from this project's Dockerfile
        assert services[name]["build"]["context"] == "." and services[name]["image"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["prefect-server"]["image"].startswith("prefecthq/prefect:3")
    assert services["minio"]["image"].startswith("minio/minio")
    assert 4200 in _published(services["prefect-server"])
    assert {9000, 9001} <= _published(services["minio"])
    assert 8786 in _published(services["dask-scheduler"])
    assert services["flows"]["command"] == ["python", "-m", "flows.deployments"]
    for worker in ("dask-worker-1", "dask-worker-2"):
        command = services[worker]["command"]
        assert command[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
        assert command[command.index("--nthreads") + 1] == "1"


def test_prefect_server_uses_postgres(compose):
    server = compose["services"]["prefect-server"]
    url = server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["environment"]["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


def test_task_runners_share_api_object_store_and_volumes(compose):
    services = compose["services"]
    for name in RUNS_TASKS:
        env = services[name]["environment"]
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api", name
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000", name
        assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"], name
        assert isinstance(json.loads(env[location.ENV_STORAGE_OPTIONS]), dict), name
        mounts = {v.split(":")[1] for v in services[name]["volumes"]}
        # videos, the encoder cache and the shard-result cache are the same files everywhere
        assert {"/data", env["ANON_STORE_CACHE"], env["PREFECT_LOCAL_STORAGE_PATH"]} <= mounts
    minio_user = services["minio"]["environment"]["MINIO_ROOT_USER"]
    assert services["flows"]["environment"]["AWS_ACCESS_KEY_ID"] == minio_user
    assert services["flows"]["depends_on"]["prefect-server"]["condition"] == "service_healthy"


def test_environment_names_are_the_ones_the_code_reads(compose):
    source = "\n".join(p.read_text() for p in (REPO / "pipeline").rglob("*.py"))
    read_by_code = set(re.findall(r"\b(ANON_STORE_[A-Z_]+)\b", source))
    location_source = Path(location.__file__).read_text()
    assert '"AWS_ENDPOINT_URL"' in location_source and location.ENV_STORAGE_OPTIONS in read_by_code
    for name, service in compose["services"].items():
        for key in service.get("environment") or {}:
            if key.startswith("ANON_STORE_"):
                assert key in read_by_code, f"{name}: {key} is read by nothing"


def _install_commands(text: str) -> list[str]:
    joined = text.replace("\\\n", " ")
    return [line for line in joined.splitlines() if re.search(r"pip install .*torch==", line)]


def test_dockerfile_installs_as_the_readme_says():
    dockerfile = (REPO / "Dockerfile").read_text()
    instructions = [ln for ln in dockerfile.splitlines() if not ln.lstrip().startswith("#")]
    assert not any("torchvision" in ln for ln in instructions)
    runs = [c for c in _install_commands(dockerfile) if c.lstrip().startswith("RUN")]
    assert len(runs) == 1, runs
    # torch pinned in the same pip command as the editable install of the project
    match = re.search(r'pip install "torch==([\d.]+)" -e "\.(\[[\w,]+\])?"', runs[0])
    assert match, runs[0]
    readme = (REPO / "README.md").read_text()
    readme_pins = set(re.findall(r'pip install "torch==([\d.]+)" -e', readme))
    assert readme_pins == {match.group(1)}
    makefile_pins = set(re.findall(r'"torch==([\d.]+)"', (REPO / "Makefile").read_text()))
    assert makefile_pins == {match.group(1)}
    orchestration = (REPO / "docs" / "orchestration.md").read_text()
    cluster = orchestration.split("## Run on a cluster", 1)[1]
    assert runs[0].split("RUN", 1)[1].strip() in cluster
