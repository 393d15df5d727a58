"""GPU benchmark: a VideoMAE-Base-sized encoder (random weights) and the extract pipeline on CUDA.

    python benchmarks/gpu.py --json out.json          # CUDA machine; < 8 min on an H100 (estimate)
    python -m benchmarks gpu --json out.json          # the same
    python benchmarks/gpu.py --smoke --json out.json  # tiny sizes; runs on CPU too

1. Model throughput on clips already on the device: VideoMAE-Base (hidden 768, 12 layers,
   12 heads, MLP 3072, 16 frames of 224x224, tubelet 2, patch 16: 1568 tokens) built from a
   transformers VideoMAEConfig with random weights; clips/s and achieved TFLOP/s for fp32
   (eager attention), bf16 autocast (eager) and bf16 autocast + SDPA, at batch sizes 8 and 32.
   FLOPs per clip are counted by torch.utils.flop_counter.FlopCounterMode (matmuls, convolution,
   attention; element-wise work is not counted) and cross-checked by the analytic formula
   tokens x layers x (24 d^2 + 4 tokens d) + patch embedding.
2. Host -> device copy GB/s from pinned and pageable memory, and the model's clips/s when each
   batch arrives as float32 clips on the host (the former path) vs as uint8 unique frames
   turned into clips on the device (pipeline.data.clips.materialise, the current path).
3. extract_vs_encoder on the device: the same model saved to a temp dir and loaded through
   pipeline.encoders (SDPA, bf16 autocast by default on CUDA), on a synthetic benchmark
   generated on the fly at 64 px AND re-encoded at 320x240 (UCF101-like): the encoder alone on
   clips decoded into host memory vs pipeline.extract.extract with 2 and min(14, cores - 2)
   decode processes; the naive loop on a few videos; the device store vs a float32 CPU store
   (max abs difference, min cosine).
Nothing is downloaded. Each part has a time budget; sizes are cut when a part runs long.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, rnd  # also sets the offline environment

BASE = {
    "image_size": 224,
    "patch_size": 16,
    "num_frames": 16,
    "tubelet_size": 2,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
SMOKE = {
    "image_size": 32,
    "patch_size": 16,
    "num_frames": 4,
    "tubelet_size": 2,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
}
VARIANTS = (
    # name, autocast dtype, attention implementation
    ("fp32", None, "eager"),
    ("bf16_autocast", "bfloat16", "eager"),
    ("bf16_autocast_sdpa", "bfloat16", "sdpa"),
)


def analytic_flops(arch: dict[str, int]) -> float:
    """FLOPs (2 per multiply-add) of one clip's forward pass: matmuls and attention."""
    d, layers, mlp = arch["hidden_size"], arch["num_hidden_layers"], arch["intermediate_size"]
    n = (arch["num_frames"] // arch["tubelet_size"]) * (
        arch["image_size"] // arch["patch_size"]
    ) ** 2
    per_layer = n * (2 * 4 * d * d + 2 * 2 * d * mlp) + 2 * 2 * n * n * d
    patch = n * 2 * (3 * arch["tubelet_size"] * arch["patch_size"] ** 2) * d
    return float(layers * per_layer + patch)


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _build(arch: dict[str, int], attention: str, device: Any) -> Any:
    import torch
    from transformers import VideoMAEConfig, VideoMAEModel

    torch.manual_seed(0)
    config = VideoMAEConfig(**arch)
    config._attn_implementation = attention
    return VideoMAEModel(config).to(device).eval()


def _counted_flops(model: Any, clip: Any, dtype: Any) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with (
        torch.inference_mode(),
        torch.autocast(clip.device.type, dtype=dtype, enabled=dtype is not None),
        counter,
    ):
        model(pixel_values=clip)
    return float(counter.get_total_flops())


