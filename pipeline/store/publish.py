"""The publish gate: only a complete, currently audited, private-enough sanitized store leaves.

`publish` copies a sanitized store to a downstream location (a local path or s3://...) after
checking that it is sanitized (never raw), complete, audited at its current version (an append
since the audit makes it stale) with a leakage figure at or under the threshold. Attacker
settings whose raw signal was too weak to read a cut (pipeline.probes.measurable) are judged on
what the sanitized store's attacker found there: it must also stay under the margin above chance.
An audit in which no setting could be measured certifies nothing and is refused unless
``allow_unmeasured``. Every object is
copied, read back and compared by sha256; the root metadata document, which records when and
from which store version the copy was published, is written last, so a reader of the
destination sees nothing until the copy is whole. Any refusal leaves the destination untouched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zarr

from pipeline.errors import StoreError
from pipeline.probes.measurable import MIN_RAW_MARGIN, measurability
from pipeline.store.location import StoreLocation
from pipeline.store.lock import StoreLock
from pipeline.store.reader import FeatureStore, open_store
from pipeline.store.retry import retry_call
from pipeline.store.summary import audit_state
from pipeline.store.writer import consolidate, utc_now, with_event
from store_schema import ATTRS_KEY

log = logging.getLogger(__name__)

DEFAULT_MAX_LEAKAGE = 0.5
"""Worst audited leakage allowed: (cMAP - chance) / (cMAP_raw - chance) of every attacker the
audit ran. 0.5 = the store must remove at least half of the raw features' above-chance signal."""

ROOT_DOCUMENT = "zarr.json"
MARKER = ".anon-store-publishing"
"""Written first into the destination, removed last: a destination holding it is an unfinished
publish of ours, which a rerun may replace."""


@dataclass(frozen=True)
class PublishResult:
    """What `publish` copied and what it checked."""

    destination: str
    store_id: str
    store_version: int
    objects: int
    bytes: int
    leakage: float | None
    """Worst audited leakage over the measured settings (None: none was, allow_unmeasured)."""
    max_leakage: float
    seconds: float

    def audit_line(self) -> str:
        """What the gate accepted, in words (the CLI's and the flow's result line)."""
        if self.leakage is None:
            return "no cut measurable (unmeasured audit allowed)"
        return f"audited leakage {self.leakage:.3f} <= {self.max_leakage:.3f}"


def check_publishable(
    store: FeatureStore, max_leakage: float, *, allow_unmeasured: bool = False
) -> float | None:
    """The audited worst leakage of `store` over the measured settings (None when none was and
    ``allow_unmeasured``); StoreError (one line) if it may not be published."""
    where = store.location
    if store.kind != "sanitized":
        raise StoreError(f"{where} is a {store.kind} store: only sanitized stores are published")
    audit = store.meta.get("audit")
    if not isinstance(audit, dict):
        raise StoreError(
            f"{where} was never audited: run `anon-store audit --input {where} --raw RAW` first"
        )
    if audit_state(store.meta) == "stale":
        version, audited = store.meta.get("version"), audit.get("store_version")
        raise StoreError(
            f"{where}'s audit is stale (it audited version {audited}, the store is at version "
            f"{version}): audit it again"
        )
    # Recomputed from the per-setting results, so an audit recorded before settings were told
    # apart (format 1) is judged by the same rule.
    readable = measurability(audit.get("results") or {})
    if not readable.measured and not readable.unmeasured:
        raise StoreError(
            f"{where}'s audit has no leakage figure (it was run without the raw store): audit "
            "again with --raw RAW"
        )
    excess = readable.max_unmeasured_excess
    if excess is not None and excess >= MIN_RAW_MARGIN:
        raise StoreError(
            f"{where} leaks too much to publish: its attacker is {excess:.3f} cMAP above chance "
            f"on {', '.join(readable.unmeasured)}, where the raw features' was under "
            f"{MIN_RAW_MARGIN:.2f} (the sanitized features leak more than the raw ones)"
        )
    if not readable.measured:
        if not allow_unmeasured:
            splits = audit.get("splits") or {}
            raise StoreError(
                f"{where}'s audit measured nothing: the raw features' attackers are under "
                f"{MIN_RAW_MARGIN:.2f} cMAP above chance on every setting, so no cut can be "
                "read (the features may not carry the attributes, or the privacy split is too "
                f"small to show them: {splits.get('train_videos')} / "
                f"{splits.get('test_videos')} videos); audit with more labelled videos, or "
                "pass --allow-unmeasured to publish a store whose attackers found nothing"
            )
        return None
    leakage = readable.max_leakage
    if leakage is None:
        raise StoreError(f"{where}'s audit has no leakage figure: audit again with --raw RAW")
    if float(leakage) > max_leakage:
        raise StoreError(
            f"{where} leaks too much to publish: audited leakage {float(leakage):.3f} > "
            f"--max-leakage {max_leakage:.3f}"
        )
    return float(leakage)


