"""Append vs re-extract: adding ~1% new videos to a complete store, against extracting the grown
manifest from scratch, side by side in one run (same machine, same encoder, same files)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from benchmarks.common import median, rnd, timed

NEW_FRACTION = 0.01


def grown_manifest(manifest: Path, out: Path, fraction: float = NEW_FRACTION) -> tuple[Path, int]:
    """`manifest` plus its first ceil(fraction * n) videos again under new ids (same files)."""
    import pyarrow as pa

    from pipeline.data.manifest import read_manifest, write_manifest

    base = read_manifest(manifest)
    extra = base.table.slice(0, max(1, math.ceil(fraction * len(base))))
    index = extra.column_names.index("video_id")
    ids = [f"{v}~new" for v in extra.column("video_id").to_pylist()]
    extra = extra.set_column(index, "video_id", pa.array(ids, pa.string()))
    # `out` sits beside `manifest`: the paths stay relative to that directory.
    written = write_manifest(out, pa.concat_tables([base.table, extra]), base.info)
    return written, len(extra)


def run(manifest: Path, encoder_dir: str, work: Path, repetitions: int) -> dict[str, Any]:
    """Median seconds of `extract --append` of the grown manifest onto a store of `manifest`,
    and of extracting the grown manifest into a fresh store."""
    from pipeline.extract import ExtractConfig, extract

    grown, added = grown_manifest(manifest, manifest.parent / "grown.parquet")
    config = ExtractConfig(splits=None)
    append_s, full_s = [], []
    for rep in range(repetitions):
        store = work / f"append-{rep}.zarr"
        extract(manifest, encoder_dir, store, config)
        seconds, _ = timed(
            lambda s=store: extract(grown, encoder_dir, s, ExtractConfig(append=True))
        )
        append_s.append(seconds)
        fresh = work / f"fresh-{rep}.zarr"
        seconds, _ = timed(lambda f=fresh: extract(grown, encoder_dir, f, config))
        full_s.append(seconds)
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(fresh, ignore_errors=True)
    return {
        "new_videos": added,
        "append_s": rnd(median(append_s)),
        "reextract_s": rnd(median(full_s)),
        "append_vs_reextract": rnd(median(append_s) / median(full_s)),
    }
