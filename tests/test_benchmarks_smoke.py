"""The benchmarks' code paths import and run at toy sizes (not a benchmark: nothing is timed)."""

from __future__ import annotations

import math

import pytest


def test_entry_point_and_gpu_script_import():
    from benchmarks import __main__ as entry
    from benchmarks import gpu

    assert set(entry.RATIO_KEYS) == set(entry.TARGETS)
    assert gpu.analytic_flops(gpu.BASE) == pytest.approx(360.7e9, rel=1e-3)  # VideoMAE-Base


def test_loglog_slope_recovers_the_exponent():
    from benchmarks.common import loglog_slope

    assert loglog_slope([1, 2, 4], [3.0, 6.0, 12.0]) == pytest.approx(1.0)
    assert loglog_slope([1, 2, 4], [1.0, 4.0, 16.0]) == pytest.approx(2.0)


def test_tiny_variants_run(tmp_path, tiny_benchmark, tiny_encoder_dir):
    from benchmarks import codecs, decoding, training
    from benchmarks.sanitize_vs_copy import build_store
    from pipeline.encoders.registry import load_encoder

    decoded = decoding.run(
        tiny_benchmark / "manifest.parquet", load_encoder(tiny_encoder_dir), 1, min_seconds=0
    )
    assert decoded["frames"] > 0 and all(v > 0 for v in decoded["frames_per_s"].values())

    efficiency = training.loader_efficiency(videos=160, dim=16, repetitions=1)
    assert math.isfinite(efficiency["train_loader_efficiency"])

    build_store(tmp_path / "raw.zarr", 40, 16, 5, 10, seed=0)
    compressed = codecs.run(tmp_path / "raw.zarr", 1, min_mb=0.2)
    assert 0 < compressed["stored_vs_uncompressed"]["zstd1"] <= 1.05


def test_extraction_reports_its_cpu_budget(tiny_benchmark, tiny_encoder_dir):
    from benchmarks import extraction

    result = extraction.run(tiny_benchmark / "manifest.parquet", str(tiny_encoder_dir), 1)
    cpu = result["cpu_ms_per_clip"]
    assert set(cpu) == {"encoder_alone", "decode_and_sample", "pipeline"}
    assert all(math.isfinite(v) and v > 0 for v in cpu.values()), cpu
    # The pipeline does the encoder's work and the decoding on top of it.
    assert cpu["pipeline"] > cpu["decode_and_sample"], cpu
    # (No bound on cpu_ceiling: on a loaded machine the encoder's spinning threads inflate its
    # CPU time, which is why the README's runs are on idle cores.)
    assert math.isfinite(result["cpu_ceiling"]) and result["cpu_ceiling"] > 0, result


def test_extraction_side_benchmarks_run(tmp_path, tiny_benchmark, tiny_encoder_dir):
    from benchmarks import decoding, extraction
    from pipeline.encoders.registry import load_encoder

    manifest = tiny_benchmark / "manifest.parquet"
    encoder = load_encoder(tiny_encoder_dir)
    scaling = decoding.process_scaling(manifest, encoder, 2, min_seconds=0)
    assert scaling["decode_process_scaling"] > 0
    # The ratio is of each process count's fastest repetition, never slower than its median.
    for n in ("1", "2"):
        assert scaling["clips_per_s"][n] >= scaling["median_clips_per_s"][n] > 0
    sizes = decoding.bytes_per_clip(manifest, encoder)
    # uint8 unique frames: a static clip is one frame (+ its crop box), far below a float clip.
    size = sizes["size"]
    assert 3 * size * size <= sizes["static"] <= 2 * 3 * size * size + 64
    assert 0 < sizes["normal"] <= sizes["float32_clip_before"] / 4
    small = {"image_size": 32, "patch_size": 16, "num_frames": 8, "tubelet_size": 4,
             "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64}  # fmt: skip
    work = tmp_path / "work"
    work.mkdir()
    copy = tmp_path / "bench"
    import shutil

    shutil.copytree(tiny_benchmark, copy)
    result = extraction.run_encoder_224(copy / "manifest.parquet", work, 1, model=small)
    assert result["extract_vs_encoder_224"] > 0


def test_training_benchmark_reencodes_with_the_default_recipe(
    raw_store, tiny_benchmark, tiny_encoder_dir
):
    """The re-encoding epoch runs the recommended recipe's losses (swap partners included)."""
    from benchmarks import training
    from pipeline.encoders.registry import load_encoder

    result = training.cached_vs_reencode(
        raw_store, tiny_benchmark / "manifest.parquet", load_encoder(tiny_encoder_dir), 1,
        batch_size=8,
    )  # fmt: skip
    assert (
        math.isfinite(result["train_cached_vs_reencode"]) and result["train_cached_vs_reencode"] > 0
    )


def test_world_bounds_renders_at_the_size_asked_and_reuses_the_render(tmp_path):
    import json

    from benchmarks import world_bounds
    from pipeline.data.decode import decode_video
    from pipeline.data.manifest import read_manifest
    from pipeline.data.synth import SynthConfig

    out = tmp_path / "bounds.json"
    argv = ["--world", "townsfolk", "--workdir", str(tmp_path), "--scale", "tiny", "--size", "32",
            "--json", str(out)]  # fmt: skip
    world_bounds.main(argv)
    root = tmp_path / "townsfolk-tiny-32px"
    manifest = read_manifest(root / "manifest.parquet")
    assert decode_video(manifest.video_paths()[0]).shape[1:3] == (32, 32)
    result = json.loads(out.read_text())["townsfolk"]
    config = SynthConfig(scale="tiny", world="townsfolk")
    assert result["videos"] == {s: config.count(s) for s in world_bounds.PROBED_SPLITS}
    assert result["size"] == 32  # read back from the render, not passed along
    assert 0 <= result["motion_linear_action_top1"] <= 1
    assert 0 < result["chance_person_cmap"] < 1 and 0 <= result["histogram_mlp_person_cmap"] <= 1
    first = (root / "manifest.parquet").stat().st_mtime_ns
    world_bounds.main(argv)  # the render is reused, not redone
    assert (root / "manifest.parquet").stat().st_mtime_ns == first


def test_the_random_stand_in_has_the_tiny_default_encoders_architecture(tmp_path):
    from transformers import VideoMAEConfig

    from benchmarks.common import save_random_videomae
    from pipeline.encoders.tiny import TinyEncoderConfig

    saved = VideoMAEConfig.from_pretrained(save_random_videomae(tmp_path / "random"))
    default = TinyEncoderConfig()
    assert (saved.patch_size, saved.tubelet_size, saved.hidden_size, saved.num_hidden_layers) == (
        default.patch_size,
        default.tubelet_size,
        default.hidden_size,
        default.num_layers,
    )


def test_privacy_worlds_variant_settings_keep_their_types():
    from benchmarks.privacy_worlds import parse_variant

    text = "recommended:w_swap=10,arch=mlp,selection_privacy=clip_retrieval,epochs=120"
    assert parse_variant(text) == (
        text,
        "recommended",
        {"w_swap": 10.0, "arch": "mlp", "selection_privacy": "clip_retrieval", "epochs": 120},
    )
    assert parse_variant("reference") == ("reference", "reference", {})
