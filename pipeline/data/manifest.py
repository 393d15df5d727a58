"""The video manifest: one parquet file listing every video, its split, labels and frame counts.

Columns of ``manifest.parquet`` (one row per video; the row order is the video order of every store
built from it):

==================  =======================  ====  ========================================
column              type                     req.  meaning; default when the column is absent
==================  =======================  ====  ========================================
video_id            string                   yes   unique, non-empty
path                string                   yes   relative to the root (the manifest's
                                                   directory or ``read_manifest(root=...)``);
                                                   absolute paths, ``..`` and symlinks leaving
                                                   the root are refused unless
                                                   ``allow_outside_root=True``
split               string                   yes   one of ``SPLITS``
action              int32                    yes   action class, -1 where none
kind                string                   no    trimmed | untrimmed | anomaly | image;
                                                   "trimmed"
attr_<name>         int32                    no    one per DatasetInfo attribute, -1 = unknown
fps                 float32                  no    NaN = unknown, 0 for images; absent:
                                                   probed (see below)
num_frames          int32                    no    -1 = unknown, 1 for images; absent: probed
                                                   (see below)
segments            list<struct<start, end,  no    frames [start, end) in [0, num_frames);
                    label: int32>>                 label = action (untrimmed) or anomaly type
                                                   (anomaly); must be empty for trimmed videos
                                                   and images; default []
anomalous           int8                     no    1 abnormal event, 0 none, -1 not
                                                   applicable; default: anomaly videos 1 if
                                                   they have segments else 0, other kinds -1
attribute_segments  list<struct<attribute:   no    frame-level attribute labels: frames
                    string, start, end,            [start, end) show value ``value`` of
                    value: int32>>                 attribute ``attribute`` (see below);
                                                   default []
==================  =======================  ====  ========================================

Images: a row of kind ``image`` is one still image (path ending in .jpg, .jpeg, .png or .webp, any
case), e.g. a VISPR photo. Its fps is 0 (an image has no frame rate; NaN and a missing value are
stored as 0, any other value is refused) and its num_frames is 1 (or -1 when an importer found the
file unreadable, so that extraction records it as failed); both are filled without opening the file
when the columns are absent. Images have no ``segments`` and ``anomalous`` -1. Extraction turns an
image into a static clip (the frame repeated).

Frame-level attributes (``attribute_segments``, e.g. PA-HMDB51): each entry says that frames
[start, end) (0 <= start < end <= num_frames when num_frames is known) show value ``value`` (an
index into ``DatasetInfo.attributes[attribute].values``) of the attribute ``attribute``, which
must be one of the manifest's attributes. Each attribute is segmented on its own, segments may
overlap (several values coexist, e.g. two people of different genders) and frames outside every
segment of an attribute are unlabelled. Images cannot have any. The video-level ``attr_<name>``
column stays the label the probes use (the importers set it to "positive if any frame is
positive"); nothing checks that the two agree. The column is optional and only present in the
normalised table when at least one row has a segment: a manifest without frame-level labels keeps
the columns (and the hash) it always had. :meth:`Manifest.attribute_segments` reads it (an empty
list per row when absent).

Integer columns may be stored as any integer type that fits (int64 -> int32 is cast); strings,
floats or out-of-range integers are refused. Null values are refused everywhere. Unknown columns are
refused, so a typo such as ``num_frame`` cannot be silently ignored.

The schema metadata key ``b"anon_store"`` holds the JSON of a :class:`DatasetInfo` (class names,
attribute values and roles). A hand-made manifest without it gets an inferred DatasetInfo: attribute
names from the ``attr_*`` columns with values ``"0".."max"`` (over the column and the attribute's
segments), role "context" for ``scene`` and "person" otherwise, action names ``"0".."max
action"``, anomaly types from the largest anomaly segment label.

fps / num_frames when the columns are absent: with ``check_files=True`` each video's header is read
once with PyAV (:func:`pipeline.data.decode.probe_video`, cheap: no decoding for common containers);
a video that cannot be probed gets the "unknown" values (NaN, -1) and a warning, so that extraction
records it as a failed video instead of the whole manifest being refused. With ``check_files=False``
nothing is opened and both are unknown. Images are never opened here (fps 0, num_frames 1).
Consumers must treat ``num_frames < 0`` as "count while decoding" (no truncation check).

``Manifest.sha256`` hashes the normalised table (canonical column order and types, defaults filled)
together with the canonical DatasetInfo JSON: it does not depend on parquet encoding, chunking,
compression or on where the dataset directory lives (paths are relative), so writing the same
manifest twice gives the same hash, while renaming a class does change it. (A manifest without
fps / num_frames columns hashes its probed values, so check_files=False gives another hash; write
those columns to make the hash independent of how the manifest is read.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import ManifestError, VideoError

log = logging.getLogger(__name__)

MANIFEST_FILENAME = "manifest.parquet"
METADATA_KEY = b"anon_store"
INFO_VERSION = 1

SPLITS: tuple[str, ...] = (
    "pretrain",
    "train",
    "val",
    "test",
    "privacy_train",
    "privacy_test",
    "bias_train",
    "bias_test",
    "tad_train",
    "tad_test",
    "anomaly_train",
    "anomaly_test",
)
PRESENCE_VALUES: tuple[str, str] = ("no", "yes")
"""Values of a presence attribute (VISPR-style multi-label privacy: is a face / nudity / ...
visible?). Attackers score only its "yes" column, as the paper's cMAP does."""
KINDS: tuple[str, ...] = ("trimmed", "untrimmed", "anomaly", "image")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
"""File name endings (compared lower-cased) of an ``image`` row's path."""
ROLES: tuple[str, ...] = ("person", "context")
ATTR_PREFIX = "attr_"
MAX_INFERRED_LABELS = 10_000  # a hand-made manifest's label names are inferred up to this many

