"""Prefect flows: thin orchestration over the pipeline library, one module per flow."""
