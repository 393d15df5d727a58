"""Raw stores and adapter checkpoints are owner-only on local disks; sanitized stores are not."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from pipeline.sanitize import sanitize
from pipeline.store.reader import open_store

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: the sanitize test helpers
from sanitize.stores import make_adapter


def _modes(root: Path) -> set[tuple[str, int]]:
    kinds = {
        (("dir" if p.is_dir() else "file"), stat.S_IMODE(p.stat().st_mode)) for p in root.rglob("*")
    }
    return kinds | {("dir", stat.S_IMODE(root.stat().st_mode))}


def test_raw_store_and_adapter_are_owner_only_sanitized_is_shared(raw_store, tmp_path):
    old = os.umask(0o022)  # a typical umask: without the rule, files would be world-readable
    try:
        assert _modes(Path(raw_store)) == {("dir", 0o700), ("file", 0o600)}
        store = open_store(raw_store)
        adapter = make_adapter(
            tmp_path / "adapter",
            dim=store.feature_dim,
            encoder_sha=store.encoder["weights_sha256"],
        )
        assert _modes(adapter) == {("dir", 0o700), ("file", 0o600)}
        out = tmp_path / "sanitized.zarr"
        sanitize(str(raw_store), adapter, out)
        assert _modes(out) == {("dir", 0o755), ("file", 0o644)}
    finally:
        os.umask(old)