def model_throughput(
    arch: dict[str, int], batch_sizes: tuple[int, ...], device: Any, seconds_per_point: float
) -> list[dict[str, Any]]:
    """clips/s and TFLOP/s of each variant and batch size, clips already on the device."""
    import torch

    rows = []
    for name, dtype_name, attention in VARIANTS:
        dtype = getattr(torch, dtype_name) if dtype_name else None
        model = _build(arch, attention, device)
        shape = (arch["num_frames"], 3, arch["image_size"], arch["image_size"])
        flops = _counted_flops(model, torch.randn(1, *shape, device=device), dtype)
        for batch in batch_sizes:
            clips = torch.randn(batch, *shape, device=device)
            row: dict[str, Any] = {"variant": name, "batch": batch, "attention": attention}
            try:
                with (
                    torch.inference_mode(),
                    torch.autocast(device.type, dtype=dtype, enabled=dtype is not None),
                ):
                    for _ in range(2):  # warm-up: kernels chosen, memory pooled
                        model(pixel_values=clips)
                    _sync(device)
                    iters, started = 0, time.perf_counter()
                    while True:
                        model(pixel_values=clips)
                        iters += 1
                        if iters >= 3:
                            _sync(device)
                            elapsed = time.perf_counter() - started
                            if elapsed >= seconds_per_point or iters >= 50:
                                break
                rate = batch * iters / elapsed
                row.update(
                    clips_per_s=rnd(rate, 1),
                    tflops=rnd(rate * flops / 1e12, 4),
                    iterations=iters,
                    seconds=rnd(elapsed),
                )
            except torch.OutOfMemoryError:
                row["error"] = "out of memory"
            if device.type == "cuda":
                row["peak_memory_gb"] = rnd(torch.cuda.max_memory_allocated() / 1e9, 2)
                torch.cuda.reset_peak_memory_stats()
            row["gflop_per_clip_counted"] = rnd(flops / 1e9, 4)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
            del clips
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def extraction_on_device(
    work: Path, arch: dict[str, int], smoke: bool, repetitions: int
) -> dict[str, Any]:
    """extract_vs_encoder (and vs naive) with the model loaded through pipeline.encoders, on the
    synthetic benchmark's 64 px videos AND the same videos re-encoded at 320x240, with 2 and
    many decode workers; plus the device store against a float32 CPU store."""
    from benchmarks import extraction
    from benchmarks.common import save_random_videomae
    from pipeline.data.synth import SynthConfig, generate_benchmark
    from pipeline.encoders.registry import load_encoder
    from pipeline.extract import ExtractConfig

    encoder_dir = save_random_videomae(work / "videomae", **arch)
    split = ("val",) if not smoke else ("val", "test")
    synth = SynthConfig(scale="tiny" if smoke else "small", seed=0, splits=split)
    started = time.perf_counter()
    generate_benchmark(work / "bench", synth)
    sources = {"64px": work / "bench" / "manifest.parquet"}
    sources["320x240"] = upscaled_copy(sources["64px"], work / "bench-320x240")
    generate_s = time.perf_counter() - started
    cpus = os.cpu_count() or 1
    many = max(2, min(14, cpus - 2))
    batch = 64 if not smoke else 8
    configs = {f"workers_{n}": ExtractConfig(batch_size=batch, workers=n) for n in (2, many)}
    first = next(iter(configs.values()))
    encoder = load_encoder(str(encoder_dir), device="auto", precision="auto")
    out: dict[str, Any] = {
        "encoder": repr(encoder),
        "device": str(encoder.device),
        "precision": encoder.precision,
        "batch_size": batch,
        "generate_seconds": rnd(generate_s, 1),
        "sources": {},
    }
    for source, manifest in sources.items():
        clips = extraction._clips_in_memory(manifest, encoder, first)
        extraction.encoder_alone(encoder, clips, batch)  # warm-up, untimed
        extraction.pipeline_run(manifest, str(encoder_dir), first)
        alone: list[float] = []
        pipeline: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(repetitions):
            alone.append(extraction.encoder_alone(encoder, clips, batch))
            for name, config in configs.items():
                rate = extraction.pipeline_run(manifest, str(encoder_dir), config)[0]
                pipeline[name].append(rate)
        a = statistics.median(alone)
        rates = {n: statistics.median(v) for n, v in pipeline.items()}
        best = max(rates, key=rates.__getitem__)
        out["sources"][source] = {
            "clips": len(clips),
            "encoder_alone_clips_per_s": rnd(a, 1),
            "pipeline_clips_per_s": {n: rnd(v, 1) for n, v in rates.items()},
            "best_pipeline": best,
            "extract_vs_encoder": rnd(rates[best] / a),
        }
        print(json.dumps({source: out["sources"][source]}), file=sys.stderr)
    naive = extraction.naive_loop(sources["64px"], encoder, first, max_videos=4)
    best64 = out["sources"]["64px"]
    out["naive_clips_per_s"] = rnd(naive, 1)
    out["extract_vs_naive"] = rnd(best64["pipeline_clips_per_s"][best64["best_pipeline"]] / naive)
    out["extract_vs_encoder"] = out["sources"]["320x240"]["extract_vs_encoder"]
    out["embeddings_vs_cpu"] = embeddings_vs_cpu(sources["64px"], encoder_dir, work)
    return out


