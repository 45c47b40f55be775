"""LPIPS distances (paired) and LPIPS diversity (StarGAN v2 / GP-UNIT), given a loaded LPIPS network.

Images are float tensors in [-1, 1] (x / 127.5 - 1), B x 3 x H x W. The network comes from
``unit_eval.weights.load_lpips``; these functions never build or move networks themselves.
"""
from __future__ import annotations

from itertools import combinations

import torch

from ..errors import UnitEvalError


def _check_images(x: torch.Tensor, name: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise UnitEvalError(f"{name} must be B x 3 x H x W, got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise UnitEvalError(f"{name} contains NaN or infinite values")


@torch.no_grad()
def lpips_pairs(net, a: torch.Tensor, b: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Per-pair LPIPS distance d(a_i, b_i) as a float64 CPU vector of length B."""
    _check_images(a, "first images")
    _check_images(b, "second images")
    if a.shape != b.shape:
        raise UnitEvalError(f"paired images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    device = next(net.parameters()).device
    out = []
    for start in range(0, a.shape[0], batch_size):
        x = a[start : start + batch_size].to(device, torch.float32)
        y = b[start : start + batch_size].to(device, torch.float32)
        out.append(net(x, y, normalize=False).reshape(-1).double().cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


@torch.no_grad()
def lpips_diversity(net, outputs: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Mean LPIPS over all unordered pairs of the G outputs of each input.

    ``outputs`` is N x G x 3 x H x W (N inputs, G >= 2 outputs each). Returns the N per-input means
    (float64); the protocol's score is their mean (StarGAN v2: mean over the 45 pairs of 10 outputs,
    then over inputs).
    """
    if outputs.ndim != 5 or outputs.shape[1] < 2:
        raise UnitEvalError(f"diversity needs N x G x 3 x H x W outputs with G >= 2, got {tuple(outputs.shape)}")
    n, g = outputs.shape[:2]
    pairs = list(combinations(range(g), 2))
    first = outputs[:, [i for i, _ in pairs]].reshape(n * len(pairs), *outputs.shape[2:])
    second = outputs[:, [j for _, j in pairs]].reshape(n * len(pairs), *outputs.shape[2:])
    return lpips_pairs(net, first, second, batch_size).reshape(n, len(pairs)).mean(dim=1)
