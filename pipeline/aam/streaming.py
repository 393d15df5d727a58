"""Streaming a split of a raw store in blocks: adapter training and validation in bounded memory.

When train and val features do not fit the memory budget, the trainer reads them block by block
from the store instead of loading them. A block is a run of store rows along the video dimension:
one zarr chunk (extract writes ~4 MB chunks), or a part of one when the budget is smaller (each
such read then decodes its whole chunk transiently, inside zarr). Per epoch:

1. the blocks that hold videos of the split are put in a seeded random order;
2. one background thread reads them in that order, at most ``prefetch`` blocks ahead;
3. every ``window`` consecutive blocks are copied into one reusable buffer, after the videos left
   over from the previous window (fewer than a batch); the buffer's videos are shuffled and cut
   into batches, and each batch's static-clip pair and normal clips are drawn per step and per
   video exactly as in memory (ClipSampler.draw), from the same seeded generator.

Memory held: at most (window + prefetch + 1) blocks plus batch_size - 1 videos, each video
(K + S) * D * 4 bytes: O(prefetch x block size), whatever the size of the store. The same seed,
store and plan give the same batches, so streamed training is deterministic on CPU; it is not the
same sequence as in-memory training (whose shuffle spans the whole split).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, suppress
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pipeline.aam.heads import SeenTaskHead
from pipeline.aam.metrics import BlockedRetrieval, retrieval_chance
from pipeline.aam.sampler import ClipSampler, StepSample
from pipeline.aam.trainer import LatentTrainingData
from pipeline.errors import ConfigError, StoreError
from pipeline.store.reader import FeatureStore

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(text: str | int) -> int:
    """A memory size: "2GB" (10^9), "512MiB" (2^20), "1.5g", or a plain number of bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise ConfigError(f"cannot read memory size {text!r} (examples: 2GB, 512MiB, 100000)")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise ConfigError(f"memory size must be positive, got {text!r}")
    return value