def copy_bandwidth(device: Any, megabytes: int = 256) -> dict[str, Any]:
    """Host -> device GB/s from pinned and from pageable memory (uint8 buffers)."""
    import torch

    if device.type != "cuda":
        return {"skipped": "no CUDA device"}
    out: dict[str, Any] = {}
    target = torch.empty(megabytes * 2**20, dtype=torch.uint8, device=device)
    for name, pinned in (("pinned", True), ("pageable", False)):
        source = torch.empty(megabytes * 2**20, dtype=torch.uint8, pin_memory=pinned)
        target.copy_(source, non_blocking=pinned)
        _sync(device)
        started = time.perf_counter()
        for _ in range(5):
            target.copy_(source, non_blocking=pinned)
        _sync(device)
        out[f"{name}_gb_per_s"] = rnd(5 * source.nbytes / (time.perf_counter() - started) / 1e9, 2)
    return out


def uint8_vs_float_input(
    arch: dict[str, int], batch: int, device: Any, seconds: float
) -> dict[str, Any]:
    """Model clips/s (bf16 + SDPA where CUDA) when each batch arrives as float32 clips on the host
    (the former path: 4 x T bytes per pixel over PCIe) vs as uint8 unique frames, normalised,
    gathered and repeated on the device (pipeline.data.clips.materialise)."""
    import numpy as np
    import torch

    from pipeline.data.clips import ClipSampling, materialise, prepare_video

    model = _build(arch, "sdpa", device)
    dtype = torch.bfloat16 if device.type == "cuda" else None
    t, size = arch["num_frames"], arch["image_size"]
    sampling = ClipSampling(frames_per_clip=t, size=size, clips_per_video=5, static_clips=10)
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (max(4 * t, 64), 240, 320, 3), dtype=np.uint8)
    prepared = prepare_video(video, sampling, video_key="bench", with_windows=False)
    host = materialise(prepared, sampling)
    host_clips = torch.cat([host.clips, host.static.contiguous()])[:batch]
    if device.type == "cuda":
        host_clips = host_clips.pin_memory()
    rates: dict[str, Any] = {}

    def run(make: Any) -> float:
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=dtype, enabled=dtype is not None),
        ):
            model(pixel_values=make())
            _sync(device)
            clips, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds or clips < 3 * batch:
                x = make()
                model(pixel_values=x[:batch])
                clips += min(batch, len(x))
            _sync(device)
            return clips / (time.perf_counter() - started)

    rates["float32_host_clips_per_s"] = rnd(
        run(lambda: host_clips.to(device, non_blocking=True)), 1
    )

    def from_uint8() -> Any:
        clips = materialise(prepared, sampling, device)
        return torch.cat([clips.clips, clips.static])

    rates["uint8_device_clips_per_s"] = rnd(run(from_uint8), 1)
    rates["bytes_per_clip"] = {
        "float32": host_clips[0].nbytes,
        "uint8_video": prepared.nbytes,
        "clips_per_video": len(prepared.clip_rows) + len(prepared.static_theta),
    }
    return rates


