"""Data layer: manifests, the synthetic benchmark, decoding and clip sampling."""
