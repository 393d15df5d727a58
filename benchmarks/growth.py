"""Growth: each stage's time at 1x, 2x and 4x the number of videos, and the fitted exponent.

The exponent is the least-squares slope of log(seconds) over log(videos): 1 is linear, below 1
means fixed costs (model loading, store creation, validation) still weigh at these sizes.
- extract: ``extract()`` on a manifest listing the base videos 1, 2 and 4 times (same files,
  distinct video ids), wall time of the whole call;
- train: one trainer epoch over 1x, 2x, 4x videos of cached latents (benchmarks.training);
- sanitize: ``sanitize()`` of stores of 1x, 2x, 4x videos (benchmarks.sanitize_vs_copy.suite).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchmarks.common import loglog_slope, median, replicate_manifest, rnd, timed

FACTORS = (1, 2, 4)


def extract_growth(
    manifest: Path, encoder_dir: str, repetitions: int, keep: Path | None = None
) -> dict[str, Any]:
    """Seconds of extract() at 1x, 2x, 4x; with `keep`, the 4x store of the last repetition is
    left there (the training benchmark reads it)."""
    from pipeline.data.manifest import read_manifest
    from pipeline.extract import ExtractConfig, extract

    base = read_manifest(manifest)
    manifests = {
        f: replicate_manifest(manifest, f, manifest.with_name(f"x{f}.parquet")) for f in FACTORS
    }
    seconds: dict[int, list[float]] = {f: [] for f in FACTORS}
    config = ExtractConfig(splits=None)
    work = manifest.parent / "growth-stores"
    for rep in range(repetitions):
        for f in FACTORS:
            out = work / f"raw-{f}x.zarr"
            shutil.rmtree(out, ignore_errors=True)
            seconds[f].append(
                timed(lambda f=f, out=out: extract(manifests[f], encoder_dir, out, config))[0]
            )
            if keep is not None and f == FACTORS[-1] and rep == repetitions - 1:
                shutil.rmtree(keep, ignore_errors=True)
                shutil.move(str(out), str(keep))
            shutil.rmtree(out, ignore_errors=True)
    med = {f: median(v) for f, v in seconds.items()}
    videos = [len(base) * f for f in FACTORS]
    return {
        "videos": {f"{f}x": n for f, n in zip(FACTORS, videos, strict=True)},
        "seconds": {f"{f}x": rnd(s) for f, s in med.items()},
        "exponent": loglog_slope(videos, list(med.values())),
        "manifest_4x": str(manifests[FACTORS[-1]]),
    }


def train_growth(videos: int, dim: int, repetitions: int) -> dict[str, Any]:
    from benchmarks.training import epoch_seconds

    sizes = [videos * f for f in FACTORS]
    seconds = [epoch_seconds(n, dim, repetitions) for n in sizes]
    return {
        "videos": {f"{f}x": n for f, n in zip(FACTORS, sizes, strict=True)},
        "seconds": {f"{f}x": rnd(s, 4) for f, s in zip(FACTORS, seconds, strict=True)},
        "exponent": loglog_slope(sizes, seconds),
    }
