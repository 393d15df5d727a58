"""Apply a trained adapter to features already in memory, with the kernel that sanitize uses."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.aam.checkpoint import load_adapter
from pipeline.sanitize.kernel import kernel_for


@dataclass(frozen=True)
class AdapterTransform:
    """ProbeFeatures -> ProbeFeatures through a saved adapter; a plain value, so it can be sent
    to worker processes (evaluate's ``workers``)."""

    adapter: str
    precision: str = "float64"
    batch_size: int = 256

    def __call__(self, raw: Any) -> Any:
        loaded = load_adapter(self.adapter, expect_dim=raw.feature_dim)
        kernel = kernel_for(loaded, precision=self.precision, batch_size=self.batch_size,
                            device="cpu")  # fmt: skip

        def apply(x: np.ndarray, part: str) -> np.ndarray:
            return kernel(x, 0)

        return raw.map_features(
            apply,
            transform=f"adapter {self.adapter} applied in memory",
            adapter=self.adapter,
            adapter_sha256=loaded.adapter_hash,
        )


def adapter_transform(
    adapter: str | os.PathLike[str], *, precision: str = "float64", batch_size: int = 256
) -> AdapterTransform:
    """A feature transform (ProbeFeatures -> ProbeFeatures) applying ``adapter`` like sanitize.

    For evaluating many adapters (seeds, ablations) without writing a sanitized store each: the
    same AdapterKernel maps clip, static and window features, so the numbers are those of a
    sanitized store up to the float32 rounding of the last bit (micro-batches are aligned to the
    split's rows here, to the store's rows there). Only the feature dimension is checked here:
    the caller pairs the adapter with the raw store it was trained on (sanitize also checks the
    encoder's identity).
    """
    return AdapterTransform(str(adapter), precision=precision, batch_size=batch_size)
