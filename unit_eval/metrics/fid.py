"""Fréchet distance between Gaussians fitted to features (FID, class-wise mFID).

FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^½). The trace term is computed from eigenvalues, in
float64, never with ``scipy.linalg.sqrtm`` (slow, and inaccurate for the rank-deficient covariances that
fewer samples than dimensions give). S1 S2 is not symmetric, so ``eigvalsh(S1 @ S2)`` would be wrong; its
eigenvalues equal those of the symmetric PSD matrix F^T S2 F for any factor S1 = F F^T, whose square
roots we sum.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UnitEvalError


def _as_float64(x, device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=torch.float64)
    return torch.as_tensor(np.asarray(x), dtype=torch.float64, device=device)


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (ddof=1) of an N x D feature matrix, in float64."""
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2:
        raise UnitEvalError(f"features must be an N x D matrix, got shape {feats.shape}")
    if feats.shape[0] < 2:
        raise UnitEvalError(f"FID needs at least 2 images per set, got {feats.shape[0]}")
    if not np.isfinite(feats).all():
        raise UnitEvalError("features contain NaN or infinite values")
    mu = feats.mean(axis=0)
    centered = feats - mu
    sigma = centered.T @ centered / (feats.shape[0] - 1)
    return mu, sigma


def psd_sqrt(sigma, device: str | torch.device = "cpu") -> torch.Tensor:
    """Symmetric square root of a PSD matrix via eigh; tiny negative eigenvalues from rounding become 0."""
    s = _as_float64(sigma, device)
    s = (s + s.T) / 2
    evals, evecs = torch.linalg.eigh(s)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def trace_sqrt_product(sigma1, sigma2, device: str | torch.device = "cpu", sqrt_sigma1=None) -> float:
    """tr((S1 S2)^½) = sum of square roots of the eigenvalues of S1 S2, float64.

    Those eigenvalues are the ones of the symmetric PSD matrix F^T S2 F for any factor S1 = F F^T: the
    Cholesky factor when S1 is positive definite (cheap), else the symmetric square root S1^½ (an eigh).
    ``sqrt_sigma1`` may carry a precomputed ``psd_sqrt(sigma1)`` (a cached real set's).
    """
    s2 = _as_float64(sigma2, device)
    if sqrt_sigma1 is not None:
        factor = _as_float64(sqrt_sigma1, device)
    else:
        s1 = _as_float64(sigma1, device)
        factor, info = torch.linalg.cholesky_ex((s1 + s1.T) / 2)
        if int(info) != 0:  # singular (fewer samples than dimensions): fall back to the PSD square root
            factor = psd_sqrt(s1, device)
    middle = factor.T @ s2 @ factor
    middle = (middle + middle.T) / 2
    evals = torch.linalg.eigvalsh(middle)
    return float(evals.clamp_min(0).sqrt().sum())


def frechet_distance(mu1, sigma1, mu2, sigma2, device: str | torch.device = "cpu", sqrt_sigma1=None) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2); float64 throughout."""
    m1, m2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    s1, s2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (m1.shape[0], m1.shape[0]):
        raise UnitEvalError(f"statistics do not match: mu {m1.shape} vs {m2.shape}, sigma {s1.shape} vs {s2.shape}")
    for name, arr in (("mu1", m1), ("sigma1", s1), ("mu2", m2), ("sigma2", s2)):
        if not np.isfinite(arr).all():
            raise UnitEvalError(f"{name} contains NaN or infinite values")
    diff = m1 - m2
    tr_covmean = trace_sqrt_product(s1, s2, device=device, sqrt_sigma1=sqrt_sigma1)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


class GaussianReference:
    """A real set's Gaussian with a thin factor F of its covariance (S1 = F F^T), built once and reused for
    every fake set (classes, seeds, checkpoints).

    F is the centred features / sqrt(n1 - 1) (D x n1) when n1 < D: exact, no decomposition at all; else the
    Cholesky factor (the PSD square root if S1 is singular). tr((S1 S2)^½) are then the eigenvalues of
    F^T S2 F = Y^T Y with Y = X2c F / sqrt(n2 - 1): Y's singular values when n2 is the smaller side, else the
    eigenvalues of the m x m matrix F^T S2 F.
    """

    def __init__(self, features, device: str | torch.device = "cpu"):
        self.mu, self.sigma = feature_statistics(features)
        self.n, self.dim = np.asarray(features).shape
        self.device = device
        if self.n < self.dim:
            x = _as_float64(features, device)
            self.factor = (x - x.mean(dim=0, keepdim=True)).T / np.sqrt(self.n - 1)
        else:
            s1 = _as_float64(self.sigma, device)
            factor, info = torch.linalg.cholesky_ex(s1)
            self.factor = factor if int(info) == 0 else psd_sqrt(s1, device)

    def trace_sqrt_product(self, features2) -> float:
        x = _as_float64(features2, self.device)
        n2 = x.shape[0]
        y = (x - x.mean(dim=0, keepdim=True)) @ self.factor / np.sqrt(n2 - 1)
        if n2 <= y.shape[1]:
            return float(torch.linalg.svdvals(y).sum())
        middle = y.T @ y
        return float(torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum())

    def fid(self, features2) -> float:
        """FID of N2 x D features against this reference (float64)."""
        mu2, sigma2 = feature_statistics(features2)
        if mu2.shape != self.mu.shape:
            raise UnitEvalError(f"feature dimensions differ: reference {self.mu.shape[0]}, fake {mu2.shape[0]}")
        diff = self.mu - mu2
        return float(diff @ diff + np.trace(self.sigma) + np.trace(sigma2) - 2.0 * self.trace_sqrt_product(features2))


def fid_from_features(real_features, fake_features, device: str | torch.device = "cpu") -> float:
    """FID between two N x D feature matrices."""
    mu1, s1 = feature_statistics(real_features)
    mu2, s2 = feature_statistics(fake_features)
    return frechet_distance(mu1, s1, mu2, s2, device=device)


def class_wise_fid(real_stats: dict, fake_stats: dict, device: str | torch.device = "cpu") -> tuple[float, dict[str, float]]:
    """mFID: the arithmetic mean of per-class FIDs (TUNIT). Each dict maps class -> (mu, sigma).

    Real and fake class sets must be identical: a silently dropped class would change the mean.
    """
    real_classes, fake_classes = set(real_stats), set(fake_stats)
    if real_classes != fake_classes:
        only_real = sorted(real_classes - fake_classes)
        only_fake = sorted(fake_classes - real_classes)
        raise UnitEvalError(f"class sets differ: only in real {only_real}, only in fake {only_fake}")
    if not real_classes:
        raise UnitEvalError("no classes to evaluate")
    per_class = {}
    for cls in sorted(real_classes):
        (mu1, s1), (mu2, s2) = real_stats[cls], fake_stats[cls]
        per_class[cls] = frechet_distance(mu1, s1, mu2, s2, device=device)
    return float(np.mean(list(per_class.values()))), per_class
