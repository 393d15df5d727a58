"""The lifecycle commands end to end: migrate, history, inspect's audit line, publish's gate,
extract --append; results on stdout, one-line refusals on stderr, nothing written on refusal."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

from pipeline.store.reader import open_store

sys.path.insert(0, str(Path(__file__).parent))  # tests/: the probes' store builders

V1_FIXTURE = Path(__file__).parent / "store" / "fixtures" / "v1_store.zip"


def test_migrate_then_history_and_inspect(run_cli, tmp_path):
    store = tmp_path / "v1.zarr"
    with zipfile.ZipFile(V1_FIXTURE) as archive:
        archive.extractall(store)
    code, out, err = run_cli("inspect", str(store))
    assert code == 1 and "anon-store migrate" in err and err.count("\n") == 1
    code, out, err = run_cli("migrate", str(store))
    assert code == 0 and "from schema v1 to v2 (5 padding rows removed)" in out
    code, out, err = run_cli("history", str(store), "--json")
    history = json.loads(out)["history"]
    assert code == 0 and history[-1]["op"] == "migrated" and history[-1]["from_schema"] == 1
    code, out, err = run_cli("inspect", str(store))
    assert code == 0 and "none (run `anon-store audit`)" in out
    code, out, err = run_cli("migrate", str(store))
    assert code == 1 and "nothing to do" in err


def test_publish_refuses_a_raw_store_in_one_line(run_cli, raw_store, tmp_path):
    dest = tmp_path / "published.zarr"
    code, out, err = run_cli("publish", "--input", str(raw_store), "--output", str(dest))
    assert code == 1 and out == ""
    assert err.strip().endswith("only sanitized stores are published") and err.count("\n") == 1
    assert not dest.exists()
    code, out, err = run_cli(
        "publish", "--input", str(raw_store), "--output", str(dest), "--max-leakage", "2"
    )
    assert code == 2 and not dest.exists()


def test_extract_append_through_the_cli(run_cli, tiny_benchmark, tiny_encoder_dir, tmp_path):
    from pipeline.data.manifest import read_manifest, write_manifest

    manifest = read_manifest(tiny_benchmark / "manifest.parquet")
    paths = manifest.video_paths()
    rows = [
        {**row, "path": str(paths[i])}
        for i, row in enumerate(manifest.table.to_pylist())
        if row["split"] in ("train", "test")
    ]
    half, full = tmp_path / "half.parquet", tmp_path / "full.parquet"
    write_manifest(half, rows[::2], manifest.info, allow_outside_root=True)
    write_manifest(full, rows[::2] + rows[1::2], manifest.info, allow_outside_root=True)
    store = tmp_path / "raw.zarr"
    common = ["--encoder", str(tiny_encoder_dir), "--output", str(store), "--allow-outside-root"]
    assert run_cli("extract", "--input", str(half), *common)[0] == 0
    code, out, err = run_cli("extract", "--input", str(full), *common, "--append", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["action"] == "appended" and result["videos"] == len(rows[1::2])
    assert open_store(store).num_videos == len(rows)
    code, out, err = run_cli("history", str(store))
    assert [line.split()[2] for line in out.strip().splitlines()] == ["created", "appended"]


def test_an_audit_that_measured_nothing_is_not_published_unless_asked(run_cli, tmp_path):
    """Raw features that carry nothing of the person attributes: the audit says "unmeasured",
    inspect shows it, and the gate refuses to certify the store until told to."""
    import numpy as np
    from probes.store_helpers import write_store
    from probes.synthetic import DATASET, trimmed

    from pipeline.probes.features import ProbeFeatures
    from pipeline.store.writer import update_attrs

    def scrub(x: np.ndarray, part: str) -> np.ndarray:
        out = x.copy()
        noise = np.random.default_rng(len(x)).standard_normal((*x.shape[:-1], 5))
        out[..., [4, 5, 6, 7, 11]] = noise  # the planted person dimensions
        return out

    rng = np.random.default_rng(0)
    splits = {"privacy_train": trimmed(60, rng), "privacy_test": trimmed(40, rng)}
    blank = ProbeFeatures(DATASET, splits, 16).map_features(scrub)
    raw = write_store(tmp_path / "raw.zarr", blank)
    sanitized = write_store(
        tmp_path / "sanitized.zarr", blank, kind="sanitized",
        input_store_id=open_store(raw.url).store_id,
    )  # fmt: skip
    update_attrs(sanitized.open_group("r+"), adapter={"sha256": "a" * 64}, input_fingerprint="f")
    store = str(tmp_path / "sanitized.zarr")
    code, out, err = run_cli(
        "audit", "--input", store, "--raw", str(tmp_path / "raw.zarr"), "--fast", "--seeds", "0"
    )
    assert code == 0 and "unmeasured: raw" in out
    code, out, err = run_cli("inspect", store)
    text = " ".join(out.replace("│", " ").split())  # the table wraps long cells
    assert code == 0 and "worst leakage n/a (unmeasured: mlp_static, mlp_clip," in text
    dest = tmp_path / "published.zarr"
    code, out, err = run_cli("publish", "--input", store, "--output", str(dest))
    assert code == 1 and "audit measured nothing" in err and err.count("\n") == 1
    assert not dest.exists()
    code, out, err = run_cli(
        "publish", "--input", store, "--output", str(dest), "--allow-unmeasured", "--json"
    )
    assert code == 0 and json.loads(out)["leakage"] is None
    assert open_store(dest).meta["published"]["audited_leakage"] is None
