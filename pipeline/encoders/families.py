"""Per-family knowledge of transformers video models: which class loads them, how clips go in,
and how tokens are pooled into one clip embedding.

=========== ======================= ================== ==================== ========================
family      model_type -> class     input              pooling              why
=========== ======================= ================== ==================== ========================
videomae    videomae ->             pixel_values       mean of              no CLS token, no pooler;
            VideoMAEModel           [B,T,3,H,W]        last_hidden_state    VideoMAE's classifier
                                                                            averages tokens
                                                                            (use_mean_pooling), so
                                                                            fine-tuning shaped the
                                                                            mean
timesformer timesformer ->          pixel_values       cls: token 0 of      TimesformerFor-
            TimesformerModel        [B,T,3,H,W]        last_hidden_state    VideoClassification
                                                       (after final LN)     classifies that token
vivit       vivit -> VivitModel     pixel_values       cls: token 0 of      VivitForVideoClassifi-
                                    [B,T,3,H,W]        last_hidden_state    cation has no pooler and
                                                       (not pooler_output)  classifies the CLS
                                                                            token; Kinetics
                                                                            checkpoints lack pooler
                                                                            weights (random)
vjepa2      vjepa2 -> VJEPA2Model   pixel_values_      mean of encoder      no CLS token; the
            (encoder only,          videos             tokens               released classifier's
            skip_predictor)         [B,T,3,H,W]                             attentive pooler is not
                                                                            part of the base model
xclip       xclip_vision_model ->   pixel_values       pooler_output per    a per-frame ViT (with
            XCLIPVisionModel;       [B*T,3,H,W]        frame (LN'd CLS),    cross-frame messages):
            xclip -> XCLIPModel                        mean over T frames   frame embeddings
            .vision_model                                                   averaged, as X-CLIP's
                                                                            video-level mean
=========== ======================= ================== ==================== ========================

V-JEPA 2's predictor and X-CLIP's text tower, prompt generator and multi-frame integration
transformer are not used: a clip embedding depends on the clip only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

logger = logging.getLogger(__name__)

ForwardFn = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Family:
    """How one family of transformers video models is loaded, fed and pooled."""

    name: str
    """Short family name used in identities and error messages."""
    model_types: tuple[str, ...]
    """config.model_type values that belong to this family."""
    class_name: str
    """transformers class whose from_pretrained loads the weights."""
    pooling: str
    """'mean' (tokens), 'cls' (first token) or 'pooler' (pooler_output per frame, frame mean)."""
    frames_attr: str
    """Config attribute holding the number of frames per clip."""
    image_attr: str
    """Config attribute holding the square input size in pixels."""
    forward: ForwardFn
    """Maps a loaded model and float clips [B, T, 3, H, W] to pooled features [B, D]."""
    unused_prefixes: tuple[str, ...] = ()
    """Parameter-name prefixes that may be missing from a checkpoint because they are never used."""
    submodule: str | None = None
    """Attribute of the loaded model to keep (X-CLIP: the vision tower); None: the model itself."""


def _videomae(model: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=clips).last_hidden_state.mean(dim=1)


def _cls(model: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
    return model(pixel_values=clips).last_hidden_state[:, 0]


def _vjepa2(model: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
    out = model(pixel_values_videos=clips, skip_predictor=True)
    return out.last_hidden_state.mean(dim=1)


def _xclip(model: torch.nn.Module, clips: torch.Tensor) -> torch.Tensor:
    b, t = clips.shape[:2]
    # X-CLIP's cross-frame attention reshapes the flat frame batch back into [B, T]: frames of one
    # clip must be consecutive, which flatten(0, 1) guarantees.
    pooled = model(pixel_values=clips.flatten(0, 1)).pooler_output
    return pooled.view(b, t, -1).mean(dim=1)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("videomae", ("videomae",), "VideoMAEModel", "mean", "num_frames", "image_size",
               _videomae),
        Family("timesformer", ("timesformer",), "TimesformerModel", "cls", "num_frames",
               "image_size", _cls),
        Family("vivit", ("vivit",), "VivitModel", "cls", "num_frames", "image_size", _cls,
               unused_prefixes=("pooler.",)),
        Family("vjepa2", ("vjepa2",), "VJEPA2Model", "mean", "frames_per_clip", "crop_size",
               _vjepa2, unused_prefixes=("predictor.",)),
        Family("xclip", ("xclip_vision_model",), "XCLIPVisionModel", "pooler", "num_frames",
               "image_size", _xclip),
    )
}  # fmt: skip

# A full X-CLIP checkpoint (model_type "xclip") nests the vision tower under `vision_model`;
# XCLIPVisionModel.from_pretrained would not find its weights there, so load the full model and
# keep the tower.
_XCLIP_FULL = Family(
    "xclip", ("xclip",), "XCLIPModel", "pooler", "num_frames", "image_size", _xclip,
    unused_prefixes=("text_model.", "text_projection", "visual_projection", "logit_scale",
                     "prompts_", "mit.", "prompts_generator."),
    submodule="vision_model",
)  # fmt: skip

SUPPORTED = tuple(FAMILIES)


def family_for(model_type: str) -> Family | None:
    """The family handling `model_type`, or None if unsupported."""
    if model_type in _XCLIP_FULL.model_types:
        return _XCLIP_FULL
    for fam in FAMILIES.values():
        if model_type in fam.model_types:
            return fam
    return None


def frame_count(family: Family, config: Any) -> int:
    """Frames per clip the model was built for (X-CLIP keeps it in its vision sub-config)."""
    cfg = vision_config(family, config)
    return int(getattr(cfg, family.frames_attr))


def image_size(family: Family, config: Any) -> int:
    """Square input size in pixels."""
    size = getattr(vision_config(family, config), family.image_attr)
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size)


def vision_config(family: Family, config: Any) -> Any:
    """The config that describes the video/vision tower."""
    return config.vision_config if family.submodule else config
