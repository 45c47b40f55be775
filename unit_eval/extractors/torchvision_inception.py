"""torchvision's ImageNet Inception-V3, average-pooled 2048-d features, wired as StarGAN v2's FID wires it (GP-UNIT
runs the same code: its ``notebooks/evaluation.ipynb`` imports StarGAN v2's ``metrics/fid.py``).

The reference, read from clovaai/stargan-v2 (commit 875b70a; no code copied):

- ``metrics/fid.py:27-53`` ``InceptionV3``: ``models.inception_v3(pretrained=True)``, whose modules are re-assembled
  as Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, MaxPool2d(3, 2), Conv2d_3b_1x1, Conv2d_4a_3x3, MaxPool2d(3, 2),
  Mixed_5b ... Mixed_6e, Mixed_7a, Mixed_7b, Mixed_7c, AdaptiveAvgPool2d(1), flattened. ``Inception3.forward`` is
  never called, so torchvision's ``transform_input`` (which ``pretrained=True`` switches on) is never applied, and
  neither dropout nor ``fc`` are; the features are the pooled 2048 values.
- ``core/data_loader.py:123-149`` ``get_eval_loader`` (default ``imagenet_normalize=True``): the PIL image
  (``Image.open(f).convert('RGB')``, line 42) through ``transforms.Resize([img_size, img_size])`` then
  ``transforms.Resize([299, 299])`` (torchvision's default interpolation, bilinear: PIL's own ``resize``, which
  widens its kernel when downscaling, on uint8 RGB, rounded back to uint8 after each step), ``ToTensor`` (/255)
  and ``Normalize`` with the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).

The first resize (to the model's resolution) is the caller's: dataset images are decoded at the model's
resolution with PIL bilinear (a protocol's ``resize_filter``), and generated images already have it. This module
applies the second resize and the normalisation (``stargan-v2`` preprocessing) and runs the network in float32.
The network is torchvision's own ``Inception3`` (``aux_logits=True`` so the official file loads strictly,
``init_weights=False``); weights come from ``unit_eval.weights.feature_nets`` (user-provided, sha256 pinned).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UnitEvalError
from .base import NetworkFeatures, check_state_layout, normalized

INPUT_SIZE = 299
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREPROCESSING = ("stargan-v2",)
_TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
          "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
          "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool")


def build_network() -> torch.nn.Module:
    """torchvision's Inception3 with random (uninitialised) weights, the official file's module layout."""
    import torchvision

    return torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)


def official_layout() -> dict[str, tuple[int, ...]]:
    """Names and shapes of the official ``inception_v3_google-*.pth`` (BatchNorm counters are optional)."""
    return {k: tuple(v.shape) for k, v in build_network().state_dict().items() if not k.endswith("num_batches_tracked")}


def load_network(state: dict[str, torch.Tensor], where: str = "the weights") -> torch.nn.Module:
    """The network with ``state`` loaded strictly, after checking it is the official layout. Files saved before
    BatchNorm counted its batches lack ``num_batches_tracked``, which plays no part in evaluation: zeros stand in."""
    check_state_layout({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, official_layout(),
                       where, "torchvision's ImageNet Inception-V3 layout")
    model = build_network()
    full = {k: state.get(k, v) for k, v in model.state_dict().items()}
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in full.items()}, strict=True)
    return model.eval()


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 B x 3 x H x W -> float32 B x 3 x 299 x 299: PIL bilinear resize of each uint8 image, /255, ImageNet
    mean and std (``transforms.Resize([299, 299])``, ``ToTensor``, ``Normalize`` on a PIL image)."""
    from PIL import Image

    out = []
    for image in images.permute(0, 2, 3, 1).numpy():
        pil = Image.fromarray(np.ascontiguousarray(image), "RGB")
        if pil.size != (INPUT_SIZE, INPUT_SIZE):
            pil = pil.resize((INPUT_SIZE, INPUT_SIZE), resample=Image.BILINEAR)
        out.append(np.asarray(pil))
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div(255)
    return normalized(x, IMAGENET_MEAN, IMAGENET_STD)


class TorchvisionInceptionFeatures(NetworkFeatures):
    """2048-d average-pooled features of torchvision's ImageNet Inception-V3 (StarGAN v2 / GP-UNIT FID)."""

    name = "torchvision-inception"
    feature_dim = 2048
    PREPROCESSING = PREPROCESSING
    layer = "avgpool"

    def __init__(self, state: dict[str, torch.Tensor], weights_sha256: str, where: str = "the weights", **kwargs):
        super().__init__(load_network(state, where), weights_sha256, **kwargs)

    def describe(self) -> str:
        """Also names the weights file by its sha256 prefix: two published files exist (see the weights catalog)."""
        return f"{self.name}-v3/{self.layer}/{self.preprocessing} sha256:{self.weights_sha256[:8]}"

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        return preprocess(images)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in _TRUNK:
            x = getattr(self.model, name)(x)
        if x.shape[1:] != (self.feature_dim, 1, 1):
            raise UnitEvalError(f"torchvision Inception pooled features have shape {tuple(x.shape[1:])}")
        return torch.flatten(x, 1)
