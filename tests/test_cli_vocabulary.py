"""The command line's contract (docs/cli.md): --input/--output everywhere, deprecated spellings
that still work, choices checked by the parser (exit 2), --version, results on stdout, logs on
stderr, rich markup never parsed from paths, outputs never clobbered without --overwrite."""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.main import get_command

from pipeline import cli, cli_choices
from pipeline.cli_progress import state

STAGES = {
    ("extract",): {"--input", "--output"},
    ("train",): {"--input", "--output"},
    ("tune",): {"--input", "--output"},
    ("sanitize",): {"--input", "--output"},
    ("evaluate",): {"--input", "--output"},
    ("audit",): {"--input", "--output"},
    ("export",): {"--input", "--output"},
    ("import-h5",): {"--input", "--output"},
    ("manifest", "import"): {"--input", "--output"},
    ("encoder", "build-tiny"): {"--input", "--output"},
    ("synth",): {"--output"},  # generates its input
    ("demo",): {"--output"},  # generates its input
}
DEPRECATED = {
    ("export",): {"--out": "--output"},
    ("evaluate",): {"--raw": "--input", "--report": "--output"},
    ("audit",): {"--sanitized": "--input"},
    ("extract",): {"--manifest": "--input"},
    ("synth",): {"--out": "--output"},
    ("demo",): {"--workdir": "--output"},
    ("manifest", "import"): {"--out": "--output"},
    ("encoder", "build-tiny"): {"--out": "--output", "--pretrain-manifest": "--input"},
}


def _command(path: tuple[str, ...]):
    command = get_command(cli.app)
    for name in path:
        command = command.commands[name]
    return command


def _options(path: tuple[str, ...]) -> set[str]:
    return {opt for param in _command(path).params for opt in getattr(param, "opts", [])}


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("error:"), err
    return err


def _digest(directory: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        sha.update(str(path.relative_to(directory)).encode() + path.read_bytes())
    return sha.hexdigest()


@pytest.mark.parametrize("path", sorted(STAGES), ids=" ".join)
def test_every_stage_reads_input_and_writes_output(path):
    assert STAGES[path] <= _options(path)
    assert not set(DEPRECATED.get(path, {})) & _options(path)  # hidden: not in --help


@pytest.mark.parametrize("path", sorted(DEPRECATED), ids=" ".join)
def test_deprecated_spellings_are_rewritten_with_a_note(path):
    args = []
    for old in DEPRECATED[path]:
        args += [old, f"value-of{old}"]
    args += {
        ("manifest", "import"): ["csv", "--input", "videos.csv"],
        ("export",): ["--input", "s.zarr", "--format", "h5"],
        ("extract",): ["--output", "raw.zarr"],
    }.get(path, [])
    context = _command(path).make_context(path[-1], args)
    for old, new in DEPRECATED[path].items():
        assert context.params[new.lstrip("-").replace("-", "_")] in (
            f"value-of{old}",
            Path(f"value-of{old}"),
        )
    notes = list(state.deprecations)
    state.deprecations.clear()
    assert len(notes) == len(DEPRECATED[path]) and all("deprecated" in n for n in notes), notes


def test_positional_inputs_still_work():
    context = _command(("export",)).make_context(
        "export", ["s.zarr", "--format", "h5", "--output", "o"]
    )
    assert context.params["input"] == "s.zarr"
    context = _command(("import-h5",)).make_context(
        "import-h5", ["f.h5", "--manifest", "m", "--output", "o"]
    )
    assert context.params["input"] == Path("f.h5")
    context = _command(("manifest", "import")).make_context(
        "import", ["ucf101", "root", "--output", "m.parquet"]
    )
    assert context.params["layout"] == "ucf101" and context.params["input"] == Path("root")
    assert sum("positional input" in n for n in state.deprecations) == 3
    state.deprecations.clear()


def test_an_old_spelling_runs_and_warns(raw_store, tmp_path, run_cli):
    code, out, err = run_cli("export", raw_store, "--format", "npy", "--out", tmp_path / "npy")
    assert code == 0, err
    assert "positional input to 'anon-store export' is deprecated" in err
    assert "'anon-store export --out' is deprecated: use --output" in err
    assert (tmp_path / "npy" / "export.json").is_file() and "exported" in out
    # a failing command says only what failed: the notes wait for a run that succeeds
    code, out, err = run_cli("export", raw_store, "--format", "npy", "--out", tmp_path / "npy")
    assert code == 1 and "already holds" in err and "deprecated" not in err
    code, _, err = run_cli("-q", "export", raw_store, "--format", "h5", "--out", tmp_path / "q")
    assert code == 0 and err == ""


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "--device", "gpu"], "unknown device 'gpu'"),
        (["train", "--arch", "transformer"], "unknown architecture 'transformer'"),
        (["train", "--preset", "paper"], "unknown preset 'paper'"),
        (["extract", "--precision", "fp8"], "unknown precision 'fp8'"),
        (["extract", "--device", "cuda:x"], "unknown device 'cuda:x'"),
        (["sanitize", "--adapter", "a", "--scheduler", "dask"], "unknown scheduler 'dask'"),
        (["sanitize", "--adapter", "a", "--precision", "float16"], "unknown precision"),
        (["tune", "--scheduler", "localhost:8786"], "not a dask scheduler address"),
        (["tune", "--privacy", "oracle"], "unknown privacy measure 'oracle'"),
        (["evaluate", "--baselines", "leace,svm"], "unknown baseline 'svm'"),
        (["audit", "--attackers", "svm"], "unknown attacker 'svm'"),
        (["audit", "--sources", "frames"], "unknown source 'frames'"),
        (["export", "--format", "xlsx"], "unknown format 'xlsx'"),
    ],
)
def test_a_bad_choice_is_a_usage_error(args, fragment, tmp_path, run_cli):
    output = tmp_path / "out"
    code, out, err = run_cli(*args, "--input", tmp_path / "in", "--output", output)
    assert code == 2, err
    assert fragment in _one_line(err) and f"see 'anon-store {args[0]} --help'" in err
    assert not output.exists() and out == ""


