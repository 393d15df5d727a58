"""Batching clips of many videos into full encoder batches and routing embeddings back."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import torch

IN_FLIGHT = 2
"""Batches whose embeddings may still be on their way back from the GPU."""


class ClipBatcher:
    """Collects clip tensors from many videos, encodes them in batches of `batch_size`.

    Each `add` names the numpy rows the embeddings belong in; they are filled when the batch that
    holds them comes back from the encoder (at the latest on `flush`). Batching across videos
    keeps the encoder's batch full even when a video has fewer clips than a batch.

    A batch made of several videos' clips is copied once into a reused batch buffer on the clips'
    device: on the GPU when extraction builds clips there (pipeline.data.clips.materialise), else
    page-locked host memory with ``pin_memory`` (CUDA), so the host-to-device copy can be
    asynchronous; on CPU a new 50 MB batch per step was page-faulted in every time.

    `encode` may return embeddings on the GPU without waiting for them (VideoEncoder.embed):
    they are copied into page-locked host memory asynchronously and routed to their rows only
    when ``IN_FLIGHT`` later batches have been queued, so the GPU never waits for the host
    between batches. A host batch buffer is reused only after its batch has been copied.
    """

    def __init__(
        self,
        encode: Callable[[torch.Tensor], torch.Tensor],
        batch_size: int,
        *,
        pin_memory: bool = False,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self._encode = encode
        self._batch_size = batch_size
        self._pin_memory = pin_memory
        self._in_flight = max(1, in_flight)
        self._buffer: torch.Tensor | None = None
        self._pending: list[tuple[torch.Tensor, np.ndarray]] = []
        self._pending_clips = 0
        self._returning: deque[tuple[torch.Tensor, object, list[np.ndarray]]] = deque()
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
        """Encode what is queued and wait until every embedding is in its row."""
        while self._pending_clips:
            self._encode_batch(self._pending_clips)
        while self._returning:
            self._route(*self._returning.popleft())

    def _encode_batch(self, size: int) -> None:
        parts: list[torch.Tensor] = []
        targets: list[np.ndarray] = []
        taken = 0
        while taken < size:
            clips, target = self._pending[0]
            take = min(len(clips), size - taken)
            parts.append(clips[:take])
            targets.append(target[:take])
            if take == len(clips):
                self._pending.pop(0)
            else:
                self._pending[0] = (clips[take:], target[take:])
            taken += take
        batch = self._assemble(parts, size)
        embeddings = self._encode(batch)
        event = None
        if embeddings.device.type == "cuda":
            host = torch.empty(embeddings.shape, dtype=embeddings.dtype, pin_memory=True)
            host.copy_(embeddings, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            if batch.device.type == "cpu":
                event.synchronize()  # its host buffer is refilled by the next batch
            embeddings = host
        self._returning.append((embeddings, event, targets))
        self._pending_clips -= size
        self.clips_encoded += size
        while len(self._returning) >= self._in_flight:
            self._route(*self._returning.popleft())

    @staticmethod
    def _route(embeddings: torch.Tensor, event: object, targets: list[np.ndarray]) -> None:
        if event is not None:
            event.synchronize()  # type: ignore[attr-defined]
        values = embeddings.numpy()
        row = 0
        for target in targets:
            target[...] = values[row : row + len(target)]
            row += len(target)

    def _assemble(self, parts: list[torch.Tensor], size: int) -> torch.Tensor:
        device = parts[0].device
        pin = self._pin_memory and device.type == "cpu"
        if len(parts) == 1 and parts[0].is_contiguous() and not pin:
            return parts[0]
        shape = (self._batch_size, *parts[0].shape[1:])
        buffer = self._buffer
        if buffer is None or buffer.shape != shape or buffer.device != device:
            buffer = torch.empty(shape, dtype=parts[0].dtype, device=device, pin_memory=pin)
            self._buffer = buffer
        row = 0
        for part in parts:
            buffer[row : row + len(part)].copy_(part)
            row += len(part)
        return buffer[:size]
