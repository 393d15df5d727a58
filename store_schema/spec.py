"""The declarative schema (v2) of anon-store feature stores: arrays, dtypes, dimensions, attrs.

A store is one zarr v3 group. Everything a downstream reader needs is here, so the schema can be
read by people (docs/store.md, `anon-store inspect`) and checked by code (`store_schema.validate`).

Layout
------
Videos are a table: one 1-D array per column along dimension ``video``, whose coordinate array
``video`` holds the video ids (``ds.sel(video="v_001")`` works in xarray). Every video has exactly
``clips_per_video`` normal clips and ``static_clips`` static clips, so those embeddings are dense
``[video, clip, feature]`` / ``[video, static, feature]`` arrays. Sliding-window embeddings of
untrimmed videos vary in count per video: they are flat rows along ``window`` with the owning
video in ``window_video`` and each video's rows at
``window_offset[v] : window_offset[v] + window_count[v]``, every row a real window. Action
segments (untrimmed videos) and abnormal events (anomaly videos) are flat rows along ``segment``.

While a store is being written, window rows are grouped per extraction shard and padded to whole
chunks (so that shards never share a chunk) in the ``_padded_window_*`` arrays; completion
compacts them into the ``window_*`` arrays and removes the padded ones.

Videos that failed (``status == 2``) keep their table row and reason; their features are NaN.
Attributes with frame-level labels (``dataset.frame_labels``, e.g. PA-HMDB51) also get a
``static_attr_<name>`` array [video, static]: the attribute's value at each static clip's frame.
Rows of ``kind`` ``image`` (still images, e.g. VISPR) have static clips only: their
``clip_features`` are NaN and ``clip_start`` -1, every ``static_frame`` is 0 and they own no
windows. Images of training splits (names ending in ``train``) hold ``static`` independently
augmented crops; images of other splits hold their one centre-crop clip in every static slot.
Every array carries ``long_name`` and ``description`` attrs; coded arrays carry CF
``flag_values`` / ``flag_meanings``. The root attrs hold the metadata object as a JSON string
under ``anon_store`` (flat attrs, so netCDF writers accept them).

Changes from v1: the ``video`` coordinate, array attrs, compact window rows, chunks sized to the
data, and the metadata as a JSON string. v1 stores are refused with a message naming
``anon-store migrate``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEMA_ID = "anon-store.feature-store"
SCHEMA_VERSION = 2
LEGACY_VERSIONS = (1,)
"""Versions `anon-store migrate` upgrades in place."""
ATTRS_KEY = "anon_store"

KINDS = ("raw", "sanitized")
STATUSES = ("creating", "writing", "complete")

VIDEO_PENDING, VIDEO_OK, VIDEO_FAILED = 0, 1, 2
"""Values of the per-video ``status`` array."""
IMAGE_KIND = "image"
"""``kind`` of a still-image row: static clips only (no normal clips, no windows)."""

ATTRIBUTE_PREFIX = "attr_"


@dataclass(frozen=True)
class ArraySpec:
    """One array of the store."""

    name: str
    """Array name inside the group."""
    dtype: str
    """numpy dtype name, or "str" for variable-length UTF-8 strings."""
    dims: tuple[str, ...]
    """dimension_names written with the array (xarray needs them)."""
    doc: str
    """What the array holds."""
    features: bool = False
    """Embedding array: rewritten by `sanitize`; never copied from raw into a sanitized store."""
    fill: float | int | str | None = None
    """Value of never-written elements; None = NaN for floats, -1 for ints, "" for strings."""
    flags: tuple[tuple[int, str], ...] = ()
    """Coded values and their meanings (written as CF flag_values / flag_meanings)."""

    def attributes(self) -> dict[str, object]:
        """The array's attrs: its schema doc, and its codes where it has fixed ones."""
        attrs: dict[str, object] = {
            "long_name": self.name.replace("_", " "),
            "description": self.doc,
        }
        if self.flags:
            attrs["flag_values"] = [value for value, _ in self.flags]
            attrs["flag_meanings"] = " ".join(meaning for _, meaning in self.flags)
        return attrs