@pytest.mark.parametrize(
    "args",
    [
        ["synth", "--output", "{tmp}/s", "--scale", "huge"],
        ["synth", "--output", "{tmp}/s", "--world", "mars"],
        ["demo", "--output", "{tmp}/s", "--heldout-world", "mars"],
        ["manifest", "import", "kinetics", "--input", "{tmp}", "--output", "{tmp}/s"],
    ],
)
def test_other_bad_choices_are_usage_errors(args, tmp_path, run_cli):
    code, _, err = run_cli(*(a.format(tmp=tmp_path) for a in args))
    assert code == 2 and _one_line(err)
    assert not (tmp_path / "s").exists()


def test_train_on_an_unknown_device_exits_2_without_a_traceback(raw_store, tmp_path, run_cli):
    code, out, err = run_cli(
        "train", "--input", raw_store, "--output", tmp_path / "a", "--device", "gpu"
    )
    assert code == 2 and "--device" in _one_line(err) and out == ""
    assert not (tmp_path / "a").exists()


def test_version(run_cli):
    code, out, err = run_cli("--version")
    assert code == 0 and out == f"anon-store {version('anon-store')}\n" and err == ""


def test_missing_option_is_a_usage_error(run_cli):
    code, _, err = run_cli("train", "--output", "x")
    assert code == 2 and "Missing option '--input'" in _one_line(err)


def test_inspect_writes_its_result_to_stdout(raw_store, run_cli):
    code, out, err = run_cli("inspect", raw_store)
    assert code == 0 and err == ""
    assert "kind" in out and "raw" in out and "clip_features" in out
    code, out, err = run_cli("inspect", raw_store, "--json")
    assert code == 0 and json.loads(out)["kind"] == "raw" and err == ""


@pytest.mark.parametrize("name", ["[red]x[/red]", "x[/red]", "[bold"])
def test_paths_with_markup_are_printed_as_they_are(name, raw_store, tmp_path, run_cli):
    store = tmp_path / name / "raw.zarr"
    store.parent.mkdir(parents=True)
    store.symlink_to(raw_store)
    code, out, err = run_cli("inspect", store)
    assert code == 0, err
    assert name in "".join(out.split())  # the literal path (the title may wrap), no styles
    code, out, err = run_cli("validate", store)
    assert code == 0 and f"{store}: valid" in out, err
    code, _, err = run_cli("inspect", tmp_path / name / "missing.zarr")
    assert code == 1 and f"{name}/missing.zarr" in _one_line(err)


def test_export_refuses_a_zarr_store_and_replaces_it_with_overwrite(raw_store, tmp_path, run_cli):
    victim = tmp_path / "victim.zarr"
    shutil.copytree(raw_store, victim)
    before = _digest(victim)
    args = ["export", "--input", raw_store, "--format", "h5", "--output", victim]
    code, out, err = run_cli(*args)
    assert code == 1 and "is a zarr store" in _one_line(err) and out == ""
    assert _digest(victim) == before  # not one byte written into it

    code, out, err = run_cli(*args, "--overwrite")
    assert code == 0, err
    assert sorted(p.name for p in victim.iterdir()) == ["export.json", "features.h5"]
    assert not list(tmp_path.glob(".victim.zarr.*"))  # the staging directory is gone

    inside = raw_store / "exports"
    code, _, err = run_cli("export", "--input", raw_store, "--format", "h5", "--output", inside)
    assert code == 1 and "inside the zarr store" in _one_line(err) and not inside.exists()
    code, _, err = run_cli(
        "export", "--input", victim, "--format", "npy", "--output", victim, "--overwrite"
    )
    assert code == 1 and "would replace the input" in _one_line(err)


