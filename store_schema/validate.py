"""validate(store) -> list of problems: checks a zarr group against the store schema."""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr

from store_schema.spec import (
    ALL_ARRAYS,
    ATTRIBUTE_PREFIX,
    ATTRS_KEY,
    FRAME_LABEL_PREFIX,
    KINDS,
    LEGACY_VERSIONS,
    PADDED_PREFIX,
    PADDED_WINDOW_ARRAYS,
    REQUIRED_ATTRS,
    SANITIZED_ATTRS,
    SCHEMA_ID,
    SCHEMA_VERSION,
    STATUSES,
    VIDEO_PENDING,
    ArraySpec,
    attribute_spec,
    decode_meta,
    frame_label_specs,
)


def open_for_validation(store: Any, storage_options: dict | None = None) -> zarr.Group:
    """Open `store` (a zarr.Group, local path or fsspec URL) read-only, bypassing consolidated
    metadata so that what is checked is what is really stored."""
    if isinstance(store, zarr.Group):
        return store
    return zarr.open_group(
        str(store), mode="r", storage_options=storage_options, use_consolidated=False
    )


def _check_consolidated(store: Any, group: zarr.Group, storage_options: dict | None) -> list[str]:
    """Consolidated metadata (what xarray reads) must list the arrays really stored."""
    if isinstance(store, zarr.Group):
        return []
    try:
        consolidated = zarr.open_group(
            str(store), mode="r", storage_options=storage_options, use_consolidated=True
        )
    except Exception:  # no consolidated metadata: nothing to compare
        return []
    if set(consolidated.array_keys()) != set(group.array_keys()):
        return ["consolidated metadata is stale: it lists other arrays than the store holds"]
    return []


def _dtype_ok(array: zarr.Array, spec: ArraySpec) -> bool:
    if spec.dtype == "str":
        return array.dtype.kind in ("T", "U", "O")
    return np.dtype(array.dtype) == np.dtype(spec.dtype)


def _check_array(
    group: zarr.Group, spec: ArraySpec, sizes: dict[str, int], name: str | None = None
) -> list[str]:
    """`spec` checked on the array `name` (default: the spec's own name)."""
    name = name or spec.name
    if name not in group.array_keys():
        return [f"missing array '{name}'"]
    array = group[name]
    problems = []
    if not _dtype_ok(array, spec):
        problems.append(f"array '{spec.name}' has dtype {array.dtype}, expected {spec.dtype}")
    dims = tuple(array.metadata.dimension_names or ())
    if dims != spec.dims:
        problems.append(f"array '{spec.name}' has dimension_names {dims}, expected {spec.dims}")
        return problems
    for dim, size in zip(dims, array.shape, strict=True):
        expected = sizes.setdefault(dim, size)
        if size != expected:
            problems.append(
                f"array '{spec.name}' has {size} along '{dim}', other arrays have {expected}"
            )
    return problems


def _check_attrs(meta: Any) -> list[str]:
    if not isinstance(meta, dict):
        return [f"root attrs lack the '{ATTRS_KEY}' object: not an anon-store store"]
    problems = [f"root attrs lack '{key}'" for key in REQUIRED_ATTRS if key not in meta]
    if meta.get("schema") != SCHEMA_ID:
        problems.append(f"schema is {meta.get('schema')!r}, expected {SCHEMA_ID!r}")
    if meta.get("schema_version") in LEGACY_VERSIONS:
        problems.append(
            f"schema_version is {meta.get('schema_version')!r}, an older layout: upgrade it in "
            "place with `anon-store migrate STORE`"
        )
    elif meta.get("schema_version") != SCHEMA_VERSION:
        problems.append(
            f"schema_version is {meta.get('schema_version')!r}, expected {SCHEMA_VERSION}"
        )
    if meta.get("kind") not in KINDS:
        problems.append(f"kind is {meta.get('kind')!r}, expected one of {KINDS}")
    if meta.get("status") not in STATUSES:
        problems.append(f"status is {meta.get('status')!r}, expected one of {STATUSES}")
    if meta.get("kind") == "sanitized":
        problems += [f"sanitized store lacks '{key}'" for key in SANITIZED_ATTRS if key not in meta]
    return problems


