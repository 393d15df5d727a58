"""Property tests: whatever a manifest holds, read_manifest answers with a Manifest or one line.

Hypothesis builds manifests from a valid one by dropping and adding columns, replacing a column
with values of another type, duplicating ids, writing odd, unicode, absolute and escaping paths,
and damaging the metadata or the parquet bytes. Every outcome must be a validated Manifest (whose
paths all lie under its root) or a ManifestError of one line; nothing else may escape.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.data.manifest import (
    METADATA_KEY,
    AttributeInfo,
    DatasetInfo,
    Manifest,
    read_manifest,
    write_manifest,
)
from pipeline.errors import ManifestError

INFO = DatasetInfo(
    name="toy",
    actions=("run", "jump", "wave"),
    attributes={"hat": AttributeInfo(("no", "yes")), "scene": AttributeInfo(("a", "b"), "context")},
)
COLUMNS = ("video_id", "path", "split", "action", "kind", "attr_hat", "attr_scene", "fps",
           "num_frames", "segments", "anomalous")  # fmt: skip
SCALE = int(os.environ.get("ANON_STORE_FUZZ_SCALE", "1"))
"""Multiplies every max_examples here: ANON_STORE_FUZZ_SCALE=50 for a long fuzzing session."""
SETTINGS = settings(
    max_examples=60 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _valid_rows(n: int) -> list[dict]:
    return [
        dict(video_id=f"v{i}", path=f"clips/v{i}.mp4", split=("train", "test")[i % 2],
             action=i % 3, attr_hat=i % 2, attr_scene=-1, fps=25.0, num_frames=32)
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with clips/v0..v5.mp4 (placeholder bytes: nothing here decodes them), a
    subdirectory, and a secret file outside it that symlinks and ../ try to reach."""
    base = tmp_path_factory.mktemp("manifest-props")
    root = base / "data"
    (root / "clips" / "sub").mkdir(parents=True)
    for i in range(6):
        (root / "clips" / f"v{i}.mp4").write_bytes(b"placeholder")
    (base / "secret.mp4").write_bytes(b"outside the root")
    (root / "clips" / "link-out.mp4").symlink_to(base / "secret.mp4")
    (root / "clips" / "link-in.mp4").symlink_to(root / "clips" / "v0.mp4")
    return root


def odd_paths(root: Path) -> list[str]:
    """Paths that are empty, odd, unicode, too long, absolute, or escape ``root``."""
    outside = root.parent / "secret.mp4"
    return [
        "", " ", ".", "..", "/", "clips", "clips/", "clips/sub", "clips/v0.mp4/",
        "../secret.mp4", "clips/../../secret.mp4", "./clips/v0.mp4", "clips//v1.mp4",
        "clips/./v2.mp4", "clips/sub/../v3.mp4", "clips/link-out.mp4", "clips/link-in.mp4",
        str(outside), str(root / "clips" / "v0.mp4"), "~/v0.mp4", "file:///etc/passwd",
        "s3://bucket/v.mp4", "clips\\v0.mp4", "clips/v0.mp4\n", "clips/\x00v0.mp4", "\x00",
        "clips/vidéo-ü.mp4", "clips/🎥.mp4", "a" * 5000, "clips/" + "b/" * 2500, "/" * 300,
        "../" * 50 + "etc/passwd", "clips/v0.mp4\x00.txt", "clips/\t",
    ]  # fmt: skip


def _odd_paths(root: Path) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(odd_paths(root)),
        st.text(max_size=40),
        st.builds(lambda p: f"clips/{p}", st.text(max_size=20)),
    )


def _typed_column(n: int) -> st.SearchStrategy[pa.Array]:
    """A column of n values of one random type (the wrong one for most columns)."""
    cells = st.sampled_from(
        [
            (st.integers(-(2**63), 2**63 - 1), pa.int64()),
            (st.integers(-3, 5), pa.int8()),
            (st.integers(0, 2**64 - 1), pa.uint64()),
            (st.floats(allow_nan=True, allow_infinity=True), pa.float64()),
            (st.text(max_size=12), pa.string()),
            (st.text(max_size=12), pa.large_string()),
            (st.binary(max_size=12), pa.binary()),
            (st.booleans(), pa.bool_()),
            (st.none(), pa.null()),
            (st.lists(st.integers(-5, 5), max_size=3), pa.list_(pa.int64())),
            (st.dates(), pa.date32()),
        ]
    )

    @st.composite
    def build(draw: st.DrawFn) -> pa.Array:
        values, typ = draw(cells)
        data = draw(st.lists(st.one_of(values, st.none()) if typ != pa.null() else values,
                             min_size=n, max_size=n))  # fmt: skip
        return pa.array(data, typ)

    return build()


