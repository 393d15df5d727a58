"""Interoperability: public read access (metadata, audit, xarray, torch Dataset), export to
HDF5 / .npy / Parquet, import of existing HDF5 feature caches."""

from pipeline.interop.access import (
    FeatureDataset,
    open_dataset,
    read_audit,
    store_metadata,
)
from pipeline.interop.export import FORMATS, ExportProgress, ExportResult, export
from pipeline.interop.import_h5 import ImportResult, import_h5

__all__ = [
    "FORMATS",
    "ExportProgress",
    "ExportResult",
    "FeatureDataset",
    "ImportResult",
    "export",
    "import_h5",
    "open_dataset",
    "read_audit",
    "store_metadata",
]
