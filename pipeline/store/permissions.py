"""Owner-only permissions for what must not leave its team: raw stores and adapter checkpoints.

On local disks they are created 0700 (directories) / 0600 (files) whatever the umask: a raw
store holds the identifying features, and an adapter together with raw features undoes nothing
but reveals what was removed. Object stores have no POSIX modes: restrict the bucket or prefix
with its own access policy (docs/store.md). Sanitized and published stores keep the umask's
permissions, since they are made to be shared.
"""

from __future__ import annotations

import os
from pathlib import Path

OWNER_DIR = 0o700
OWNER_FILE = 0o600


def private_directory(path: str | Path) -> None:
    """Create `path` (and missing parents) and make it owner-only, before anything goes in."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, OWNER_DIR)


def restrict_tree(path: str | Path) -> None:
    """Make every directory under `path` 0700 and every file 0600 (symlinks are left alone)."""
    root = Path(path)
    if not root.is_dir():
        if root.is_file():
            os.chmod(root, OWNER_FILE)
        return
    os.chmod(root, OWNER_DIR)
    for directory, subdirs, files in os.walk(root):
        for name in subdirs:
            if not os.path.islink(os.path.join(directory, name)):
                os.chmod(os.path.join(directory, name), OWNER_DIR)
        for name in files:
            if not os.path.islink(os.path.join(directory, name)):
                os.chmod(os.path.join(directory, name), OWNER_FILE)
