"""audit(): attackers on a sanitized store's privacy split, figures recorded in its attrs, the store
left valid and otherwise untouched; the CLI answers bad input in one line and changes nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from pipeline.errors import ConfigError, StoreError
from pipeline.probes.audit import AUDIT_KEY, AuditConfig, audit, audit_table_rows
from pipeline.probes.features import ProbeFeatures, load_features
from pipeline.probes.measurable import MIN_RAW_MARGIN
from pipeline.store.reader import open_store
from pipeline.store.summary import summarize
from pipeline.store.writer import update_attrs
from store_schema import decode_meta, validate

from .store_helpers import write_store
from .synthetic import DATASET, trimmed

FAST = AuditConfig.fast(seeds=(0, 1))
PERSON_DIMS = [4, 5, 6, 7, 11]


def _scrub(x: np.ndarray, part: str) -> np.ndarray:
    """A perfect sanitizer of the planted data: person dims replaced by fixed noise."""
    out = x.copy()
    out[..., PERSON_DIMS] = np.random.default_rng(len(x)).standard_normal(
        (*x.shape[:-1], len(PERSON_DIMS))
    )
    return out


def _sanitized(path: Path, features: ProbeFeatures, raw_id: str) -> Path:
    location = write_store(path, features, kind="sanitized", input_store_id=raw_id)
    group = location.open_group("r+")
    update_attrs(group, adapter={"sha256": "a" * 64}, input_fingerprint="fp")
    assert validate(str(path)) == []
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("audit")
    rng = np.random.default_rng(0)
    planted = ProbeFeatures(
        DATASET,
        {"privacy_train": trimmed(60, rng), "privacy_test": trimmed(40, rng),
         "train": trimmed(10, rng)},
        16,
    )  # fmt: skip
    raw = write_store(root / "raw.zarr", planted)
    raw_id = open_store(raw.url).store_id
    return {
        "raw": Path(raw.url),
        "scrubbed": _sanitized(root / "scrubbed.zarr", planted.map_features(_scrub), raw_id),
        "copy": _sanitized(root / "copy.zarr", planted, raw_id),
        "other": _sanitized(root / "other.zarr", planted, "someone-else"),
    }


def _snapshot(store: Path) -> dict[str, bytes]:
    return {str(p.relative_to(store)): p.read_bytes() for p in store.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def scrubbed_audit(stores):
    before = open_store(stores["scrubbed"]).meta
    result = audit(stores["scrubbed"], FAST, raw=stores["raw"])
    return before, result


def test_audit_records_figures_and_leaves_the_store_valid(stores, scrubbed_audit) -> None:
    before, result = scrubbed_audit
    assert validate(str(stores["scrubbed"])) == []
    after = open_store(stores["scrubbed"]).meta
    # nothing else changed but the history, which gains the audit
    assert {k: v for k, v in after.items() if k not in (AUDIT_KEY, "history")} == {
        k: v for k, v in before.items() if k != "history"
    }
    assert after["history"][:-1] == before.get("history", [])
    assert after["history"][-1]["op"] == "audited"
    record = after[AUDIT_KEY]
    assert record == result.record
    assert record["store_id"] == before["store_id"] and record["seeds"] == [0, 1]
    assert dt.datetime.fromisoformat(record["date"]).tzinfo is not None
    assert record["splits"] == {"train": "privacy_train", "test": "privacy_test",
                                "train_videos": 60, "test_videos": 40}  # fmt: skip
    assert record["attributes"]["person"] == ["skin", "gender", "hat"]
    assert record["probe"]["attackers"] == ["mlp", "linear"]
    assert record["probe"]["attacker"]["max_epochs"] == FAST.attacker.max_epochs
    assert set(record["results"]) == {"mlp_static", "mlp_clip", "linear_static", "linear_clip"}
    summary = record["summary"]
    # planted attributes: raw leaks far above chance, the scrubbed store hardly at all
    assert summary["raw_cmap_person"] > summary["chance_person"] + 0.2
    assert summary["cmap_person"] < summary["chance_person"] + 0.1
    assert -0.3 < summary["leakage_person"] < 0.3
    for entry in record["results"].values():
        assert entry["cmap_person"]["n"] == 2 and len(entry["leakage_person"]["values"]) == 2
        assert entry["measured"] and entry["raw_margin_person"] > MIN_RAW_MARGIN
    assert summary["unmeasured_settings"] == [] and summary["max_unmeasured_excess"] is None
    assert summary["max_leakage_person"] >= summary["leakage_person"]
    assert summarize(open_store(stores["scrubbed"]))["audit"] == record  # `anon-store inspect`


def test_a_store_holding_raw_features_leaks_fully(stores) -> None:
    result = audit(stores["copy"], FAST, raw=stores["raw"], write=False)
    assert 0.8 < result.summary["leakage_person"] < 1.2
    assert AUDIT_KEY not in open_store(stores["copy"]).meta  # write=False: nothing recorded


def test_raw_features_near_chance_leave_every_setting_unmeasured(stores, tmp_path) -> None:
    # Raw features that carry nothing of the person attributes: any "cut" would be noise.
    planted = load_features(open_store(stores["raw"]), ["privacy_train", "privacy_test"])
    blank = planted.map_features(_scrub)
    raw = write_store(tmp_path / "blank-raw.zarr", blank)
    sanitized = _sanitized(tmp_path / "blank.zarr", blank, open_store(raw.url).store_id)
    record = audit(sanitized, FAST, raw=raw.url, write=False).record
    for entry in record["results"].values():
        assert entry["measured"] is False and entry["raw_margin_person"] < MIN_RAW_MARGIN
    summary = record["summary"]
    assert summary["max_leakage_person"] is None and summary["min_raw_margin"] == MIN_RAW_MARGIN
    assert sorted(summary["unmeasured_settings"]) == sorted(record["results"])
    assert summary["max_unmeasured_excess"] < MIN_RAW_MARGIN
    rows = audit_table_rows(record)
    assert all(row[-1].startswith("unmeasured: raw ") for row in rows)


def test_downstream_reads_the_audit_without_anon_store(stores, scrubbed_audit) -> None:
    attrs = decode_meta(zarr.open_group(str(stores["scrubbed"]), mode="r").attrs["anon_store"])
    assert attrs["audit"]["summary"]["cmap_person"] == pytest.approx(
        scrubbed_audit[1].summary["cmap_person"]
    )
    with xr.open_zarr(stores["scrubbed"]) as ds:  # consolidated metadata still matches
        assert "audit" in decode_meta(ds.attrs["anon_store"]) and "clip_features" in ds


def test_cli_audit(stores, tmp_path, run_cli) -> None:
    import shutil

    store = Path(shutil.copytree(stores["scrubbed"], tmp_path / "s.zarr"))
    code, out, err = run_cli(
        "audit", "--sanitized", store, "--raw", stores["raw"], "--fast", "--seeds", "3,4",
        "--attackers", "linear", "--sources", "static",
    )  # fmt: skip
    assert code == 0, err
    assert "linear_static" in out + err
    record = open_store(store).meta[AUDIT_KEY]
    assert record["seeds"] == [3, 4] and list(record["results"]) == ["linear_static"]
    assert run_cli("validate", store)[0] == 0
    before = _snapshot(store)
    code, out, err = run_cli(
        "audit", "--sanitized", store, "--fast", "--seeds", "0,1", "--no-write"
    )
    assert code == 0, err
    assert _snapshot(store) == before


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--sanitized", "{raw}"], "is a raw store"),
        (["--sanitized", "{scrubbed}", "--privacy-split", "bias"], "no split(s) bias_train"),
        (["--sanitized", "{scrubbed}", "--privacy-split", "a,b,c"], "--privacy-split takes"),
        (["--sanitized", "{scrubbed}", "--seeds", "one"], "--seeds takes"),
        (["--sanitized", "{scrubbed}", "--seeds", "1,1"], "distinct seeds"),
        (["--sanitized", "{other}", "--raw", "{raw}"], "was sanitized from store someone-else"),
        (["--sanitized", "{scrubbed}", "--raw", "{copy}"], "not a raw store"),
        (["--sanitized", "{raw}.missing"], "no store at"),
    ],
)
def test_cli_bad_input_one_line_nothing_changed(stores, run_cli, args, fragment) -> None:
    args = [a.format(**{k: str(v) for k, v in stores.items()}) for a in args]
    before = {name: _snapshot(path) for name, path in stores.items()}
    code, _, err = run_cli("audit", "--fast", "--seeds", "0,1", *args)  # args override
    assert code == 1 and err.count("\n") == 1 and err.startswith("error:"), err
    assert fragment in " ".join(err.split()), err
    assert {name: _snapshot(path) for name, path in stores.items()} == before


def test_config_checks() -> None:
    assert AuditConfig.for_split("bias").test_split == "bias_test"
    assert AuditConfig.for_split("a, b").train_split == "a"
    with pytest.raises(ConfigError):
        AuditConfig.for_split("privacy_test,privacy_test")
    with pytest.raises(ConfigError):
        AuditConfig(sources=("face",))


def test_other_raw_store_allowed_when_asked(stores) -> None:
    with pytest.raises(StoreError, match="allow_other_raw"):
        audit(stores["other"], FAST, raw=stores["raw"], write=False)
    result = audit(stores["other"], FAST, raw=stores["raw"], write=False, allow_other_raw=True)
    assert result.record["raw"]["store_id"] == open_store(stores["raw"]).store_id
