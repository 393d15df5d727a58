"""What the schema rule tests share: stores to damage (tests/sanitize/stores.py) opened for
editing, and matching problems whose end quotes a library's error."""

from __future__ import annotations

from pathlib import Path

import zarr

from tests.sanitize.stores import make_adapter, make_raw_store

__all__ = ["Prefix", "editable", "make_adapter", "make_raw_store"]


class Prefix:
    """Equal to any problem starting with `text` (for messages that quote a library error)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.startswith(self.text)

    def __repr__(self) -> str:
        return f"Prefix({self.text!r})"


def editable(path: Path) -> zarr.Group:
    """The store's group, writable, read without its consolidated metadata."""
    return zarr.open_group(str(path), mode="r+", use_consolidated=False)