SEGMENT_TYPE = pa.list_(
    pa.struct([("start", pa.int32()), ("end", pa.int32()), ("label", pa.int32())])
)
ATTRIBUTE_SEGMENT_TYPE = pa.list_(
    pa.struct(
        [
            ("attribute", pa.string()),
            ("start", pa.int32()),
            ("end", pa.int32()),
            ("value", pa.int32()),
        ]
    )
)
ATTRIBUTE_SEGMENTS = "attribute_segments"
REQUIRED_COLUMNS: tuple[str, ...] = ("video_id", "path", "split", "action")
# Column -> canonical arrow type; attr_* columns are int32 and are placed after "action".
_FIXED_TYPES: dict[str, pa.DataType] = {
    "video_id": pa.string(),
    "path": pa.string(),
    "split": pa.string(),
    "kind": pa.string(),
    "action": pa.int32(),
    "fps": pa.float32(),
    "num_frames": pa.int32(),
    "segments": SEGMENT_TYPE,
    "anomalous": pa.int8(),
    ATTRIBUTE_SEGMENTS: ATTRIBUTE_SEGMENT_TYPE,
}
_HEAD = ("video_id", "path", "split", "kind", "action")
_TAIL = ("fps", "num_frames", "segments", "anomalous")
_IMAGE_DEFAULTS: dict[str, Any] = {"fps": 0.0, "num_frames": 1}
# Optional columns kept in the normalised table only when some row has a value (see docstring).
_SPARSE = (ATTRIBUTE_SEGMENTS,)


