"""evaluate --protocol: the protocol file (paths, every refusal), the shared-encoder check, one
evaluation over several stores (Table 1 = the sub-reports' summaries), the CLI and the flow."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from pipeline.errors import AdapterError, ConfigError
from pipeline.probes.evaluate import EvalConfig
from pipeline.probes.protocol import (
    ProtocolReport,
    check_encoders,
    evaluate_protocol,
    read_protocol,
)
from pipeline.probes.report import fmt
from pipeline.store.location import StoreLocation
from pipeline.store.writer import update_attrs

from .store_helpers import write_store
from .synthetic import features

if str(Path(__file__).parents[1]) not in sys.path:  # tests/, for the sanitize test helpers
    sys.path.insert(0, str(Path(__file__).parents[1]))
from sanitize.stores import ENCODER_SHA, make_adapter

FAST = EvalConfig.fast(seeds=(0, 1, 2))


def _set_encoder(store: Path, **changes: object) -> None:
    group = StoreLocation.parse(store).open_group("r+")
    encoder = {"name": "synthetic", "hidden_size": 16, "weights_sha256": ENCODER_SHA}
    update_attrs(group, encoder={**encoder, **changes})


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """Two raw stores of one encoder (the adapter's), a sanitized store, an adapter."""
    root = tmp_path_factory.mktemp("protocol")
    for name, seed in (("bench_raw.zarr", 0), ("vispr_raw.zarr", 1)):
        write_store(root / name, features(seed))
        _set_encoder(root / name)
    negated = features(0).map_features(lambda x, part: -x)  # any other features will do
    write_store(root / "bench_negated.zarr", negated, kind="sanitized")
    make_adapter(root / "adapter", dim=16, encoder_sha=ENCODER_SHA)
    return root


def _write(directory: Path, text: str, name: str = "protocol.toml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    return directory / name


PROTOCOL = """
[stores]
action = "bench_raw.zarr"
detection = "bench_raw.zarr"
privacy = "vispr_raw.zarr"
[methods]
aam = { adapter = "adapter" }
leace = { baseline = "leace", fit_on = "privacy" }
negated = { stores = { action = "bench_negated.zarr" } }
[evaluate]
seeds = [0, 1, 2]
fast = true
"""


# ---------------------------------------------------------------- the file


def test_relative_paths_resolve_against_the_file_and_urls_stay(tmp_path):
    (tmp_path / "data" / "k400.zarr").mkdir(parents=True)
    (tmp_path / "data" / "adapter").mkdir()
    file = _write(
        tmp_path / "configs",
        '[stores]\naction = "../data/k400.zarr"\nprivacy = "s3://bucket/vispr.zarr"\n'
        '[methods]\naam = { adapter = "../data/adapter" }\n'
        'inlp = { baseline = "inlp" }\n[evaluate]\nseeds = [3, 4, 5]\n',
    )
    spec = read_protocol(file)
    assert spec.stores == {
        "action": str(tmp_path / "data" / "k400.zarr"),
        "privacy": "s3://bucket/vispr.zarr",
    }
    assert spec.methods[0].adapter == str(tmp_path / "data" / "adapter")
    assert (spec.methods[1].baseline, spec.methods[1].fit_on) == ("inlp", "privacy")
    assert spec.method_names == ["raw", "aam", "inlp"]
    assert spec.eval_config().seeds == (3, 4, 5)
    assert spec.eval_config(seeds=(0, 1), fast=True).seeds == (0, 1)  # the command line wins
    assert spec.eval_config(fast=True).attacker == EvalConfig.fast().attacker


STORES = '[stores]\naction = "raw.zarr"\nprivacy = "raw.zarr"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[stores]\nkinetics = "raw.zarr"\n',
         "stores.kinetics: unknown protocol; expected one of action, detection, anomaly, "
         "privacy, bias"),
        (STORES + "[methods]\nfoo = { bar = 1 }\n",
         "methods.foo: unknown method kind (keys bar); expected one of adapter, baseline, stores"),
        (STORES + '[methods]\nfoo = { kind = "svm" }\n',
         "methods.foo: unknown method kind (svm); expected one of adapter, baseline, stores"),
        (STORES + '[methods]\nx = { baseline = "svm" }\n',
         "methods.x.baseline: unknown baseline 'svm'; expected one of leace, inlp"),
        (STORES + '[methods]\nx = { baseline = "leace", fit_on = "bias" }\n',
         "methods.x.fit_on: 'bias' is not a protocol with a store; [stores] has action, privacy"),
        (STORES + '[methods]\nx = { kind = "adapter" }\n',
         "methods.x: needs `adapter` (the adapter directory)"),
        (STORES + '[methods]\nx = { adapter = "a", fit_on = "privacy" }\n',
         "methods.x.fit_on: not a key of adapter methods (adapter)"),
        (STORES + '[methods]\nraw = { adapter = "a" }\n',
         "methods.raw: the name 'raw' is reserved: the raw stores are always evaluated"),
        (STORES + '[methods]\nx = { stores = { bias = "raw.zarr" } }\n',
         "methods.x.stores.bias: no raw store in [stores]; [stores] has action, privacy"),
        ("[stores]\n", "stores: empty: name the raw store of at least one protocol"),
        ("[evaluate]\nfast = true\n", "stores: missing: name the raw store of at least one"),
        (STORES + "[evaluate]\nseeds = []\n",
         "evaluate.seeds: expected a non-empty list of integers, got []"),
        (STORES + "[evaluate]\nworkers = 2\n",
         "evaluate.workers: unknown setting; expected seeds, fast"),
        (STORES + "[report]\n", "report: unknown section; expected stores, methods, evaluate"),
    ],
)  # fmt: skip
def test_every_refusal_is_one_line_naming_file_and_key(tmp_path, text, message):
    (tmp_path / "raw.zarr").mkdir()
    file = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        read_protocol(file)
    assert str(error.value).startswith(f"{file}: {message}"), str(error.value)


