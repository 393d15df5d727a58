"""Stage benchmarks as side-by-side ratios (python -m benchmarks; results in RESULTS.md)."""

from pipeline.openmp import prefer_passive_wait

# Extraction is measured as `anon-store extract` runs it, with OpenMP threads that sleep rather
# than spin between parallel regions (pipeline.entry): settled here, before any benchmark module
# imports torch.
prefer_passive_wait()
