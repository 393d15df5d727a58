"""Batching clips of many videos into full encoder batches and routing embeddings back."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


class ClipBatcher:
    """Collects clip tensors from many videos, encodes them in batches of `batch_size`.

    Each `add` names the numpy rows the embeddings belong in; they are filled when the batch that
    holds them is encoded (at the latest on `flush`). Batching across videos keeps the encoder's
    batch full even when a video has fewer clips than a batch.

    A batch made of several videos' clips is copied once into a reused batch buffer, page-locked
    with ``pin_memory`` (CUDA), so the encoder's host-to-device copy can be asynchronous without
    a concatenation, a contiguous copy of expanded static clips and a pinning copy per batch
    (three copies of ~10 MB at 224 px on the main thread). On CPU a new 50 MB batch per step was
    page-faulted in every time. Reuse is safe: encode() returns CPU embeddings, which waits for
    the GPU.
    """

    def __init__(
        self,
        encode: Callable[[torch.Tensor], torch.Tensor],
        batch_size: int,
        *,
        pin_memory: bool = False,
    ) -> None:
        self._encode = encode
        self._batch_size = batch_size
        self._pin_memory = pin_memory
        self._buffer: torch.Tensor | None = None
        self._pending: list[tuple[torch.Tensor, np.ndarray]] = []
        self._pending_clips = 0
        self.clips_encoded = 0

    def add(self, clips: torch.Tensor, target: np.ndarray) -> None:
        """Queue `clips` [n, T, 3, H, W]; their embeddings go to `target` [n, D] (a view)."""
        if len(clips) == 0:
            return
        self._pending.append((clips, target))
        self._pending_clips += len(clips)
        while self._pending_clips >= self._batch_size:
            self._encode_batch(self._batch_size)

    def flush(self) -> None:
        while self._pending_clips:
            self._encode_batch(self._pending_clips)

    def _encode_batch(self, size: int) -> None:
        parts: list[torch.Tensor] = []
        routes: list[tuple[np.ndarray, int, int]] = []
        taken = 0
        while taken < size:
            clips, target = self._pending[0]
            take = min(len(clips), size - taken)
            parts.append(clips[:take])
            routes.append((target, 0, take))
            if take == len(clips):
                self._pending.pop(0)
            else:
                self._pending[0] = (clips[take:], target[take:])
            taken += take
        batch = self._assemble(parts, size)
        embeddings = self._encode(batch).numpy()
        row = 0
        for target, start, stop in routes:
            target[start:stop] = embeddings[row : row + stop - start]
            row += stop - start
        self._pending_clips -= size
        self.clips_encoded += size

    def _assemble(self, parts: list[torch.Tensor], size: int) -> torch.Tensor:
        if len(parts) == 1 and parts[0].is_contiguous() and not self._pin_memory:
            return parts[0]
        shape = (self._batch_size, *parts[0].shape[1:])
        if self._buffer is None or self._buffer.shape != shape:
            self._buffer = torch.empty(shape, dtype=parts[0].dtype, pin_memory=self._pin_memory)
        row = 0
        for part in parts:
            self._buffer[row : row + len(part)].copy_(part)
            row += len(part)
        return self._buffer[:size]
