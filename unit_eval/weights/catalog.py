"""The package's vocabulary: which weights there are, what users' files for them are called and pinned to,
and where unit-eval keeps them.

Data and trivial helpers only, shared by ``sources`` (which file to use) and ``artifacts`` (the registry
packages); it imports nothing from the package, so neither has to import the other to know a name or a folder.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from ..cache import cache_dir
from ..errors import UnitEvalError

NAMES: tuple[str, ...] = ("inception", "lpips-alex", "lpips-vgg")

ENV_VARS: dict[str, str] = {
    "inception": "UNIT_EVAL_INCEPTION_WEIGHTS",
    "lpips-alex": "UNIT_EVAL_LPIPS_ALEX_WEIGHTS",
    "lpips-vgg": "UNIT_EVAL_LPIPS_VGG_WEIGHTS",
    "dinov2-vitl14": "UNIT_EVAL_DINOV2_VITL14_WEIGHTS",
    "dinov2-vitb14": "UNIT_EVAL_DINOV2_VITB14_WEIGHTS",
    "clip-vitl14-336": "UNIT_EVAL_CLIP_VITL14_336_WEIGHTS",
    "torchvision-inception": "UNIT_EVAL_TORCHVISION_INCEPTION_WEIGHTS",
}

# Published file names; the 8 hex digits before ".pth" are the start of the file's sha256 (torch hub's rule).
OFFICIAL_FILES: dict[str, tuple[str, ...]] = {
    "inception": ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth"),
    "lpips-alex": ("alexnet-owt-7be5be79.pth",),
    "lpips-vgg": ("vgg16-397923af.pth",),
}

# The sha256 (or, where only that is known, its start) that any user-provided file for each weight must
# have, whatever its name. Inception: the full digest of the official file (95,628,359 bytes; pytorch-fid's
# and torch-fidelity's copies are the same file), as recorded by several independent projects and
# consistent with the published prefix. AlexNet, VGG16: only the published 8-digit prefixes.
OFFICIAL_SHA256: dict[str, tuple[str, ...]] = {
    "inception": ("6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",),
    "lpips-alex": ("7be5be79",),
    "lpips-vgg": ("397923af",),
}

LABELS: dict[str, str] = {
    "inception": "FID Inception-V3",
    "lpips-alex": "LPIPS AlexNet",
    "lpips-vgg": "LPIPS VGG16",
    "dinov2-vitl14": "DINOv2 ViT-L/14",
    "dinov2-vitb14": "DINOv2 ViT-B/14",
    "clip-vitl14-336": "CLIP ViT-L/14@336px",
    "torchvision-inception": "torchvision ImageNet Inception-V3",
}


@dataclasses.dataclass(frozen=True)
class FeatureNet:
    """The official file of a feature network that unit-eval cannot download: the user provides it, and it is
    used only when its sha256 starts with one of ``sha256`` (full digests, whatever the file is called; an 8-hex
    entry is the most that is published for that file: the prefix torch hub itself checks)."""

    files: tuple[str, ...]
    sha256: tuple[str, ...]
    url: str
    size: int | None = None


# Feature networks beyond Inception (``unit_eval.extractors``), each an official file used as is.
# DINOv2: the backbones torch hub's ``facebookresearch/dinov2`` loads (``dinov2/hub/backbones.py``:
# ``_DINOV2_BASE_URL/<name>/<name>_pretrain.pth``); their full sha256 (and the ViT-L/14 size) as recorded by
# several independent projects that pin them (Meta publishes no digest). CLIP: OpenAI's TorchScript archive,
# whose URL carries its full sha256 (openai/CLIP ``clip/clip.py``, checked by OpenAI's own loader and by
# scenic's ``download.py``, which CMMD uses).
FEATURE_NETS: dict[str, FeatureNet] = {
    "dinov2-vitl14": FeatureNet(
        ("dinov2_vitl14_pretrain.pth",),
        ("d5383ea8f4877b2472eb973e0fd72d557c7da5d3611bd527ceeb1d7162cbf428",),
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth", 1_217_586_395),
    "dinov2-vitb14": FeatureNet(
        ("dinov2_vitb14_pretrain.pth",),
        ("0b8b82f85de91b424aded121c7e1dcc2b7bc6d0adeea651bf73a13307fad8c73",),
        "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitb14/dinov2_vitb14_pretrain.pth"),
    "clip-vitl14-336": FeatureNet(
        ("ViT-L-14-336px.pt",),
        ("3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",),
        "https://openaipublic.azureedge.net/clip/models/"
        "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt"),
    # torchvision's ImageNet Inception-V3 (StarGAN v2's and GP-UNIT's FID network, ``inception_v3(pretrained=True)``).
    # Current torchvision downloads inception_v3_google-0cc3c7bd.pth: no full digest of it is published or could
    # be found, so only the 8-hex prefix torch hub checks (``check_hash``) is pinned. Older releases (StarGAN v2's
    # environment pins torchvision 0.5.0) download inception_v3_google-1a9a5a14.pth, whose full sha256 and size
    # OpenVINO's open_model_zoo records (models/public/googlenet-v3-pytorch/model.yml). Which file a row used is
    # in its ``extractor``; that the two hold the same tensors is not verified here.
    "torchvision-inception": FeatureNet(
        ("inception_v3_google-0cc3c7bd.pth", "inception_v3_google-1a9a5a14.pth"),
        ("0cc3c7bd", "1a9a5a14f40645a370184bd54f4e8e631351e71399112b43ad0294a79da290c8"),
        "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"),
}


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise UnitEvalError(f"unknown weights {name!r}; choose from {', '.join(NAMES)}")


def _weights_dir() -> Path:
    return cache_dir() / "weights"


def _downloads_dir() -> Path:
    return cache_dir() / "downloads"


def _hub_checkpoints_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _say(message: str) -> None:
    print(f"unit-eval: {message}", file=sys.stderr, flush=True)
