"""faulty:// - a real fsspec filesystem over the local disk that fails a seeded fraction of calls.

Stores are written and read through it exactly as through s3:// (zarr's FsspecStore, fsspec
calls from anon-store): only the answers of the disk are changed. Options (storage options or
URL-less kwargs):

- rate: probability that one read or write call fails (0.0 - 1.0)
- seed: seed of the fault sequence (the Nth instance with a tag and seed mixes in N)
- ops: which calls may fail: "read" (cat_file, ls, info, exists, open for reading) and/or
  "write" (pipe_file, open for writing, rm, rm_file)
- only / skip: substrings of paths that may fail / never fail (e.g. only=("/c/",) for chunks)
- torn: a failing pipe_file first writes half of the data, as a non-atomic backend dying
  mid-write would; without it the failure happens before anything is written
- tag: name under which injected faults are counted in FaultyFileSystem.stats
"""

from __future__ import annotations

import collections
import errno
import random
import threading
from typing import ClassVar

import fsspec
import pytest
import zarr
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.utils import stringify_path

from store_schema import decode_meta

PROTOCOL = "faulty"
READ_CALLS = ("cat_file", "ls", "info", "exists", "open-r")
WRITE_CALLS = ("pipe_file", "open-w", "rm", "rm_file")


class FaultyFileSystem(AbstractFileSystem):
    protocol = (PROTOCOL,)
    root_marker = "/"
    cachable = False  # every instance keeps its own fault sequence and options

    stats: ClassVar[collections.defaultdict[str, collections.Counter]] = collections.defaultdict(
        collections.Counter
    )
    """tag -> Counter of calls and injected faults per operation kind ("read", "write")."""
    _stats_lock = threading.Lock()
    _created: ClassVar[collections.Counter[tuple[str, int]]] = collections.Counter()
    """(tag, seed) -> instances made, so the Nth instance of a test gets the same faults in any
    test order (after reset(tag))."""

    def __init__(
        self,
        rate: float = 0.0,
        seed: int = 0,
        ops: tuple[str, ...] | list[str] = ("read", "write"),
        only: tuple[str, ...] | list[str] | None = None,
        skip: tuple[str, ...] | list[str] = (),
        torn: bool = True,
        tag: str = "default",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.local = LocalFileSystem(auto_mkdir=True)
        self.rate = float(rate)
        self.ops = tuple(ops)
        self.only = tuple(only) if only is not None else None
        self.skip = tuple(skip)
        self.torn = torn
        self.tag = tag
        with self._stats_lock:
            number = self._created[(tag, seed)]
            self._created[(tag, seed)] += 1
        self.rng = random.Random(f"{seed}-{number}")
        self.rng_lock = threading.Lock()

    @classmethod
    def reset(cls, tag: str = "default") -> None:
        with cls._stats_lock:
            cls.stats.pop(tag, None)
            for key in [key for key in cls._created if key[0] == tag]:
                del cls._created[key]

    @classmethod
    def _strip_protocol(cls, path):
        path = stringify_path(path)
        if path.startswith(f"{PROTOCOL}://"):
            path = path[len(PROTOCOL) + 3 :]
        return path.rstrip("/") or "/"

    def unstrip_protocol(self, name: str) -> str:
        return f"{PROTOCOL}://{name}"

    # -- fault injection

    def _fault(self, kind: str, path: str) -> Exception | None:
        """Count the call; the error to raise if it must fail."""
        path = str(path)
        eligible = (
            kind in self.ops
            and (self.only is None or any(s in path for s in self.only))
            and not any(s in path for s in self.skip)
        )
        with self.rng_lock:
            fail = eligible and self.rng.random() < self.rate
            timeout = self.rng.random() < 0.5
        with self._stats_lock:
            counter = self.stats[self.tag]
            counter[f"{kind}_calls"] += 1
            counter[f"{kind}_faults"] += int(fail)
        if not fail:
            return None
        if timeout:
            return TimeoutError(f"injected timeout: {kind} {path}")
        return OSError(errno.EIO, f"injected I/O error: {kind} {path}")

    def _check(self, kind: str, path: str) -> None:
        error = self._fault(kind, path)
        if error is not None:
            raise error

    # -- reads

    def ls(self, path, detail=True, **kwargs):
        self._check("read", path)
        return self.local.ls(self._strip_protocol(path), detail=detail, **kwargs)

    def info(self, path, **kwargs):
        self._check("read", path)
        return self.local.info(self._strip_protocol(path), **kwargs)

    def exists(self, path, **kwargs):
        # Raises on a fault, as s3fs does (fsspec's generic exists() would answer False).
        self._check("read", path)
        return self.local.exists(self._strip_protocol(path))

    def cat_file(self, path, start=None, end=None, **kwargs):
        self._check("read", path)
        return self.local.cat_file(self._strip_protocol(path), start=start, end=end, **kwargs)

    # -- writes

    def pipe_file(self, path, value, mode="overwrite", **kwargs):
        path = self._strip_protocol(path)
        if mode == "create":
            self._check("write", path)
            self.local.makedirs(self.local._parent(path), exist_ok=True)
            with open(path, "xb") as file:  # exclusive, like S3's If-None-Match: *
                file.write(value)
            return
        error = self._fault("write", path)
        if error is not None:
            if self.torn:  # a backend that dies mid-write leaves a prefix of the object
                self.local.pipe_file(path, bytes(value)[: len(value) // 2])
            raise error
        self.local.pipe_file(path, value)

    def rm_file(self, path):
        self._check("write", path)
        self.local.rm_file(self._strip_protocol(path))

    def rm(self, path, recursive=False, maxdepth=None):
        paths = path if isinstance(path, list) else [path]
        for one in paths:
            self._check("write", one)
        self.local.rm([self._strip_protocol(p) for p in paths], recursive, maxdepth)

    def _open(self, path, mode="rb", **kwargs):
        self._check("read" if "r" in mode else "write", path)
        return self.local._open(self._strip_protocol(path), mode, **kwargs)

    # -- never fail (directory bookkeeping)

    def mkdir(self, path, create_parents=True, **kwargs):
        self.local.mkdir(self._strip_protocol(path), create_parents, **kwargs)

    def makedirs(self, path, exist_ok=False):
        self.local.makedirs(self._strip_protocol(path), exist_ok=exist_ok)

    def rmdir(self, path):
        self.local.rmdir(self._strip_protocol(path))

    def cp_file(self, path1, path2, **kwargs):
        self.local.cp_file(self._strip_protocol(path1), self._strip_protocol(path2), **kwargs)

    def created(self, path):
        return self.local.created(self._strip_protocol(path))

    def modified(self, path):
        return self.local.modified(self._strip_protocol(path))


def register() -> None:
    fsspec.register_implementation(PROTOCOL, FaultyFileSystem, clobber=True)


def url(path) -> str:
    """The faulty:// URL of a local path."""
    return f"{PROTOCOL}://{path}"


def error_line(err: str) -> str:
    """The CLI's error message (after any progress bar), unwrapped; "" if there is none."""
    return " ".join(err[err.find("error:") :].split()) if "error:" in err else ""


def gave_up_words() -> str:
    """How an error says that the retries are used up, under the retry policy in force here:
    the default (5 tries) or the caller's ANON_STORE_IO_ATTEMPTS (the root conftest clears it)."""
    from pipeline.store.retry import RetryPolicy

    attempts = RetryPolicy.from_env().attempts
    return f"failed after {attempts} attempts" if attempts > 1 else "failed (not retried)"


def assert_gave_up_in_one_line(code: int, err: str, starts: str) -> str:
    """A CLI run stopped by persistent storage faults: exit status 1 and one error line, starting
    with `starts`, that says the retries are used up; no traceback. Returns the line."""
    line = error_line(err)
    assert code == 1 and line.startswith(starts), err
    assert gave_up_words() in line, err
    assert len(err[err.find("error:") :].strip().splitlines()) == 1 and "Traceback" not in err
    return line


def assert_not_complete(path) -> None:
    """The store at `path` is left marked as being written, and readers refuse it."""
    from pipeline.errors import StoreError
    from pipeline.store.reader import open_store

    assert (
        decode_meta(zarr.open_group(str(path), mode="r").attrs["anon_store"])["status"] == "writing"
    )
    with pytest.raises(StoreError, match="not complete"):
        open_store(path)


register()
