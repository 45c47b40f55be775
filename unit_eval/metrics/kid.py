"""Kernel Inception Distance (Bińkowski et al. 2018) as torch-fidelity computes it (``metric_kid.py``, 0.4.0).

KID = mean over ``subsets`` random subsets of the unbiased MMD² between the two sets, under the polynomial kernel
k(x, y) = (gamma x·y + coef0)^degree with degree 3, gamma 1/D, coef0 1; the reported std is ``np.std`` (ddof 0) of
the subset values. Subsets are drawn as torch-fidelity draws them: ``np.random.RandomState(seed)``, then for each
subset ``choice(n1, m, replace=False)`` from the first set and ``choice(n2, m, replace=False)`` from the second,
in that order; torch-fidelity's first input is the generated set, so :func:`kid` takes ``fake`` first.

One difference, by design: torch-fidelity refuses sets smaller than the subset size (1000); here the subset size
is ``min(subset_size, n1, n2)`` (translation test sets hold a few hundred images per class), recorded in every
result. With equal sizes at or above 1000 the numbers are torch-fidelity's.

Speed: the three Gram matrices of the whole sets are computed once (float64) and each subset only indexes them,
instead of three kernel products per subset; the sums each subset needs are the same, so the values agree with
torch-fidelity's to float64 rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnitEvalError

SUBSETS = 100
SUBSET_SIZE = 1000
SEED = 2020  # torch-fidelity's default rng_seed
DEGREE, COEF0 = 3, 1.0
_GRAM_LIMIT = 6000 ** 2  # beyond this many entries per Gram matrix, kernels are computed per subset


@dataclass(frozen=True)
class KID:
    mean: float
    std: float
    subsets: int
    subset_size: int


def _checked(x, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise UnitEvalError(f"{what} features must be an N x D matrix, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise UnitEvalError(f"KID needs at least 2 images per set, got {arr.shape[0]} {what}")
    if not np.isfinite(arr).all():
        raise UnitEvalError(f"{what} features contain NaN or infinite values")
    return arr


def polynomial_kernel(x: np.ndarray, y: np.ndarray, gamma: float | None = None) -> np.ndarray:
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + COEF0) ** DEGREE


def mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    """torch-fidelity's ``mmd2(..., mmd_est="unbiased")``: off-diagonal within-set means, full cross mean."""
    m = k_xx.shape[0]
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def subset_indices(n1: int, n2: int, subsets: int, size: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (first-set, second-set) index pairs torch-fidelity draws, in its order."""
    rng = np.random.RandomState(seed)
    return [(rng.choice(n1, size, replace=False), rng.choice(n2, size, replace=False)) for _ in range(subsets)]


class KernelSets:
    """The Gram matrices of two feature sets, computed once; :meth:`kid` of any index selection (subsets,
    bootstrap resamples) only indexes them."""

    def __init__(self, fake, real, gamma: float | None = None):
        self.x, self.y = _checked(fake, "fake"), _checked(real, "real")
        if self.x.shape[1] != self.y.shape[1]:
            raise UnitEvalError(f"feature dimensions differ: fake {self.x.shape[1]}, real {self.y.shape[1]}")
        self.gamma = gamma
        n1, n2 = len(self.x), len(self.y)
        self.full = max(n1, n2) ** 2 <= _GRAM_LIMIT
        if self.full:
            self.k_xx = polynomial_kernel(self.x, self.x, gamma)
            self.k_yy = polynomial_kernel(self.y, self.y, gamma)
            self.k_xy = polynomial_kernel(self.x, self.y, gamma)

    def mmd2(self, ix: np.ndarray, iy: np.ndarray) -> float:
        if self.full:
            return mmd2_unbiased(self.k_xx[np.ix_(ix, ix)], self.k_xy[np.ix_(ix, iy)], self.k_yy[np.ix_(iy, iy)])
        x, y = self.x[ix], self.y[iy]
        g = self.gamma
        return mmd2_unbiased(polynomial_kernel(x, x, g), polynomial_kernel(x, y, g), polynomial_kernel(y, y, g))

    def kid(self, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE, seed: int = SEED,
            fake_index: np.ndarray | None = None, real_index: np.ndarray | None = None) -> KID:
        """KID of the sets (or of the rows ``fake_index`` / ``real_index`` of them, e.g. a bootstrap resample)."""
        fx = np.arange(len(self.x)) if fake_index is None else np.asarray(fake_index)
        ry = np.arange(len(self.y)) if real_index is None else np.asarray(real_index)
        size = min(int(subset_size), len(fx), len(ry))
        if subsets < 1 or size < 2:
            raise UnitEvalError(f"KID needs at least 1 subset of at least 2 images, got {subsets} of {size}")
        values = np.array([self.mmd2(fx[a], ry[b]) for a, b in subset_indices(len(fx), len(ry), subsets, size, seed)])
        return KID(float(values.mean()), float(values.std()), int(subsets), size)


def kid(fake, real, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE, seed: int = SEED,
        gamma: float | None = None) -> KID:
    """KID of ``fake`` against ``real`` (N x D features each), torch-fidelity's estimator and subsets."""
    return KernelSets(fake, real, gamma).kid(subsets, subset_size, seed)


def class_wise_kid(real: dict, fake: dict, subsets: int = SUBSETS, subset_size: int = SUBSET_SIZE,
                   seed: int = SEED) -> tuple[float, dict[str, KID]]:
    """mKID: the mean over classes of per-class KIDs (the class-wise protocol of mFID, with KID)."""
    if set(real) != set(fake):
        raise UnitEvalError(f"class sets differ: only in real {sorted(set(real) - set(fake))}, "
                            f"only in fake {sorted(set(fake) - set(real))}")
    if not real:
        raise UnitEvalError("no classes to evaluate")
    per_class = {c: kid(fake[c], real[c], subsets, subset_size, seed) for c in sorted(real)}
    return float(np.mean([v.mean for v in per_class.values()])), per_class
