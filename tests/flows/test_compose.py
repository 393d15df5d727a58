"""docker-compose.yml, the Dockerfile, .env.example and LICENSE, checked without a Docker engine:
services, wiring, the environment names the code reads, the install step the README documents,
pinned images, the image's layers and user; `config -q` of Compose v2 and v1.29 where installed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipeline.store import location

REPO = Path(__file__).resolve().parents[2]
ANON_STORE_SERVICES = ("flows", "dask-scheduler", "dask-worker-1", "dask-worker-2")
GPU_WORKER = "dask-worker-gpu"
RUNS_TASKS = ("flows", "dask-worker-1", "dask-worker-2", GPU_WORKER)
# ${NAME}, ${NAME:-default}, ${NAME-default} (not $${...}, an escaped dollar)
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def _resolved(value: str) -> str:
    """A compose value with every ${VAR:-default} replaced by its default (no .env)."""
    return VARIABLE.sub(lambda m: m.group(2) or "", str(value))


def _dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines = (REPO / "Dockerfile").read_text().splitlines()
    lines = [ln for ln in lines if not ln.lstrip().startswith("#")]
    return [ln.strip() for ln in "\n".join(lines).replace("\\\n", " ").splitlines() if ln.strip()]


def _dockerfile_arg_defaults() -> dict[str, str]:
    args = {}
    for line in _dockerfile_instructions():
        match = re.fullmatch(r"ARG\s+(\w+)(?:=(\S*))?", line)
        if match:
            args[match.group(1)] = (match.group(2) or "").strip('"')
    return args


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
    assert _resolved(services["prefect-server"]["image"]).startswith("prefecthq/prefect:3")
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
    assert match.group(0) in cluster


def test_compose_file_is_v1_and_v2_compatible(compose):
    # `name:` is Compose v2 only (docker-compose 1.29 rejects the file); without `version:` both
    # read the file as the Compose Specification, and v2 warns about a `version:`.
    assert "name" not in compose and "version" not in compose
    assert set(compose) <= {"services", "volumes", "networks", "secrets", "configs"} | {
        key for key in compose if key.startswith("x-")
    }


def _prefect_yaml_version() -> str:
    return yaml.safe_load((REPO / "prefect.yaml").read_text())["prefect-version"]


def test_every_image_is_pinned(compose):
    project_version = re.search(
        r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M
    ).group(1)
    for name, service in compose["services"].items():
        image = _resolved(service["image"])
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: untagged image {image}"
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest" and "latest" not in tag, f"{name}: {image}"
        if "build" in service:  # the built images carry the project's version
            assert image.startswith("anon-store:") and tag.startswith(project_version), image
    services = compose["services"]
    prefect = _prefect_yaml_version()
    assert (
        _resolved(services["prefect-server"]["image"]) == f"prefecthq/prefect:{prefect}-python3.11"
    )
    minio_release = r"RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ"
    assert re.fullmatch(rf"minio/minio:{minio_release}", services["minio"]["image"])
    assert re.fullmatch(rf"minio/mc:{minio_release}", services["minio-init"]["image"])


def test_prefect_client_in_the_image_matches_the_server(compose):
    prefect = _prefect_yaml_version()
    assert _dockerfile_arg_defaults()["PREFECT_VERSION"] == prefect
    for name in (*ANON_STORE_SERVICES, GPU_WORKER):
        args = compose["services"][name]["build"]["args"]
        assert _resolved(args["PREFECT_VERSION"]) == prefect, name
    assert "${PREFECT_VERSION" in compose["services"]["prefect-server"]["image"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'echo "prefect==${PREFECT_VERSION}"' in dockerfile and "PIP_CONSTRAINT=" in dockerfile


def test_dockerfile_installs_dependencies_before_the_source():
    instructions = _dockerfile_instructions()
    deps = [i for i, ln in enumerate(instructions) if re.search(r"pip install .*torch==", ln)]
    assert len(deps) == 1
    copies = [(i, ln) for i, ln in enumerate(instructions) if ln.startswith("COPY")]
    # before the dependency layer: pyproject.toml only (plus a generated empty skeleton)
    assert [ln for i, ln in copies if i < deps[0]] == ["COPY pyproject.toml ./"]
    source = [i for i, ln in copies if re.search(r"\b(pipeline|flows|store_schema)\b", ln)]
    assert len(source) == 3 and min(source) > deps[0]
    reinstall = [i for i, ln in enumerate(instructions) if "pip install --no-deps -e ." in ln]
    assert len(reinstall) == 1 and reinstall[0] > max(source)


def test_dockerfile_selects_cpu_or_cuda_torch(compose):
    args = _dockerfile_arg_defaults()
    assert args["TORCH_VARIANT"] == "cpu"
    (deps,) = [ln for ln in _dockerfile_instructions() if re.search(r"pip install .*torch==", ln)]
    assert "PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu" in deps
    services = compose["services"]
    for name in ANON_STORE_SERVICES:  # nothing but the GPU worker gets CUDA torch
        assert services[name]["build"]["args"]["TORCH_VARIANT"] == "cpu", name
    assert services[GPU_WORKER]["build"]["args"]["TORCH_VARIANT"] == "cuda"
    assert services[GPU_WORKER]["image"] != services["flows"]["image"]


def test_gpu_reservation_only_in_the_optional_gpu_profile(compose):
    services = compose["services"]
    reserving = {
        name
        for name, service in services.items()
        if service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices")
    }
    assert reserving == {GPU_WORKER}
    gpu = services[GPU_WORKER]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and len(device["device_ids"]) == 1
    command = gpu["command"]
    assert command[:3] == ["dask", "worker", "tcp://dask-scheduler:8786"]
    assert command[command.index("--nthreads") + 1] == "1"
    assert not any("profiles" in services[name] for name in ANON_STORE_SERVICES)


def test_video_decoding_containers_get_shared_memory(compose):
    for name in RUNS_TASKS:
        size = _resolved(compose["services"][name]["shm_size"])
        assert re.fullmatch(r"\d+[kmg]b", size.lower()), (name, size)


def test_dockerfile_runs_as_a_non_root_user_with_configurable_ids(compose):
    instructions = _dockerfile_instructions()
    users = [ln.split(None, 1)[1] for ln in instructions if ln.startswith("USER")]
    assert users and users[-1] not in {"root", "0", "0:0"}
    args = _dockerfile_arg_defaults()
    assert args["UID"] == args["GID"] == "1000"
    (useradd,) = [ln for ln in instructions if "useradd" in ln]
    assert '--uid "${UID}"' in useradd and '--gid "${GID}"' in useradd
    assert f"{users[-1]}:{users[-1]}" in useradd  # owns the mount points of the volumes
    for mount in ("/cache", "/prefect-results", "/data"):
        assert mount in useradd
    for name in (*ANON_STORE_SERVICES, GPU_WORKER):
        build_args = compose["services"][name]["build"]["args"]
        assert build_args["UID"] == "${HOST_UID:-1000}" and build_args["GID"] == "${HOST_GID:-1000}"
        assert "user" not in compose["services"][name]  # the image's user, not root
    # pip installs into site-packages as root; only the containers' processes run as the user
    assert instructions.index(f"USER {users[-1]}") > max(
        i for i, ln in enumerate(instructions) if ln.startswith("RUN")
    )


def _env_example() -> dict[str, str]:
    values = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values


def test_env_example_lists_every_variable_with_the_compose_defaults():
    text = (REPO / "docker-compose.yml").read_text()
    defaults: dict[str, set[str]] = {}
    for match in VARIABLE.finditer(text):
        defaults.setdefault(match.group(1), set()).add(match.group(2) or "")
    example = _env_example()
    assert example.pop("COMPOSE_PROJECT_NAME") == "anon-store"  # read by compose itself
    assert set(example) == set(defaults)
    for name, value in example.items():
        assert defaults[name] == {value}, name  # copying .env.example changes nothing
    lines = (REPO / ".env.example").read_text().splitlines()
    for i, line in enumerate(lines):  # each variable has its comment above it
        if line and not line.startswith("#"):
            assert any(ln.startswith("#") for ln in lines[max(0, i - 3) : i]), line


def test_license_is_apache_2():
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("Copyright ") and "the anon-store authors" in text.splitlines()[0]
    for phrase in (
        "Apache License\n                           Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
        "APPENDIX: How to apply the Apache License to your work.",
        "http://www.apache.org/licenses/LICENSE-2.0",
    ):
        assert phrase in text, phrase
    assert 'license = { text = "Apache-2.0" }' in (REPO / "pyproject.toml").read_text()


def _compose_tools() -> dict[str, list[str]]:
    """The compose binaries on PATH: `docker compose` (v2 plugin) and `docker-compose`."""
    tools = {}
    docker = shutil.which("docker")
    if docker:
        try:
            probe = subprocess.run(
                [docker, "compose", "version"], capture_output=True, timeout=30, check=False
            )
            if probe.returncode == 0:
                tools["docker compose"] = [docker, "compose"]
        except (OSError, subprocess.TimeoutExpired):
            pass
    legacy = shutil.which("docker-compose")
    if legacy:
        tools["docker-compose"] = [legacy]
    return tools


@pytest.mark.parametrize("profile", [[], ["--profile", "gpu"]], ids=["default", "gpu"])
@pytest.mark.parametrize("tool", ["docker compose", "docker-compose"])
def test_compose_config_validates(tool, profile):
    command = _compose_tools().get(tool)
    if command is None:
        pytest.skip(f"`{tool}` is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    result = subprocess.run(
        [*command, "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml"),
         *profile, "config", "-q"],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "obsolete" not in result.stderr and "WARN" not in result.stderr, result.stderr
