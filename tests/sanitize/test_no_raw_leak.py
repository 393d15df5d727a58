"""A sanitized store holds no raw embedding, and no store, adapter or log line carries credentials
or absolute paths of the machine that made it (unless asked with record_paths).

One real run on the tiny fixtures: extract (one video damaged, so a failure reason is recorded)
-> train_aam -> sanitize, with sentinel credentials in the environment and every log record
captured.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import zarr

from pipeline.aam.from_store import TrainAAMConfig, train_aam
from pipeline.aam.trainer import TrainConfig
from pipeline.extract import ExtractConfig, extract
from pipeline.sanitize import sanitize
from pipeline.store.reader import open_store
from store_schema import FEATURE_ARRAYS, VIDEO_FAILED, validate

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIASENTINELKEYID0001",
    "AWS_SECRET_ACCESS_KEY": "sentinel/Secret+Access+Key/0001",
    "AWS_SESSION_TOKEN": "sentinel-session-token-0001",
    "HF_TOKEN": "hf_sentinelTokenValue0001",
    "ANON_STORE_STORAGE_OPTIONS": json.dumps(
        {"key": "sentinel-options-key-0001", "secret": "sentinel-options-secret-0001"}
    ),
}
SENTINELS = [v for k, v in SECRETS.items() if k != "ANON_STORE_STORAGE_OPTIONS"] + [
    "sentinel-options-key-0001",
    "sentinel-options-secret-0001",
]
FEATURES = [spec.name for spec in FEATURE_ARRAYS if spec.features]
COPY_TOLERANCE = 1e-5
"""A row within this relative distance of a raw row is a copy of it (float32 rounding is ~1e-7;
the adapter trained here moves every row by more than 1e-3)."""


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass(frozen=True)
class Run:
    work: Path
    bench: Path
    raw: Path
    adapter: Path
    sanitized: Path
    records: list[logging.LogRecord]


@pytest.fixture(scope="module")
def run(tiny_benchmark: Path, tiny_encoder_dir: Path, tmp_path_factory) -> Run:
    work = tmp_path_factory.mktemp("no-leak")
    bench = Path(shutil.copytree(tiny_benchmark, work / "bench"))
    val = [r for r in pq.read_table(bench / "manifest.parquet").to_pylist() if r["split"] == "val"]
    data = (bench / val[0]["path"]).read_bytes()
    (bench / val[0]["path"]).write_bytes(data[: len(data) // 3])  # recorded as failed
    handler = _Records()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in SECRETS.items():
                mp.setenv(name, value)
            extract(
                bench / "manifest.parquet",
                str(tiny_encoder_dir),
                work / "raw.zarr",
                ExtractConfig(clips_per_video=2, static_clips=2, batch_size=32, device="cpu"),
            )
            training = TrainConfig(epochs=2, batch_size=4, val_every=1, head_warmup_epochs=1)
            train_aam(work / "raw.zarr", work / "adapter", TrainAAMConfig(training=training))
            sanitize(work / "raw.zarr", work / "adapter", work / "sanitized.zarr")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return Run(
        work, bench, work / "raw.zarr", work / "adapter", work / "sanitized.zarr", handler.records
    )


def _rows(array: np.ndarray, dim: int) -> np.ndarray:
    """Finite rows of an array whose last dimension is the feature size, as float64."""
    rows = np.asarray(array, dtype=np.float64).reshape(-1, dim)
    return rows[np.isfinite(rows).all(axis=1)]


def test_sanitized_store_holds_no_raw_embedding(run: Run) -> None:
    raw = zarr.open_group(str(run.raw), mode="r")
    clean = zarr.open_group(str(run.sanitized), mode="r")
    assert validate(str(run.sanitized)) == []
    dim = raw["clip_features"].shape[-1]
    raw_rows = np.concatenate([_rows(raw[name][:], dim) for name in FEATURES])
    assert len(raw_rows) > 100
    raw_bytes = {row.astype(np.float32).tobytes() for row in raw_rows}
    raw_norms = np.linalg.norm(raw_rows, axis=1)
    checked = 0
    for name in clean.array_keys():
        array = clean[name]
        if array.dtype.kind != "f" or array.shape[-1] != dim:
            continue  # tables: ids, labels, frame indices - not embeddings
        values = np.asarray(array[:])
        for raw_name in FEATURES:  # not the same array, nor a row-permuted one
            other = np.asarray(raw[raw_name][:])
            assert not (values.shape == other.shape and np.array_equal(values, other)), name
        rows = _rows(values, dim)
        # not a copy of any raw row, anywhere (row subsets and reorderings included)
        assert not raw_bytes & {row.astype(np.float32).tobytes() for row in rows}, name
        distance = np.sqrt(
            np.maximum(
                (rows**2).sum(1)[:, None] - 2 * rows @ raw_rows.T + (raw_rows**2).sum(1)[None, :],
                0,
            )
        )
        nearest = (distance / raw_norms[None, :]).min(axis=1)
        assert nearest.min() > COPY_TOLERANCE, (name, float(nearest.min()))
        checked += len(rows)
    assert checked == len(raw_rows)  # every embedding of the sanitized store was compared


def _forbidden(extra: list[Path]) -> list[str]:
    """Credentials and absolute directories of this machine that must not appear.

    The filesystem root is no directory of this machine (every path and URL holds a "/"): run
    from / (`cd / && pytest ...`) or with HOME=/ it is left out, not forbidden."""
    candidates = [tempfile.gettempdir(), os.getcwd(), os.path.expanduser("~"), *map(str, extra)]
    dirs = [d.rstrip(os.sep) for d in candidates]
    dirs = [d for d in dict.fromkeys(dirs) if d]  # "/" strips to ""
    return SENTINELS + [d + os.sep for d in dirs] + [f'"{d}"' for d in dirs]


def _documents(root: Path) -> dict[str, str]:
    """Every metadata or JSON document under a store or adapter directory (no chunk data)."""
    return {
        str(p.relative_to(root)): p.read_text()
        for p in root.rglob("*")
        if p.is_file() and (p.name.endswith(".json") or p.name.startswith("."))
    }


def test_attrs_and_adapter_carry_no_credentials_or_paths(run: Run, tiny_encoder_dir) -> None:
    forbidden = _forbidden([run.work, run.bench, tiny_encoder_dir])
    for root in (run.raw, run.sanitized, run.adapter):
        documents = _documents(root)
        assert any(name.endswith("zarr.json") or name == "config.json" for name in documents)
        for name, text in documents.items():
            for item in forbidden:
                assert item not in text, f"{root.name}/{name} holds {item!r}"
    for store in (run.raw, run.sanitized):
        opened = open_store(store)
        reasons = opened.videos["failure_reason"][opened.videos["status"] == VIDEO_FAILED]
        assert len(reasons) == 1 and reasons[0].startswith(("corrupt", "truncated"))
        for item in forbidden:
            assert not any(item in r for r in opened.videos["failure_reason"]), item
        encoder = opened.encoder
        assert encoder["source"] == tiny_encoder_dir.name  # base name + content hashes
        assert len(encoder["weights_sha256"]) == 64 and len(encoder["config_sha256"]) == 64


def test_logs_carry_no_credentials_nor_paths_at_info(run: Run, tiny_encoder_dir) -> None:
    messages = [(r, r.getMessage()) for r in run.records]
    assert any("extracting" in m for _, m in messages)
    assert any("sanitizing" in m for _, m in messages)
    for record, message in messages:  # every logger, every level
        for secret in SENTINELS:
            assert secret not in message, (record.name, message)
    forbidden = _forbidden([run.work, run.bench, tiny_encoder_dir])
    ours = [
        (r, m)
        for r, m in messages
        if r.levelno >= logging.INFO and r.name.split(".")[0] in ("pipeline", "flows")
    ]
    assert ours
    for record, message in ours:
        for item in forbidden:
            assert item not in message, (record.name, message)
    assert not any(re.search(r"(^|[\s'\"(=])/(tmp|home|root|Users)/", m) for _, m in ours)


def test_record_paths_keeps_the_encoder_directory_when_asked(run: Run, tiny_encoder_dir):
    out = run.work / "raw-with-paths.zarr"
    config = ExtractConfig(
        splits=("val",), clips_per_video=2, static_clips=2, device="cpu", record_paths=True
    )
    extract(run.bench / "manifest.parquet", str(tiny_encoder_dir), out, config)
    assert open_store(out).encoder["source"] == str(tiny_encoder_dir.absolute())
