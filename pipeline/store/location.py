"""Where a store lives: local paths and fsspec URLs (s3://...), storage options from the env."""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import zarr
from zarr.abc.store import Store
from zarr.errors import ZarrUserWarning
from zarr.storage import FsspecStore, LocalStore

from pipeline.errors import StoreError
from pipeline.store.retry import RetryingStore, retry_call

ENV_STORAGE_OPTIONS = "ANON_STORE_STORAGE_OPTIONS"
"""JSON object of fsspec storage options applied to every remote store (e.g. client_kwargs)."""


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def storage_options_from_env(protocol: str) -> dict[str, Any]:
    """fsspec options for `protocol` taken from the environment (credentials stay in the env)."""
    import json

    options: dict[str, Any] = {}
    raw = os.environ.get(ENV_STORAGE_OPTIONS)
    if raw:
        try:
            options.update(json.loads(raw))
        except json.JSONDecodeError as error:
            raise StoreError(f"{ENV_STORAGE_OPTIONS} is not valid JSON: {error}") from None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if protocol in ("s3", "s3a") and endpoint and "endpoint_url" not in options:
        options["endpoint_url"] = endpoint
    return options


@dataclass(frozen=True)
class StoreLocation:
    """A store's address: a local directory or an fsspec URL, plus its storage options."""

    url: str
    """Local path (absolute) or URL such as s3://bucket/features/raw.zarr."""
    storage_options: dict[str, Any] = field(default_factory=dict)
    """fsspec options for remote stores (never written into store attrs: they may hold keys)."""

    @classmethod
    def parse(cls, location: str | Path, storage_options: dict | None = None) -> StoreLocation:
        text = str(location)
        if text.startswith("file://"):
            text = text[len("file://") :]
        if not _is_url(text):
            return cls(str(Path(text).expanduser().absolute()), {})
        protocol = text.split("://", 1)[0]
        options = storage_options_from_env(protocol)
        options.update(storage_options or {})
        return cls(text.rstrip("/"), options)

    @property
    def is_local(self) -> bool:
        return not _is_url(self.url)

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        """The fsspec filesystem and the path inside it."""
        if self.is_local:
            return fsspec.filesystem("file"), self.url
        try:
            return fsspec.core.url_to_fs(self.url, **self.storage_options)
        except ImportError as error:
            raise StoreError(
                f"cannot open {self.url}: {error} (pip install 'anon-store[s3]')"
            ) from None

    def exists(self) -> bool:
        """True if anything is stored at this location."""
        if self.is_local:
            path = Path(self.url)
            return path.exists() and (path.is_file() or any(path.iterdir()))
        fs, path = self.filesystem()

        def listed() -> bool:
            # Not fs.exists(): fsspec's generic exists() answers False on ANY error, and a store
            # wrongly taken for absent would be created afresh over the existing one.
            try:
                return bool(fs.ls(path, detail=False))
            except FileNotFoundError:
                return False

        try:
            return retry_call(listed, f"listing {self.url}")
        except StoreError:
            raise
        except Exception as error:
            raise StoreError(f"cannot reach {self.url}: {type(error).__name__}: {error}") from None

    def remove(self) -> None:
        """Delete everything at this location."""
        fs, path = self.filesystem()

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(path, recursive=True)

        retry_call(remove, f"removing {self.url}")

    def contains(self, other: StoreLocation) -> bool:
        """True if `other` is this location or lies inside it."""
        mine, theirs = self.url.rstrip("/"), other.url.rstrip("/")
        if self.is_local and other.is_local:
            # Resolved unstripped: "/" stripped would be "", which resolves to the cwd.
            mine = str(Path(self.url).resolve()).rstrip("/")
            theirs = str(Path(other.url).resolve()).rstrip("/")
        return theirs == mine or theirs.startswith(mine + "/")

    def zarr_store(self, *, read_only: bool = False) -> Store:
        """The zarr store at this location, retrying transient I/O errors (pipeline.store.retry):
        every read and write of a store's arrays and metadata goes through it."""
        if self.is_local:
            base: Store = LocalStore(self.url, read_only=read_only)
        else:
            base = FsspecStore.from_url(
                self.url, storage_options=self.storage_options, read_only=read_only
            )
        return RetryingStore(base, name=self.url)

    def open_group(self, mode: str) -> zarr.Group:
        """Open the zarr group at this location ('r', 'r+', 'w' or 'a')."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=ZarrUserWarning)
            store = self.zarr_store(read_only=mode == "r")
            return zarr.open_group(store, mode=mode, zarr_format=3)

    def __str__(self) -> str:
        return self.url
