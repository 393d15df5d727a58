# anon-store image: runs `python -m flows.deployments` (serve), dask scheduler and dask workers.
#   docker build -t anon-store .
#   docker build -t anon-store --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu .
# The second form takes torch's CPU wheel (small); the default is PyPI's CUDA build, for GPU
# workers (run them with the NVIDIA container runtime, one worker per GPU).
FROM python:3.11-slim

ARG PIP_EXTRA_INDEX_URL=""
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    ANON_STORE_CACHE=/cache

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY flows ./flows
COPY store_schema ./store_schema
# As the README installs it: torch pinned in the SAME pip command (an unpinned torch pulls
# another build), never torchvision; the s3 extra adds s3fs for MinIO / S3 stores.
RUN pip install "torch==2.13.0" -e ".[s3]"
COPY prefect.yaml ./

CMD ["python", "-m", "flows.deployments"]