VIDEO_COORD = ArraySpec(
    "video", "str", ("video",), "Video id (the coordinate of dimension video; same as video_id)."
)

VIDEO_TABLE: tuple[ArraySpec, ...] = (
    VIDEO_COORD,
    ArraySpec("video_id", "str", ("video",), "Video id from the manifest (unique)."),
    ArraySpec("split", "str", ("video",), "Split name (train, val, test, privacy_train, ...)."),
    ArraySpec("kind", "str", ("video",), "trimmed | untrimmed | anomaly."),
    ArraySpec("action", "int16", ("video",), "Action class index, -1 where none."),
    ArraySpec(
        "anomalous",
        "int8",
        ("video",),
        "1 abnormal event, 0 none, -1 not applicable.",
        flags=((-1, "not_applicable"), (0, "normal"), (1, "abnormal")),
    ),
    ArraySpec("fps", "float32", ("video",), "Frames per second."),
    ArraySpec("num_frames", "int32", ("video",), "Frames in the video."),
    ArraySpec(
        "status",
        "int8",
        ("video",),
        "0 pending, 1 ok, 2 failed.",
        fill=VIDEO_PENDING,
        flags=((VIDEO_PENDING, "pending"), (VIDEO_OK, "ok"), (VIDEO_FAILED, "failed")),
    ),
    ArraySpec("failure_reason", "str", ("video",), "Why the video failed ('' when ok)."),
    ArraySpec("window_offset", "int64", ("video",), "First row of the video's windows."),
    ArraySpec("window_count", "int32", ("video",), "Number of window rows of the video."),
)
"""Fixed columns of the videos table; one ``attr_<name>`` int16 column per attribute follows."""

FEATURE_ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec(
        "clip_features",
        "float32",
        ("video", "clip", "feature"),
        "Embeddings of normal clips (evenly spaced in the video).",
        features=True,
    ),
    ArraySpec("clip_start", "int32", ("video", "clip"), "First frame of each normal clip."),
    ArraySpec(
        "static_features",
        "float32",
        ("video", "static", "feature"),
        "Embeddings of static clips (one frame repeated to a clip, lightly augmented).",
        features=True,
    ),
    ArraySpec("static_frame", "int32", ("video", "static"), "Frame each static clip repeats."),
    ArraySpec(
        "window_features",
        "float32",
        ("window", "feature"),
        "Embeddings of sliding windows over untrimmed and anomaly videos.",
        features=True,
    ),
    ArraySpec("window_video", "int32", ("window",), "Video row of each window."),
    ArraySpec("window_start", "int32", ("window",), "First frame of each window."),
)

SEGMENT_TABLE: tuple[ArraySpec, ...] = (
    ArraySpec("segment_video", "int32", ("segment",), "Video row of the segment."),
    ArraySpec("segment_start", "int32", ("segment",), "First frame of the segment."),
    ArraySpec("segment_end", "int32", ("segment",), "Frame after the segment's last frame."),
    ArraySpec(
        "segment_label",
        "int32",
        ("segment",),
        "Action class (untrimmed videos) or anomaly type (anomaly videos).",
    ),
)

ALL_ARRAYS: tuple[ArraySpec, ...] = VIDEO_TABLE + FEATURE_ARRAYS + SEGMENT_TABLE


PADDED_PREFIX = "_padded_"
"""Window arrays of a store being written live under this prefix until completion compacts them."""

PADDED_WINDOW_ARRAYS = ("window_features", "window_video", "window_start")


