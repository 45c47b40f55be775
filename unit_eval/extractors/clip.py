"""CLIP ViT-L/14@336px image embeddings, L2-normalised, as CMMD (Jayasumana et al., 2024) computes them.

The reference (google-research/google-research ``cmmd/``; read, no code copied):

- ``io_util.py`` ``_read_image`` / ``_center_crop_and_resize``: the PIL image is centre-cropped to a square
  (``l = min(w, h)``, ``top = (h - l) // 2``, ``left = (w - l) // 2``) and resized to 336 x 336 with PIL's
  ``Image.BICUBIC`` ("performs anti-aliasing as well"), then read as float32 and divided by 255
  (``compute_embeddings_for_dir``). Images are batched with ``drop_remainder=True`` (default batch 32): the last
  ``N mod 32`` images of each folder are left out there; here every image is used.
- ``embedding.py``: model ``vit_l14_336px`` (scenic's port of OpenAI CLIP, loaded from OpenAI's
  ``ViT-L-14-336px.pt``, sha256 in its URL); ``_clip_preprocess`` resizes again to 336 with
  ``jax.image.resize(method='bicubic')`` (a no-op at 336: the cubic kernel is 1 at offset 0 and 0 at the other
  integers) and applies ``normalize_image``, ``(x - IMAGE_MEAN) / IMAGE_STD`` with OpenAI's constants;
  ``model.apply(vars, images, None)`` returns ``encode_image(normalize=True)``: the class token after ``ln_post``
  (LayerNorm eps 1e-5), times ``proj``, divided by its L2 norm (scenic ``clip/layers.py``, ``CLIP``). The
  transformer uses QuickGELU (``x * sigmoid(1.702 x)``), as OpenAI's.
- JAX computes in float32 (x64 off) with OpenAI's float16-stored weights promoted to float32; here the weights
  are cast to float32 once and the network runs in float32.

The network code is torch-fidelity's ``CLIPVisual`` (torch-fidelity is already a dependency; its
``feature_extractor_clip.py`` is OpenAI's own ``clip/model.py`` vision tower, which reads OpenAI's parameter
names as they are). torch-fidelity's extractor itself is not used: it loads the archive with
``torch.jit.load`` (running its code) and resizes with a TF1 bilinear kernel. The file is read weights-only
(:func:`unit_eval.weights.feature_nets.load_state`): OpenAI's TorchScript archive as a tree of tensors.
"""
from __future__ import annotations

import dataclasses

import torch

from .base import NetworkFeatures, check_state_layout, normalized, pil_resized

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESSING = ("cmmd-pil",)


@dataclasses.dataclass(frozen=True)
class VisionSpec:
    width: int
    layers: int
    patch: int
    resolution: int
    embed_dim: int

    @property
    def grid(self) -> int:
        return self.resolution // self.patch


VITL14_336 = VisionSpec(width=1024, layers=24, patch=14, resolution=336, embed_dim=768)


def visual_layout(spec: VisionSpec) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the vision tower in OpenAI's state dict (``visual.*``)."""
    w = spec.width
    layout = {"visual.conv1.weight": (w, 3, spec.patch, spec.patch), "visual.class_embedding": (w,),
              "visual.positional_embedding": (spec.grid ** 2 + 1, w),
              "visual.ln_pre.weight": (w,), "visual.ln_pre.bias": (w,)}
    for i in range(spec.layers):
        b = f"visual.transformer.resblocks.{i}."
        layout.update({
            b + "attn.in_proj_weight": (3 * w, w), b + "attn.in_proj_bias": (3 * w,),
            b + "attn.out_proj.weight": (w, w), b + "attn.out_proj.bias": (w,),
            b + "ln_1.weight": (w,), b + "ln_1.bias": (w,),
            b + "mlp.c_fc.weight": (4 * w, w), b + "mlp.c_fc.bias": (4 * w,),
            b + "mlp.c_proj.weight": (w, 4 * w), b + "mlp.c_proj.bias": (w,),
            b + "ln_2.weight": (w,), b + "ln_2.bias": (w,),
        })
    layout.update({"visual.ln_post.weight": (w,), "visual.ln_post.bias": (w,), "visual.proj": (w, spec.embed_dim)})
    return layout


def visual_state(state: dict[str, torch.Tensor], spec: VisionSpec, where: str = "the weights") -> dict[str, torch.Tensor]:
    """The vision tower's tensors of an OpenAI CLIP state dict (the text tower ignored), checked and float32."""
    visual = {k: v for k, v in state.items() if k.startswith("visual.")}
    check_state_layout(visual, visual_layout(spec), where, "an OpenAI CLIP ViT-L/14@336px layout (vision tower)")
    return {k: v.float() for k, v in visual.items()}


def build_model(spec: VisionSpec, state: dict[str, torch.Tensor] | None = None,
                where: str = "the weights") -> torch.nn.Module:
    """torch-fidelity's copy of OpenAI's vision tower for ``spec``, float32, ``state`` (OpenAI names) loaded strictly."""
    from torch_fidelity.feature_extractor_clip import CLIPVisual

    model = CLIPVisual(spec.embed_dim, spec.resolution, spec.layers, spec.width, spec.patch).float()
    if state is not None:
        model.load_state_dict(visual_state(state, spec, where), strict=True)
    return model.eval()


def preprocess(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """uint8 B x 3 x H x W -> CMMD's network input: centre square crop, PIL bicubic to ``resolution``, /255,
    OpenAI's mean and std (float32)."""
    return normalized(pil_resized(images, resolution, crop_square=True).float() / 255, CLIP_MEAN, CLIP_STD)


class CLIPFeatures(NetworkFeatures):
    """L2-normalised CLIP image embeddings (768-d for ViT-L/14@336px)."""

    PREPROCESSING = PREPROCESSING
    layer = "image-embeds-l2"

    def __init__(self, state: dict[str, torch.Tensor], weights_sha256: str, spec: VisionSpec = VITL14_336,
                 name: str = "clip-vitl14-336", where: str = "the weights", **kwargs):
        self.name = name
        self.spec = spec
        self.feature_dim = spec.embed_dim
        super().__init__(build_model(spec, state, where), weights_sha256, **kwargs)

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return preprocess(images, self.spec.resolution)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        emb = self.model.visual(x)
        return emb / torch.linalg.vector_norm(emb, dim=-1, keepdim=True)