@dataclass(frozen=True)
class AttributeInfo:
    """One private or context attribute of the people / scenes in the videos."""

    values: tuple[str, ...]
    """Names of the attribute's values; column ``attr_<name>`` holds an index into them or -1."""
    role: str = "person"
    """"person" (private: what the adapter should erase) or "context" (e.g. the scene)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(str(v) for v in self.values))
        if self.role not in ROLES:
            raise ManifestError(f"attribute role {self.role!r} is not one of {ROLES}")


@dataclass(frozen=True)
class DatasetInfo:
    """What the integer labels of a manifest mean; stored as JSON in the parquet metadata."""

    name: str
    """Dataset name, e.g. "ucf101" or "synthetic"."""
    actions: tuple[str, ...] = ()
    """Action class names; column ``action`` indexes them."""
    attributes: dict[str, AttributeInfo] = field(default_factory=dict)
    """Attribute name -> values and role, in column order (``attr_<name>``)."""
    anomaly_types: tuple[str, ...] = ()
    """Anomaly type names; segment labels of anomaly videos index them."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "actions", tuple(str(a) for a in self.actions))
        object.__setattr__(self, "anomaly_types", tuple(str(a) for a in self.anomaly_types))
        attributes = {}
        for name, attr in dict(self.attributes).items():
            if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum():
                raise ManifestError(f"attribute name {name!r} must be a non-empty identifier")
            if isinstance(attr, Mapping):
                attr = AttributeInfo(values=tuple(attr.get("values", ())), role=attr.get("role"))
            if not isinstance(attr, AttributeInfo):
                raise ManifestError(f"attribute {name!r}: expected AttributeInfo, got {attr!r}")
            attributes[name] = attr
        object.__setattr__(self, "attributes", attributes)

    def to_json(self) -> str:
        """Canonical JSON (stable key order), as stored under ``b"anon_store"``."""
        doc = {
            "name": self.name,
            "version": INFO_VERSION,
            "actions": list(self.actions),
            "anomaly_types": list(self.anomaly_types),
            "attributes": {
                n: {"values": list(a.values), "role": a.role} for n, a in self.attributes.items()
            },
        }
        return json.dumps(doc, sort_keys=False, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> DatasetInfo:
        """Parse the metadata JSON; raises ManifestError on anything malformed."""
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise ManifestError(f"anon_store metadata is not valid JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ManifestError("anon_store metadata must be a JSON object")
        if doc.get("version", INFO_VERSION) != INFO_VERSION:
            raise ManifestError(
                f"anon_store metadata version {doc.get('version')!r} is not supported "
                f"(expected {INFO_VERSION})"
            )
        attrs = doc.get("attributes", {})
        if not isinstance(attrs, dict) or not all(isinstance(a, dict) for a in attrs.values()):
            raise ManifestError("anon_store metadata: 'attributes' must map names to objects")
        names = [(key, doc.get(key, [])) for key in ("actions", "anomaly_types")]
        names += [(f"attributes.{n}.values", a.get("values", [])) for n, a in attrs.items()]
        for key, value in names:
            if not isinstance(value, list) or not all(_is_name(v) for v in value):
                raise ManifestError(f"anon_store metadata: {key!r} must be a list of names")
        if not _is_name(doc.get("name", "")):
            raise ManifestError("anon_store metadata: 'name' must be a string")
        return cls(
            name=str(doc.get("name", "")),
            actions=tuple(doc.get("actions", [])),
            attributes={
                n: AttributeInfo(values=tuple(a.get("values", [])), role=a.get("role", "person"))
                for n, a in attrs.items()
            },
            anomaly_types=tuple(doc.get("anomaly_types", [])),
        )

    @property
    def person_attributes(self) -> tuple[str, ...]:
        return tuple(n for n, a in self.attributes.items() if a.role == "person")

    @property
    def context_attributes(self) -> tuple[str, ...]:
        return tuple(n for n, a in self.attributes.items() if a.role == "context")


def _is_name(value: Any) -> bool:
    """A label name in the metadata JSON: a string or a number (never null, a list or an object)."""
    return isinstance(value, str | int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: the normalised table, the directory paths are relative to, labels."""

    table: pa.Table
    """Normalised table: every column of the schema present (``attribute_segments`` only when
    some row has one), canonical order and types."""
    root: Path
    """Directory that relative ``path`` values are resolved against (by default the manifest's
    directory; ``read_manifest(root=...)`` names another)."""
    info: DatasetInfo
    """What the integer labels mean."""
    sha256: str
    """Hash of the normalised table and the DatasetInfo (see the module docstring)."""

    def __len__(self) -> int:
        return self.table.num_rows

    @property
    def attribute_names(self) -> tuple[str, ...]:
        return tuple(self.info.attributes)

    @property
    def person_attributes(self) -> tuple[str, ...]:
        return self.info.person_attributes

    @property
    def context_attributes(self) -> tuple[str, ...]:
        return self.info.context_attributes

    @property
    def video_ids(self) -> list[str]:
        return self.table.column("video_id").to_pylist()

    def video_paths(self) -> list[Path]:
        """Absolute, symlink-resolved path of every video, in row order."""
        return [(self.root / p).resolve() for p in self.table.column("path").to_pylist()]

    def split_indices(self, *splits: str) -> np.ndarray:
        """Row indices (int64, ascending) of the videos in any of ``splits``."""
        unknown = [s for s in splits if s not in SPLITS]
        if unknown:
            raise ManifestError(f"unknown split(s) {unknown}; expected some of {SPLITS}")
        mask = pc.is_in(self.table.column("split"), value_set=pa.array(list(splits), pa.string()))
        return np.flatnonzero(mask.to_numpy(zero_copy_only=False)).astype(np.int64)

    def select(self, *splits: str) -> Manifest:
        """A manifest of the rows in ``splits`` (same root and info, its own sha256)."""
        table = _drop_empty_sparse(self.table.take(pa.array(self.split_indices(*splits))))
        return Manifest(table=table, root=self.root, info=self.info, sha256=_hash(table, self.info))

    def attribute_segments(self) -> list[list[dict[str, Any]]]:
        """Per row, its frame-level attribute segments: dicts with attribute, start, end, value
        (an empty list for every row of a manifest without them)."""
        if ATTRIBUTE_SEGMENTS not in self.table.column_names:
            return [[] for _ in range(self.table.num_rows)]
        return self.table.column(ATTRIBUTE_SEGMENTS).to_pylist()


def read_manifest(
    path: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] | None = None,
    allow_outside_root: bool = False,
    check_files: bool = True,
) -> Manifest:
    """Read and validate a manifest (a parquet file, or a directory holding ``manifest.parquet``).

    ``root``: the directory relative paths are resolved under (default: the manifest's own
    directory). A path that leaves it - absolute, through ``..``, or through a symlink pointing
    out - is refused unless ``allow_outside_root``; the hash does not depend on the root.
    Raises ManifestError with one line naming the file, the row (index and video_id) and the
    column of the first problem found.
    """
    file = Path(path)
    if file.is_dir():
        file = file / MANIFEST_FILENAME
    if not file.is_file():
        raise ManifestError(f"{file}: manifest not found")
    try:
        pf = pq.ParquetFile(file)
        table = pf.read()
        # Parquet does not check what it decodes: damaged bytes can yield invalid UTF-8 strings
        # or list offsets, which only a full validation catches before anything reads them.
        table.validate(full=True)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise ManifestError(f"{file}: not a readable parquet file ({_one_line(e)})") from None
    metadata = table.schema.metadata or {}
    info = None
    if METADATA_KEY in metadata:
        try:
            info = DatasetInfo.from_json(metadata[METADATA_KEY])
        except ManifestError as e:
            raise ManifestError(f"{file}: {e}") from None
    if root is None:
        root = file.parent.absolute()
    else:
        root = Path(root).expanduser().absolute()
        if not root.is_dir():
            raise ManifestError(f"{file}: video root {root} is not a directory")
    table, info = _normalise(
        table,
        info,
        source=str(file),
        root=root,
        default_name=file.parent.absolute().name,
        allow_outside_root=allow_outside_root,
        check_files=check_files,
        probe_missing=check_files,
    )
    return Manifest(table=table, root=root, info=info, sha256=_hash(table, info))


def write_manifest(
    path: str | os.PathLike[str],
    table_or_rows: pa.Table | Sequence[Mapping[str, Any]],
    info: DatasetInfo,
    *,
    allow_outside_root: bool = False,
    check_files: bool = False,
) -> Path:
    """Validate, then write the manifest with ``info`` in its metadata; returns the file written.

    ``path`` is the parquet file or a directory (then ``<dir>/manifest.parquet``). Rows may be a
    pyarrow Table or a sequence of dicts (column -> value; a dict may omit optional keys, which
    then get their defaults, fps / num_frames the "unknown" values). Optional columns absent from
    the input get their defaults, except fps / num_frames which stay absent so that reading probes
    the videos. The write is atomic (temporary file + rename).
    """
    file = Path(path)
    if file.is_dir():
        file = file / MANIFEST_FILENAME
    if not isinstance(info, DatasetInfo):
        raise ManifestError(f"{file}: info must be a DatasetInfo, got {type(info).__name__}")
    table = _to_table(table_or_rows, info, str(file))
    root = file.parent.absolute()
    normalised, _ = _normalise(
        table,
        info,
        source=str(file),
        root=root,
        default_name=info.name,
        allow_outside_root=allow_outside_root,
        check_files=check_files,
        probe_missing=False,
    )
    keep = [c for c in normalised.column_names if c in table.column_names or c not in _TAIL[:2]]
    out = normalised.select(keep).replace_schema_metadata({METADATA_KEY: info.to_json().encode()})
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(out, tmp)
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote manifest %s (%d videos)", file, out.num_rows)
    return file


def infer_info(table: pa.Table, name: str) -> DatasetInfo:
    """The DatasetInfo of a hand-made manifest: names are the integer labels as strings."""

    def max_of(column: str, mask: pa.Array | None = None) -> int:
        if column not in table.column_names:
            return -1
        try:
            values = table.column(column).cast(pa.int64())
        except (pa.ArrowException, ValueError):
            return -1  # the type check reports it with row and column
        if mask is not None:
            values = values.filter(mask)
        top = pc.max(values).as_py() if len(values) else None
        # Labels beyond the cap get no name and are then reported as out of range.
        return -1 if top is None else min(int(top), MAX_INFERRED_LABELS - 1)

    segment_max: dict[str, int] = {}
    if ATTRIBUTE_SEGMENTS in table.column_names:
        try:
            flat = pc.list_flatten(table.column(ATTRIBUTE_SEGMENTS))
            for attr, value in zip(
                pc.struct_field(flat, "attribute").to_pylist(),
                pc.struct_field(flat, "value").to_pylist(),
                strict=True,
            ):
                if isinstance(attr, str) and isinstance(value, int):
                    segment_max[attr] = max(segment_max.get(attr, -1), value)
        except (pa.ArrowException, ValueError, TypeError, KeyError):
            pass  # the type check reports it with row and column
    attributes = {}
    for col in table.column_names:
        if col.startswith(ATTR_PREFIX):
            attr = col[len(ATTR_PREFIX) :]
            role = "context" if attr == "scene" else "person"
            top = min(max(max_of(col), segment_max.get(attr, -1)), MAX_INFERRED_LABELS - 1)
            attributes[attr] = AttributeInfo(tuple(map(str, range(top + 1))), role)
    n_anomaly = -1
    if "segments" in table.column_names and "kind" in table.column_names:
        try:
            segs = table.column("segments")
            is_anomaly = pc.equal(table.column("kind").cast(pa.string()), "anomaly")
            labels = pc.struct_field(pc.list_flatten(segs.filter(is_anomaly)), "label")
            top = pc.max(labels.cast(pa.int64())).as_py() if len(labels) else None
            n_anomaly = -1 if top is None else min(int(top), MAX_INFERRED_LABELS - 1)
        except (pa.ArrowException, ValueError, TypeError):
            n_anomaly = -1
    return DatasetInfo(
        name=name,
        actions=tuple(map(str, range(max_of("action") + 1))),
        attributes=attributes,
        anomaly_types=tuple(map(str, range(n_anomaly + 1))),
    )


# ---------------------------------------------------------------------------------------------
# Validation


class _Ctx:
    """Formats one-line errors that name the file, row (index and video_id) and column."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.ids: list[Any] | None = None

    def fail(self, problem: str, *, column: str | None = None, row: int | None = None) -> None:
        where = []
        if row is not None:
            vid = self.ids[row] if self.ids is not None and row < len(self.ids) else None
            where.append(f"row {row} (video_id {vid!r})")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = f"{self.source}: " + (", ".join(where) + ": " if where else "")
        raise ManifestError(prefix + _one_line(problem))


def _normalise(
    table: pa.Table,
    info: DatasetInfo | None,
    *,
    source: str,
    root: Path,
    default_name: str,
    allow_outside_root: bool,
    check_files: bool,
    probe_missing: bool,
) -> tuple[pa.Table, DatasetInfo]:
    ctx = _Ctx(source)
    names = table.column_names
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        ctx.fail(f"duplicate column {dupes[0]!r}", column=dupes[0])
    for col in REQUIRED_COLUMNS:
        if col not in names:
            ctx.fail(f"missing required column (have: {', '.join(names) or 'none'})", column=col)
    for col in names:
        if col not in _FIXED_TYPES and not col.startswith(ATTR_PREFIX):
            allowed = ", ".join((*_FIXED_TYPES, "attr_<name>"))
            ctx.fail(f"unknown column (allowed: {allowed})", column=col)
    table = table.combine_chunks()
    n = table.num_rows
    if n == 0:
        ctx.fail("no rows: a manifest lists at least one video")

    # video_id first: every later message names the row by it.
    ids = _as_type(ctx, table, "video_id", pa.string())
    ids_py = ids.to_pylist()
    ctx.ids = ids_py
    _no_nulls(ctx, ids, "video_id")
    seen: dict[str, int] = {}
    for i, vid in enumerate(ids_py):
        if not vid or not vid.strip():
            ctx.fail("empty video_id", column="video_id", row=i)
        if vid in seen:
            ctx.fail(f"duplicate video_id, also in row {seen[vid]}", column="video_id", row=i)
        seen[vid] = i

    if info is None:
        info = infer_info(table, default_name)
    attr_cols = [c for c in names if c.startswith(ATTR_PREFIX)]
    for col in attr_cols:
        if col[len(ATTR_PREFIX) :] not in info.attributes:
            ctx.fail(
                f"no attribute {col[len(ATTR_PREFIX) :]!r} in the dataset info "
                f"(attributes: {', '.join(info.attributes) or 'none'})",
                column=col,
            )
    for attr in info.attributes:
        if ATTR_PREFIX + attr not in names:
            ctx.fail(
                f"the dataset info declares attribute {attr!r} but the column is missing",
                column=ATTR_PREFIX + attr,
            )

    cols: dict[str, pa.Array] = {"video_id": ids}
    for col in ("path", "split", "kind"):
        if col in names:
            arr = _as_type(ctx, table, col, pa.string())
            _no_nulls(ctx, arr, col)
            cols[col] = arr
    if "kind" not in cols:
        cols["kind"] = pa.array(["trimmed"] * n, pa.string())
    _in_set(ctx, cols["split"], "split", SPLITS)
    _in_set(ctx, cols["kind"], "kind", KINDS)
    kinds = np.asarray(cols["kind"].to_pylist(), dtype=object)

    cols["action"] = _int_column(ctx, table, "action", pa.int32(), -1, len(info.actions) - 1)
    for attr, ainfo in info.attributes.items():
        col = ATTR_PREFIX + attr
        cols[col] = _int_column(ctx, table, col, pa.int32(), -1, len(ainfo.values) - 1)

    paths = cols["path"].to_pylist()
    _check_paths(ctx, paths, root, allow_outside_root=allow_outside_root, check_files=check_files)
    is_image = kinds == "image"
    for i in np.flatnonzero(is_image):
        if not paths[i].lower().endswith(IMAGE_SUFFIXES):
            ctx.fail(
                f"an image row needs a path ending in {', '.join(IMAGE_SUFFIXES)}, "
                f"got {paths[i]!r}",
                column="path",
                row=int(i),
            )

    # fps / num_frames: validate when given, probe or mark unknown when absent.
    fps_given, nf_given = "fps" in names, "num_frames" in names
    if fps_given:
        fps = _as_type(ctx, table, "fps", pa.float32(), numeric=True)
        _no_nulls(ctx, fps, "fps")
        fps_np = fps.to_numpy(zero_copy_only=False)
        bad = ~(np.isnan(fps_np) | (np.isfinite(fps_np) & (fps_np > 0))) & ~is_image
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            ctx.fail(f"fps must be > 0 (or NaN = unknown), got {fps_np[i]}", column="fps", row=i)
        bad = is_image & ~(np.isnan(fps_np) | (fps_np == 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            ctx.fail(f"an image has fps 0, got {fps_np[i]}", column="fps", row=i)
        if is_image.any():
            fps = pa.array(np.where(is_image, np.float32(0), fps_np), pa.float32())
    if nf_given:
        nf = _as_type(ctx, table, "num_frames", pa.int32())
        _no_nulls(ctx, nf, "num_frames")
        nf_np = nf.to_numpy(zero_copy_only=False)
        bad = (nf_np < 1) & (nf_np != -1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            ctx.fail(
                f"num_frames must be >= 1 (or -1 = unknown), got {nf_np[i]}",
                column="num_frames",
                row=i,
            )
        bad = is_image & (nf_np > 1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            ctx.fail(
                f"an image has num_frames 1 (or -1 = unreadable), got {nf_np[i]}",
                column="num_frames",
                row=i,
            )
    if not (fps_given and nf_given):
        probed = _probe_all(root, paths, is_image) if probe_missing else None
        if not fps_given:
            vals = [p[1] for p in probed] if probed else np.where(is_image, 0.0, math.nan)
            fps = pa.array(vals, pa.float32())
        if not nf_given:
            vals = [p[0] for p in probed] if probed else np.where(is_image, 1, -1)
            nf = pa.array(vals, pa.int32())
    cols["fps"], cols["num_frames"] = fps, nf
    nf_np = nf.to_numpy(zero_copy_only=False)

    segs = pa.array([[]] * n, SEGMENT_TYPE)
    if "segments" in names:
        segs = _segments_column(ctx, table)
    _check_segments(ctx, segs, kinds, nf_np, info)
    cols["segments"] = segs

    if "anomalous" in names:
        cols["anomalous"] = _int_column(ctx, table, "anomalous", pa.int8(), -1, 1)
    else:
        has_segs = pc.list_value_length(segs).to_numpy(zero_copy_only=False) > 0
        default = np.where(kinds == "anomaly", has_segs.astype(np.int8), np.int8(-1))
        cols["anomalous"] = pa.array(default.astype(np.int8), pa.int8())

    order = [*_HEAD, *(ATTR_PREFIX + a for a in info.attributes), *_TAIL]
    if ATTRIBUTE_SEGMENTS in names:
        asegs = _attribute_segments_column(ctx, table)
        _check_attribute_segments(ctx, asegs, nf_np, is_image, info)
        if pc.sum(pc.list_value_length(asegs)).as_py():
            cols[ATTRIBUTE_SEGMENTS] = asegs
            order.append(ATTRIBUTE_SEGMENTS)
    schema = pa.schema([(c, cols[c].type) for c in order])
    return pa.Table.from_arrays([cols[c] for c in order], schema=schema), info


def _as_type(
    ctx: _Ctx, table: pa.Table, col: str, target: pa.DataType, *, numeric: bool = False
) -> pa.Array:
    """Cast a column to ``target`` when the cast is safe for this kind of column, else fail."""
    arr = table.column(col).combine_chunks()
    typ = arr.type
    if pa.types.is_dictionary(typ):
        arr = arr.dictionary_decode()
        typ = arr.type
    if pa.types.is_null(typ):
        if len(arr):
            ctx.fail("null value", column=col, row=0)
        return pa.array([], target)
    if pa.types.is_string(target):
        ok = pa.types.is_string(typ) or pa.types.is_large_string(typ) or _is_string_view(typ)
    elif pa.types.is_integer(target):
        ok = pa.types.is_integer(typ)
    elif numeric:
        ok = pa.types.is_integer(typ) or pa.types.is_floating(typ)
    else:
        ok = False
    if not ok:
        row = _first_valid(arr)
        value = f"; value {arr[row].as_py()!r}" if row is not None else ""
        ctx.fail(f"expected {target}, got {typ}{value}", column=col, row=row or 0)
    if pa.types.is_integer(target) and typ != target:
        limits = np.iinfo(target.to_pandas_dtype())
        values = arr.to_numpy(zero_copy_only=False)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero((values < limits.min) | (values > limits.max))
        if len(bad):
            ctx.fail(f"value {values[bad[0]]} does not fit {target}", column=col, row=int(bad[0]))
    try:
        return arr.cast(target, safe=True)
    except (pa.ArrowException, ValueError) as e:
        raise ManifestError(
            f"{ctx.source}: column {col!r}: cannot convert to {target}: {e}"
        ) from None


def _is_string_view(typ: pa.DataType) -> bool:
    check = getattr(pa.types, "is_string_view", None)
    return bool(check and check(typ))


def _first_valid(arr: pa.Array) -> int | None:
    valid = np.flatnonzero(pc.is_valid(arr).to_numpy(zero_copy_only=False))
    return int(valid[0]) if len(valid) else None


def _no_nulls(ctx: _Ctx, arr: pa.Array, col: str) -> None:
    if arr.null_count:
        row = int(np.flatnonzero(pc.is_null(arr).to_numpy(zero_copy_only=False))[0])
        ctx.fail("null value", column=col, row=row)


def _in_set(ctx: _Ctx, arr: pa.Array, col: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    ok = pc.is_in(arr, value_set=pa.array(allowed, pa.string())).to_numpy(zero_copy_only=False)
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        ctx.fail(
            f"unknown {col} {arr[row].as_py()!r} (expected one of: {', '.join(allowed)})",
            column=col,
            row=row,
        )


def _int_column(
    ctx: _Ctx, table: pa.Table, col: str, target: pa.DataType, lo: int, hi: int
) -> pa.Array:
    arr = _as_type(ctx, table, col, target)
    _no_nulls(ctx, arr, col)
    values = arr.to_numpy(zero_copy_only=False)
    bad = (values < lo) | (values > hi)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        rng = f"-1..{hi}" if hi >= 0 else "-1 (no values declared)"
        if lo == -1 and col.startswith(ATTR_PREFIX):
            what = "attribute value"
        elif col == "action":
            what = "action class"
        else:
            what = "value"
        ctx.fail(f"{what} {values[row]} out of range {rng}", column=col, row=row)
    return arr


def _check_paths(
    ctx: _Ctx, paths: list[str], root: Path, *, allow_outside_root: bool, check_files: bool
) -> None:
    real_root = os.path.realpath(root)
    for i, p in enumerate(paths):
        if not p.strip():
            ctx.fail("empty path", column="path", row=i)
        if "\0" in p:
            ctx.fail(f"path {p!r} contains a NUL byte", column="path", row=i)
        rel = Path(p)
        full = root / rel  # an absolute p replaces root
        if not allow_outside_root:
            if rel.is_absolute() or os.path.isabs(p):
                ctx.fail(
                    f"absolute path {p!r} refused (paths are relative to {root}; "
                    "allow with allow_outside_root=True or --allow-outside-root)",
                    column="path",
                    row=i,
                )
            if ".." in rel.parts:
                ctx.fail(
                    f"path {p!r} escapes the video root with '..' "
                    "(allow with allow_outside_root=True or --allow-outside-root)",
                    column="path",
                    row=i,
                )
            real = os.path.realpath(full)
            if os.path.commonpath([real_root, real]) != real_root:
                ctx.fail(
                    f"path {p!r} resolves to {real}, outside the video root {root} "
                    "(a symlink?; allow with allow_outside_root=True or --allow-outside-root)",
                    column="path",
                    row=i,
                )
        if check_files:
            try:
                found = full.is_file()
            except OSError as e:  # e.g. a name longer than the filesystem allows
                ctx.fail(f"cannot access {p!r}: {e.strerror or e}", column="path", row=i)
            if not found:
                ctx.fail(f"video file not found: {full}", column="path", row=i)


def _probe_all(root: Path, paths: list[str], is_image: np.ndarray) -> list[tuple[int, float]]:
    from pipeline.data.decode import probe_video  # lazy: PyAV is only needed when probing

    out: list[tuple[int, float]] = []
    for p, image in zip(paths, is_image, strict=True):
        if image:  # one frame by definition; extraction reports an unreadable image
            out.append((1, 0.0))
            continue
        try:
            num_frames, fps, _, _ = probe_video(root / p)
            out.append((num_frames, fps))
        except VideoError as e:
            log.warning("cannot probe %s, frame count unknown: %s: %s", p, e.reason, e.detail)
            out.append((-1, math.nan))
    log.info("probed %d videos for fps/num_frames", len(paths) - int(is_image.sum()))
    return out


def _segments_column(ctx: _Ctx, table: pa.Table) -> pa.Array:
    arr = table.column("segments").combine_chunks()
    typ = arr.type
    ok = (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and pa.types.is_struct(
        typ.value_type
    )
    if ok:
        fields = {
            typ.value_type.field(i).name: typ.value_type.field(i).type
            for i in range(typ.value_type.num_fields)
        }
        ok = set(fields) == {"start", "end", "label"} and all(
            pa.types.is_integer(t) for t in fields.values()
        )
    if not ok:
        row = _first_valid(arr)
        ctx.fail(
            f"expected {SEGMENT_TYPE}, got {typ}", column="segments", row=0 if row is None else row
        )
    _no_nulls(ctx, arr, "segments")
    flat = pc.list_flatten(arr)
    if flat.null_count:
        owner = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
        j = int(np.flatnonzero(pc.is_null(flat).to_numpy(zero_copy_only=False))[0])
        ctx.fail("null segment", column="segments", row=int(owner[j]))
    for name in ("start", "end", "label"):
        child = pc.struct_field(flat, name)
        if child.null_count:
            owner = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
            j = int(np.flatnonzero(pc.is_null(child).to_numpy(zero_copy_only=False))[0])
            ctx.fail(f"null segment {name}", column="segments", row=int(owner[j]))
        v = child.cast(pa.int64()).to_numpy(zero_copy_only=False)
        bad = (v < np.iinfo(np.int32).min) | (v > np.iinfo(np.int32).max)
        if bad.any():
            owner = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
            j = int(np.flatnonzero(bad)[0])
            ctx.fail(f"segment {name} does not fit int32", column="segments", row=int(owner[j]))
    return arr.cast(SEGMENT_TYPE)


def _check_segments(
    ctx: _Ctx, segs: pa.Array, kinds: np.ndarray, num_frames: np.ndarray, info: DatasetInfo
) -> None:
    flat = pc.list_flatten(segs)
    if len(flat) == 0:
        return
    owner = pc.list_parent_indices(segs).to_numpy(zero_copy_only=False)
    start = pc.struct_field(flat, "start").to_numpy(zero_copy_only=False).astype(np.int64)
    end = pc.struct_field(flat, "end").to_numpy(zero_copy_only=False).astype(np.int64)
    label = pc.struct_field(flat, "label").to_numpy(zero_copy_only=False).astype(np.int64)
    kind = kinds[owner]
    nf = num_frames[owner].astype(np.int64)
    n_labels = np.where(kind == "anomaly", len(info.anomaly_types), len(info.actions))
    checks = [
        (kind == "trimmed", "trimmed videos must have no segments"),
        (kind == "image", "images must have no segments"),
        (start >= end, "segment start must be < end"),
        (start < 0, "segment start must be >= 0"),
        ((nf >= 0) & (end > nf), "segment end beyond num_frames"),
        ((label < 0) | (label >= n_labels), "segment label out of range"),
    ]
    bad_any = np.zeros(len(flat), dtype=bool)
    for bad, _ in checks:
        bad_any |= bad
    if not bad_any.any():
        return
    j = int(np.flatnonzero(bad_any)[0])
    row = int(owner[j])
    for bad, message in checks:
        if bad[j]:
            detail = f"[{start[j]}, {end[j]}) label {label[j]}"
            if "num_frames" in message:
                detail += f", num_frames {nf[j]}"
            if "label" in message:
                names = "anomaly types" if kind[j] == "anomaly" else "actions"
                detail += f" ({n_labels[j]} {names} declared)"
            ctx.fail(f"{message}: {detail}", column="segments", row=row)


def _attribute_segments_column(ctx: _Ctx, table: pa.Table) -> pa.Array:
    col = ATTRIBUTE_SEGMENTS
    arr = table.column(col).combine_chunks()
    typ = arr.type
    ok = (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and pa.types.is_struct(
        typ.value_type
    )
    if ok:
        fields = {
            typ.value_type.field(i).name: typ.value_type.field(i).type
            for i in range(typ.value_type.num_fields)
        }
        ok = set(fields) == {"attribute", "start", "end", "value"}
        ok = ok and all(pa.types.is_integer(fields[k]) for k in ("start", "end", "value"))
        ok = ok and (
            pa.types.is_string(fields["attribute"]) or pa.types.is_large_string(fields["attribute"])
        )
    if not ok:
        row = _first_valid(arr)
        ctx.fail(
            f"expected {ATTRIBUTE_SEGMENT_TYPE}, got {typ}",
            column=col,
            row=0 if row is None else row,
        )
    _no_nulls(ctx, arr, col)
    flat = pc.list_flatten(arr)
    owner = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
    if flat.null_count:
        j = int(np.flatnonzero(pc.is_null(flat).to_numpy(zero_copy_only=False))[0])
        ctx.fail("null attribute segment", column=col, row=int(owner[j]))
    for name in ("attribute", "start", "end", "value"):
        child = pc.struct_field(flat, name)
        if child.null_count:
            j = int(np.flatnonzero(pc.is_null(child).to_numpy(zero_copy_only=False))[0])
            ctx.fail(f"null attribute segment {name}", column=col, row=int(owner[j]))
        if name == "attribute":
            continue
        v = child.cast(pa.int64()).to_numpy(zero_copy_only=False)
        bad = (v < np.iinfo(np.int32).min) | (v > np.iinfo(np.int32).max)
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            ctx.fail(f"attribute segment {name} does not fit int32", column=col, row=int(owner[j]))
    return arr.cast(ATTRIBUTE_SEGMENT_TYPE)


def _check_attribute_segments(
    ctx: _Ctx, segs: pa.Array, num_frames: np.ndarray, is_image: np.ndarray, info: DatasetInfo
) -> None:
    flat = pc.list_flatten(segs)
    if len(flat) == 0:
        return
    owner = pc.list_parent_indices(segs).to_numpy(zero_copy_only=False)
    attrs = pc.struct_field(flat, "attribute").to_pylist()
    start = pc.struct_field(flat, "start").to_numpy(zero_copy_only=False).astype(np.int64)
    end = pc.struct_field(flat, "end").to_numpy(zero_copy_only=False).astype(np.int64)
    value = pc.struct_field(flat, "value").to_numpy(zero_copy_only=False).astype(np.int64)
    nf = num_frames[owner].astype(np.int64)
    for j, attr in enumerate(attrs):
        row = int(owner[j])
        detail = f"{attr!r} [{start[j]}, {end[j]}) value {value[j]}"
        if attr not in info.attributes:
            known = ", ".join(info.attributes) or "none"
            ctx.fail(
                f"attribute segment {detail}: no such attribute (attributes: {known})",
                column=ATTRIBUTE_SEGMENTS,
                row=row,
            )
        problem = None
        if is_image[row]:
            problem = "images must have no attribute segments"
        elif start[j] < 0:
            problem = "start must be >= 0"
        elif start[j] >= end[j]:
            problem = "start must be < end"
        elif nf[j] >= 0 and end[j] > nf[j]:
            problem = f"end beyond num_frames {nf[j]}"
        elif not 0 <= value[j] < len(info.attributes[attr].values):
            problem = f"value out of range 0..{len(info.attributes[attr].values) - 1}"
        if problem:
            ctx.fail(f"attribute segment {detail}: {problem}", column=ATTRIBUTE_SEGMENTS, row=row)


def _drop_empty_sparse(table: pa.Table) -> pa.Table:
    """The table without optional columns that hold nothing (see the module docstring)."""
    for col in _SPARSE:
        if (
            col in table.column_names
            and not pc.sum(pc.list_value_length(table.column(col))).as_py()
        ):
            table = table.drop_columns([col])
    return table


def _to_table(
    table_or_rows: pa.Table | Sequence[Mapping[str, Any]], info: DatasetInfo, source: str
) -> pa.Table:
    if isinstance(table_or_rows, pa.Table):
        return table_or_rows
    rows = list(table_or_rows)
    if not rows:
        raise ManifestError(f"{source}: no rows: a manifest lists at least one video")
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    # A dict may omit optional keys that other rows have: fill the per-row default (never null).
    defaults: dict[str, Any] = {
        "kind": "trimmed",
        "segments": [],
        ATTRIBUTE_SEGMENTS: [],
        "fps": math.nan,
        "num_frames": -1,
    }
    data = {}
    for col in columns:
        if col == "anomalous":
            values = [
                row["anomalous"]
                if "anomalous" in row
                else (int(bool(row.get("segments"))) if row.get("kind") == "anomaly" else -1)
                for row in rows
            ]
        else:
            image_default = _IMAGE_DEFAULTS.get(col, defaults.get(col))
            values = [
                row[col]
                if col in row
                else (image_default if row.get("kind") == "image" else defaults.get(col))
                for row in rows
            ]
        typ = _FIXED_TYPES.get(col, pa.int32() if col.startswith(ATTR_PREFIX) else None)
        try:
            data[col] = pa.array(values, typ) if typ is not None else pa.array(values)
        except (pa.ArrowException, ValueError, TypeError, OverflowError):
            try:  # let the validator name the row: keep the values' own (wrong) type
                data[col] = pa.array(values)
            except (pa.ArrowException, ValueError, TypeError, OverflowError) as e:
                raise ManifestError(
                    f"{source}: column {col!r}: values of mixed or unsupported types ({e})"
                ) from None
    return pa.table(data)


def _hash(table: pa.Table, info: DatasetInfo) -> str:
    """Canonical content hash: column names, types and values, then the info JSON."""
    h = hashlib.sha256()
    h.update(b"anon_store.manifest.v1\0")
    for name in table.column_names:
        col = table.column(name).combine_chunks()
        h.update(f"{name}:{col.type}\0".encode())
        typ = col.type
        if pa.types.is_integer(typ) or pa.types.is_floating(typ):
            dtype = np.dtype(typ.to_pandas_dtype()).newbyteorder("<")
            h.update(np.ascontiguousarray(col.to_numpy(zero_copy_only=False), dtype=dtype))
        else:
            h.update(json.dumps(col.to_pylist(), separators=(",", ":")).encode())
        h.update(b"\0")
    h.update(info.to_json().encode())
    return h.hexdigest()


def _one_line(message: object) -> str:
    return " ".join(str(message).split())
