"""Where a stage may write a store: never into its input, never over data that is not ours."""

from __future__ import annotations

from pipeline.errors import StoreError
from pipeline.store.location import StoreLocation
from pipeline.store.retry import retry_call
from pipeline.store.writer import read_attrs


def check_apart(source: StoreLocation, output: StoreLocation) -> None:
    """Refuse an output that is the input, lies inside it, or contains it (overwrite would delete
    the input)."""
    if source.contains(output):
        raise StoreError(f"output {output} is the input store or lies inside it: choose another")
    if output.contains(source):
        raise StoreError(f"output {output} contains the input store {source}: choose another")


def check_reachable(location: StoreLocation) -> None:
    """Fail now, before anything is written, if a remote location cannot be listed (credentials,
    endpoint, bucket)."""
    if location.is_local:
        return
    fs, path = location.filesystem()
    path = path.rstrip("/")
    parent = path.rsplit("/", 1)[0] if "/" in path else path
    bucket = path.split("/", 1)[0]
    # A prefix that does not exist yet is fine; a bucket that does not exist is not.
    if _lists(location, fs, parent) or (bucket != parent and _lists(location, fs, bucket)):
        return
    raise StoreError(f"cannot write {location}: bucket {bucket!r} does not exist")


def _lists(location: StoreLocation, fs, path: str) -> bool:
    """List `path` once, without leaving the listing in fsspec's cache: zarr writes through
    another filesystem instance, so a cached listing would later hide the new store."""
    try:
        retry_call(lambda: fs.ls(path, detail=False), f"listing {path}")
    except FileNotFoundError:
        return False
    except Exception as error:
        detail = " ".join(str(error).split())
        raise StoreError(f"cannot reach {location}: {type(error).__name__}: {detail}") from None
    finally:
        fs.invalidate_cache(path)
    return True


def existing_state(location: StoreLocation, *, kind: str, fingerprint: str, overwrite: bool) -> str:
    """new | resume | complete | recreate for a stage about to write a `kind` store.

    The same inputs (fingerprint) resume an interrupted store and leave a complete one alone;
    anything else made by anon-store is replaced only with `overwrite`; anything not made by
    anon-store is never touched.
    """
    check_reachable(location)
    if not location.exists():
        return "new"
    try:
        meta = read_attrs(location.open_group("r"))
    except Exception:
        meta = None
    if meta is None:
        raise StoreError(
            f"{location} exists and is not an anon-store store: refusing to touch it "
            "(choose another output)"
        )
    if meta.get("kind") == kind and meta.get("fingerprint") == fingerprint:
        status = meta.get("status")
        return {"complete": "complete", "writing": "resume"}.get(str(status), "recreate")
    if overwrite:
        return "recreate"
    raise StoreError(
        f"{location} already holds a {meta.get('kind')} store ({meta.get('status')}) made from "
        "other inputs: pass overwrite to replace it"
    )
