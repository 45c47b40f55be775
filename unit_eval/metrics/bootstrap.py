"""Bootstrap intervals for FID, mFID, KID and D&C: resample the fake features (and optionally the real ones) with
replacement, recompute the metric, report the percentile interval of the replicates shifted by their bias
(:func:`interval`) and the replicates' standard deviation.

Every resample is a vector of counts ``w`` (how often each fake is drawn; ``sum(w) = n``), drawn from a seeded
generator, so intervals are reproducible. What makes 1000 resamples of a 2048-d FID practical on a CPU:

* FID against a fixed real set reuses the real Gaussian's factor F (S_real = F F^T, computed once, as for the
  value itself). With Z = X F (X the fake features), everything a resample needs is a weighted function of
  the Gram matrices G = Z Z^T and H = X X^T: |mu_r - mu_w|^2, tr(S_w), and tr((S_r S_w)^½) = the sum of square
  roots of the eigenvalues of diag(√w) (G centred with weights w) diag(√w) / (n - 1), restricted to the
  drawn rows: an eigendecomposition of at most n x n (about 0.63 n rows), never of D x D. With more fakes than
  F has columns, the D x D form F^T S_w F is used instead.
* D&C: the real k-NN radii and which real balls hold which fake are computed once (as prdc computes them);
  a resample's density and precision are then weighted means and its coverage an ``any`` over the drawn rows.
  Recall needs the k-NN radii of the resampled fakes, which duplicates make meaningless: it gets no interval.
* KID: the Gram matrices are computed once (:class:`~unit_eval.metrics.kid.KernelSets`) and each resample's
  subsets index them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import UnitEvalError
from .fid import Gaussian

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    resamples: int
    std: float  # of the replicates: the bootstrap standard error

    def fields(self) -> dict:
        """What a result row records (:func:`unit_eval.results.make_row`)."""
        return {"ci_low": self.low, "ci_high": self.high, "ci_level": self.level, "bootstrap": self.resamples,
                "bootstrap_std": self.std}


def check_resamples(resamples: int, level: float = LEVEL) -> None:
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 2:
        raise UnitEvalError(f"--bootstrap needs at least 2 resamples, got {resamples!r}")
    if not 0 < level < 1:
        raise UnitEvalError(f"the confidence level must lie strictly between 0 and 1, got {level!r}")


def interval(replicates, value: float, level: float = LEVEL) -> Interval:
    """The percentile interval of bootstrap replicates, shifted by the bootstrap estimate of bias
    (mean of the replicates - ``value``).

    The shift matters here: a resample holds about 63 % distinct fakes, and FID (biased upwards as sets shrink),
    KID's U-statistic (a duplicated fake pairs with itself) and coverage all move with that, so the plain
    percentile interval of FID can lie entirely above the value it should surround. The width (the sampling
    noise) is the replicates'; the centre is moved back to the value."""
    values = np.asarray(replicates, dtype=np.float64)
    bias = float(values.mean()) - float(value)
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)]) - bias
    return Interval(float(low), float(high), float(level), int(values.size), float(values.std(ddof=1)))


