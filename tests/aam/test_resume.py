"""Kill and resume: checkpoints at every validation, a rerun resumes (or restarts) and says so,
and the result equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipeline.aam.adapter import AdapterConfig, AnonymizingAdapter
from pipeline.aam.checkpoint import load_adapter
from pipeline.aam.from_store import TrainAAMConfig, train_aam
from pipeline.aam.train_state import (
    CHECKPOINT_DIR,
    STATE_FILE,
    TrainState,
    load_train_state,
    save_train_state,
)
from pipeline.aam.trainer import TrainConfig
from pipeline.errors import AdapterError

TRAINING = TrainConfig(
    epochs=4, batch_size=16, lr=3e-3, w_lc=1.0, val_every=1, head_warmup_epochs=1, seed=0
)


class Stop(Exception):
    """Stands in for a crash in the middle of training."""


def _stop_at(epoch: int):
    def on_validation(record):
        if record["epoch"] == epoch:  # before this validation's checkpoint is written
            raise Stop

    return on_validation


def _records(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def _same_adapter(a: Path, b: Path) -> None:
    ta, tb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), k
    ma, mb = (json.loads((p / "metrics.json").read_text()) for p in (a, b))
    assert _records(ma["history"]) == _records(mb["history"])
    assert {k: v for k, v in ma["selected"].items() if k != "seconds"} == {
        k: v for k, v in mb["selected"].items() if k != "seconds"
    }


@pytest.mark.parametrize("stream", [False, True], ids=["memory", "stream"])
def test_interrupted_run_resumes_to_the_uninterrupted_result(planted_store, tmp_path, stream):
    path = planted_store(videos=120, videos_per_chunk=10)
    config = TrainAAMConfig(
        training=TRAINING, stream=stream, memory_budget_bytes=30_000 if stream else None
    )
    full = train_aam(path, tmp_path / "full", config)
    assert full.resumed_from is None

    out = tmp_path / "out"
    with pytest.raises(Stop):
        train_aam(path, out, config, on_validation=_stop_at(3))
    # only the hidden checkpoint is there: no half-made adapter to load by mistake
    assert [p.name for p in out.iterdir()] == [CHECKPOINT_DIR]
    with pytest.raises(AdapterError, match=r"missing model\.safetensors"):
        load_adapter(out)
    assert load_train_state(out / CHECKPOINT_DIR).epoch == 2

    said: list[str] = []
    resumed = train_aam(path, out, config, notify=said.append)
    assert any("resuming from the checkpoint" in m and "epoch 2 of 4" in m for m in said), said
    assert resumed.resumed_from == 2 and resumed.best_epoch == full.best_epoch
    _same_adapter(tmp_path / "full", out)
    assert not (out / CHECKPOINT_DIR).exists()


def test_rerun_restarts_cleanly_when_the_checkpoint_does_not_fit(planted_store, tmp_path):
    path = planted_store(videos=60)
    training = TrainConfig(**{**TRAINING.__dict__, "epochs": 2})
    config = TrainAAMConfig(training=training)
    out = tmp_path / "out"

    def interrupted() -> None:
        with pytest.raises(Stop):
            train_aam(path, out, config, on_validation=_stop_at(1))

    said: list[str] = []
    interrupted()
    other = TrainAAMConfig(training=TrainConfig(**{**training.__dict__, "lr": 1e-3}))
    result = train_aam(path, out, other, notify=said.append, progress=None)
    assert result.resumed_from is None
    assert any("from another run (training.lr differ): restarting" in m for m in said), said

    # corrupt: a truncated tensor file
    for p in list(out.iterdir()):
        p.unlink()
    interrupted()
    tensors = next((out / CHECKPOINT_DIR).glob("state-*.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[:100])
    said.clear()
    assert train_aam(path, out, config, notify=said.append).resumed_from is None
    assert any("checkpoint unusable" in m and "checksum" in m for m in said), said

    # --no-resume discards a good checkpoint; a finished adapter still needs --overwrite
    for p in list(out.iterdir()):
        p.unlink()
    interrupted()
    said.clear()
    fresh = TrainAAMConfig(training=training, resume=False)
    assert train_aam(path, out, fresh, notify=said.append).resumed_from is None
    assert any("resume disabled" in m for m in said), said
    with pytest.raises(AdapterError, match="already exists"):
        train_aam(path, out, config)


def test_train_state_round_trip_is_exact_and_atomic(tmp_path):
    torch.manual_seed(0)
    adapter = AnonymizingAdapter(AdapterConfig(dim=8))
    opt = torch.optim.AdamW(adapter.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        adapter(torch.randn(4, 8)).pow(2).sum().backward()
        opt.step()
    generator = torch.Generator().manual_seed(3)
    torch.randperm(10, generator=generator)
    state = TrainState(
        epoch=2,
        step=7,
        elapsed=1.5,
        history=[{"epoch": 0, "x": float("nan"), "y": None}, {"epoch": 2, "x": 0.1 + 0.2}],
        front=[1],
        adapter=adapter.state_dict(),
        heads={"action": {"w": torch.ones(2, 2)}},
        front_states=[(adapter.state_dict(), {"action": {"w": torch.zeros(2, 2)}})],
        optimizer=opt.state_dict(),
        sampler_rng=generator.get_state(),
        torch_rng=torch.get_rng_state(),
        identity={"store": "s", "lr": 0.001},
    )
    save_train_state(tmp_path, state)
    (tmp_path / ".state.json.1234.tmp").write_text("half a write")  # a kill mid-write
    save_train_state(tmp_path, state)  # older tensor files go once the new state.json is in
    assert len(list(tmp_path.glob("state-*.safetensors"))) == 1
    back = load_train_state(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
    assert back.history[0]["x"] != back.history[0]["x"] and back.history[1]["x"] == 0.1 + 0.2
    assert back.identity == state.identity and back.front == [1]
    assert torch.equal(back.front_states[0][1]["action"]["w"], torch.zeros(2, 2))
    assert torch.equal(back.sampler_rng, generator.get_state())
    again = torch.optim.AdamW(AnonymizingAdapter(AdapterConfig(dim=8)).parameters(), lr=1e-3)
    again.load_state_dict(back.optimizer)  # accepted by torch, moments equal
    for k, entry in opt.state_dict()["state"].items():
        for name, value in entry.items():
            assert torch.equal(again.state_dict()["state"][k][name], value)
    assert not any(p.suffix == ".pkl" for p in tmp_path.iterdir())
    (tmp_path / STATE_FILE).write_text("{")
    with pytest.raises(AdapterError, match="unreadable"):
        load_train_state(tmp_path)


def _train_cli(store: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline",
        "train",
        "--input",
        str(store),
        "--output",
        str(out),
        "--epochs",
        str(epochs),
        "--batch-size",
        "4",
        "--val-every",
        "1",
        "--seed",
        "3",
        *extra,
    ]


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _kill_and_resume_training(store: Path, tmp_path: Path, *, epochs: int, kills: int, seed: int):
    """Train without interruption; then SIGKILL the same command `kills` times at random points
    after a checkpoint; a rerun (breaking the dead runs' lock, as after any SIGKILL) must resume
    and end with the uninterrupted run's adapter and metrics."""
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    full = subprocess.run(
        _train_cli(store, tmp_path / "full", epochs), capture_output=True, text=True, env=env
    )
    assert full.returncode == 0, full.stderr[-2000:]
    out = tmp_path / "out"
    rng = random.Random(seed)
    killed = 0
    for attempt in range(kills):
        extra = ("--break-lock",) if attempt else ()
        proc = subprocess.Popen(
            _train_cli(store, out, epochs, *extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        state = out / CHECKPOINT_DIR / STATE_FILE
        before = _mtime(state)
        deadline = time.monotonic() + 120
        while _mtime(state) in (None, before) and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))  # a random point after this run's first checkpoint
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        _, err = proc.communicate(timeout=60)
        assert not (out / "model.safetensors").exists(), "finished before the kill: more epochs"
        assert killed == attempt + 1, err[-2000:]
    rerun = subprocess.run(
        _train_cli(store, out, epochs, "--break-lock"), capture_output=True, text=True, env=env
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    said = " ".join(rerun.stderr.split())  # progress and notes
    assert "resuming from the checkpoint" in said, said[-2000:]
    assert "resumed after epoch" in rerun.stdout  # the result line
    _same_adapter(tmp_path / "full", out)


def test_killed_cli_training_resumes_once(raw_store, tmp_path):
    """The CI form of the slow test below: one kill at a random point."""
    _kill_and_resume_training(raw_store, tmp_path, epochs=120, kills=1, seed=1)


@pytest.mark.slow
def test_killed_cli_training_resumes_to_the_uninterrupted_result(raw_store, tmp_path):
    _kill_and_resume_training(raw_store, tmp_path, epochs=120, kills=2, seed=0)