def test_missing_paths_and_bad_toml_are_refused(tmp_path):
    file = _write(tmp_path, '[stores]\naction = "k400_raw.zarr"\n')
    with pytest.raises(ConfigError, match=r"stores\.action: .*k400_raw\.zarr does not exist$"):
        read_protocol(file)
    (tmp_path / "k400_raw.zarr").mkdir()
    _write(tmp_path, '[stores]\naction = "k400_raw.zarr"\n[methods]\naam = { adapter = "no" }\n')
    with pytest.raises(ConfigError, match=r"methods\.aam\.adapter: .*/no does not exist$"):
        read_protocol(file)
    _write(tmp_path, '[stores]\naction = "k400_raw.zarr\n')
    with pytest.raises(ConfigError, match=r"protocol\.toml: not valid TOML: .*\(at line 2, col"):
        read_protocol(file)
    with pytest.raises(ConfigError, match=r"nothing\.toml: protocol file not found$"):
        read_protocol(tmp_path / "nothing.toml")


def test_stores_of_different_encoders_are_refused(root, tmp_path):
    other = tmp_path / "other_raw.zarr"
    shutil.copytree(root / "bench_raw.zarr", other)
    _set_encoder(other, name="videomae-b", weights_sha256="f" * 64)
    file = _write(
        tmp_path, f'[stores]\naction = "{root / "bench_raw.zarr"}"\nprivacy = "{other}"\n'
    )
    with pytest.raises(ConfigError) as error:
        evaluate_protocol(read_protocol(file), tmp_path / "report", FAST)
    assert str(error.value) == (
        f"stores use different encoders: action (synthetic {ENCODER_SHA[:12]}) vs privacy "
        "(videomae-b ffffffffffff); every protocol's store must be extracted with the same "
        "encoder"
    )
    assert not (tmp_path / "report").exists()  # refused before any probe ran
    _set_encoder(other, hidden_size=32)
    with pytest.raises(ConfigError, match="stores use different encoders"):
        check_encoders(read_protocol(file))


def test_an_adapter_of_another_encoder_is_refused_before_any_probe(root, tmp_path):
    make_adapter(tmp_path / "adapter", dim=16, encoder_sha="f" * 64)
    file = _write(
        tmp_path,
        f'[stores]\naction = "{root / "bench_raw.zarr"}"\n'
        '[methods]\naam = { adapter = "adapter" }\n',
    )
    with pytest.raises(AdapterError, match="adapter was trained on features of encoder weights"):
        evaluate_protocol(read_protocol(file), tmp_path / "report", FAST)
    assert not (tmp_path / "report").exists()


# ---------------------------------------------------------------- one evaluation


@pytest.fixture(scope="module")
def report(root) -> ProtocolReport:
    spec = read_protocol(_write(root, PROTOCOL))
    calls = []
    result = evaluate_protocol(
        spec, root / "report", spec.eval_config(), progress=lambda d, t, **f: calls.append((d, t))
    )
    assert calls[-1][0] == calls[-1][1] == len(calls)  # one bar over every protocol
    return result


def _rows(table: str) -> dict[str, list[str]]:
    lines = table.splitlines()
    return {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])
    }


def test_table_has_a_row_per_method_and_a_column_per_protocol(report):
    md = report.markdown_path.read_text()
    assert report.table() in md
    header = report.table().splitlines()[0]
    assert [h.strip() for h in header.strip("|").split("|")][:3] == [
        "method",
        "action top-1 (%)",
        "detection mAP (%)",
    ]
    assert "privacy cMAP (%, MLP attacker, static clips; chance " in header
    assert "anomaly" not in header and "gender" not in header  # no store: no column
    rows = _rows(report.table())
    assert list(rows) == ["raw", "aam", "leace", "negated"]
    assert rows["negated"][1:] == ["–", "–"]  # a store for the action protocol only
    assert "%)" in rows["leace"][2] and "%)" not in rows["raw"][2]  # privacy change vs raw


