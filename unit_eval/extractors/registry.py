"""``get_extractor(name, ...)``: every feature space by name, each behind the one interface (``base``)."""
from __future__ import annotations

import os

import torch

from ..errors import UnitEvalError

# name -> (feature dimension, preprocessing modes (the first is the default), what it is)
EXTRACTORS: dict[str, tuple[int, tuple[str, ...], str]] = {
    "inception": (2048, ("tf1-bilinear", "tunit-legacy"), "TF-Inception-V3 pool3 (FID)"),
    "dinov2-vitl14": (1024, ("dgm-eval-pil", "edm2-torch"), "DINOv2 ViT-L/14 class token (FD_DINOv2)"),
    "dinov2-vitb14": (768, ("dgm-eval-pil", "edm2-torch"), "DINOv2 ViT-B/14 class token"),
    "clip-vitl14-336": (768, ("cmmd-pil",), "CLIP ViT-L/14@336px image embedding, L2-normalised (CMMD)"),
    "torchvision-inception": (2048, ("stargan-v2",), "torchvision ImageNet Inception-V3 avgpool (StarGAN v2 / GP-UNIT FID)"),
}


def get_extractor(name: str, device: str | torch.device = "auto", weights: str | os.PathLike | None = None,
                  preprocessing: str | None = None, batch_size: int = 64, num_workers: int | None = None,
                  progress: bool = True):
    """The extractor ``name`` on ``device``. ``weights``: a file to use instead of the resolved one (DINOv2 and
    CLIP files must still have their pinned sha256); without it, ``unit_eval.weights`` finds them."""
    if name not in EXTRACTORS:
        raise UnitEvalError(f"unknown feature extractor {name!r}; choose from {', '.join(EXTRACTORS)}")
    common = dict(device=device, batch_size=batch_size, num_workers=num_workers, progress=progress)
    if name == "inception":
        from ..features import InceptionFeatures

        return InceptionFeatures(preprocessing=preprocessing or "tf1-bilinear", weights_path=weights, **common)
    from ..weights import feature_nets

    resolved = feature_nets.require(name) if weights is None else feature_nets.check_file(name, weights, "--weights")
    state = feature_nets.load_state(resolved)
    where = str(resolved.path)
    if name.startswith("dinov2-"):
        from .dinov2 import DINOv2Features

        return DINOv2Features(name, state, resolved.sha256, where=where, preprocessing=preprocessing, **common)
    if name == "torchvision-inception":
        from .torchvision_inception import TorchvisionInceptionFeatures

        return TorchvisionInceptionFeatures(state, resolved.sha256, where=where, preprocessing=preprocessing, **common)
    from .clip import CLIPFeatures

    return CLIPFeatures(state, resolved.sha256, name=name, where=where, preprocessing=preprocessing, **common)
