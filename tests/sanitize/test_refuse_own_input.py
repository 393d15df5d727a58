"""`anon-store sanitize` never writes into its own input: an output that is the input, lies inside
it or contains it is refused - directly, through a symlink, a relative path or a file:// URL,
with and without --overwrite - with one error line, and not one byte changes (every file's path
and sha256 under the input, the links and everything beside them is compared before and after)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pipeline.errors import StoreError
from pipeline.sanitize.output import check_apart
from pipeline.store.location import StoreLocation
from sanitize.stores import make_adapter, make_raw_store


@pytest.fixture(scope="module")
def area(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """area/outer.zarr: a complete raw store holding area/outer.zarr/raw.zarr, the input (so that
    an output containing the input is itself an anon-store store --overwrite would replace);
    area/link.zarr -> the input; area/outer-link -> outer.zarr."""
    area = tmp_path_factory.mktemp("refuse") / "area"
    make_raw_store(area / "outer.zarr", seed=1)
    make_raw_store(area / "outer.zarr" / "raw.zarr")
    (area / "link.zarr").symlink_to(area / "outer.zarr" / "raw.zarr", target_is_directory=True)
    (area / "outer-link").symlink_to(area / "outer.zarr", target_is_directory=True)
    return area


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_adapter(tmp_path_factory.mktemp("refuse-adapter") / "adapter")


def _snapshot(root: Path) -> dict[str, str]:
    """Every file (sha256), directory and symlink (its target) under `root`."""
    found: dict[str, str] = {}
    for directory, dirs, files in os.walk(root):  # never follows the symlinks
        for name in dirs + files:
            path = Path(directory) / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                found[key] = f"-> {os.readlink(path)}"
            elif path.is_dir():
                found[key] = "directory"
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


INSIDE = "is the input store or lies inside it: choose another"

CASES = {
    # id: (input, output, expected message) relative to the area; {area} is its absolute path.
    "output-is-the-input": (
        "outer.zarr/raw.zarr",
        "outer.zarr/raw.zarr",
        f"output {{area}}/outer.zarr/raw.zarr {INSIDE}",
    ),
    "output-inside-the-input": (
        "outer.zarr/raw.zarr",
        "outer.zarr/raw.zarr/nested.zarr",
        f"output {{area}}/outer.zarr/raw.zarr/nested.zarr {INSIDE}",
    ),
    "output-is-an-array-of-the-input": (
        "outer.zarr/raw.zarr",
        "outer.zarr/raw.zarr/clip_features",
        f"output {{area}}/outer.zarr/raw.zarr/clip_features {INSIDE}",
    ),
    "input-inside-the-output": (
        "outer.zarr/raw.zarr",
        "outer.zarr",
        "output {area}/outer.zarr contains the input store {area}/outer.zarr/raw.zarr: "
        "choose another",
    ),
    "output-is-a-symlink-to-the-input": (
        "outer.zarr/raw.zarr",
        "link.zarr",
        f"output {{area}}/link.zarr {INSIDE}",
    ),
    "output-inside-the-input-through-a-symlink": (
        "outer.zarr/raw.zarr",
        "link.zarr/nested.zarr",
        f"output {{area}}/link.zarr/nested.zarr {INSIDE}",
    ),
    "input-inside-the-output-through-a-symlink": (
        "outer.zarr/raw.zarr",
        "outer-link",
        "output {area}/outer-link contains the input store {area}/outer.zarr/raw.zarr: "
        "choose another",
    ),
    "input-given-through-a-symlink": (
        "link.zarr",
        "outer.zarr/raw.zarr",
        f"output {{area}}/outer.zarr/raw.zarr {INSIDE}",
    ),
    "output-as-a-file-url": (
        "outer.zarr/raw.zarr",
        "file://{area}/outer.zarr/raw.zarr",
        f"output {{area}}/outer.zarr/raw.zarr {INSIDE}",
    ),
    "output-as-a-relative-path": (
        "outer.zarr/raw.zarr",
        "./outer.zarr/../outer.zarr/raw.zarr/",
        f"output {{area}}/outer.zarr/../outer.zarr/raw.zarr {INSIDE}",
    ),
}


@pytest.mark.parametrize("overwrite", [False, True], ids=["", "overwrite"])
@pytest.mark.parametrize("case", list(CASES))
def test_sanitize_refuses_to_write_into_its_own_input(
    case, overwrite, area, adapter, run_cli, monkeypatch
) -> None:
    source, output, message = (text.replace("{area}", str(area)) for text in CASES[case])
    if "://" not in output and not output.startswith("."):
        output = str(area / output)
    monkeypatch.chdir(area)  # relative paths are taken from here
    before = _snapshot(area)
    assert any(key.startswith("outer.zarr/raw.zarr/clip_features/c/") for key in before)
    args = ["sanitize", "--input", area / source, "--adapter", adapter, "--output", output]
    code, out, err = run_cli(*args, *(["--overwrite"] if overwrite else []))
    assert code == 1
    assert out == ""
    assert err.strip().splitlines() == [f"error: {message}"]
    assert _snapshot(area) == before


@pytest.mark.parametrize(
    ("source", "output"),
    [
        ("/data/raw.zarr", "/data/raw.zarr2"),
        ("/data/raw.zarr", "/data/raw.zarr-sanitized"),
        ("/data/raw.zarr", "/data/sanitized.zarr"),
        ("/data/run/raw.zarr", "/data/run-2/sanitized.zarr"),
        ("/data/raw.zarr-old/x.zarr", "/data/raw.zarr"),
        ("s3://bucket/f/raw.zarr", "s3://bucket/f/raw.zarr-sanitized"),
        ("s3://bucket/f/raw.zarr", "s3://bucket/g/raw.zarr"),
    ],
)
def test_stores_beside_each_other_are_apart(source: str, output: str) -> None:
    # Names sharing a prefix are siblings, not one inside the other.
    check_apart(StoreLocation.parse(source), StoreLocation.parse(output))


@pytest.mark.parametrize(
    ("source", "output", "message"),
    [
        ("s3://bucket/f/raw.zarr", "s3://bucket/f/raw.zarr", INSIDE),
        ("s3://bucket/f/raw.zarr", "s3://bucket/f/raw.zarr/", INSIDE),
        ("s3://bucket/f/raw.zarr", "s3://bucket/f/raw.zarr/out.zarr", INSIDE),
        ("s3://bucket/f/raw.zarr", "s3://bucket/f", "contains the input store"),
        ("/data/raw.zarr", "/data/raw.zarr/", INSIDE),
        ("/data/raw.zarr", "/data/x/../raw.zarr", INSIDE),
        ("/data/raw.zarr", "/data", "contains the input store"),
        ("/data/raw.zarr", "/", "contains the input store"),
    ],
)
def test_the_same_or_nested_locations_are_refused(source: str, output: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        check_apart(StoreLocation.parse(source), StoreLocation.parse(output))