def _without(table: pa.Table, name: str) -> pa.Table:
    keep = [i for i, c in enumerate(table.column_names) if c != name]
    return pa.Table.from_arrays(
        [table.column(i) for i in keep], names=[table.column_names[i] for i in keep]
    )


@st.composite
def bad_tables(draw: st.DrawFn, root: Path) -> pa.Table:
    """A valid manifest table with a few random mutations applied."""
    n = draw(st.integers(1, 6))
    rows = _valid_rows(n)
    table = pa.Table.from_pylist(rows)
    table = table.set_column(
        table.schema.get_field_index("action"), "action", table.column("action").cast(pa.int32())
    )
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["drop", "extra", "retype", "dupe_id", "paths", "ids",
                                   "values", "segments"]))  # fmt: skip
        names = table.column_names
        if op == "drop" and names:
            table = table.remove_column(draw(st.integers(0, len(names) - 1)))
        elif op == "extra":
            name = draw(st.one_of(st.sampled_from(COLUMNS), st.text(max_size=12)))
            table = table.append_column(name, draw(_typed_column(n)))
        elif op == "retype" and names:
            i = draw(st.integers(0, len(names) - 1))
            table = table.set_column(i, names[i], draw(_typed_column(n)))
        elif op == "dupe_id" and "video_id" in names and n > 1:
            ids = table.column(names.index("video_id")).to_pylist()
            i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
            ids[i] = ids[j]
            table = table.set_column(names.index("video_id"), "video_id", pa.array(ids))
        elif op == "paths" and "path" in names:
            paths = draw(st.lists(_odd_paths(root), min_size=n, max_size=n))
            table = table.set_column(names.index("path"), "path", pa.array(paths, pa.string()))
        elif op == "ids" and "video_id" in names:
            ids = draw(st.lists(st.text(max_size=10), min_size=n, max_size=n))
            table = table.set_column(names.index("video_id"), "video_id", pa.array(ids))
        elif op == "values":
            name = draw(st.sampled_from(["action", "attr_hat", "num_frames", "anomalous"]))
            values = draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=n, max_size=n))
            table = _without(table, name).append_column(name, pa.array(values, pa.int32()))
        elif op == "segments":
            seg = st.fixed_dictionaries(
                {k: st.integers(-(2**31), 2**31 - 1) for k in ("start", "end", "label")}
            )
            kinds = draw(st.lists(st.sampled_from(["trimmed", "untrimmed", "anomaly", "x"]),
                                  min_size=n, max_size=n))  # fmt: skip
            segs = draw(st.lists(st.lists(seg, max_size=3), min_size=n, max_size=n))
            for name, arr in (("kind", pa.array(kinds)), ("segments", pa.array(segs))):
                table = _without(table, name).append_column(name, arr)
    return table


@st.composite
def metadata(draw: st.DrawFn) -> dict[bytes, bytes] | None:
    choice = draw(st.sampled_from(["good", "none", "junk", "json"]))
    if choice == "good":
        return {METADATA_KEY: INFO.to_json().encode()}
    if choice == "none":
        return None
    if choice == "junk":
        return {METADATA_KEY: draw(st.binary(max_size=40))}
    json_values = st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False)
        | st.text(max_size=5),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=8,
    )
    attribute = st.fixed_dictionaries(
        {}, optional={"values": json_values, "role": st.sampled_from(["person", "context", 1])}
    )
    doc = draw(st.dictionaries(
        st.sampled_from(["name", "version", "actions", "attributes", "anomaly_types", "x"]),
        json_values,
    ))  # fmt: skip
    if draw(st.booleans()):
        names = st.sampled_from(["hat", "scene", "x", "", "a b"])
        doc["attributes"] = draw(st.dictionaries(names, attribute, max_size=3))
    return {METADATA_KEY: json.dumps(doc).encode()}


