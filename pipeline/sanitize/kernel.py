"""The adapter as a block function: store rows in, anonymized rows out, bit-reproducibly.

Why the output does not depend on chunking, batch size or scheduler:
- every forward pass is one micro-batch of exactly B rows (B = clips per pass // clips per row),
  and micro-batches sit at fixed positions of the GLOBAL row index (rows ``[j * B, (j + 1) * B)``;
  the rows a block does not own are zero padding). A row is therefore always computed in the
  same GEMM shape, at the same position, whichever block, task or worker computes it. Clips per
  pass is ``batch_size`` in float64 and the constant FLOAT32_TILE in float32, so float32 output
  does not depend on batch_size either; a micro-batch with no valid row (the padding window rows
  at the end of every shard, failed videos) is skipped: its rows come out NaN anyway;
- torch runs single-threaded inside a task (dask provides the parallelism), so the BLAS
  partitioning never depends on how many threads happen to be free;
- by default the arithmetic is float64 and the result is rounded to float32: a float64 error of a
  few ulps would have to straddle a float32 rounding boundary (~1e-9 odds per value) to change a
  stored bit, which makes the output agree across batch sizes, BLAS kernels, CPUs and GPUs too.
Rows are videos ([V, K, D] blocks: the attention adapter sees all clips of a video, exactly as in
training) or single windows ([N, D] blocks: each window is one clip, as the trainer never feeds
windows as sequences). A row with any non-finite input (failed video, padding window) comes out
all-NaN and is never fed to the adapter.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter
from pipeline.errors import AdapterError, ConfigError

_DTYPES = {"float64": torch.float64, "float32": torch.float32}
FLOAT32_TILE = 256
"""Clips per forward pass in float32, whatever batch_size: float32 rounding depends on the GEMM
shape, so the shape is a constant. 256 rows run within ~10% of 1024-row GEMMs on one core (D=128)
and waste less at chunk edges (a micro-batch straddling two chunks is computed by both)."""
_CACHE: OrderedDict[tuple[str, str, str], AnonymizingAdapter] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 2


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available")
    return name


@dataclass(frozen=True, eq=False)
class AdapterKernel:
    """A picklable adapter application; the torch module is built once per process and cached."""

    adapter_config: AdapterConfig
    sha256: str
    """sha256 of the adapter's model.safetensors (the cache key, and checked when loading)."""
    precision: str
    batch_size: int
    device: str
    state: dict[str, torch.Tensor] | None = None
    """The adapter's weights; None = load them from `path` in each process (local processes)."""
    path: str | None = None
    """The adapter directory (read by processes that get no `state`)."""

    def without_weights(self) -> AdapterKernel:
        """A light copy that loads the weights from `path` (for local worker processes)."""
        if self.path is None:
            raise AdapterError("cannot ship an adapter without weights when it has no path")
        return replace(self, state=None)

    def module(self) -> AnonymizingAdapter:
        key = (self.sha256, self.precision, self.device)
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
            if cached is not None:
                _CACHE.move_to_end(key)
                return cached
            module = self._build()
            _CACHE[key] = module
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
            return module

    def _build(self) -> AnonymizingAdapter:
        state = self.state
        if state is None:
            from pipeline.aam.checkpoint import load_adapter

            loaded = load_adapter(str(self.path))
            if loaded.adapter_hash != self.sha256:
                raise AdapterError(f"{self.path}: adapter changed while sanitizing")
            state = loaded.adapter.state_dict()
        module = AnonymizingAdapter(self.adapter_config)
        module.load_state_dict(state, strict=True)
        device = resolve_device(self.device)
        return module.to(device=device, dtype=_DTYPES[self.precision]).eval()

    def rows_per_pass(self, row_shape: tuple[int, ...]) -> int:
        """Rows (videos or windows) per forward pass: a function of the row shape only, so the
        same for every block of an array."""
        clips = FLOAT32_TILE if self.precision == "float32" else self.batch_size
        return max(1, clips // int(np.prod(row_shape[:-1], dtype=np.int64)))

    @torch.no_grad()
    def __call__(self, block: np.ndarray, row_start: int) -> np.ndarray:
        """Anonymize `block` ([n, K, D] videos or [n, D] windows) whose first row is `row_start`."""
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        block = np.asarray(block, dtype=np.float32)
        n = block.shape[0]
        out = np.full(block.shape, np.nan, dtype=np.float32)
        if n == 0 or block.size == 0:
            return out
        module = self.module()
        device = next(module.parameters()).device
        dtype = _DTYPES[self.precision]
        valid = np.isfinite(block).reshape(n, -1).all(axis=1)
        size = self.rows_per_pass(block.shape[1:])
        batch = torch.empty((size, *block.shape[1:]), dtype=dtype)
        first = row_start - row_start % size
        for batch_start in range(first, row_start + n, size):
            lo, hi = max(batch_start, row_start), min(batch_start + size, row_start + n)
            rows = slice(lo - row_start, hi - row_start)
            ok = valid[rows]
            if not ok.any():
                continue
            batch.zero_()
            part = batch[lo - batch_start : hi - batch_start]
            part.copy_(torch.from_numpy(block[rows]))
            if not ok.all():
                part[torch.from_numpy(~ok)] = 0
            result = module(batch.to(device))[lo - batch_start : hi - batch_start]
            out[rows] = result.to("cpu", torch.float32).numpy()
        out[~valid] = np.nan
        return out


def kernel_for(loaded: Any, *, precision: str, batch_size: int, device: str) -> AdapterKernel:
    """A kernel holding the weights of a LoadedAdapter (pipeline.aam.checkpoint)."""
    state = {k: v.detach().to("cpu").clone() for k, v in loaded.adapter.state_dict().items()}
    return AdapterKernel(
        adapter_config=loaded.adapter_config,
        sha256=loaded.adapter_hash,
        precision=precision,
        batch_size=batch_size,
        device=device,
        state=state,
        path=str(loaded.path),
    )
