"""Every reader of a store with a corrupt chunk stops with the line `validate --deep` gives
(array, chunk, key), never a decoder traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.aam.from_store import TrainAAMConfig, train_aam
from pipeline.aam.trainer import TrainConfig
from pipeline.interop import FeatureDataset, export
from pipeline.probes.features import load_features
from pipeline.store.retry import CorruptChunkError
from store_schema.deep import check_chunks

EXPECTED = (
    "array 'clip_features' chunk (0, 0, 0) ('clip_features/c/0/0/0') is corrupt: crc32c "
    "checksum mismatch (flipped bits or a truncated chunk)"
)


@pytest.fixture
def corrupt(raw_store, tmp_path) -> Path:
    copy = tmp_path / "raw.zarr"
    shutil.copytree(raw_store, copy)
    chunk = copy / "clip_features" / "c" / "0" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0x01
    chunk.write_bytes(bytes(data))
    assert EXPECTED in check_chunks(copy).problems
    return copy


READERS = {
    "probes": lambda store, tmp: load_features(store),
    "export": lambda store, tmp: export(store, "npy", tmp / "export"),
    "dataset": lambda store, tmp: [FeatureDataset(store)[i] for i in range(3)],
    "train": lambda store, tmp: train_aam(
        store, tmp / "adapter", TrainAAMConfig(training=TrainConfig(epochs=1))
    ),
}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_reader_names_the_corrupt_chunk(reader, corrupt, tmp_path):
    with pytest.raises(CorruptChunkError) as caught:
        READERS[reader](corrupt, tmp_path)
    message = str(caught.value)
    assert message.startswith(EXPECTED) and "\n" not in message
