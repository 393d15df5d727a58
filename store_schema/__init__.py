"""The declarative schema of raw and sanitized anon-store feature stores, and validate()."""

from store_schema.v1 import (
    ALL_ARRAYS,
    ATTRIBUTE_PREFIX,
    ATTRS_KEY,
    FEATURE_ARRAYS,
    KINDS,
    REQUIRED_ATTRS,
    SANITIZED_ATTRS,
    SCHEMA_ID,
    SCHEMA_VERSION,
    SEGMENT_TABLE,
    STATUSES,
    VIDEO_FAILED,
    VIDEO_OK,
    VIDEO_PENDING,
    VIDEO_TABLE,
    ArraySpec,
    attribute_spec,
)
from store_schema.validate import validate

__all__ = [
    "ALL_ARRAYS",
    "ATTRIBUTE_PREFIX",
    "ATTRS_KEY",
    "FEATURE_ARRAYS",
    "KINDS",
    "REQUIRED_ATTRS",
    "SANITIZED_ATTRS",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "SEGMENT_TABLE",
    "STATUSES",
    "VIDEO_FAILED",
    "VIDEO_OK",
    "VIDEO_PENDING",
    "VIDEO_TABLE",
    "ArraySpec",
    "attribute_spec",
    "validate",
]
