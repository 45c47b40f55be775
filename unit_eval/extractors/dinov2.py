"""DINOv2 ViT-L/14 and ViT-B/14 class-token features, for FD_DINOv2 as dgm-eval and EDM2 compute it.

The references (read from their public sources; no code copied):

- dgm-eval (layer6ai-labs/dgm-eval, ``dgm_eval/models/dinov2.py``, ``DINOv2Encoder``): ``torch.hub.load(
  'facebookresearch/dinov2', 'dinov2_vitl14')``; ``transform``: the PIL RGB image through torchvision
  ``Resize((224, 224), InterpolationMode.BICUBIC)`` (on a PIL image that is PIL's own bicubic resize, antialiased,
  rounded back to uint8), ``ToTensor`` (/255) and ``Normalize`` with the ImageNet mean and std; the features
  are the model's output (``dgm_eval/representations.py``, ``get_representations``, ``normalized=False``).
  Its ``--clean_resize`` (a per-channel float PIL resize) is not the default and is not offered here.
- EDM2 (NVlabs/edm2, ``calculate_metrics.py``, ``DINOv2Detector``, "modeled after dgm-eval"): the same hub
  model (``facebookresearch/dinov2:main``); ``resize_mode='torch'`` (the default) resizes the float uint8 values
  with ``F.interpolate(size=(224, 224), mode='bicubic', antialias=True)`` (no rounding, no clamping), then /255
  and the ImageNet mean and std; ``resize_mode='pil'`` is the PIL bicubic resize, "the slow reference
  implementation that matches the original dgm-eval codebase exactly".
- The network (facebookresearch/dinov2, ``dinov2/hub/backbones.py``: ``img_size=518``, ``patch_size=14``,
  ``init_values=1.0``, ``interpolate_antialias=False``, ``interpolate_offset=0.1``, the checkpoint loaded
  strictly; ``dinov2/models/vision_transformer.py``: ``forward`` returns ``head(x_norm_clstoken)`` with an
  identity head, i.e. the final LayerNorm (eps 1e-6) of the class token). Its position embeddings are trained
  on a 37 x 37 grid; at 224 px (a 16 x 16 grid) ``interpolate_pos_encoding`` resamples them on every forward
  with ``F.interpolate(..., scale_factor=((16 + 0.1) / 37,) * 2, mode='bicubic', antialias=False)``: the scale
  factor, not the output size, sets the sampling positions. That resampling is done here once, by the same
  call, when the weights are loaded (:func:`resample_pos_embed`).

Preprocessing modes: ``dgm-eval-pil`` (the default: dgm-eval, and EDM2's ``pil`` mode) and ``edm2-torch``
(EDM2's default). The network code is timm's ``VisionTransformer`` (``vit_{large,base}_patch14_dinov2``, built
for 224 px): DINOv2's block structure (pre-norm, LayerScale, exact-GELU MLP, LayerNorm eps 1e-6) with the
official checkpoint's parameter names, so the file loads after two explicit steps (:func:`to_timm`):
``mask_token`` (used only in training) dropped and ``pos_embed`` resampled to 16 x 16. torch-fidelity's own
DINOv2 extractor is not used: it builds the model with ``torch.hub.load`` (downloaded code) and resizes with a
TF1 bilinear kernel, neither dgm-eval's nor EDM2's resize.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import UnitEvalError
from .base import NetworkFeatures, check_state_layout, normalized, pil_resized

INPUT_SIZE = 224
PATCH = 14
TRAIN_GRID = 37  # 518 / 14: the grid the official position embeddings were trained on
INTERPOLATE_OFFSET = 0.1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREPROCESSING = ("dgm-eval-pil", "edm2-torch")

# name -> (timm model, width, depth); heads = width / 64, MLP ratio 4
VARIANTS: dict[str, tuple[str, int, int]] = {
    "dinov2-vitl14": ("vit_large_patch14_dinov2", 1024, 24),
    "dinov2-vitb14": ("vit_base_patch14_dinov2", 768, 12),
}


def official_layout(name: str) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of the official ``dinov2_vit?14_pretrain.pth`` (``block_chunks=0``)."""
    _, d, depth = VARIANTS[name]
    layout = {"cls_token": (1, 1, d), "pos_embed": (1, 1 + TRAIN_GRID ** 2, d), "mask_token": (1, d),
              "patch_embed.proj.weight": (d, 3, PATCH, PATCH), "patch_embed.proj.bias": (d,)}
    for i in range(depth):
        b = f"blocks.{i}."
        layout.update({
            b + "norm1.weight": (d,), b + "norm1.bias": (d,),
            b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
            b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,), b + "ls1.gamma": (d,),
            b + "norm2.weight": (d,), b + "norm2.bias": (d,),
            b + "mlp.fc1.weight": (4 * d, d), b + "mlp.fc1.bias": (4 * d,),
            b + "mlp.fc2.weight": (d, 4 * d), b + "mlp.fc2.bias": (d,), b + "ls2.gamma": (d,),
        })
    layout.update({"norm.weight": (d,), "norm.bias": (d,)})
    return layout


