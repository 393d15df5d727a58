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
    with weights_only=True, np.load never with allow_pickle=True, trust_remote_code never
    switched on in code, and persisted Prefect results serialised as JSON."""
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
            if name == "load" and constant.get("allow_pickle") is True:
                problems.append(f"{where}:{node.lineno}: np.load(allow_pickle=True)")
            if constant.get("trust_remote_code") is True:
                problems.append(f"{where}:{node.lineno}: trust_remote_code=True")
            if constant.get("persist_result") is True and constant.get("result_serializer") != (
                "json"
            ):
                problems.append(f"{where}:{node.lineno}: persisted result is pickled")
    assert problems == []