def upscaled_copy(manifest: Path, out: Path, width: int = 320, height: int = 240) -> Path:
    """The benchmark's videos re-encoded at width x height (UCF101-like sources): decode cost and
    bytes per frame as real data, same labels; returns the new manifest."""
    import torch
    import torch.nn.functional as F

    from pipeline.data.decode import decode_video
    from pipeline.data.manifest import read_manifest, write_manifest
    from pipeline.data.synth.encode import write_mp4

    source = read_manifest(manifest)
    rows = source.table.to_pylist()
    for row, path in zip(rows, source.video_paths(), strict=True):
        frames = torch.from_numpy(decode_video(path)).permute(0, 3, 1, 2)
        big = F.interpolate(frames.float(), size=(height, width), mode="bilinear")
        target = out / row["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = big.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        write_mp4(target, pixels, fps=float(row["fps"]) or 25.0)
    return write_manifest(out / "manifest.parquet", source.table, source.info)


def embeddings_vs_cpu(manifest: Path, encoder_dir: Path, work: Path) -> dict[str, Any]:
    """The device store against a float32 CPU store of the same videos: max abs difference and
    min cosine of every clip embedding."""
    import numpy as np
    import torch
    import zarr

    from pipeline.extract import ExtractConfig, extract

    stores = {}
    for device in ("cpu", "cuda" if torch.cuda.is_available() else "cpu"):
        out = work / f"embeddings-{device}-{len(stores)}.zarr"
        extract(manifest, str(encoder_dir), out, ExtractConfig(device=device, splits=None))
        group = zarr.open_group(str(out), mode="r")
        stores[len(stores)] = np.concatenate(
            [np.asarray(group["clip_features"][:]).reshape(-1, group["clip_features"].shape[-1]),
             np.asarray(group["static_features"][:]).reshape(-1, group["clip_features"].shape[-1])]
        )  # fmt: skip
    a, b = stores[0].astype(np.float64), stores[1].astype(np.float64)
    ok = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    a, b = a[ok], b[ok]
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {
        "clips": int(ok.sum()),
        "max_abs_difference": rnd(float(np.abs(a - b).max()), 6),
        "max_abs_value": rnd(float(np.abs(a).max()), 4),
        "min_cosine": rnd(float(cosine.min()), 6),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, runs on CPU too")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default 8,32)")
    parser.add_argument("--repetitions", type=int, default=None)
    args = parser.parse_args(argv)

    import torch

    started = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.smoke:
        raise SystemExit("no CUDA device: pass --smoke for a CPU run at tiny sizes")
    arch = SMOKE if args.smoke else BASE
    batches = tuple(
        int(b) for b in (args.batch_sizes or ("2,4" if args.smoke else "8,32")).split(",")
    )
    reps = args.repetitions or (1 if args.smoke else 3)
    results: dict[str, Any] = {
        "machine": machine(),
        "smoke": args.smoke,
        "device": str(device),
        "model": {"family": "videomae", "random_weights": True, **arch},
        "gflop_per_clip_analytic": rnd(analytic_flops(arch) / 1e9, 4),
        "repetitions": reps,
    }
    if device.type == "cuda":
        results["machine"]["gpu_memory_gb"] = rnd(
            torch.cuda.get_device_properties(0).total_memory / 1e9, 1
        )
        results["machine"]["tf32_matmul"] = torch.backends.cuda.matmul.allow_tf32
    results["throughput"] = model_throughput(arch, batches, device, 0.2 if args.smoke else 2.0)
    print(f"[{time.perf_counter() - started:.0f} s] model throughput done", file=sys.stderr)
    results["copy"] = copy_bandwidth(device)
    results["input"] = uint8_vs_float_input(arch, batches[-1], device, 0.2 if args.smoke else 3.0)
    print(f"[{time.perf_counter() - started:.0f} s] copies and input formats done", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="anon-store-gpu-bench-"))
    try:
        results["extraction"] = extraction_on_device(work, arch, args.smoke, reps)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["ratios"] = {
        "extract_vs_encoder": results["extraction"]["extract_vs_encoder"],
        "extract_vs_naive": results["extraction"]["extract_vs_naive"],
        "machine": results["machine"],
        "repetitions": reps,
    }
    results["seconds"] = rnd(time.perf_counter() - started, 1)
    text = json.dumps(results, indent=2, default=str)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text)
    print(summary(results))
    return results


def summary(results: dict[str, Any]) -> str:
    lines = [
        f"device {results['machine'].get('cuda') or results['device']}; "
        f"{results['gflop_per_clip_analytic']} GFLOP/clip (analytic); {results['seconds']} s",
        "variant              batch  clips/s   TFLOP/s",
    ]
    for row in results["throughput"]:
        lines.append(
            f"{row['variant']:<20} {row['batch']:>5}  {row.get('clips_per_s', '-')!s:>8}  "
            f"{row.get('tflops', row.get('error', '-'))!s:>8}"
        )
    ex = results["extraction"]
    lines.append(f"copies: {results['copy']}; model input: {results['input']}")
    for source, row in ex["sources"].items():
        lines.append(
            f"extract {source} on {ex['device']} ({ex['precision']}): encoder alone "
            f"{row['encoder_alone_clips_per_s']} clips/s, pipeline {row['pipeline_clips_per_s']}"
            f"; extract_vs_encoder {row['extract_vs_encoder']}"
        )
    lines.append(
        f"naive {ex['naive_clips_per_s']} clips/s, extract_vs_naive {ex['extract_vs_naive']}; "
        f"embeddings vs float32 CPU: {ex['embeddings_vs_cpu']}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
