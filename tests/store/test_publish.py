"""The publish gate: only a complete sanitized store, audited at its current version under the
leakage threshold, is copied (and verified); every refusal leaves the destination untouched."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from pipeline.errors import StoreError
from pipeline.probes.audit import AuditConfig, audit
from pipeline.probes.features import ProbeFeatures
from pipeline.store.publish import MARKER, publish
from pipeline.store.reader import open_store
from pipeline.store.writer import read_attrs, update_attrs, write_attrs
from store_schema import validate

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: the probes' store builders
from probes.store_helpers import write_store
from probes.synthetic import DATASET, trimmed

PERSON_DIMS = [4, 5, 6, 7, 11]


def _scrub(x: np.ndarray, part: str) -> np.ndarray:
    out = x.copy()
    noise = np.random.default_rng(len(x)).standard_normal((*x.shape[:-1], len(PERSON_DIMS)))
    out[..., PERSON_DIMS] = noise
    return out


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> dict[str, Path]:
    """A raw store and a sanitized one (person dimensions scrubbed), audited against it."""
    root = tmp_path_factory.mktemp("publish")
    rng = np.random.default_rng(0)
    splits = {"privacy_train": trimmed(60, rng), "privacy_test": trimmed(40, rng)}
    planted = ProbeFeatures(DATASET, splits, 16)
    raw = write_store(root / "raw.zarr", planted)
    raw_id = open_store(raw.url).store_id
    clean = write_store(
        root / "clean.zarr", planted.map_features(_scrub), kind="sanitized", input_store_id=raw_id
    )
    update_attrs(clean.open_group("r+"), adapter={"sha256": "a" * 64}, input_fingerprint="fp")
    audit(clean.url, AuditConfig.fast(seeds=(0,)), raw=raw.url)
    return {"raw": Path(raw.url), "clean": Path(clean.url), "root": root}


def _snapshot(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def _copy_with(tmp_path: Path, store: Path, **changes) -> Path:
    """A copy of `store` whose metadata has `changes` (None removes a key)."""
    import shutil

    out = tmp_path / f"variant-{len(list(tmp_path.iterdir()))}.zarr"
    shutil.copytree(store, out)
    group = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    meta = {**read_attrs(group), **changes}
    write_attrs(group, {key: value for key, value in meta.items() if value is not None})
    zarr.consolidate_metadata(str(out), zarr_format=3)
    return out


def test_publish_copies_verifies_and_records(audited, tmp_path):
    source = audited["clean"]
    before = _snapshot(source)
    dest = tmp_path / "published.zarr"
    result = publish(source, dest)
    assert result.objects == len(before) and 0.0 <= result.leakage <= result.max_leakage
    assert validate(str(dest)) == [] and _snapshot(source) == before
    assert not (dest / MARKER).exists()
    copied, original = open_store(dest), open_store(source)
    for name in ("clip_features", "static_features", "video_id", "attr_skin"):
        np.testing.assert_array_equal(copied.group[name][:], original.group[name][:])
    meta = copied.meta
    assert meta["published"]["from_store_id"] == original.store_id
    assert meta["published"]["from_version"] == original.meta["version"]
    assert meta["history"][-1]["op"] == "published" and meta["audit"] == original.meta["audit"]
    with pytest.raises(StoreError, match="already exists"):
        publish(source, dest)
    assert publish(source, dest, overwrite=True).objects == result.objects


def _with_results(record: dict, change) -> dict:
    """``record`` with change(setting, entry) -> entry applied to every attacker setting."""
    results = {name: change(name, dict(entry)) for name, entry in record["results"].items()}
    return {**record, "results": results}


def _mean(value: float) -> dict:
    return {"mean": value, "ci": 0.01}


def test_every_refusal_leaves_the_destination_untouched(audited, tmp_path):
    clean = audited["clean"]
    meta = open_store(clean).meta
    record = meta["audit"]
    leaky = _with_results(record, lambda name, e: {**e, "leakage_person": _mean(0.9)})
    no_figure = _with_results(record, lambda name, e: {**e, "raw_cmap_person": None})
    # raw attackers near chance everywhere: nothing measured, the gate cannot certify
    chance = {name: e["chance_person"]["mean"] for name, e in record["results"].items()}
    blank = _with_results(
        record, lambda name, e: {**e, "raw_cmap_person": _mean(chance[name] + 0.01)}
    )
    # ... and on one such setting the sanitized store leaks MORE than the raw one
    worse = _with_results(
        blank,
        lambda name, e: (
            {**e, "cmap_person": _mean(chance[name] + 0.2)} if name == "mlp_clip" else e
        ),
    )
    cases = [
        (audited["raw"], {}, "only sanitized stores are published"),
        (_copy_with(tmp_path, clean, audit=None), {}, "never audited"),
        (_copy_with(tmp_path, clean, version=meta["version"] + 1), {}, "audit is stale"),
        (_copy_with(tmp_path, clean, audit=leaky), {}, "leaks too much"),
        (_copy_with(tmp_path, clean, audit=no_figure), {}, "no leakage figure"),
        (_copy_with(tmp_path, clean, audit=blank), {}, "measured nothing"),
        (_copy_with(tmp_path, clean, audit=worse), {"allow_unmeasured": True}, "leak more"),
        (clean, {"max_leakage": 1.5}, "must be in"),
    ]
    for store, options, message in cases:
        dest = tmp_path / "dest.zarr"
        with pytest.raises(StoreError, match=message):
            publish(store, dest, **options)
        assert not dest.exists(), message
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not a store")
    for overwrite in (False, True):
        with pytest.raises(StoreError):
            publish(clean, foreign, overwrite=overwrite)
        assert _snapshot(foreign) == {"notes.txt": b"not a store"}


def test_unmeasured_settings_are_judged_on_what_the_store_itself_leaks(audited, tmp_path):
    clean = audited["clean"]
    record = open_store(clean).meta["audit"]
    chance = {name: e["chance_person"]["mean"] for name, e in record["results"].items()}
    measured = {name: e["leakage_person"]["mean"] for name, e in record["results"].items()}
    # An audit recorded before settings were told apart (format 1): a setting whose raw signal
    # was 0.01 above chance got a noise ratio of 5 into the summary's worst leakage.
    noisy = _with_results(
        record,
        lambda name, e: {**e, "raw_cmap_person": _mean(chance[name] + 0.01),
                         "leakage_person": _mean(5.0)}
        if name == "mlp_clip"
        else e,
    )  # fmt: skip
    noisy = {**noisy, "version": 1, "summary": {**noisy["summary"], "max_leakage_person": 5.0}}
    for key in ("unmeasured_settings", "max_unmeasured_excess", "min_raw_margin"):
        noisy["summary"].pop(key, None)
    result = publish(_copy_with(tmp_path, clean, audit=noisy), tmp_path / "a.zarr")
    others = [v for name, v in measured.items() if name != "mlp_clip"]
    assert result.leakage == pytest.approx(max(others))
    # nothing measurable: refused by default, published when asked (no leakage figure to show)
    blank = _with_results(
        record, lambda name, e: {**e, "raw_cmap_person": _mean(chance[name] + 0.01)}
    )
    source = _copy_with(tmp_path, clean, audit=blank)
    with pytest.raises(StoreError, match="measured nothing"):
        publish(source, tmp_path / "b.zarr")
    result = publish(source, tmp_path / "b.zarr", allow_unmeasured=True)
    assert result.leakage is None and validate(str(tmp_path / "b.zarr")) == []
    assert open_store(tmp_path / "b.zarr").meta["published"]["audited_leakage"] is None


def test_an_interrupted_publish_is_never_read_and_is_redone(audited, tmp_path, monkeypatch):
    from pipeline.store import publish as publish_module

    dest = tmp_path / "dest.zarr"
    real = publish_module._write
    calls = []

    def dies_midway(fs, path, data, local):
        calls.append(path)
        if len(calls) == 6:
            raise KeyboardInterrupt
        real(fs, path, data, local)

    monkeypatch.setattr(publish_module, "_write", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        publish(audited["clean"], dest, workers=1)
    assert (dest / MARKER).exists() and not (dest / "zarr.json").exists()
    with pytest.raises(StoreError):
        open_store(dest)
    monkeypatch.setattr(publish_module, "_write", real)
    publish(audited["clean"], dest)  # our unfinished publish: replaced without --overwrite
    assert validate(str(dest)) == []


def test_inspect_and_history_show_the_audit_and_its_staleness(audited, tmp_path):
    from pipeline.store.summary import history_lines, summarize

    clean = audited["clean"]
    current = summarize(open_store(clean))
    assert current["audit_state"] == "current" and current["version"] == 1
    version = open_store(clean).meta["version"]
    stale = summarize(open_store(_copy_with(tmp_path, clean, version=version + 1)))
    assert stale["audit_state"] == "stale"
    raw = summarize(open_store(audited["raw"]))
    assert raw["audit_state"] == "none"
    lines = history_lines(open_store(clean).meta)
    assert lines[0].startswith("v1  ") and " created" in lines[0]
    assert " audited" in lines[-1] and "store_version=1" in lines[-1]


@pytest.mark.integration
def test_publish_to_s3_is_verified_and_readable(audited, monkeypatch):
    """The same gate and copy to a real S3 endpoint (an in-process moto server)."""
    import logging

    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    import s3fs
    from local_servers import start_moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server, endpoint = start_moto_server()
    try:
        options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
        s3fs.S3FileSystem(**options, skip_instance_cache=True).call_s3(
            "create_bucket", Bucket="shared"
        )
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        dest = "s3://shared/features/published.zarr"
        result = publish(audited["clean"], dest)
        assert result.objects == len(_snapshot(audited["clean"]))
        assert validate(dest, storage_options=options) == []
        copied = open_store(dest)
        assert copied.meta["published"]["from_store_id"] == open_store(audited["clean"]).store_id
        np.testing.assert_array_equal(
            copied.group["clip_features"][:], open_store(audited["clean"]).group["clip_features"][:]
        )
        with pytest.raises(StoreError, match="already exists"):
            publish(audited["clean"], dest)
    finally:
        server.stop()
