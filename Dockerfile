# anon-store image: runs `python -m flows.deployments` (serve), dask scheduler and dask workers.
#
#   docker build -t anon-store:0.1.0 .                                      # CPU torch (default)
#   docker build -t anon-store:0.1.0-cuda --build-arg TORCH_VARIANT=cuda .  # CUDA torch (GPU workers)
#   docker build --build-arg UID=$(id -u) --build-arg GID=$(id -g) ...      # runs as you
# `docker compose build` passes these from .env (see .env.example and docs/orchestration.md).
#
# Layers: the dependencies (torch and everything else pyproject.toml lists) are installed from
# pyproject.toml and an empty package skeleton, before any source is copied, so editing the
# code rebuilds only the last, seconds-long layers; changing pyproject.toml or a build arg
# reinstalls the dependencies.
FROM python:3.11-slim

# cpu: torch's CPU wheel from the PyTorch CPU index (small; every service but GPU workers).
# cuda: PyPI's default torch build, which bundles CUDA (GPU workers; NVIDIA container runtime).
ARG TORCH_VARIANT=cpu
# Keep equal to the Prefect server image tag in docker-compose.yml (and prefect.yaml).
ARG PREFECT_VERSION=3.9.1
# The non-root user the containers run as; give it your ids so that files written to the
# ./data bind mount belong to you.
ARG UID=1000
ARG GID=1000

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    ANON_STORE_CACHE=/cache

# --non-unique: the host's gid/uid may already exist in the image (e.g. gid 20 on macOS hosts);
# --no-log-init: no sparse multi-GB lastlog for large uids.
RUN groupadd --non-unique --gid "${GID}" app \
 && useradd --non-unique --no-log-init --uid "${UID}" --gid "${GID}" --create-home --shell /bin/bash app \
 && mkdir -p /app /data /cache /prefect-results \
 && chown app:app /app /data /cache /prefect-results

WORKDIR /app

# 1. Dependencies: pyproject.toml plus an empty skeleton of the three packages (and a
#    placeholder README, which pyproject.toml names), so this layer does not depend on the code.
COPY pyproject.toml ./
RUN mkdir -p pipeline flows store_schema \
 && touch README.md pipeline/__init__.py flows/__init__.py store_schema/__init__.py
# As the README installs it: torch pinned in the SAME pip command (an unpinned torch pulls
# another build), never torchvision; the s3 extra adds s3fs for MinIO / S3 stores. The
# constraint keeps the Prefect client at the server's version.
RUN case "${TORCH_VARIANT}" in \
      cpu) export PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu ;; \
      cuda) ;; \
      *) echo "TORCH_VARIANT must be cpu or cuda, not '${TORCH_VARIANT}'" >&2; exit 1 ;; \
    esac \
 && echo "prefect==${PREFECT_VERSION}" > /tmp/constraints.txt \
 && PIP_CONSTRAINT=/tmp/constraints.txt pip install "torch==2.13.0" -e ".[s3]" \
 && rm /tmp/constraints.txt

# 2. The source, then the project itself again without dependencies (metadata, entry points).
COPY README.md LICENSE prefect.yaml ./
COPY pipeline ./pipeline
COPY flows ./flows
COPY store_schema ./store_schema
RUN pip install --no-deps -e . \
 && python -c "import pipeline, flows, store_schema"

USER app
CMD ["python", "-m", "flows.deployments"]
