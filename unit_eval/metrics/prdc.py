"""Precision, recall, density and coverage with prdc's exact semantics, in bounded memory.

Semantics of ``prdc.compute_prdc`` (Naeem et al. 2020): Euclidean distances; a point's radius is the
distance to its k-th nearest neighbour counting itself (so the (k+1)-th smallest, self = 0); membership
of a ball is strict ``<``. Density = (1/k) * mean over fakes of the number of real balls containing it
(can exceed 1); coverage = fraction of reals whose nearest fake lies inside that real's ball.
prdc builds full N x M float matrices; here distances are computed in row blocks, so 50k x 50k needs
only ``block_rows`` x max(N, M) float64 values at a time. Pass real features first (prdc's order).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UnitEvalError

DEFAULT_K = 5  # the D&C paper and prdc's README use k=5; prdc itself has no default


def _pairwise_distances(x: torch.Tensor, y: torch.Tensor, y_sq: torch.Tensor) -> torch.Tensor:
    # Same expansion as sklearn's euclidean_distances: sqrt(max(|x|^2 - 2 x.y + |y|^2, 0)), float64.
    x_sq = (x * x).sum(dim=1, keepdim=True)
    d2 = x_sq - 2.0 * (x @ y.T) + y_sq[None, :]
    return d2.clamp_min_(0).sqrt_()


def _block_rows(n_cols: int, memory_bytes: int) -> int:
    return max(1, min(8192, memory_bytes // (8 * max(n_cols, 1) * 3)))


def knn_radii(features: torch.Tensor, k: int, memory_bytes: int = 256 << 20) -> torch.Tensor:
    """Distance of each row to its k-th nearest neighbour, counting itself (prdc's radius)."""
    n = features.shape[0]
    sq = (features * features).sum(dim=1)
    radii = torch.empty(n, dtype=torch.float64, device=features.device)
    step = _block_rows(n, memory_bytes)
    for start in range(0, n, step):
        block = features[start : start + step]
        dist = _pairwise_distances(block, features, sq)
        # sklearn sets self-distances to exactly 0 when X is Y; match it.
        rows = torch.arange(block.shape[0], device=features.device)
        dist[rows, rows + start] = 0.0
        radii[start : start + step] = torch.topk(dist, k + 1, dim=1, largest=False).values[:, -1]
    return radii


def compute_prdc(
    real_features,
    fake_features,
    k: int = DEFAULT_K,
    device: str | torch.device = "cpu",
    memory_bytes: int = 256 << 20,
) -> dict[str, float]:
    """Precision, recall, density, coverage of fake features against real features (prdc semantics)."""
    real = torch.as_tensor(np.asarray(real_features), dtype=torch.float64, device=device)
    fake = torch.as_tensor(np.asarray(fake_features), dtype=torch.float64, device=device)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise UnitEvalError(f"feature shapes do not match: real {tuple(real.shape)}, fake {tuple(fake.shape)}")
    if k < 1:
        raise UnitEvalError(f"k must be at least 1, got {k}")
    for name, feats in (("real", real), ("fake", fake)):
        if feats.shape[0] <= k:
            raise UnitEvalError(f"density & coverage with k={k} need more than {k} {name} samples, got {feats.shape[0]}")
        if not torch.isfinite(feats).all():
            raise UnitEvalError(f"{name} features contain NaN or infinite values")

    real_radii = knn_radii(real, k, memory_bytes)
    fake_radii = knn_radii(fake, k, memory_bytes)
    fake_sq = (fake * fake).sum(dim=1)

    n_real, n_fake = real.shape[0], fake.shape[0]
    balls_containing_fake = torch.zeros(n_fake, dtype=torch.float64, device=device)
    fake_in_some_real_ball = torch.zeros(n_fake, dtype=torch.bool, device=device)
    real_in_some_fake_ball = torch.zeros(n_real, dtype=torch.bool, device=device)
    real_nearest_fake = torch.empty(n_real, dtype=torch.float64, device=device)

    step = _block_rows(n_fake, memory_bytes)
    for start in range(0, n_real, step):
        block = real[start : start + step]
        dist = _pairwise_distances(block, fake, fake_sq)  # rows: reals, cols: fakes
        inside_real = dist < real_radii[start : start + step, None]
        balls_containing_fake += inside_real.sum(dim=0, dtype=torch.float64)
        fake_in_some_real_ball |= inside_real.any(dim=0)
        real_in_some_fake_ball[start : start + step] = (dist < fake_radii[None, :]).any(dim=1)
        real_nearest_fake[start : start + step] = dist.min(dim=1).values

    return {
        "precision": float(fake_in_some_real_ball.double().mean()),
        "recall": float(real_in_some_fake_ball.double().mean()),
        "density": float(balls_containing_fake.mean() / k),
        "coverage": float((real_nearest_fake < real_radii).double().mean()),
    }