def publish(
    store: str | Path,
    destination: str | Path,
    *,
    max_leakage: float = DEFAULT_MAX_LEAKAGE,
    overwrite: bool = False,
    break_lock: bool = False,
    allow_unmeasured: bool = False,
    storage_options: dict | None = None,
    destination_options: dict | None = None,
    workers: int = 8,
) -> PublishResult:
    """Copy the sanitized `store` to `destination` if it passes the gate (see module doc)."""
    if not 0.0 <= max_leakage <= 1.0:
        raise StoreError(f"--max-leakage must be in [0, 1], got {max_leakage}")
    started = time.perf_counter()
    source = open_store(store, storage_options=storage_options)
    target = StoreLocation.parse(destination, destination_options)
    if source.location.contains(target) or target.contains(source.location):
        raise StoreError(f"destination {target} overlaps the store {source.location}")
    leakage = check_publishable(source, max_leakage, allow_unmeasured=allow_unmeasured)
    with StoreLock(target, break_lock=break_lock, command="anon-store publish"):
        _check_destination(target, overwrite)
        with StoreLock(source.location, break_lock=False, command="anon-store publish (source)"):
            objects, size = _copy(source, target, leakage, max_leakage, workers)
    version = source.meta.get("version")
    log.info("published %s (version %s) to %s: %d objects, %d bytes verified",
             source.location.name, version, target.name, objects, size)  # fmt: skip
    return PublishResult(
        str(target), source.store_id, int(source.meta.get("version") or 0), objects, size,
        leakage, max_leakage, time.perf_counter() - started,
    )  # fmt: skip


def _check_destination(target: StoreLocation, overwrite: bool) -> None:
    if not target.exists():
        return
    fs, path = target.filesystem()
    ours = retry_call(lambda: fs.exists(f"{path}/{MARKER}"), f"checking {target}")
    if ours or overwrite:
        if not ours:
            _refuse_foreign(target)
        target.remove()
        return
    raise StoreError(f"{target} already exists: pass --overwrite to replace a published store")


def _refuse_foreign(target: StoreLocation) -> None:
    """--overwrite replaces a store anon-store published, never other data."""
    try:
        group = zarr.open_group(target.zarr_store(read_only=True), mode="r")
        meta = json.loads(group.attrs.get(ATTRS_KEY, "{}"))
    except Exception:
        meta = {}
    if not isinstance(meta, dict) or "published" not in meta:
        raise StoreError(
            f"{target} exists and is not a store anon-store published: refusing to replace it"
        )


def _copy(
    source: FeatureStore,
    target: StoreLocation,
    leakage: float | None,
    max_leakage: float,
    workers: int,
) -> tuple[int, int]:
    src_fs, src_path = source.location.filesystem()
    dst_fs, dst_path = target.filesystem()
    src_root, dst_root = src_path.rstrip("/"), dst_path.rstrip("/")
    files = sorted(retry_call(lambda: src_fs.find(src_root), f"listing {source.location}"))
    relative = [f[len(src_root) + 1 :] for f in files]
    _write(dst_fs, f"{dst_root}/{MARKER}", json.dumps({"store_id": source.store_id}).encode(),
           target.is_local)  # fmt: skip
    body = [name for name in relative if name != ROOT_DOCUMENT]

    def copy_one(name: str) -> int:
        data = retry_call(lambda: src_fs.cat_file(f"{src_root}/{name}"), f"reading {name}")
        _write(dst_fs, f"{dst_root}/{name}", data, target.is_local)
        back = retry_call(lambda: dst_fs.cat_file(f"{dst_root}/{name}"), f"reading back {name}")
        if hashlib.sha256(back).digest() != hashlib.sha256(data).digest():
            raise StoreError(f"{target}: {name} differs from the source after copying")
        return len(data)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        size = sum(pool.map(copy_one, body))
    now = open_store(source.location)  # unchanged while copied (the source lock keeps writers out)
    if now.store_id != source.store_id or now.meta.get("version") != source.meta.get("version"):
        raise StoreError(f"{source.location} changed while it was published: publish again")
    # The destination's own root document: the source's, plus where and when it came from.
    published = {
        "at": utc_now(),
        "from_store_id": source.store_id,
        "from_version": int(source.meta.get("version") or 0),
        "from_name": source.location.name,
        "audited_leakage": leakage,
        "max_leakage": max_leakage,
        "objects": len(body) + 1,
        "verified": "sha256 of every object read back",
    }
    meta = with_event(dict(source.meta), "published", to=target.name, leakage=leakage)
    meta["published"] = published
    root = json.loads(retry_call(lambda: src_fs.cat_file(f"{src_root}/{ROOT_DOCUMENT}"), "root"))
    root.pop("consolidated_metadata", None)  # rebuilt below from what was copied
    root.setdefault("attributes", {})[ATTRS_KEY] = json.dumps(meta, default=str)
    _write(dst_fs, f"{dst_root}/{ROOT_DOCUMENT}", json.dumps(root).encode(), target.is_local)
    consolidate(target)
    retry_call(lambda: dst_fs.rm_file(f"{dst_root}/{MARKER}"), f"finishing {target}")
    return len(body) + 1, size


def _write(fs: Any, path: str, data: bytes, local: bool) -> None:
    if local:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    retry_call(lambda: fs.pipe_file(path, data), f"writing {path}")
