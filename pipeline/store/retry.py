"""Retries with backoff for transient storage errors, in one place: every zarr read and write of a
store goes through RetryingStore (see StoreLocation.zarr_store), other store I/O (existence
checks, removal, locks) through retry_call.

Only errors that may go away on their own are retried (timeouts, dropped connections, EIO,
throttling); a missing file, a refused permission or a full disk fail at once. When the attempts
are used up the error becomes a one-line StoreIOError naming the operation and the store.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import google_crc32c
import numpy as np
from zarr.abc.store import ByteRequest, Store
from zarr.core.buffer import Buffer, BufferPrototype
from zarr.storage import WrapperStore

from pipeline.errors import StoreError
from store_schema.deep import CHECKSUM_MISMATCH, corrupt_chunk_message

log = logging.getLogger(__name__)

T = TypeVar("T")

ENV_ATTEMPTS = "ANON_STORE_IO_ATTEMPTS"
"""Overrides RetryPolicy.attempts (1 = no retries)."""

TRANSIENT_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.EINTR,
        errno.ETIMEDOUT,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ECONNREFUSED,
        errno.EPIPE,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EREMOTEIO,
    }
)
"""errno values of OSErrors worth retrying (s3fs maps SlowDown / 503 to EBUSY, 500 to EREMOTEIO)."""

PERMANENT = (
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
)

TRANSIENT_NAMES = frozenset(
    {
        "ClientConnectionError",
        "ClientOSError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ResponseStreamingError",
    }
)
"""Exception class names of aiohttp / botocore that s3fs may let through untranslated."""


class StoreIOError(StoreError):
    """Storage I/O kept failing after every retry (or failed with a permanent error)."""


def is_transient(error: BaseException) -> bool:
    """True if `error` may succeed when tried again."""
    if isinstance(error, PERMANENT):
        return False
    if isinstance(error, TimeoutError | ConnectionError | asyncio.TimeoutError):
        return True
    if any(cls.__name__ in TRANSIENT_NAMES for cls in type(error).__mro__):
        return True
    return isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient storage error is retried."""

    attempts: int = 5
    """Tries in all, the first included (1 = no retries)."""
    initial_delay: float = 0.05
    """Seconds before the second try; doubles with every further try."""
    max_delay: float = 2.0
    """Upper bound of one wait."""

    @classmethod
    def from_env(cls) -> RetryPolicy:
        raw = os.environ.get(ENV_ATTEMPTS)
        if not raw:
            return cls()
        try:
            attempts = int(raw)
        except ValueError:
            raise StoreError(f"{ENV_ATTEMPTS} must be an integer, got {raw!r}") from None
        return cls(attempts=max(1, attempts))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt` (1-based), with jitter so that many
        workers failing together do not retry together."""
        base = min(self.max_delay, self.initial_delay * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split()) or '(no message)'}"


def _give_up(what: str, attempts: int, error: BaseException) -> StoreIOError:
    tries = f"after {attempts} attempts" if attempts > 1 else "(not retried)"
    return StoreIOError(f"{what} failed {tries}: {_one_line(error)}")


def _wait_after(error: Exception, attempt: int, what: str, policy: RetryPolicy) -> float:
    """Seconds to wait before trying `what` again after try number `attempt` failed with
    `error`; raises `error` itself if it is permanent, StoreIOError once the tries are used up."""
    if not is_transient(error):
        raise error
    if attempt >= policy.attempts:
        raise _give_up(what, attempt, error) from error
    log.debug("%s: %s (try %d), retrying", what, _one_line(error), attempt)
    return policy.delay(attempt)


def retry_call(fn: Callable[[], T], what: str, policy: RetryPolicy | None = None) -> T:
    """fn() with retries on transient errors; `what` names the operation in the final error."""
    policy = policy or RetryPolicy.from_env()
    for attempt in itertools.count(1):
        try:
            return fn()
        except Exception as error:
            time.sleep(_wait_after(error, attempt, what, policy))
    raise AssertionError("unreachable")


async def retry_async(
    fn: Callable[[], Awaitable[T]], what: str, policy: RetryPolicy | None = None
) -> T:
    """await fn() with retries on transient errors (the async twin of retry_call)."""
    policy = policy or RetryPolicy.from_env()
    for attempt in itertools.count(1):
        try:
            return await fn()
        except Exception as error:
            await asyncio.sleep(_wait_after(error, attempt, what, policy))
    raise AssertionError("unreachable")


class CorruptChunkError(StoreError):
    """A chunk failed its checksum: flipped bits or a torn write."""


class RetryingStore(WrapperStore[Store]):
    """A zarr store that retries every operation of the store it wraps on transient errors.

    Safe because every operation zarr performs is idempotent: a chunk or metadata document is
    written as one whole object (LocalStore renames a finished temporary file into place, object
    stores PUT whole objects), so a retried write replaces whatever a failed one left.
    """

    def __init__(self, store: Store, policy: RetryPolicy | None = None, name: str = "") -> None:
        super().__init__(store)
        self.policy = policy or RetryPolicy.from_env()
        self.name = name or str(store)
        self._checksummed: dict[str, bool] = {}
        """Array path -> whether its chunks end with a crc32c (read from its metadata once)."""

    def _with_store(self, store: Store) -> RetryingStore:
        return type(self)(store, self.policy, self.name)

    def __repr__(self) -> str:
        return f"RetryingStore({self._store!r})"

    def _what(self, op: str, key: str) -> str:
        return f"{op} {key or '(root)'} of {self.name}"

    async def get(
        self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None
    ) -> Buffer | None:
        buffer = await retry_async(
            lambda: self._store.get(key, prototype, byte_range),
            self._what("read", key),
            self.policy,
        )
        if buffer is not None and byte_range is None and "/c/" in key:
            await self._verify_chunk(key, buffer, prototype)
        return buffer

    async def _verify_chunk(self, key: str, buffer: Buffer, prototype: BufferPrototype) -> None:
        """Check a whole chunk's crc32c before zarr decodes it, so that a reader fails with the
        line `validate --deep` gives (array, chunk, key) instead of a bare ValueError."""
        array, _, coords = key.rpartition("/c/")
        checked = self._checksummed.get(array)
        if checked is None:
            document = await retry_async(
                lambda: self._store.get(f"{array}/zarr.json", prototype),
                self._what("read", f"{array}/zarr.json"),
                self.policy,
            )
            codecs = json.loads(document.to_bytes()).get("codecs") if document else None
            last = codecs[-1] if isinstance(codecs, list) and codecs else None
            name = last.get("name") if isinstance(last, dict) else last
            checked = self._checksummed[array] = name == "crc32c"
        if not checked:
            return
        data = buffer.as_numpy_array()
        computed = np.uint32(google_crc32c.value(data[:-4])).astype("<u4").tobytes()
        if len(data) < 4 or computed != bytes(data[-4:]):
            index = tuple(int(part) for part in coords.split("/") if part.isdigit())
            where = f" of {self.name}" if self.name else ""
            raise CorruptChunkError(
                corrupt_chunk_message(array, index, key, CHECKSUM_MISMATCH)
                + f"{where}; `anon-store validate --deep` lists every corrupt chunk"
            )

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return await asyncio.gather(*(self.get(k, prototype, r) for k, r in key_ranges))

    async def exists(self, key: str) -> bool:
        return await retry_async(
            lambda: self._store.exists(key), self._what("check", key), self.policy
        )

    async def set(self, key: str, value: Buffer) -> None:
        await retry_async(
            lambda: self._store.set(key, value), self._what("write", key), self.policy
        )

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        await retry_async(
            lambda: self._store.set_if_not_exists(key, value),
            self._what("write", key),
            self.policy,
        )

    # Store's generic versions, which go through self.set / self.get and so retry each key
    # (WrapperStore's would forward them to the wrapped store, past the retries).
    _set_many = Store._set_many
    _get_many = Store._get_many

    async def delete(self, key: str) -> None:
        await retry_async(lambda: self._store.delete(key), self._what("delete", key), self.policy)

    async def delete_dir(self, prefix: str) -> None:
        await retry_async(
            lambda: self._store.delete_dir(prefix), self._what("delete", prefix), self.policy
        )

    async def clear(self) -> None:
        await retry_async(lambda: self._store.clear(), self._what("clear", ""), self.policy)

    async def is_empty(self, prefix: str) -> bool:
        return await retry_async(
            lambda: self._store.is_empty(prefix), self._what("list", prefix), self.policy
        )

    async def _listed(self, listing: Callable[[], AsyncIterator[str]], what: str) -> list[str]:
        async def collect() -> list[str]:
            return [key async for key in listing()]

        # A listing that fails midway is restarted whole: nothing is yielded twice.
        return await retry_async(collect, what, self.policy)

    async def list(self) -> AsyncIterator[str]:  # type: ignore[override]
        for key in await self._listed(self._store.list, self._what("list", "")):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:  # type: ignore[override]
        listing = await self._listed(
            lambda: self._store.list_prefix(prefix), self._what("list", prefix)
        )
        for key in listing:
            yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:  # type: ignore[override]
        listing = await self._listed(
            lambda: self._store.list_dir(prefix), self._what("list", prefix)
        )
        for key in listing:
            yield key
