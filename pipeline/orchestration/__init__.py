"""Orchestration support: a local Prefect server, the deployments list, shard-level extraction."""