def test_cells_are_the_sub_reports_summaries(report):
    rows = _rows(report.table())
    data = json.loads(report.json_path.read_text())
    assert data["format"] == "anon-store.protocol-report" and data["version"] == 1
    assert data["encoder"]["weights_sha256"] == ENCODER_SHA
    for column, (protocol, key) in enumerate(
        [("action", "action_top1"), ("detection", "tad_map"), ("privacy", "privacy_cmap_mlp")]
    ):
        sub = json.loads(
            (report.output_dir / data["protocols"][protocol]["report_json"]).read_text()
        )
        assert sub["config"]["probes"] == [data["protocols"][protocol]["probe"]]
        for method in sub["methods_order"]:
            entry = {"mean": sub["summary"][method][key], "ci": sub["summary_ci"][method][key]}
            assert data["protocols"][protocol]["methods"][method][key] == entry
            assert rows[method][column].startswith(fmt(entry)), (protocol, method)
            assert report.values()[method][protocol] == entry["mean"]
    assert (report.output_dir / "privacy" / "report.md").is_file()


def test_baseline_is_fitted_once_on_its_store_and_applied_to_every_protocol(report):
    action = json.loads((report.output_dir / "action" / "report.json").read_text())
    source = action["methods"]["leace"]["source"]
    assert source["transform"] == "leace"
    assert source["fit_store"] == report.data["protocol"]["stores"]["privacy"]
    assert source["store"] == report.data["protocol"]["stores"]["action"]  # applied to it
    aam = action["methods"]["aam"]["source"]
    assert aam["adapter"] == report.data["protocol"]["methods"]["aam"]["adapter"]
    values = report.values()
    assert values["leace"]["privacy"] < values["raw"]["privacy"] - 0.1  # it erased something
    assert values["negated"] == {"action": values["negated"]["action"], "detection": None,
                                  "privacy": None}  # fmt: skip


# ---------------------------------------------------------------- CLI and flow


def test_cli_protocol_json_and_overrides(root, tmp_path, run_cli):
    file = _write(
        tmp_path,
        f'[stores]\naction = "{root / "bench_raw.zarr"}"\n'
        '[methods]\nleace = { baseline = "leace", fit_on = "action" }\n'
        "[evaluate]\nseeds = [0, 1, 2]\nfast = false\n",
    )
    out = tmp_path / "report"
    code, stdout, err = run_cli(
        "evaluate", "--protocol", file, "--output", out, "--seeds", "0,1", "--fast", "--json"
    )
    assert code == 0, err
    printed = json.loads(stdout)
    assert printed["report_json"] == str(out / "report.json")
    assert set(printed["table"]) == {"raw", "leace"} and set(printed["table"]["raw"]) == {"action"}
    data = ProtocolReport.load(out).data
    assert data["config"]["seeds"] == [0, 1]  # the command line overrides the file
    assert data["config"]["action"]["max_iter"] == EvalConfig.fast().action.max_iter
    code, stdout, err = run_cli("evaluate", "--protocol", file, "--output", out, "--fast")
    assert code == 1 and "pass --overwrite" in err
    code, stdout, err = run_cli(
        "evaluate", "--protocol", file, "--output", out, "--fast", "--seeds", "0,1", "--overwrite"
    )
    assert code == 0, err
    assert stdout.startswith("| method | action top-1 (%) |") and f"{out / 'action'}" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: give exactly one of --input (a raw store) and --protocol (a protocol file"),
        (["--input", "raw.zarr", "--protocol", "p.toml"], "error: give exactly one of --input"),
        (["--protocol", "p.toml", "--baselines", "leace", "--method", "a=b"],
         "error: --baselines, --method cannot be combined with --protocol: name the methods in "
         "the protocol file's [methods]"),
    ],
)  # fmt: skip
def test_cli_takes_exactly_one_of_input_and_protocol(args, message, tmp_path, run_cli):
    code, out, err = run_cli("evaluate", "--output", tmp_path / "report", *args)
    assert (code, out, err.count("\n"), err.startswith(message)) == (1, "", 1, True), err
    assert not (tmp_path / "report").exists()


def test_flow_validates_like_the_cli(tmp_path):
    from flows.evaluate_probes import evaluate_probes

    with pytest.raises(ConfigError, match=r"give exactly one of input .* and protocol"):
        evaluate_probes.fn(output=str(tmp_path / "report"))
    with pytest.raises(ConfigError, match=r"^sanitized cannot be combined with protocol"):
        evaluate_probes.fn(output=str(tmp_path), protocol="p.toml", sanitized="s.zarr")
