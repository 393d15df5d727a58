"""Tiny raw stores for the tune tests (library, CLI and flow): planted action and attribute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from sanitize.stores import make_raw_store

from pipeline.aam.tune import TuneConfig

WITH_PRIVACY = ("train",) * 4 + ("val", "test") + ("privacy_train",) * 3 + ("privacy_test",)
WITHOUT_PRIVACY = ("train",) * 7 + ("val", "val", "test")


def write_tune_store(
    path: Path,
    *,
    privacy: bool = True,
    videos: int = 200,
    names: tuple[str, ...] | None = None,
) -> Path:
    """A complete raw store (D=16, 4 normal + 4 static clips): the action in dims 0-3 of normal
    clips, the person attribute ``skin`` in dims 4-6 of every clip, a per-video identity in dims
    8-15; splits interleaved (with or without privacy_train / privacy_test, or video v in
    ``names[v % len(names)]``), one failed video. The features do not depend on the splits."""
    make_raw_store(
        path, videos=videos, clips=4, static=4, dim=16, videos_per_chunk=40, failed=(3,),
        untrimmed=False,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    group = zarr.open_group(str(path), mode="r+")
    action = np.arange(videos) % 4
    skin = np.asarray(group["attr_skin"][:]).astype(np.int64)
    identity = rng.standard_normal((videos, 1, 8))
    clips = 0.3 * rng.standard_normal((videos, 4, 16))
    clips[..., :4] += 3.0 * np.eye(4)[action][:, None]
    static = 0.5 * rng.standard_normal((videos, 4, 16))
    for x in (clips, static):
        x[..., 4:7] += 2.0 * np.eye(3)[skin][:, None]
        x[..., 8:] += identity
    ok = np.asarray(group["status"][:]) == 1
    clips[~ok] = np.nan
    static[~ok] = np.nan
    group["clip_features"][:] = clips.astype(np.float32)
    group["static_features"][:] = static.astype(np.float32)
    group["action"][:] = action.astype(np.int16)
    names = names or (WITH_PRIVACY if privacy else WITHOUT_PRIVACY)
    group["split"][:] = np.array([names[v % len(names)] for v in range(videos)], dtype=object)
    return path


def fast_config(**changes) -> TuneConfig:
    """Tiny budgets: 2 epochs, 1 head warm-up epoch, a short probe and attacker."""
    from pipeline.probes.action import LinearProbeConfig
    from pipeline.probes.attacker import AttackerConfig

    settings = dict(
        trials=3,
        max_epochs=2,
        training={"head_warmup_epochs": 1, "val_every": 1, "batch_size": 32},
        probe=LinearProbeConfig(weight_decays=(1e-2,), max_iter=30),
        attacker=AttackerConfig(lr=1e-2, max_epochs=5, patience=2),
        workers=1,
        memory_budget_bytes=64 * 2**20,
    )
    settings.update(changes)
    return TuneConfig(**settings)
