"""glibc heap settings for stages that allocate and free large buffers in a loop (no-op elsewhere).

glibc serves an allocation from its heap up to a threshold that adapts to what the program frees,
but never above 32 MiB on 64-bit; anything larger is a fresh mmap, whose pages fault in again on
first touch and go back to the system on free. A CPU encoder pass allocates such buffers every
batch (a 64-clip batch at 64 px is 50 MB): on the 2-core dev machine that was 192 page faults per
clip, a quarter of extraction's CPU time and 1,476 instead of 2,050 clips/s for the tiny encoder
alone. Inside ``large_buffers_in_heap`` those buffers are
reused from the heap instead; on the way out the freed memory is handed back to the system.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1
DYNAMIC_CEILING = 32 * 1024 * 1024
"""glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: where its adaptive threshold stops rising."""
LARGE_BUFFER_BYTES = 512 * 1024 * 1024
"""Allocations up to this size stay in the heap inside ``large_buffers_in_heap`` (mallopt takes
a C int and the trim threshold is twice this)."""


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it (musl and macOS do not)
    except (OSError, AttributeError):
        return None
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


_LIBC = _glibc()
_LOCK = threading.Lock()
_USERS = 0


class _MallInfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (all size_t)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _free_bytes() -> Callable[[], int] | None:
    """Bytes free inside glibc's heaps (mallinfo2, glibc >= 2.33), or None where unknown."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return None
    _LIBC.mallinfo2.restype = _MallInfo2
    return lambda: int(_LIBC.mallinfo2().fordblks)


_FREE_BYTES = _free_bytes()


def release_freed_memory(keep_bytes: int = 0) -> None:
    """Hand freed heap memory back to the OS once glibc holds more than `keep_bytes` of it.

    glibc keeps freed memory (its adaptive threshold serves multi-MB buffers from the heap after
    the first free), so RSS creeps up with the number of chunks a long loop processes. Trimming
    after every step keeps it flat but page-faults everything in again on the next step;
    `keep_bytes` lets a loop reuse a bounded amount (trims only when more is held).
    """
    if _LIBC is None:
        return
    if keep_bytes and _FREE_BYTES is not None and _FREE_BYTES() <= keep_bytes:
        return
    _LIBC.malloc_trim(0)


def _set_thresholds(mmap_bytes: int) -> bool:
    """Serve allocations below `mmap_bytes` from the heap; trim its top above twice that."""
    assert _LIBC is not None
    mmap_bytes = min(mmap_bytes, _INT_MAX // 2)
    ok = _LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_bytes) == 1
    return _LIBC.mallopt(_M_TRIM_THRESHOLD, 2 * mmap_bytes) == 1 and ok


@contextlib.contextmanager
def large_buffers_in_heap(max_bytes: int = LARGE_BUFFER_BYTES) -> Iterator[None]:
    """Inside the block, allocations up to `max_bytes` are reused from the heap (process-wide;
    nested and concurrent blocks share one setting, restored when the last one exits).

    Afterwards the thresholds stay fixed at glibc's adaptive ceiling (glibc cannot go back to
    adapting once set) and the freed memory is returned to the system.
    """
    global _USERS
    if _LIBC is None:
        yield
        return
    with _LOCK:
        if _USERS == 0 and not _set_thresholds(max_bytes):
            log.warning("glibc refused an mmap threshold of %d bytes", max_bytes)
        _USERS += 1
    try:
        yield
    finally:
        with _LOCK:
            _USERS -= 1
            if _USERS == 0:
                _set_thresholds(DYNAMIC_CEILING)
                release_freed_memory()
