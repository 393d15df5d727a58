"""Zarr feature stores: creation, resumable writes, reading."""