def resample_counts(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``resamples`` x ``n`` draw counts: row b says how often each item is in resample b."""
    out = np.empty((resamples, n), dtype=np.int64)
    for b in range(resamples):
        out[b] = np.bincount(rng.integers(0, n, size=n), minlength=n)
    return out


def counts_to_index(counts: np.ndarray) -> np.ndarray:
    """The indices of a resample (each item repeated as often as drawn)."""
    return np.repeat(np.arange(counts.size), counts)


class FakeFID:
    """FIDs of weighted resamples of ``fake`` against a fixed real :class:`Gaussian` (module docstring)."""

    def __init__(self, real: Gaussian, fake):
        self.real = real
        x = torch.as_tensor(np.asarray(fake, dtype=np.float64))
        if x.ndim != 2 or x.shape[1] != real.dim:
            raise UnitEvalError(f"fake features must be N x {real.dim}, got shape {tuple(x.shape)}")
        if x.shape[0] < 2:
            raise UnitEvalError(f"FID needs at least 2 images per set, got {x.shape[0]}")
        self.n = x.shape[0]
        factor = real.factor.to(device="cpu", dtype=torch.float64)
        mu1 = torch.as_tensor(real.mu, dtype=torch.float64)
        self.z = x @ factor
        self.gram_path = self.n <= factor.shape[1]
        self.h = x @ x.T if self.gram_path else None
        self.x = x
        self.p = x @ mu1
        self.mu1_sq = float(mu1 @ mu1)
        self.tr1 = float(np.trace(real.sigma))
        self.g = self.z @ self.z.T if self.gram_path else None

    def fid(self, counts: np.ndarray) -> float:
        n = self.n
        w = torch.as_tensor(counts, dtype=torch.float64)
        if self.gram_path:
            keep = torch.nonzero(w > 0).flatten()
            wk = w[keep]
            h = self.h[keep][:, keep]
            g = self.g[keep][:, keep]
            hw, gw = h @ wk, g @ wk
            mu2_sq = float(wk @ hw) / n ** 2
            mean_term = self.mu1_sq - 2 * float(wk @ self.p[keep]) / n + mu2_sq
            tr2 = (float(wk @ torch.diagonal(h)) - n * mu2_sq) / (n - 1)
            a = gw / n
            c = float(wk @ gw) / n ** 2
            centred = g - a[:, None] - a[None, :] + c
            s = wk.sqrt()
            middle = centred * s[:, None] * s[None, :] / (n - 1)
        else:
            mu2 = (w @ self.x) / n
            mean_term = self.mu1_sq - 2 * float(w @ self.p) / n + float(mu2 @ mu2)
            tr2 = (float(w @ (self.x * self.x).sum(1)) - n * float(mu2 @ mu2)) / (n - 1)
            m = (w @ self.z) / n
            middle = ((self.z * w[:, None]).T @ self.z - n * torch.outer(m, m)) / (n - 1)
        evals = torch.linalg.eigvalsh((middle + middle.T) / 2)
        return float(mean_term + self.tr1 + tr2 - 2 * evals.clamp_min(0).sqrt().sum())


def _replicates(resamples: int, rng: np.random.Generator, n: int, one: Callable[[np.ndarray], float]) -> np.ndarray:
    return np.array([one(resample_counts(n, 1, rng)[0]) for _ in range(resamples)])


def fid_replicates(real: Gaussian, fake, resamples: int, rng: np.random.Generator,
                   real_features=None) -> np.ndarray:
    """FID of ``resamples`` bootstrap resamples of ``fake``; with ``real_features`` the real set is resampled
    too (independently; each resample then builds its own real Gaussian, slower)."""
    if real_features is None:
        route = FakeFID(real, fake)
        return _replicates(resamples, rng, route.n, route.fid)
    fake, real_features = np.asarray(fake, dtype=np.float64), np.asarray(real_features, dtype=np.float64)
    out = np.empty(resamples)
    for b in range(resamples):
        fake_idx = counts_to_index(resample_counts(len(fake), 1, rng)[0])
        real_idx = counts_to_index(resample_counts(len(real_features), 1, rng)[0])
        out[b] = Gaussian(real_features[real_idx]).fid(fake[fake_idx])
    return out


def kid_replicates(kernels, resamples: int, rng: np.random.Generator, *, subsets: int, subset_size: int, seed: int,
                   resample_real: bool = False) -> np.ndarray:
    """KID means of bootstrap resamples (``kernels``: a :class:`~unit_eval.metrics.kid.KernelSets`)."""
    out = np.empty(resamples)
    for b in range(resamples):
        fx = counts_to_index(resample_counts(len(kernels.x), 1, rng)[0])
        ry = counts_to_index(resample_counts(len(kernels.y), 1, rng)[0]) if resample_real else None
        out[b] = kernels.kid(subsets, subset_size, seed, fake_index=fx, real_index=ry).mean
    return out


class FakePRDC:
    """Density, coverage and precision of weighted resamples of the fakes against fixed real k-NN balls."""

    def __init__(self, real, fake, k: int):
        from sklearn.metrics import pairwise_distances

        from .prdc import knn_radii

        real = np.asarray(real, dtype=np.float64)
        fake = np.asarray(fake, dtype=np.float64)
        radii = np.asarray(knn_radii(real, k), dtype=np.float64)
        self.k, self.n = k, len(fake)
        inside = np.zeros((len(fake), len(real)), dtype=bool)
        for start in range(0, len(fake), 512):
            block = pairwise_distances(fake[start:start + 512], real)
            inside[start:start + 512] = block < radii[None, :]
        self.inside = inside
        self.balls = inside.sum(axis=1)          # real balls holding each fake
        self.in_any = inside.any(axis=1)

    def scores(self, counts: np.ndarray) -> dict[str, float]:
        w = np.asarray(counts, dtype=np.float64)
        drawn = counts > 0
        return {"density": float(w @ self.balls) / (self.k * self.n),
                "coverage": float(self.inside[drawn].any(axis=0).mean()),
                "precision": float(w @ self.in_any) / self.n}


def prdc_replicates(real, fake, k: int, resamples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    route = FakePRDC(real, fake, k)
    draws = [route.scores(resample_counts(route.n, 1, rng)[0]) for _ in range(resamples)]
    return {m: np.array([d[m] for d in draws]) for m in ("density", "coverage", "precision")}
