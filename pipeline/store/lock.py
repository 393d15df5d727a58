"""One writer per store: a lock file beside the store names the run that writes it.

The lock is the file ``<store>.lock`` next to the store (``raw.zarr.lock`` beside ``raw.zarr``,
``s3://bucket/f/raw.zarr.lock`` beside ``s3://bucket/f/raw.zarr``): beside it, not inside, because
a store is deleted and recreated as a whole (--overwrite) and its lock must survive that. It is a
small JSON document: owner (user), host, pid, the process's start time, created_at, command and
a random token. It is created atomically (a hard link of a finished file locally; a conditional
PUT, If-None-Match, on S3) so two runs racing for it cannot both win.

A run that finds the lock taken stops with a one-line StoreLockedError naming the holder. A lock
whose holder is dead (same host, pid gone or reused by a later process) is *stale*: it is never
broken silently, the error says it is stale and that --break-lock (break_lock=True) breaks it. On
another host liveness cannot be checked, so the flag is needed there too; a lock held by a live
process of this host is never broken, flag or not.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import getpass
import json
import logging
import os
import shlex
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil

from pipeline.errors import StoreError
from pipeline.store.location import StoreLocation
from pipeline.store.retry import retry_call

log = logging.getLogger(__name__)

T = TypeVar("T")

LOCK_SUFFIX = ".lock"
BREAK_HINT = "--break-lock"


class StoreLockedError(StoreError):
    """The store is locked by another run (alive, stale, or unknown)."""

    def __init__(self, message: str, holder: LockHolder | None, state: str) -> None:
        super().__init__(message)
        self.holder = holder
        self.state = state
        """alive | dead | unknown | unreadable | lost"""


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still names the owner
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _command() -> str:
    text = " ".join(shlex.quote(arg) for arg in [Path(sys.argv[0]).name, *sys.argv[1:]])
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass(frozen=True)
class LockHolder:
    """Who holds a store's lock (the content of the lock file)."""

    owner: str
    """User name of the holder."""
    host: str
    """Host name of the holder."""
    pid: int
    """Process id of the holder."""
    created_at: str
    """When the lock was taken (UTC, ISO 8601)."""
    command: str
    """Command line of the holder (for people reading the error)."""
    token: str
    """Random id of this acquisition: a run releases only the lock it took."""
    process_started: float | None = None
    """Start time of the holder's process (epoch seconds), to tell a reused pid from the holder."""

    @classmethod
    def me(cls, command: str | None = None) -> LockHolder:
        pid = os.getpid()
        return cls(
            owner=_user(),
            host=socket.gethostname(),
            pid=pid,
            created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            command=command or _command(),
            token=uuid.uuid4().hex,
            process_started=_process_started(pid),
        )

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LockHolder:
        """Parse a lock file; ValueError if it is not one."""
        try:
            values: Any = json.loads(data)
            holder = cls(
                owner=str(values["owner"]),
                host=str(values["host"]),
                pid=int(values["pid"]),
                created_at=str(values["created_at"]),
                command=str(values.get("command", "")),
                token=str(values["token"]),
                process_started=values.get("process_started"),
            )
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as error:
            raise ValueError(f"not a lock file ({type(error).__name__}: {error})") from None
        return holder

    def describe(self) -> str:
        return (
            f"{self.owner}@{self.host} pid {self.pid} since {self.created_at} "
            f"({self.command or 'unknown command'})"
        )

    def liveness(self) -> str:
        """alive | dead | unknown (on another host a pid means nothing here)."""
        if self.host != socket.gethostname():
            return "unknown"
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return "dead"
            started = process.create_time()
        except psutil.NoSuchProcess:
            return "dead"
        except psutil.AccessDenied:  # another user's live process
            return "alive"
        if self.process_started is not None and abs(started - self.process_started) > 1.0:
            return "dead"  # the pid was reused by a later process
        return "alive"


class _LockFile:
    """Atomic create, read and delete of the lock file, locally or through fsspec."""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        if location.is_local:
            self.path = location.url.rstrip("/") + LOCK_SUFFIX
            self.fs = None
        else:
            self.fs, store_path = location.filesystem()
            store_path = store_path.rstrip("/")
            if "/" not in store_path.strip("/"):
                raise StoreError(
                    f"{location} is a whole bucket: put the store under a prefix "
                    "(s3://bucket/features/raw.zarr) so that its lock can sit beside it"
                )
            self.path = store_path + LOCK_SUFFIX

    @property
    def display(self) -> str:
        return self.location.url.rstrip("/") + LOCK_SUFFIX

    def _io(self, fn: Callable[[], T], what: str) -> T:
        """fn() with transient errors retried and any other failure as one StoreError line."""
        try:
            return retry_call(fn, f"{what} the lock {self.display}")
        except StoreError:
            raise
        except Exception as error:
            detail = " ".join(str(error).split())
            raise StoreError(
                f"{what} the lock {self.display} failed: {type(error).__name__}: {detail}"
            ) from None

    def create(self, data: bytes) -> bool:
        """Write the lock if there is none; False if one exists."""
        if self.fs is None:
            return self._io(lambda: _create_local(Path(self.path), data), "taking")
        fs = self.fs

        def put() -> bool:
            try:
                # s3fs: a conditional PUT (If-None-Match: *); other filesystems check first.
                fs.pipe_file(self.path, data, mode="create")
            except FileExistsError:
                return False
            return True

        return self._io(put, "taking")

    def read(self) -> bytes | None:
        def cat() -> bytes | None:
            try:
                if self.fs is None:
                    return Path(self.path).read_bytes()
                return self.fs.cat_file(self.path)
            except FileNotFoundError:
                return None

        return self._io(cat, "reading")

    def delete(self) -> None:
        def rm() -> None:
            if self.fs is None:
                Path(self.path).unlink(missing_ok=True)
                return
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path)

        self._io(rm, "removing")