def _check_content(group: zarr.Group, meta: dict, sizes: dict[str, int]) -> list[str]:
    problems = []
    hidden = (meta.get("encoder") or {}).get("hidden_size")
    if hidden is not None and sizes.get("feature") not in (None, hidden):
        problems.append(f"feature dimension {sizes['feature']} differs from encoder {hidden}")
    sampling = meta.get("sampling") or {}
    for dim, key in (("clip", "clips_per_video"), ("static", "static_clips")):
        if key in sampling and sizes.get(dim) not in (None, sampling[key]):
            problems.append(f"'{dim}' dimension {sizes[dim]} differs from sampling.{key}")
    if sizes.get("video") is None:
        return problems
    status = np.asarray(group["status"][:])
    if meta.get("status") == "complete" and bool((status == VIDEO_PENDING).any()):
        pending = int((status == VIDEO_PENDING).sum())
        problems.append(f"status is complete but {pending} videos are still pending")
    complete_windows = meta.get("status") == "complete" and sizes.get("window")
    if complete_windows and bool((np.asarray(group["window_video"][:]) < 0).any()):
        problems.append("window_video has padding rows (-1) in a complete store")
    offsets = np.asarray(group["window_offset"][:])
    counts = np.asarray(group["window_count"][:])
    if (counts < 0).any() or (offsets < 0).any():
        problems.append("negative window_offset or window_count")
    elif sizes.get("window") is not None and bool((offsets + counts > sizes["window"]).any()):
        problems.append("window_offset + window_count runs past the window rows")
    return problems


def validate(store: Any, *, storage_options: dict | None = None, deep: bool = False) -> list[str]:
    """Return the list of ways `store` breaks the schema; empty means valid.

    With `deep`, every metadata document and every chunk of every array is also read and checked
    (store_schema.deep.check_chunks): each corrupt chunk is named by array and chunk index.
    Never raises: a store that cannot be read is itself a problem to report.
    """
    problems = _check_schema(store, storage_options)
    if deep:
        from store_schema.deep import check_chunks

        problems += check_chunks(store, storage_options=storage_options).problems
    return problems


def _check_schema(store: Any, storage_options: dict | None) -> list[str]:
    try:
        group = open_for_validation(store, storage_options)
    except Exception as error:  # any failure to open is itself the problem to report
        return [f"cannot open store: {_one_line(error)}"]
    try:
        return _check_group(store, group, storage_options)
    except Exception as error:  # corrupt metadata or tables: report, never a traceback
        return [f"cannot read the store: {_one_line(error)}"]


def _one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _check_group(store: Any, group: zarr.Group, storage_options: dict | None) -> list[str]:
    meta = decode_meta(dict(group.attrs).get(ATTRS_KEY))
    problems = _check_attrs(meta)
    if not isinstance(meta, dict) or meta.get("schema_version") in LEGACY_VERSIONS:
        return problems
    sizes: dict[str, int] = {}
    specs = list(ALL_ARRAYS)
    dataset = meta.get("dataset") or {}
    attributes = dataset.get("attributes") or {}
    specs += [attribute_spec(name) for name in attributes]
    framed = dataset.get("frame_labels") or []
    problems += [
        f"dataset.frame_labels names '{name}', which is not in dataset.attributes"
        for name in framed
        if name not in attributes
    ]
    specs += frame_label_specs(dataset)
    for name in group.array_keys():
        if name.startswith(ATTRIBUTE_PREFIX) and name[len(ATTRIBUTE_PREFIX) :] not in attributes:
            problems.append(f"array '{name}' is not declared in dataset.attributes")
        if name.startswith(FRAME_LABEL_PREFIX) and name[len(FRAME_LABEL_PREFIX) :] not in framed:
            problems.append(f"array '{name}' is not declared in dataset.frame_labels")
    stored = set(group.array_keys())
    padded = {PADDED_PREFIX + name for name in PADDED_WINDOW_ARRAYS} & stored
    if padded and meta.get("status") == "complete":
        problems.append(f"complete store still holds padded window arrays {sorted(padded)}")
    for spec in specs:
        # While shards are written, window rows live in the padded arrays (compacted at the end).
        name = PADDED_PREFIX + spec.name if PADDED_PREFIX + spec.name in padded else spec.name
        problems += _check_array(group, spec, sizes, name)
    problems += _check_consolidated(store, group, storage_options)
    if not problems:
        problems += _check_content(group, meta, sizes)
    return problems
