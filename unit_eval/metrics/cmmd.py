"""CMMD (Jayasumana et al., "Rethinking FID", CVPR 2024): MMD with a Gaussian RBF kernel on CLIP embeddings.

As google-research ``cmmd/distance.py`` (``mmd``) computes it: ``sigma = 10`` (``_SIGMA``), ``gamma = 1 / (2
sigma^2)``, the kernel ``exp(-gamma * (|x|^2 + |y|^2 - 2 x.y))`` with the squared norms taken from the Gram
matrices' diagonals, and the minimum-variance (biased, V-statistic) estimate: plain means over all pairs, the
diagonal included, ``k_xx + k_yy - 2 k_xy``, times ``_SCALE = 1000``. The two sets may differ in size. The
reference runs in JAX's float32; this runs in float64, blockwise (never holding an N x N matrix).

FD_DINOv2 needs no function of its own: it is :func:`unit_eval.metrics.fid.fid_from_features` (the Fréchet
distance of the two Gaussians, unbiased covariances) on DINOv2 features, as EDM2's
``calculate_metrics_from_stats`` and dgm-eval's ``compute_FD_with_reps`` compute it.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnitEvalError

SIGMA = 10.0
SCALE = 1000.0
_BLOCK = 2048


def _mean_kernel(a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray, gamma: float) -> float:
    total = 0.0
    for i in range(0, a.shape[0], _BLOCK):
        for j in range(0, b.shape[0], _BLOCK):
            d2 = a_sq[i:i + _BLOCK, None] + b_sq[None, j:j + _BLOCK] - 2.0 * (a[i:i + _BLOCK] @ b[j:j + _BLOCK].T)
            total += float(np.exp(-gamma * d2).sum())
    return total / (a.shape[0] * b.shape[0])


def cmmd(x, y, sigma: float = SIGMA, scale: float = SCALE) -> float:
    """CMMD between embedding sets ``x`` (N x D) and ``y`` (M x D), as the reference (biased MMD^2 estimate)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise UnitEvalError(f"CMMD needs two N x D embedding matrices of the same D, got {x.shape} and {y.shape}")
    if x.shape[0] < 1 or y.shape[0] < 1:
        raise UnitEvalError("CMMD needs at least one embedding in each set")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise UnitEvalError("CMMD embeddings contain NaN or infinite values")
    if sigma <= 0:
        raise UnitEvalError(f"the kernel bandwidth must be positive, got {sigma}")
    gamma = 1.0 / (2.0 * sigma ** 2)
    x_sq, y_sq = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)
    k_xx = _mean_kernel(x, x, x_sq, x_sq, gamma)
    k_yy = _mean_kernel(y, y, y_sq, y_sq, gamma)
    k_xy = _mean_kernel(x, y, x_sq, y_sq, gamma)
    return scale * (k_xx + k_yy - 2.0 * k_xy)