def check_layout(name: str, state: dict[str, torch.Tensor], where: str) -> None:
    """The official checkpoint's exact key set and shapes, or one line saying what differs."""
    check_state_layout(state, official_layout(name), where, f"the official {name} checkpoint layout", f" for {name}")


def resample_pos_embed(pos_embed: torch.Tensor, grid: int = INPUT_SIZE // PATCH) -> torch.Tensor:
    """The official ``interpolate_pos_encoding`` for a ``grid`` x ``grid`` input, done once: the class position
    kept, the 37 x 37 patch positions resampled in float32 with the scale factor ``(grid + 0.1) / 37``."""
    d = pos_embed.shape[-1]
    cls_pos, patch_pos = pos_embed[:, :1].float(), pos_embed[:, 1:].float()
    m = int(round(patch_pos.shape[1] ** 0.5))
    scale = float(grid + INTERPOLATE_OFFSET) / m
    patch_pos = F.interpolate(patch_pos.reshape(1, m, m, d).permute(0, 3, 1, 2), scale_factor=(scale, scale),
                              mode="bicubic", antialias=False)
    if tuple(patch_pos.shape[-2:]) != (grid, grid):
        raise UnitEvalError(f"position embeddings resampled to {tuple(patch_pos.shape[-2:])}, not {grid} x {grid}")
    return torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(1, grid * grid, d)], dim=1)


def to_timm(name: str, state: dict[str, torch.Tensor], where: str = "the weights") -> dict[str, torch.Tensor]:
    """Official checkpoint -> timm's 224 px model: same names, ``mask_token`` dropped, ``pos_embed`` resampled."""
    check_layout(name, state, where)
    out = {k: v.float() for k, v in state.items() if k != "mask_token"}
    out["pos_embed"] = resample_pos_embed(state["pos_embed"])
    return out


def build_model(name: str, state: dict[str, torch.Tensor] | None = None, where: str = "the weights") -> torch.nn.Module:
    """timm's ViT for ``name`` at 224 px, with the official ``state`` loaded strictly (random weights when None)."""
    try:
        import timm
    except ImportError:
        raise UnitEvalError("DINOv2 features need timm: pip install 'unit-eval[features]'") from None
    model = timm.create_model(VARIANTS[name][0], pretrained=False, img_size=INPUT_SIZE, num_classes=0)
    if state is not None:
        model.load_state_dict(to_timm(name, state, where), strict=True)
    return model.eval()


def preprocess(images: torch.Tensor, mode: str) -> torch.Tensor:
    """uint8 B x 3 x H x W -> the normalised float32 224 x 224 network input of ``mode``."""
    if mode == "dgm-eval-pil":
        x = pil_resized(images, INPUT_SIZE).float() / 255
    elif mode == "edm2-torch":
        x = F.interpolate(images.float(), size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", antialias=True) / 255
    else:
        raise UnitEvalError(f"unknown DINOv2 preprocessing {mode!r}; choose from {', '.join(PREPROCESSING)}")
    return normalized(x, IMAGENET_MEAN, IMAGENET_STD)


class DINOv2Features(NetworkFeatures):
    """Class-token features (the hub model's output) of ``dinov2-vitl14`` (1024-d) or ``dinov2-vitb14`` (768-d)."""

    PREPROCESSING = PREPROCESSING
    layer = "cls"

    def __init__(self, name: str, state: dict[str, torch.Tensor], weights_sha256: str, where: str = "the weights",
                 **kwargs):
        if name not in VARIANTS:
            raise UnitEvalError(f"unknown DINOv2 variant {name!r}; choose from {', '.join(VARIANTS)}")
        self.name = name
        self.feature_dim = VARIANTS[name][1]
        super().__init__(build_model(name, state, where), weights_sha256, **kwargs)

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return preprocess(images, self.preprocessing)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
