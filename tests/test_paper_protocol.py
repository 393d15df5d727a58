"""The paper's whole evaluation from fake copies of its data sets, through the command line:
fake K400 + THUMOS14 + UCF-Crime + VISPR trees -> import -> extract (tiny random encoder) ->
train on the action store -> `evaluate --protocol` -> a report with every column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import save_tiny_videomae
from tests.support import paper_trees

DATA_SETS = {  # protocol -> (importer layout, tree builder, store)
    "action": ("kinetics400", paper_trees.kinetics400, "k400_raw.zarr"),
    "detection": ("thumos14", paper_trees.thumos14, "thumos14_raw.zarr"),
    "anomaly": ("ucf-crime", paper_trees.ucf_crime, "ucf_crime_raw.zarr"),
    "privacy": ("vispr", paper_trees.vispr, "vispr_raw.zarr"),
}


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Everything docs/paper.md does, on fake trees; returns the working directory."""
    import sys

    from pipeline import cli

    work = tmp_path_factory.mktemp("paper")
    encoder = save_tiny_videomae(work / "videomae-tiny")
    outputs: dict[str, str] = {}

    def run(*args: str) -> str:
        import contextlib
        import io

        out = io.StringIO()
        argv = sys.argv
        sys.argv = ["anon-store", *map(str, args)]
        try:
            with contextlib.redirect_stdout(out):
                cli.main()
        except SystemExit as exit_:
            assert not exit_.code, f"anon-store {' '.join(args)} failed ({exit_.code})"
        finally:
            sys.argv = argv
        return out.getvalue()

    for layout, build, store in DATA_SETS.values():
        tree = build(work / layout)
        manifest = tree / "manifest.parquet"
        outputs[f"import_{layout}"] = run(
            "manifest", "import", layout, "--input", tree, "--output", manifest
        )
        run("extract", "--input", manifest, "--encoder", encoder, "--output", work / store)
    run("train", "--input", work / "k400_raw.zarr", "--output", work / "adapter", "--epochs", "3")
    (work / "protocol.toml").write_text(
        "[stores]\n"
        + "".join(f'{protocol} = "{store}"\n' for protocol, (_, _, store) in DATA_SETS.items())
        + '\n[methods]\naam = { adapter = "adapter" }\n'
        + 'leace = { baseline = "leace", fit_on = "privacy" }\n'
    )
    outputs["evaluate"] = run(
        "evaluate", "--protocol", work / "protocol.toml", "--output", work / "report",
        "--fast", "--json",
    )  # fmt: skip
    (work / "outputs.json").write_text(json.dumps(outputs))
    return work


def test_importers_report_what_they_skipped(paper_run: Path) -> None:
    outputs = json.loads((paper_run / "outputs.json").read_text())
    assert "30 videos (train 18, val 6, test 6)" in outputs["import_kinetics400"]
    assert "1 listed videos not on disk" in outputs["import_kinetics400"]
    assert "2 Ambiguous segments excluded" in outputs["import_thumos14"]
    assert "segments clipped to the video end" in outputs["import_thumos14"]
    assert "14 videos (anomaly_train 8, anomaly_test 6)" in outputs["import_ucf-crime"]
    assert "24 images (privacy_train 16, privacy_test 8)" in outputs["import_vispr"]


def test_report_has_every_column(paper_run: Path) -> None:
    outputs = json.loads((paper_run / "outputs.json").read_text())
    table = json.loads(outputs["evaluate"])["table"]
    assert set(table) == {"raw", "aam", "leace"}
    for method, row in table.items():
        assert set(row) == set(DATA_SETS), method
        for protocol, value in row.items():
            assert value is not None and 0.0 <= value <= 1.0, (method, protocol, value)
    markdown = (paper_run / "report" / "report.md").read_text()
    header = next(line for line in markdown.splitlines() if line.startswith("| method"))
    for column in ("action", "detection", "anomaly", "privacy"):
        assert column in header.lower(), header
    for protocol in DATA_SETS:
        assert (paper_run / "report" / protocol / "report.json").is_file()


def test_privacy_column_is_the_multilabel_cmap_on_static_clips(paper_run: Path) -> None:
    report = json.loads((paper_run / "report" / "privacy" / "report.json").read_text())
    raw = report["methods"]["raw"]["probes"]
    # VISPR is images: no normal clips, so the normal-clip attackers are skipped.
    assert "images have none" in raw["privacy_mlp_clip"]["skipped"]
    run = raw["privacy_mlp_static"]["runs"][0]
    # The fake tree labels 4 of VISPR's 7 attributes; each is one presence column ("yes").
    scored = [k for k, v in run.items() if k.startswith("ap_") and v is not None]
    assert sorted(scored) == sorted(f"ap_{a}" for a in paper_trees.VISPR_LABELS)
    outputs = json.loads((paper_run / "outputs.json").read_text())
    table = json.loads(outputs["evaluate"])["table"]
    assert table["raw"]["privacy"] == pytest.approx(report["summary"]["raw"]["privacy_cmap_mlp"])


def test_pa_hmdb51_frames_scored_by_a_vispr_attacker(tmp_path: Path, run_cli) -> None:
    """The paper's PA-HMDB51 protocol: VISPR images train the attacker, PA-HMDB51's video frames
    test it against their own labels (a merged manifest, one store; VISPR's train split only, so
    that privacy_test is PA-HMDB51)."""
    encoder = save_tiny_videomae(tmp_path / "videomae-tiny")
    vispr = paper_trees.vispr(tmp_path / "vispr")
    annotations, videos = paper_trees.pa_hmdb51(tmp_path)
    steps = [
        ("manifest", "import", "vispr", "--input", vispr, "--splits", "train",
         "--output", vispr / "manifest.parquet"),
        ("manifest", "import", "pa-hmdb51", "--input", annotations, "--videos", videos,
         "--output", tmp_path / "pa.parquet"),
        ("manifest", "merge", vispr / "manifest.parquet", tmp_path / "pa.parquet",
         "--output", tmp_path / "merged.parquet"),
        ("extract", "--input", tmp_path / "merged.parquet", "--encoder", encoder,
         "--output", tmp_path / "raw.zarr"),
        ("evaluate", "--input", tmp_path / "raw.zarr", "--output", tmp_path / "report", "--fast"),
    ]  # fmt: skip
    for step in steps:
        code, _, err = run_cli(*map(str, step))
        assert code == 0, (step, err)
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    probes = report["methods"]["raw"]["probes"]
    frame, video = probes["privacy_mlp_frame"]["runs"][0], probes["privacy_mlp_static"]["runs"][0]
    # Every PA video shows a face somewhere (video label 1 for all 4) but in half its frames.
    assert video["chance_a10_face_partial"] == pytest.approx(1.0)
    assert frame["chance_a10_face_partial"] == pytest.approx(0.5, abs=0.1)
    assert 0.0 <= frame["ap_a10_face_partial"] <= 1.0
    assert "static clips, frame labels" in (tmp_path / "report" / "report.md").read_text()