def format_bytes(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


class MemoryLedger:
    """Feature bytes the loader holds now and at most (its own buffers and blocks; thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held = 0
        self.peak = 0

    def acquire(self, n: int) -> None:
        with self._lock:
            self.held += n
            self.peak = max(self.peak, self.held)

    def release(self, n: int) -> None:
        with self._lock:
            self.held -= n


@dataclass(frozen=True)
class StreamPlan:
    """How a split is streamed; the same plan and seed give the same batches."""

    block_rows: int
    """Store rows (videos of any split) per block: the zarr chunk of the video dimension, or a
    part of one when the budget is smaller."""
    window: int
    """Blocks shuffled together (the shuffle buffer); for validation, blocks of queries kept."""
    prefetch: int
    """Blocks read ahead by the background thread."""

    def held_bytes(self, row_bytes: int, batch_size: int) -> int:
        """Upper bound of the feature bytes held while streaming with this plan."""
        return ((self.window + self.prefetch + 1) * self.block_rows + batch_size - 1) * row_bytes

    def to_json(self) -> dict[str, int]:
        return {"block_rows": self.block_rows, "window": self.window, "prefetch": self.prefetch}


def plan_stream(
    *,
    chunk_rows: int,
    row_bytes: int,
    batch_size: int,
    budget_bytes: int,
    window: int = 4,
    prefetch: int = 2,
) -> StreamPlan:
    """The largest plan within ``budget_bytes``: shrink the window, then the prefetch depth, then
    the block below one chunk; a one-line ConfigError when even one-video blocks do not fit."""
    if window < 1 or prefetch < 1:
        raise ConfigError(f"stream window and prefetch must be >= 1, got {window}, {prefetch}")
    plan = StreamPlan(max(1, int(chunk_rows)), window, prefetch)
    while plan.window > 1 and plan.held_bytes(row_bytes, batch_size) > budget_bytes:
        plan = replace(plan, window=plan.window - 1)
    while plan.prefetch > 1 and plan.held_bytes(row_bytes, batch_size) > budget_bytes:
        plan = replace(plan, prefetch=plan.prefetch - 1)
    if plan.held_bytes(row_bytes, batch_size) > budget_bytes:
        rows = (budget_bytes // row_bytes - (batch_size - 1)) // (plan.window + plan.prefetch + 1)
        if rows < 1:
            need = StreamPlan(1, 1, 1).held_bytes(row_bytes, batch_size)
            raise ConfigError(
                f"memory budget {format_bytes(budget_bytes)} is too small to stream: it needs at "
                f"least {need} bytes (a batch of {batch_size} videos and 3 more, "
                f"{row_bytes} bytes each)"
            )
        plan = replace(plan, block_rows=int(rows))
    return plan


def plan_validation(
    *, chunk_rows: int, row_bytes: int, budget_bytes: int, prefetch: int = 2
) -> StreamPlan:
    """A plan for streamed validation: ``window`` blocks' worth of memory for three groups of
    videos (adapted queries, a group of keys and its adapted copy), so window >= 3, and the
    window as large as the budget allows (fewer query groups = fewer passes over the split)."""
    plan = plan_stream(
        chunk_rows=chunk_rows,
        row_bytes=row_bytes,
        batch_size=1,
        budget_bytes=budget_bytes,
        window=3,
        prefetch=prefetch,
    )
    if plan.window < 3:
        rows = budget_bytes // row_bytes // (3 + plan.prefetch + 1)
        if rows < 1:
            raise ConfigError(
                f"memory budget {format_bytes(budget_bytes)} is too small to stream validation"
            )
        plan = replace(plan, block_rows=min(plan.block_rows, int(rows)))
    window = max(3, budget_bytes // (plan.block_rows * row_bytes) - plan.prefetch - 1)
    return replace(plan, window=int(window))


@dataclass(frozen=True)
class Block:
    """Store rows [lo, hi); the split's videos in it are split-local indices [start, stop)."""

    lo: int
    hi: int
    start: int
    stop: int

    @property
    def count(self) -> int:
        return self.stop - self.start


class _Prefetcher:
    """Reads blocks in a given order on one background thread, at most ``prefetch`` ahead.

    The caller takes blocks with ``next()`` and hands each back with ``done()`` once it has
    copied it; only then is another read started, so at most ``prefetch`` blocks are in flight
    or waiting, plus the one being copied.
    """

    def __init__(self, split: StreamingSplit, order: Iterable[int]) -> None:
        self.split = split
        self.todo = iter(order)
        self.pending: deque[tuple[Block, Future]] = deque()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aam-stream")
        for _ in range(split.plan.prefetch):
            self._submit()

    def _submit(self) -> None:
        index = next(self.todo, None)
        if index is not None:
            block = self.split.blocks[index]
            self.pending.append((block, self.pool.submit(self.split.read_block, block)))

    def next(self) -> tuple[Block, np.ndarray, np.ndarray, int]:
        block, future = self.pending.popleft()
        clips, static, held = future.result()
        return block, clips, static, held

    def done(self, held: int) -> None:
        self.split.ledger.release(held)
        self._submit()

    def close(self) -> None:
        while self.pending:
            _, future = self.pending.popleft()
            if future.cancel():
                continue
            with suppress(Exception):  # a failed read holds nothing
                self.split.ledger.release(future.result()[2])
        self.pool.shutdown(wait=True)

    def __enter__(self) -> _Prefetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class StreamingSplit:
    """The usable videos of one split of a raw store (decoded fine, with an action label), read
    block by block instead of loaded. Stands in for LatentTrainingData in the trainer."""

    def __init__(
        self,
        store: FeatureStore,
        rows: np.ndarray,
        plan: StreamPlan,
        *,
        ledger: MemoryLedger | None = None,
    ) -> None:
        self.store = store
        self.rows = np.sort(np.asarray(rows, dtype=np.int64))
        self.plan = plan
        self.ledger = ledger or MemoryLedger()
        clips = store.group["clip_features"]
        self.num_clips = int(clips.shape[1])
        self.num_static = int(store.group["static_features"].shape[1])
        self.dim = int(clips.shape[2])
        self.row_bytes = (self.num_clips + self.num_static) * self.dim * 4
        self.actions = torch.as_tensor(store.videos["action"][self.rows].astype(np.int64))
        if len(self.rows) and int(self.actions.min()) < 0:
            raise ConfigError("streamed split has videos without an action label (-1)")
        self.blocks = self._plan_blocks(int(clips.chunks[0]))
        self._buffers: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _plan_blocks(self, chunk_rows: int) -> list[Block]:
        """Blocks never straddle a chunk; only blocks holding videos of the split are kept, each
        narrowed to the rows from its first to its last video of the split."""
        pieces = -(-chunk_rows // min(self.plan.block_rows, chunk_rows))
        step = -(-chunk_rows // pieces)  # equal parts of a chunk, none larger than block_rows
        starts = (self.rows // chunk_rows) * chunk_rows + ((self.rows % chunk_rows) // step) * step
        _, first, counts = np.unique(starts, return_index=True, return_counts=True)
        return [
            Block(int(self.rows[a]), int(self.rows[a + n - 1]) + 1, a, a + n)
            for a, n in zip(first.tolist(), counts.tolist(), strict=True)
        ]

    # ------------------------------------------------------------------ what the trainer reads

    @property
    def num_videos(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        """Bytes the split would take in memory: V * (K + S) * D * 4."""
        return self.num_videos * self.row_bytes

    def targets(self) -> dict[str, Tensor]:
        return {"action": self.actions}

    def read_block(self, block: Block) -> tuple[np.ndarray, np.ndarray, int]:
        """A block's features of the split's videos, and the bytes charged to the ledger for them
        (release them when done)."""
        raw_bytes = (block.hi - block.lo) * self.row_bytes
        self.ledger.acquire(raw_bytes)
        rows = slice(block.lo, block.hi)
        try:
            clips = np.asarray(self.store.group["clip_features"][rows], np.float32)
            static = np.asarray(self.store.group["static_features"][rows], np.float32)
        except Exception as error:
            self.ledger.release(raw_bytes)
            if isinstance(error, StoreError):  # already one line (a corrupt chunk, I/O given up)
                raise
            raise StoreError(
                f"{self.store.location}: cannot read feature rows {block.lo}-{block.hi} "
                f"({type(error).__name__}: {' '.join(str(error).split())})"
            ) from error
        if block.count == block.hi - block.lo:
            return clips, static, raw_bytes
        kept_bytes = block.count * self.row_bytes
        self.ledger.acquire(kept_bytes)
        keep = self.rows[block.start : block.stop] - block.lo
        clips, static = clips[keep], static[keep]
        self.ledger.release(raw_bytes)
        return clips, static, kept_bytes

    def groups(self, max_videos: int) -> list[list[int]]:
        """Consecutive blocks grouped so each group holds at most ``max_videos`` videos of the
        split (a single block may exceed it)."""
        groups: list[list[int]] = []
        current: list[int] = []
        n = 0
        for i, block in enumerate(self.blocks):
            if current and n + block.count > max_videos:
                groups.append(current)
                current, n = [], 0
            current.append(i)
            n += block.count
        if current:
            groups.append(current)
        return groups

    def iter_groups(self, groups: list[list[int]]) -> Iterator[tuple[int, LatentTrainingData]]:
        """Each group of consecutive blocks as (split-local index of its first video, data), read
        with prefetch; a group's bytes are charged to the ledger until the next one is asked for."""
        order = [i for group in groups for i in group]
        with _Prefetcher(self, order) as stream:
            for group in groups:
                first = self.blocks[group[0]].start
                n = sum(self.blocks[i].count for i in group)
                self.ledger.acquire(n * self.row_bytes)
                try:
                    clips = np.empty((n, self.num_clips, self.dim), np.float32)
                    static = np.empty((n, self.num_static, self.dim), np.float32)
                    for _ in group:
                        block, c, s, held = stream.next()
                        clips[block.start - first : block.stop - first] = c
                        static[block.start - first : block.stop - first] = s
                        del c, s
                        stream.done(held)
                    yield (
                        first,
                        LatentTrainingData(clips, static, self.actions[first : first + n].clone()),
                    )
                    del clips, static
                finally:
                    self.ledger.release(n * self.row_bytes)

    def load(self) -> LatentTrainingData:
        """The whole split in memory, filled block by block (peak: the split plus a few blocks)."""
        if not self.blocks:
            return LatentTrainingData(
                np.empty((0, self.num_clips, self.dim), np.float32),
                np.empty((0, self.num_static, self.dim), np.float32),
                self.actions.clone(),
            )
        with closing(self.iter_groups([list(range(len(self.blocks)))])) as parts:
            return next(parts)[1]

    def _window_buffers(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One reusable buffer for the largest possible window plus a batch of leftovers."""
        largest = sorted((b.count for b in self.blocks), reverse=True)[: self.plan.window]
        rows = sum(largest) + batch_size - 1
        if self._buffers is None or len(self._buffers[2]) < rows:
            self.release_buffers()
            self._buffers = (
                np.empty((rows, self.num_clips, self.dim), np.float32),
                np.empty((rows, self.num_static, self.dim), np.float32),
                np.empty(rows, np.int64),
            )
            self.ledger.acquire(rows * self.row_bytes)
        return self._buffers

    def release_buffers(self) -> None:
        """Free the shuffle buffer (it is kept between epochs otherwise)."""
        if self._buffers is not None:
            self.ledger.release(len(self._buffers[2]) * self.row_bytes)
            self._buffers = None

    def batches(
        self, sampler: ClipSampler, device: torch.device
    ) -> Iterator[tuple[LatentTrainingData, StepSample]]:
        """One epoch: (window data on ``device``, step sample indexing into it) per step.

        The window data is a view of the reusable buffer: valid until the next item is asked for.
        """
        g, bs, w = sampler.generator, sampler.batch_size, self.plan.window
        clips_buf, static_buf, actions_buf = self._window_buffers(bs)
        order = torch.randperm(len(self.blocks), generator=g).tolist()
        carry = 0
        with _Prefetcher(self, order) as stream:
            for first in range(0, len(order), w):
                n = carry
                for _ in order[first : first + w]:
                    block, clips, static, held = stream.next()
                    m = block.count
                    clips_buf[n : n + m] = clips
                    static_buf[n : n + m] = static
                    actions_buf[n : n + m] = self.actions[block.start : block.stop].numpy()
                    n += m
                    del clips, static
                    stream.done(held)
                data = LatentTrainingData(
                    torch.from_numpy(clips_buf[:n]),
                    torch.from_numpy(static_buf[:n]),
                    torch.from_numpy(actions_buf[:n]),
                ).to(device)
                perm = torch.randperm(n, generator=g)
                full = n - n % bs
                for start in range(0, full, bs):
                    yield data, sampler.draw(perm[start : start + bs])
                rest = perm[full:]
                if first + w >= len(order):
                    if len(rest) >= 2:  # the epoch's short last batch (one video has no negative)
                        yield data, sampler.draw(rest)
                    carry = 0
                else:  # leftovers move to the front of the buffer and join the next window
                    keep = rest.numpy()
                    carry = len(keep)
                    clips_buf[:carry] = clips_buf[keep]
                    static_buf[:carry] = static_buf[keep]
                    actions_buf[:carry] = actions_buf[keep]

    # ------------------------------------------------------------------ validation

    @torch.no_grad()
    def validate(self, adapter: nn.Module, heads: list[SeenTaskHead]) -> dict[str, float]:
        """The record of trainer.validate, computed over blocks.

        Head metrics are averaged over groups of blocks weighted by their videos (exact for
        per-video accuracies such as action top-1), val_mse is exact; the retrieval proxies keep
        a group of adapted queries (a third of the plan's window) and stream every group past it as
        keys, so the split is read (1 + number of query groups) times per validation. Memory:
        a group of queries, a group of keys, and the prefetched blocks.
        """
        device = next(adapter.parameters()).device
        modules = (adapter, *heads)
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        try:
            return self._validate(adapter, heads, device)
        finally:
            for m, mode in zip(modules, modes, strict=True):
                m.train(mode)

    def _validate(
        self, adapter: nn.Module, heads: list[SeenTaskHead], device: torch.device
    ) -> dict[str, float]:
        k, s, d, v = self.num_clips, self.num_static, self.dim, self.num_videos
        sums = {f"{h.name}_{h.metric_name}": 0.0 for h in heads}
        sq_err = 0.0
        hits = {"static": 0, "clip": 0}
        # A third of the window each for adapted queries, a group of keys and its adapted copy.
        groups = self.groups(max(1, self.plan.window // 3) * self.plan.block_rows)
        for gi, query_group in enumerate(groups):
            with closing(self.iter_groups([query_group])) as parts:
                first, part = next(parts)
                q_clips = adapter(part.clip_features.to(device)).reshape(-1, d)
                q_static = adapter(part.static_features.to(device)).reshape(-1, d)
                del part
            q_bytes = (q_clips.numel() + q_static.numel()) * 4
            self.ledger.acquire(q_bytes)
            try:
                acc = {
                    "static": BlockedRetrieval(q_static, first * s, s),
                    "clip": BlockedRetrieval(q_clips, first * k, k),
                }
                del q_clips, q_static
                with closing(self.iter_groups(groups)) as keys:
                    for start, part in keys:
                        raw = part.clip_features.to(device)
                        clips = adapter(raw)
                        static = adapter(part.static_features.to(device))
                        if gi == 0:
                            targets = {name: t.to(device) for name, t in part.targets().items()}
                            for h in heads:
                                sums[f"{h.name}_{h.metric_name}"] += part.num_videos * float(
                                    h.metric(h(clips), targets)
                                )
                            sq_err += float(((clips - raw) ** 2).sum(dtype=torch.float64))
                        acc["static"].update(static.reshape(-1, d), start * s)
                        acc["clip"].update(clips.reshape(-1, d), start * k)
                        del part, raw, clips, static
                hits["static"] += acc["static"].hits()
                hits["clip"] += acc["clip"].hits()
                del acc
            finally:
                self.ledger.release(q_bytes)
        record = {name: total / v for name, total in sums.items()}
        record["static_retrieval"] = hits["static"] / (v * s) if v * s >= 2 else float("nan")
        record["static_retrieval_chance"] = retrieval_chance(v, s)
        record["clip_retrieval"] = hits["clip"] / (v * k) if v * k >= 2 else float("nan")
        record["clip_retrieval_chance"] = retrieval_chance(v, k)
        record["val_mse"] = sq_err / (v * k * d)
        return record
