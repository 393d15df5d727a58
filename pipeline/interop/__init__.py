"""Interoperability: export stores to HDF5 / .npy / Parquet, import existing HDF5 feature caches."""

from pipeline.interop.export import FORMATS, ExportProgress, ExportResult, export
from pipeline.interop.import_h5 import ImportResult, import_h5

__all__ = ["FORMATS", "ExportProgress", "ExportResult", "ImportResult", "export", "import_h5"]