def attribute_spec(name: str, values: tuple[str, ...] = ()) -> ArraySpec:
    """The videos-table column holding attribute `name` (-1 = unknown), coded by `values`."""
    return ArraySpec(
        f"{ATTRIBUTE_PREFIX}{name}",
        "int16",
        ("video",),
        f"Attribute '{name}' (-1 unknown).",
        flags=label_flags(values),
    )


FRAME_LABEL_PREFIX = "static_attr_"
"""Prefix of the optional per-static-clip label arrays of attributes with frame-level labels."""


def frame_label_spec(name: str, values: tuple[str, ...] = ()) -> ArraySpec:
    """Attribute `name` at the frame of each static clip (``dataset.frame_labels`` lists the
    attributes that have such an array): from the manifest's frame-level attribute segments,
    the largest value of a segment covering the frame, -1 where no segment covers it."""
    return ArraySpec(
        f"{FRAME_LABEL_PREFIX}{name}",
        "int16",
        ("video", "static"),
        f"Attribute '{name}' at the frame of each static clip (-1 unlabelled).",
        flags=label_flags(values),
    )


def frame_label_specs(dataset: Mapping[str, Any]) -> list[ArraySpec]:
    """The ``static_attr_*`` arrays a store with metadata ``dataset`` holds (often none)."""
    attributes = dataset.get("attributes") or {}
    return [
        frame_label_spec(name, tuple((attributes.get(name) or {}).get("values") or ()))
        for name in dataset.get("frame_labels") or ()
    ]


def label_flags(names: tuple[str, ...] | list[str]) -> tuple[tuple[int, str], ...]:
    """Codes 0..n-1 of class or value `names` (-1 = unknown); spaces become underscores, as CF
    flag_meanings are one space-separated string."""
    if not names:
        return ()
    return (
        (-1, "unknown"),
        *((i, "_".join(str(n).split()) or f"value_{i}") for i, n in enumerate(names)),
    )


REQUIRED_ATTRS: dict[str, str] = {
    "schema": "Always 'anon-store.feature-store'.",
    "schema_version": "Schema version (2).",
    "kind": "raw | sanitized.",
    "status": "creating | writing | complete; 'complete' is written last.",
    "store_id": "Random id of this store (uuid4 hex).",
    "fingerprint": "Hash of what determines the content: manifest, encoder, sampling, splits "
    "(and the decoder when it is not PyAV).",
    "created_at": "UTC ISO time the store was created.",
    "producer": "{name, version} of the software that wrote it.",
    "provenance": "How the features were made: extracted | imported | sanitized.",
    "encoder": "Encoder identity: name, source, family, pooling, hidden_size, weights_sha256, ...",
    "sampling": "Clip sampling: frames_per_clip, frame_stride, clips_per_video, static_clips, ...",
    "dataset": "name, manifest_sha256, actions, attributes {name: {values, role}}, anomaly_types.",
    "layout": "Counts and chunking: num_videos, num_windows, num_segments, videos_per_chunk, ...",
}
"""Keys of the root attrs object stored under ``ATTRS_KEY``."""

SANITIZED_ATTRS: dict[str, str] = {
    "adapter": "Adapter identity: sha256 of its weights and its config.",
    "input_store_id": "store_id of the raw store it was made from.",
    "input_fingerprint": "fingerprint of that raw store.",
}
"""Extra root attrs of sanitized stores."""

OPTIONAL_ATTRS: dict[str, str] = {
    "decoder": "Extracted stores: what decoded the videos, {name, pyav, libavcodec} versions.",
    "audit": "Written by `anon-store audit`: attacker cMAP (MLP / linear, static / normal clips) "
    "over person attributes on the privacy split, chance, leakage vs a raw store, seeds, date.",
}
"""Root attrs a store may carry; validation does not require them."""


def decode_meta(value: Any) -> dict[str, Any] | None:
    """The metadata object from its root attr: a JSON string (v2), or a mapping (v1 stores and
    groups edited by hand); None if it is neither."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return dict(value) if isinstance(value, Mapping) else None
