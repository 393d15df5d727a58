"""The encoder registry against the reference transformers models, on tiny random configs."""

from __future__ import annotations

import json
import os

import pytest
import torch
import transformers as tf
from safetensors.torch import load_file, save_file

from pipeline.encoders import load_encoder
from pipeline.encoders.registry import IMAGENET_MEAN, weights_sha256
from pipeline.errors import ConfigError, EncoderError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

T, SIZE, D = 4, 32, 32
_SMALL = dict(hidden_size=D, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)


def _videomae() -> tf.PreTrainedModel:
    cfg = tf.VideoMAEConfig(image_size=SIZE, patch_size=16, num_frames=T, tubelet_size=2, **_SMALL)
    return tf.VideoMAEModel(cfg)


def _timesformer() -> tf.PreTrainedModel:
    return tf.TimesformerModel(
        tf.TimesformerConfig(image_size=SIZE, patch_size=16, num_frames=T, **_SMALL)
    )


def _vivit() -> tf.PreTrainedModel:
    cfg = tf.VivitConfig(image_size=SIZE, tubelet_size=[2, 16, 16], num_frames=T, **_SMALL)
    return tf.VivitModel(cfg)


def _vjepa2() -> tf.PreTrainedModel:
    cfg = tf.VJEPA2Config(
        crop_size=SIZE, patch_size=16, frames_per_clip=T, tubelet_size=2, hidden_size=D,
        num_hidden_layers=1, num_attention_heads=2, pred_hidden_size=D, pred_num_hidden_layers=1,
        pred_num_attention_heads=2, num_pooler_layers=1,
    )  # fmt: skip
    return tf.VJEPA2Model(cfg)


_XCLIP_VISION = dict(
    image_size=SIZE, patch_size=16, num_frames=T, mit_hidden_size=D, mit_intermediate_size=64,
    mit_num_attention_heads=2, **_SMALL,
)  # fmt: skip


def _xclip_vision() -> tf.PreTrainedModel:
    return tf.XCLIPVisionModel(tf.XCLIPVisionConfig(**_XCLIP_VISION))


def _xclip_full() -> tf.PreTrainedModel:
    text = dict(vocab_size=100, max_position_embeddings=16, **_SMALL)
    cfg = tf.XCLIPConfig(
        text_config=text, vision_config=_XCLIP_VISION, projection_dim=16, prompt_layers=1,
        prompt_attention_heads=2,
    )  # fmt: skip
    return tf.XCLIPModel(cfg)


def _ref_mean(m, x):
    return m(pixel_values=x).last_hidden_state.mean(1)


def _ref_cls(m, x):
    return m(pixel_values=x).last_hidden_state[:, 0]


def _ref_vjepa2(m, x):
    return m.get_vision_features(x).mean(1)


def _ref_xclip(m, x):
    m = getattr(m, "vision_model", m)
    return m(pixel_values=x.flatten(0, 1)).pooler_output.view(x.shape[0], T, -1).mean(1)


# family name, builder, reference pooling computed with the transformers model itself
CASES = {
    "videomae": ("videomae", _videomae, _ref_mean, "mean"),
    "timesformer": ("timesformer", _timesformer, _ref_cls, "cls"),
    "vivit": ("vivit", _vivit, _ref_cls, "cls"),
    "vjepa2": ("vjepa2", _vjepa2, _ref_vjepa2, "mean"),
    "xclip_vision": ("xclip", _xclip_vision, _ref_xclip, "pooler"),
    "xclip_full": ("xclip", _xclip_full, _ref_xclip, "pooler"),
}


def _save(model: tf.PreTrainedModel, path) -> str:
    model.save_pretrained(path)
    return str(path)


@pytest.fixture(params=list(CASES))
def case(request, tmp_path):
    family, build, ref, pooling = CASES[request.param]
    torch.manual_seed(0)
    model = build().eval()
    return family, model, ref, pooling, _save(model, tmp_path / request.param)