def _create_local(path: Path, data: bytes) -> bool:
    """Create `path` holding `data`, atomically and only if it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    try:
        os.link(tmp, path)  # fails if path exists; readers never see a half-written lock
        return True
    except FileExistsError:
        return False
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
        # No hard links on this filesystem: an exclusive create is atomic too, the content
        # follows at once (a reader may briefly see an empty file and reports it as unreadable).
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        return True
    finally:
        tmp.unlink(missing_ok=True)


class TerminatedError(SystemExit):
    """SIGTERM arrived while a lock was held: unwinds like Ctrl-C, so locks are released."""


def _raise_on_sigterm() -> Any:
    """Make SIGTERM unwind the stack (releasing locks on the way) instead of killing the
    process where it stands; only in the main thread, where Python runs signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        return None  # someone else's handler (a server, a test runner): leave it alone

    def terminate(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
        raise TerminatedError(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    return previous


def _restore_sigterm(previous: Any) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


class StoreLock:
    """The writer lock of one store, as a context manager: taken on entry, released on exit
    (normal or by an exception). A process killed with SIGKILL leaves it behind: the next run
    reports it as stale and breaks it when asked to (break_lock)."""

    def __init__(
        self,
        location: StoreLocation,
        *,
        break_lock: bool = False,
        command: str | None = None,
    ) -> None:
        self.location = location
        self.break_lock = break_lock
        self.command = command
        self.file = _LockFile(location)
        self.holder: LockHolder | None = None
        """This run's entry while it holds the lock."""
        self._previous_sigterm: Any = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        self._previous_sigterm = _raise_on_sigterm()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.release(quiet=exc[0] is not None)
        finally:
            _restore_sigterm(self._previous_sigterm)

    def current(self) -> tuple[LockHolder | None, bytes | None]:
        """The holder recorded in the lock file (None, None if there is no lock; None, raw bytes
        if the file cannot be parsed)."""
        data = self.file.read()
        if data is None:
            return None, None
        try:
            return LockHolder.from_bytes(data), data
        except ValueError:
            return None, data

    def acquire(self) -> None:
        mine = LockHolder.me(self.command)
        for _ in range(3):  # a lock released or broken between our attempts: try again
            self.file.create(mine.to_bytes())
            # Read back even after a successful create: on a filesystem without an atomic
            # create a racing run may have overwritten it, and a retried create whose first try
            # did land reports "exists" for our own file.
            holder, data = self.current()
            if holder is not None and holder.token == mine.token:
                self.holder = mine
                return
            if holder is None and data is None:
                continue  # released meanwhile
            self._refuse_or_break(holder)
        raise StoreLockedError(
            f"{self.location}: could not take the lock {self.file.display} (other runs keep "
            "taking it): try again",
            None,
            "lost",
        )

    def _refuse_or_break(self, holder: LockHolder | None) -> None:
        """Raise StoreLockedError unless the lock may be broken; break it if so."""
        where = self.location
        if holder is None:
            if not self.break_lock:
                raise StoreLockedError(
                    f"{where} has an unreadable lock file {self.file.display}: if no other run "
                    f"is writing this store, rerun with {BREAK_HINT} to break it",
                    None,
                    "unreadable",
                )
            log.warning("breaking the unreadable lock %s", self.file.display)
            self.file.delete()
            return
        state = holder.liveness()
        if state == "alive":
            raise StoreLockedError(
                f"{where} is being written by another run: {holder.describe()}; wait for it to "
                "finish (a lock held by a live process is never broken)",
                holder,
                state,
            )
        if not self.break_lock:
            if state == "dead":
                message = (
                    f"{where} has a stale lock: {holder.describe()} is no longer running "
                    f"(killed?); rerun with {BREAK_HINT} to break it and resume"
                )
            else:
                message = (
                    f"{where} is locked by {holder.describe()} on another host; if that run is "
                    f"dead, rerun with {BREAK_HINT} to break the lock"
                )
            raise StoreLockedError(message, holder, state)
        again, _ = self.current()
        if again is not None and again.token != holder.token:
            return  # someone else took it over meanwhile: the next round looks at the new holder
        log.warning(
            "breaking the %s lock of %s: held by %s",
            "stale" if state == "dead" else "foreign-host",
            where,
            holder.describe(),
        )
        self.file.delete()

    def verify(self) -> None:
        """Raise StoreLockedError if this run no longer holds the lock (it was broken and another
        run took it): called before marking a store complete."""
        if self.holder is None:
            return
        holder, _ = self.current()
        if holder is None or holder.token != self.holder.token:
            other = holder.describe() if holder is not None else "nobody"
            raise StoreLockedError(
                f"{self.location}: this run's lock was broken while it was writing (now held by "
                f"{other}): the store is not marked complete",
                holder,
                "lost",
            )

    def release(self, *, quiet: bool = False) -> None:
        """Remove the lock if it is still ours. With `quiet` (unwinding an exception) a failure
        to remove it is logged instead of replacing the original error."""
        if self.holder is None:
            return
        mine, self.holder = self.holder, None
        try:
            holder, _ = self.current()
            if holder is not None and holder.token == mine.token:
                self.file.delete()
            else:
                log.warning("%s: the lock was broken by another run; leaving it", self.location)
        except Exception as error:
            if not quiet:
                raise
            log.warning(
                "could not remove the lock %s (%s): the next run will report it as stale",
                self.file.display,
                error,
            )
