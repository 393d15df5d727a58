"""torch intra-op thread count for a block of code (small models on few, shared cores)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (None = leave as is), then restore.

    Small models (probes, adapters, the sanitize kernel under dask) gain nothing from a second
    thread, and on a shared 2-core machine two threads fighting over cores with everybody else
    made steps 5-60x slower than one.
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)