def test_evaluate_refuses_an_existing_report_directory(raw_store, tmp_path, run_cli):
    report = tmp_path / "report"
    report.mkdir()
    (report / "notes.txt").write_text("keep me")
    args = ["evaluate", "--input", raw_store, "--output", report, "--fast", "--seeds", "0"]
    code, out, err = run_cli(*args)
    assert code == 1 and "pass --overwrite" in _one_line(err) and out == ""
    assert [p.name for p in report.iterdir()] == ["notes.txt"]

    code, out, err = run_cli(*args, "--overwrite", "--json")
    assert code == 0, err
    assert json.loads(out)["summary"]["raw"] and (report / "report.json").is_file()
    assert (report / "notes.txt").read_text() == "keep me"


def test_verbose_shows_library_info_logs_and_quiet_hides_everything(
    raw_store, tiny_benchmark, tiny_encoder_dir, tmp_path, run_cli
):
    store = tmp_path / "raw.zarr"
    shutil.copytree(raw_store, store)
    # the settings raw_store was extracted with: nothing to do, which the library logs at INFO
    args = [
        "extract", "--input", tiny_benchmark / "manifest.parquet", "--encoder", tiny_encoder_dir,
        "--output", store, "--videos-per-chunk", "8", "--batch-size", "16",
    ]  # fmt: skip
    code, out, err = run_cli(*args)
    assert code == 0 and "nothing to do" in out and "INFO" not in err, err
    code, out, err = run_cli("-v", *args)
    assert code == 0, err
    assert "INFO pipeline.extract.run: raw.zarr is already complete" in err
    assert "nothing to do" in out and "INFO" not in out
    code, out, err = run_cli("--quiet", *args, "--json")
    assert code == 0 and err == "" and json.loads(out)["action"] == "unchanged"


def test_quiet_hides_progress_bars_and_notes(raw_store, tmp_path, run_cli):
    code, out, err = run_cli(
        "-q", "export", raw_store, "--format", "h5", "--output", tmp_path / "h5"
    )
    assert code == 0 and err == "" and "exported" in out


def test_manifest_import_refuses_an_existing_manifest(tmp_path, run_cli):
    (tmp_path / "videos.csv").write_text("path,split\n")
    output = tmp_path / "m.parquet"
    output.write_text("precious")
    args = ["manifest", "import", "csv", "--input", tmp_path / "videos.csv", "--output", output]
    code, _, err = run_cli(*args)
    assert code == 1 and "pass --overwrite" in _one_line(err)
    assert output.read_text() == "precious"


def test_choices_match_what_the_library_accepts():
    from pipeline.aam.adapter import ARCHITECTURES
    from pipeline.aam.presets import PRESETS
    from pipeline.aam.tune.config import PRIVACY_MODES
    from pipeline.data.synth.config import SCALES
    from pipeline.data.synth.worlds import WORLD_NAMES
    from pipeline.encoders.registry import _DEVICES, _PRECISIONS
    from pipeline.interop.export import FORMATS
    from pipeline.probes import BASELINES
    from pipeline.probes.audit import ATTACK_SOURCES, ATTACKER_KINDS
    from pipeline.sanitize.config import LOCAL_SCHEDULERS, PRECISIONS

    choices = cli_choices.choices
    assert choices(cli_choices.Arch) == ARCHITECTURES
    assert set(choices(cli_choices.Preset)) == set(PRESETS)
    assert choices(cli_choices.TunePrivacy) == PRIVACY_MODES
    assert set(choices(cli_choices.Scale)) == set(SCALES)
    assert choices(cli_choices.World) == WORLD_NAMES
    assert choices(cli_choices.HeldoutWorld) == (*WORLD_NAMES, "none")
    assert choices(cli_choices.ExtractPrecision) == _PRECISIONS
    assert all(cli_choices.check_device(d) for d in _DEVICES)
    assert choices(cli_choices.ExportFormat) == FORMATS
    assert set(choices(cli_choices.Baseline)) == set(BASELINES)
    assert choices(cli_choices.Attacker) == ATTACKER_KINDS
    assert choices(cli_choices.AttackSource) == ATTACK_SOURCES
    assert choices(cli_choices.LocalScheduler) == LOCAL_SCHEDULERS
    assert choices(cli_choices.SanitizePrecision) == PRECISIONS
    for device in ("cpu", "cuda", "cuda:0", "cuda:12", "auto"):
        assert cli_choices.check_device(device) == device
    for device in ("gpu", "cuda:", "cuda:a", "CPU", "mps"):
        with pytest.raises(ValueError):
            cli_choices.check_device(device)