def _clips(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, T, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_matches_transformers_reference(case):
    family, model, ref, pooling, path = case
    enc = load_encoder(path, device="cpu")
    assert (enc.family, enc.pooling) == (family, pooling)
    assert (enc.hidden_size, enc.frames_per_clip, enc.image_size) == (D, T, SIZE)
    assert enc.device == torch.device("cpu") and enc.precision == "float32"
    x = _clips(3)
    got = enc.encode(x)
    with torch.no_grad():
        want = ref(model, x)
    assert got.shape == (3, D) and got.dtype == torch.float32 and got.device.type == "cpu"
    assert torch.allclose(got, want, atol=1e-5)
    assert not got.is_inference()  # usable as input to autograd (adapter training)


def test_deterministic_and_batch_independent(case):
    *_, path = case
    enc = load_encoder(path, device="cpu")
    x = _clips(4, seed=2)
    batch = enc.encode(x)
    assert torch.equal(batch, enc.encode(x))
    alone = torch.cat([enc.encode(x[i : i + 1]) for i in range(4)])
    assert torch.allclose(alone, batch, atol=1e-5)


def test_identity_is_json_and_machine_independent(case):
    family, *_, path = case
    enc = load_encoder(path, device="cpu")
    ident = json.loads(json.dumps(enc.identity))
    assert ident["source"] == os.path.basename(path) and ident["family"] == family
    assert load_encoder(path, device="cpu", record_paths=True).identity["source"] == path
    assert ident["hidden_size"] == D and ident["frames_per_clip"] == T
    assert ident["image_size"] == SIZE and len(ident["weights_sha256"]) == 64
    assert ident["revision"] is None and ident["mean"] == list(IMAGENET_MEAN)
    # nothing leaks the absolute directory (only record_paths=True keeps it, in `source`)
    assert path not in json.dumps(ident) and len(ident["config_sha256"]) == 64


def test_weights_sha256_stable_and_tracks_weights(tmp_path):
    torch.manual_seed(0)
    a = _save(_videomae(), tmp_path / "a")
    first = load_encoder(a).identity["weights_sha256"]
    assert first == load_encoder(a).identity["weights_sha256"] == weights_sha256(a)
    torch.manual_seed(1)
    b = _save(_videomae(), tmp_path / "b")
    assert load_encoder(b).identity["weights_sha256"] != first


def test_preprocessor_config_sets_mean_std(tmp_path):
    path = _save(_videomae(), tmp_path / "m")
    norm = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}
    (tmp_path / "m" / "preprocessor_config.json").write_text(json.dumps(norm))
    enc = load_encoder(path)
    assert enc.mean == (0.5, 0.5, 0.5) and enc.std == (0.25, 0.25, 0.25)


def test_hub_id_offline_is_one_line_encoder_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EncoderError) as err:
        load_encoder("some-org/not-a-cached-video-model")
    msg = str(err.value)
    assert msg == (
        "cannot load encoder 'some-org/not-a-cached-video-model': not a local model directory "
        "and the model hub is unreachable; pass a local path"
    )


@pytest.mark.parametrize("kind", ["empty_dir", "junk_dir", "file", "missing", "bad_json"])
def test_not_a_model_is_encoder_error(tmp_path, kind):
    target = tmp_path / "x"
    if kind == "empty_dir":
        target.mkdir()
    elif kind == "junk_dir":
        target.mkdir()
        (target / "notes.txt").write_text("hello")
    elif kind == "file":
        target.write_text("not a model")
    elif kind == "bad_json":
        target.mkdir()
        (target / "config.json").write_text("{not json")
    with pytest.raises(EncoderError) as err:
        load_encoder(str(target))
    assert "\n" not in str(err.value)


def test_config_without_weights_is_encoder_error(tmp_path):
    path = _save(_videomae(), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(EncoderError):
        load_encoder(path)


def test_checkpoint_missing_used_weights_is_encoder_error(tmp_path):
    path = _save(_videomae(), tmp_path / "m")
    weights = load_file(tmp_path / "m" / "model.safetensors")
    dropped = next(k for k in weights if "encoder.layer.0.attention" in k)
    del weights[dropped]
    save_file(weights, tmp_path / "m" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(EncoderError, match="lacks"):
        load_encoder(path)


def test_unsupported_model_type_names_families(tmp_path):
    cfg = tf.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2)
    path = _save(tf.BertModel(cfg), tmp_path / "bert")
    with pytest.raises(EncoderError, match="videomae, timesformer, vivit, vjepa2, xclip"):
        load_encoder(path)


def test_bad_inputs_and_options(tmp_path):
    enc = load_encoder(_save(_videomae(), tmp_path / "m"))
    with pytest.raises(ConfigError):
        enc.encode(torch.zeros(1, T + 1, 3, SIZE, SIZE))
    with pytest.raises(ConfigError):
        enc.encode(torch.zeros(1, T, 3, SIZE, SIZE, dtype=torch.float64))
    assert enc.encode(torch.zeros(0, T, 3, SIZE, SIZE)).shape == (0, D)
    with pytest.raises(ConfigError):
        load_encoder(str(tmp_path / "m"), device="tpu")
    with pytest.raises(ConfigError):
        load_encoder(str(tmp_path / "m"), precision="int8")
    with pytest.raises(ConfigError):
        load_encoder(str(tmp_path / "m"), device="cpu", precision="float16")


def test_bfloat16_on_cpu_is_close(tmp_path):
    path = _save(_videomae(), tmp_path / "m")
    x = _clips(2)
    ref = load_encoder(path).encode(x)
    low = load_encoder(path, precision="bfloat16")
    assert low.precision == "bfloat16"
    got = low.encode(x)
    assert got.dtype == torch.float32 and torch.allclose(got, ref, atol=0.1, rtol=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_matches_cpu(tmp_path):
    path = _save(_videomae(), tmp_path / "m")
    x = _clips(2)
    ref = load_encoder(path, device="cpu").encode(x)
    gpu = load_encoder(path, device="cuda")
    assert gpu.precision in ("bfloat16", "float16")
    got = gpu.encode(x)
    assert got.device.type == "cpu" and got.dtype == torch.float32
    assert torch.allclose(got, ref, atol=0.1, rtol=0.1)
    exact = load_encoder(path, device="cuda", precision="float32").encode(x)
    assert torch.allclose(exact, ref, atol=1e-4)
