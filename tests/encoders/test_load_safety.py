"""No pickle and no remote code on any load path: models and adapters are safetensors + JSON, a
pickled checkpoint is read only by torch's weights-only unpickler, and transformers runs code
shipped with a model only when the user passes --trust-remote-code."""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from pipeline.encoders import load_encoder
from pipeline.errors import EncoderError

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("pipeline", "flows", "store_schema") for p in (REPO / d).rglob("*.py"))
UNSAFE_MODULES = {"pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve", "marshal"}


class _Payload:
    """Runs a shell command when unpickled: what a hostile checkpoint would do."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.fixture
def model(tiny_encoder_dir: Path, tmp_path: Path) -> Path:
    """A copy of the tiny random VideoMAE (safetensors + config.json) to tamper with."""
    return Path(shutil.copytree(tiny_encoder_dir, tmp_path / "model"))


def test_a_pickled_checkpoint_never_runs_its_code(model: Path, tmp_path: Path) -> None:
    (model / "model.safetensors").unlink()
    sentinel = tmp_path / "PWNED"
    (model / "pytorch_model.bin").write_bytes(pickle.dumps({"w": _Payload(sentinel)}))
    with pytest.raises(EncoderError, match="never unpickles") as error:
        load_encoder(model, device="cpu")
    assert "\n" not in str(error.value)
    assert not sentinel.exists()


def test_remote_code_is_not_run_without_the_flag(model: Path, tmp_path: Path) -> None:
    sentinel = tmp_path / "PWNED"
    (model / "evil.py").write_text(
        f"open({str(sentinel)!r}, 'w').close()\n"
        "from transformers import VideoMAEConfig\n"
        "class EvilConfig(VideoMAEConfig):\n    pass\n"
    )
    config = json.loads((model / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig"}
    (model / "config.json").write_text(json.dumps(config))
    encoder = load_encoder(model, device="cpu")
    assert encoder.family == "videomae"
    assert not sentinel.exists()


def test_extract_passes_trust_remote_code_only_when_asked(
    tiny_benchmark, tmp_path, run_cli, monkeypatch
) -> None:
    import pipeline.extract.run as run

    seen: list[dict] = []

    def spy(source, **kwargs):
        seen.append(kwargs)
        raise EncoderError("stop here")

    monkeypatch.setattr(run, "load_encoder", spy)
    args = ["extract", "--manifest", tiny_benchmark / "manifest.parquet", "--encoder",
            tmp_path, "--output", tmp_path / "raw.zarr"]  # fmt: skip
    assert run_cli(*args)[0] == 1
    assert run_cli(*args, "--trust-remote-code")[0] == 1
    assert [k["trust_remote_code"] for k in seen] == [False, True]
    assert not (tmp_path / "raw.zarr").exists()


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
            yield node, owner, name, {k.arg: k.value for k in node.keywords}


def test_no_unsafe_loading_in_the_sources() -> None:
    """Audit of pipeline/, flows/ and store_schema/: no pickle-family import, torch.load only
    with weights_only=True (and weights_only never anything else, wherever passed), np.load never
    with allow_pickle=True, trust_remote_code never switched on in code, and persisted Prefect
    results serialised as JSON."""
    assert len(SOURCES) > 50
    problems = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), filename=str(path))
        where = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names]
                modules = names if isinstance(node, ast.Import) else [node.module or ""]
                if any(m.split(".")[0] in UNSAFE_MODULES for m in modules):
                    problems.append(f"{where}:{node.lineno}: imports {modules}")
        for node, owner, name, kwargs in _calls(tree):
            constant = {k: getattr(v, "value", v) for k, v in kwargs.items()}
            if owner == "torch" and name == "load" and constant.get("weights_only") is not True:
                problems.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
            if "weights_only" in constant and constant["weights_only"] is not True:
                # from_pretrained(weights_only=...) too: transformers 5 ignores it on its .bin path
                # today (always weights-only), but must never be asked for full pickle.
                problems.append(f"{where}:{node.lineno}: {name}(weights_only=...) not True")
            if name == "load" and constant.get("allow_pickle") is True:
                problems.append(f"{where}:{node.lineno}: np.load(allow_pickle=True)")
            if constant.get("trust_remote_code") is True:
                problems.append(f"{where}:{node.lineno}: trust_remote_code=True")
            if constant.get("persist_result") is True and constant.get("result_serializer") != (
                "json"
            ):
                problems.append(f"{where}:{node.lineno}: persisted result is pickled")
    assert problems == []


def test_a_plain_bin_checkpoint_loads_through_the_weights_only_unpickler(
    model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The legitimate side of the weights-only path: an old-style pytorch_model.bin holding only
    tensors (torch.save of a state dict) loads, with the same weights, and every torch.load on
    the way is a weights_only=True one."""
    import torch
    from safetensors.torch import load_file

    reference = load_encoder(model, device="cpu")
    state = load_file(model / "model.safetensors")
    (model / "model.safetensors").unlink()
    torch.save(state, model / "pytorch_model.bin")
    calls: list[object] = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    encoder = load_encoder(model, device="cpu")
    assert calls and all(flag is True for flag in calls), calls
    assert encoder.family == reference.family and encoder.hidden_size == reference.hidden_size
    mine, theirs = encoder.model.state_dict(), reference.model.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[key], theirs[key]) for key in mine)
    # Identified by the .bin's own hash (no safetensors left to hash).
    assert encoder.identity["weights_sha256"] != reference.identity["weights_sha256"]
    clips = torch.randn(2, encoder.frames_per_clip, 3, encoder.image_size, encoder.image_size)
    assert torch.equal(encoder.encode(clips), reference.encode(clips))
