"""Configuration of the sanitize stage."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import ConfigError

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")
PRECISIONS = ("float64", "float32")


@dataclass(frozen=True)
class SanitizeConfig:
    """How to apply a trained adapter to every embedding of a raw store."""

    scheduler: str = "threads"
    """threads | processes | synchronous | a dask distributed address ("tcp://host:port")."""
    workers: int | None = None
    """Parallel tasks for the threads / processes schedulers; None = one per CPU core."""
    chunks_per_task: int = 1
    """Store chunks (along the first dimension) read, anonymized and written by one task. Memory
    is about workers x chunks_per_task x 3 chunks; the output is the same for every value."""
    batch_size: int = 256
    """Clips per adapter forward pass in float64 (batch_size // K videos of K clips, or
    batch_size windows); float32 always uses FLOAT32_TILE (pipeline.sanitize.kernel). Micro-batches
    sit at fixed positions of the global row index, so every row is computed in the same GEMM
    shape and position whatever the chunking. 256 rather than 1024: a micro-batch straddling two
    chunks is computed by both, and with ~4 MB chunks (819 videos) 1024 clips wasted ~25% of the
    clip-feature arithmetic, for GEMMs only ~10% faster."""
    precision: str = "float64"
    """Arithmetic of the adapter: "float64" (default) rounds a float64 result to float32, which
    makes the output independent of batch size, BLAS kernel and machine in practice (an error of
    ~1e-16 would have to straddle a float32 rounding boundary), so workers on different CPUs or a
    GPU write the same bits. "float32" is ~2x faster on CPU (benchmarks: sanitize_vs_copy) and
    bit-identical across chunkings, batch sizes and schedulers on one kind of machine (fixed GEMM
    shapes, one torch thread per task), but may differ in the last bit across CPU kinds or BLAS
    builds."""
    device: str = "cpu"
    """cpu | cuda | auto: where the adapter runs inside each task."""
    overwrite: bool = False
    """Replace an existing anon-store store at the output (never anything else)."""
    break_lock: bool = False
    """Break the output's writer lock if its holder is dead (killed) or on another host; a lock
    held by a live process of this host is never broken (pipeline.store.lock)."""

    def __post_init__(self) -> None:
        if self.scheduler not in LOCAL_SCHEDULERS and "://" not in self.scheduler:
            raise ConfigError(
                f"scheduler must be one of {LOCAL_SCHEDULERS} or a dask address such as "
                f"tcp://host:8786, got {self.scheduler!r}"
            )
        for name in ("chunks_per_task", "batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.workers is not None and self.workers <= 0:
            raise ConfigError(f"workers must be positive, got {self.workers}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.device not in ("cpu", "cuda", "auto") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be cpu, cuda, cuda:N or auto, got {self.device!r}")

    @property
    def is_distributed(self) -> bool:
        return "://" in self.scheduler
