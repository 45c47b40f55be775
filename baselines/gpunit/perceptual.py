"""GP-UNIT's perceptual loss (model/vgg.py:6-60): L1 between VGG19 features relu1_1, relu2_1, relu3_1, relu4_1,
relu5_1 of the two images (ImageNet-normalised from [-1, 1]), each weighted 0.3, the target's detached.

The weights are torchvision's ImageNet VGG19 file ``vgg19-dcbb9e9d.pth`` (what ``torchvision.models.vgg19(
pretrained=True)`` loads, vgg.py:9), which unit-eval cannot download. It is looked for, in order, at the
``vgg19`` config key (``--set vgg19=FILE``), ``$UNIT_EVAL_VGG19_WEIGHTS``, then under its published name in
``<cache>/weights/``, ``<cache>/`` and torch hub's ``checkpoints`` folder. Like the LPIPS trunks
(``unit_eval.weights``), only the published 8-hex-digit prefix of its sha256 is known here (torch hub's
naming rule); the file is read weights-only and its layout checked tensor by tensor.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from unit_eval.cache import cache_dir, sha256_file
from unit_eval.errors import UnitEvalError
from unit_eval.weights.safe_load import load_weights_only

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_SHA256_PREFIX = "dcbb9e9d"
ENV_VAR = "UNIT_EVAL_VGG19_WEIGHTS"
# VGG19 ``features`` indices of the convolutions up to conv5_1, and the ReLU outputs used (relu1_1 .. relu5_1)
CONVS = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28)
CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
TAPS = (1, 6, 11, 20, 29)
LAYER_WEIGHTS = (0.3, 0.3, 0.3, 0.3, 0.3)


def how_to_provide() -> str:
    return (f"download torchvision's {VGG19_FILE} (https://download.pytorch.org/models/{VGG19_FILE}) and pass "
            f"--set vgg19=FILE or set {ENV_VAR}=FILE, or train with --set vgg_w=0 (no perceptual term)")


def find_weights(path: str | None) -> Path:
    """The VGG19 file to use, or a one-line error saying how to provide it."""
    if path:
        return Path(path).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    for folder in (cache_dir() / "weights", cache_dir(), Path(torch.hub.get_dir()) / "checkpoints"):
        if (folder / VGG19_FILE).is_file():
            return folder / VGG19_FILE
    raise UnitEvalError(f"gpunit's perceptual loss needs VGG19 ImageNet weights (unit-eval cannot download them): {how_to_provide()}")


class VGG19Features(nn.Module):
    """``torchvision.models.vgg19().features[:30]`` (to relu5_1), frozen; returns the five tapped ReLU outputs."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]
                cin = v
        self.features = nn.Sequential(*layers[:TAPS[-1] + 1])
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 2 - 1, persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 2, persistent=False)
        self.requires_grad_(False)

    def forward(self, x):
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                out.append(x)
        return out


def load_vgg19(path: str | None, device: torch.device, check_pin: bool = True) -> VGG19Features:
    file = find_weights(path)
    if not file.is_file():
        raise UnitEvalError(f"VGG19 weights {file} is not a file; {how_to_provide()}")
    digest = sha256_file(file)
    if check_pin and not digest.startswith(VGG19_SHA256_PREFIX):
        raise UnitEvalError(f"{file.name} has sha256 {digest[:16]}..., not that of torchvision's {VGG19_FILE}; {how_to_provide()}")
    state = load_weights_only(file, "{path} is not a loadable VGG19 weights file (weights_only=True: {reason})")
    net = VGG19Features()
    wanted = {f"features.{i}.{p}": net.features[i]._parameters[p].shape for i in CONVS for p in ("weight", "bias")}
    if not isinstance(state, dict) or any(k not in state or tuple(state[k].shape) != tuple(s) for k, s in wanted.items()):
        raise UnitEvalError(f"{file} does not hold torchvision VGG19 features (features.0 .. features.28 weights)")
    net.load_state_dict({k: state[k] for k in wanted})
    return net.to(device).eval()


def vgg_loss(vgg: VGG19Features, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    fx, fy = vgg(x), vgg(y)
    return sum(w * F.l1_loss(a.float(), b.detach().float()) for w, a, b in zip(LAYER_WEIGHTS, fx, fy))
