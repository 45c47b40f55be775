"""The package's vocabulary: which weights there are, what users' files for them are called and pinned to,
and where unit-eval keeps them.

Data and trivial helpers only, shared by ``sources`` (which file to use) and ``artifacts`` (the registry
packages); it imports nothing from the package, so neither has to import the other to know a name or a folder.
"""
from __future__ import annotations

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
