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


class Gaussian:
    """A feature set's Gaussian: count ``n``, float64 mean ``mu`` and covariance ``sigma`` (ddof=1), and a factor F
    of the covariance (S = F F^T), built on first use and reused for every set it is compared with (classes,
    seeds, checkpoints): the one statistics type of folder metrics, protocols and the sharded reduction.

    ``Gaussian(features)`` keeps the features when n < D, and F is then the centred features / sqrt(n - 1)
    (D x n): exact, no decomposition at all. Otherwise, and for :meth:`from_moments` (a sharded reduction's
    mean and covariance, features never gathered), F is the Cholesky factor (the PSD square root if S is
    singular). tr((S1 S2)^½) are the square roots of the eigenvalues of F^T S2 F; against features X2 that is
    Y^T Y with Y = X2c F / sqrt(n2 - 1): Y's singular values when n2 is the smaller side.
    """

    def __init__(self, features, device: str | torch.device = "cpu"):
        self.mu, self.sigma = feature_statistics(features)
        self.n, self.dim = np.asarray(features).shape
        self.device = device
        self._features = features if self.n < self.dim else None
        self._factor: torch.Tensor | None = None

    @classmethod
    def from_moments(cls, n: int, mu, sigma, device: str | torch.device = "cpu") -> "Gaussian":
        """From a count, mean and covariance (e.g. reduced over ranks); checked like ``feature_statistics``'."""
        obj = cls.__new__(cls)
        obj.mu, obj.sigma = np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64)
        if obj.mu.ndim != 1 or obj.sigma.shape != (obj.mu.shape[0],) * 2:
            raise UnitEvalError(f"statistics do not match: mu {obj.mu.shape}, sigma {obj.sigma.shape}")
        if int(n) < 2:
            raise UnitEvalError(f"FID needs at least 2 images per set, got {n}")
        if not (np.isfinite(obj.mu).all() and np.isfinite(obj.sigma).all()):
            raise UnitEvalError("statistics contain NaN or infinite values")
        obj.n, obj.dim, obj.device = int(n), obj.mu.shape[0], device
        obj._features, obj._factor = None, None
        return obj

    @property
    def factor(self) -> torch.Tensor:
        if self._factor is None:
            if self._features is not None:
                x = _as_float64(self._features, self.device)
                self._factor = (x - x.mean(dim=0, keepdim=True)).T / np.sqrt(self.n - 1)
            else:
                s1 = _as_float64(self.sigma, self.device)
                factor, info = torch.linalg.cholesky_ex(s1)
                self._factor = factor if int(info) == 0 else psd_sqrt(s1, self.device)
        return self._factor

    def trace_sqrt_product(self, other) -> float:
        """tr((S1 S2)^½) against N2 x D features or another :class:`Gaussian`."""
        if isinstance(other, Gaussian):
            s2 = _as_float64(other.sigma, self.device)
            middle = self.factor.T @ s2 @ self.factor
            return float(torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum())
        x = _as_float64(other, self.device)
        n2 = x.shape[0]
        y = (x - x.mean(dim=0, keepdim=True)) @ self.factor / np.sqrt(n2 - 1)
        if n2 <= y.shape[1]:
            return float(torch.linalg.svdvals(y).sum())
        middle = y.T @ y
        return float(torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum())

    def fid(self, other) -> float:
        """FID of ``other`` (N2 x D features, or a :class:`Gaussian`) against this one, float64."""
        if isinstance(other, Gaussian):
            mu2, sigma2 = other.mu, other.sigma
        else:
            mu2, sigma2 = feature_statistics(other)
        if mu2.shape != self.mu.shape:
            raise UnitEvalError(f"feature dimensions differ: reference {self.mu.shape[0]}, fake {mu2.shape[0]}")
        diff = self.mu - mu2
        return float(diff @ diff + np.trace(self.sigma) + np.trace(sigma2) - 2.0 * self.trace_sqrt_product(other))


def fid_from_features(real_features, fake_features, device: str | torch.device = "cpu") -> float:
    """FID between two N x D feature matrices."""
    mu1, s1 = feature_statistics(real_features)
    mu2, s2 = feature_statistics(fake_features)
    return frechet_distance(mu1, s1, mu2, s2, device=device)


def class_wise_fid(real: dict[str, Gaussian], fake: dict, device: str | torch.device = "cpu") -> tuple[float, dict[str, float]]:
    """mFID: the arithmetic mean of per-class FIDs (TUNIT), the one implementation folder commands and protocols
    share. ``real`` maps class -> :class:`Gaussian`; ``fake`` maps class -> :class:`Gaussian` or N x D features.
    Per-class values come back in sorted class order.

    Real and fake class sets must be identical: a silently dropped class would change the mean.
    """
    real_classes, fake_classes = set(real), set(fake)
    if real_classes != fake_classes:
        only_real = sorted(real_classes - fake_classes)
        only_fake = sorted(fake_classes - real_classes)
        raise UnitEvalError(f"class sets differ: only in real {only_real}, only in fake {only_fake}")
    if not real_classes:
        raise UnitEvalError("no classes to evaluate")
    per_class = {cls: real[cls].fid(fake[cls]) for cls in sorted(real_classes)}
    return float(np.mean(list(per_class.values()))), per_class