def _check_outcome(path: Path, root: Path, **kwargs) -> Manifest | None:
    try:
        manifest = read_manifest(path, **kwargs)
    except ManifestError as error:
        message = str(error)
        assert message and "\n" not in message and "Traceback" not in message, message
        return None
    # Accepted: it must really be a valid manifest.
    ids = manifest.video_ids
    assert len(ids) == len(set(ids)) == len(manifest) > 0
    assert all(isinstance(i, str) and i.strip() for i in ids)
    if not kwargs.get("allow_outside_root"):
        real_root = os.path.realpath(root)
        for p in manifest.video_paths():
            assert os.path.commonpath([real_root, str(p)]) == real_root, p
    return manifest


@SETTINGS
@given(data=st.data())
def test_any_manifest_table_is_read_or_refused_in_one_line(dataset: Path, data) -> None:
    table = data.draw(bad_tables(dataset), label="table")
    meta = data.draw(metadata(), label="metadata")
    file = dataset / "manifest.parquet"
    pq.write_table(table.replace_schema_metadata(meta), file)
    check_files = data.draw(st.booleans(), label="check_files")
    _check_outcome(file, dataset, check_files=check_files)


@SETTINGS
@given(data=st.data())
def test_write_manifest_validates_rows_of_any_shape(dataset: Path, tmp_path: Path, data) -> None:
    """Rows as dicts with random keys and values: written and readable back, or refused."""
    n = data.draw(st.integers(0, 4))
    rows = _valid_rows(n)
    cell = st.one_of(
        st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8), st.none(),
        st.booleans(), st.lists(st.integers(), max_size=2), st.binary(max_size=4),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    )  # fmt: skip
    for row in rows:
        for key in data.draw(st.lists(st.sampled_from((*COLUMNS, "bogus")), max_size=2)):
            if data.draw(st.booleans()):
                row.pop(key, None)
            else:
                row[key] = data.draw(cell)
        if data.draw(st.booleans()):
            row["path"] = data.draw(_odd_paths(dataset))
    out = dataset / "written" / "manifest.parquet"
    out.unlink(missing_ok=True)
    try:
        written = write_manifest(out, rows, INFO)
    except ManifestError as error:
        assert "\n" not in str(error)
        assert not out.exists()  # nothing written
        return
    _check_outcome(written, dataset, check_files=False)


@settings(max_examples=40 * SCALE, deadline=None)
@given(
    cut=st.floats(0, 1, exclude_max=True),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), max_size=8),
)
def test_damaged_parquet_bytes(dataset: Path, cut: float, flips: list) -> None:
    good = write_manifest(dataset / "good" / "manifest.parquet", _valid_rows(4), INFO)
    data = bytearray(good.read_bytes())
    for where, bit in flips:
        data[int(where * len(data))] ^= 1 << bit
    if cut > 0.5:  # half the examples also truncate
        data = data[: int((cut - 0.5) * 2 * len(data))]
    bad = dataset / "damaged.parquet"
    bad.write_bytes(bytes(data))
    _check_outcome(bad, dataset, check_files=False)


@pytest.mark.parametrize("allow_outside_root", [False, True])
def test_every_odd_path_is_read_or_refused_in_one_line(
    dataset: Path, allow_outside_root: bool
) -> None:
    """Each odd path in turn, with and without file checks (deterministic, unlike the draws)."""
    tried = 0
    for path in odd_paths(dataset):
        rows = _valid_rows(2)
        rows[1]["path"] = path
        table = pa.Table.from_pylist(rows).replace_schema_metadata(
            {METADATA_KEY: INFO.to_json().encode()}
        )
        file = dataset / "odd.parquet"
        pq.write_table(table, file)
        for check_files in (False, True):
            kwargs = dict(check_files=check_files, allow_outside_root=allow_outside_root)
            manifest = _check_outcome(file, dataset, **kwargs)
            tried += 1
            escapes = path.startswith(("/", "..", "clips/../..")) or "link-out" in path
            if escapes and not allow_outside_root:
                assert manifest is None, path
    assert tried == 2 * len(odd_paths(dataset))
