"""Probe tests train tiny torch models: one thread is much faster on the shared 2-core box."""

from __future__ import annotations

import pytest

from pipeline.threads import torch_threads


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with torch_threads(1):
        yield
