"""Precision, recall, density and coverage equal to ``prdc.compute_prdc``, bit for bit, without its full matrices.

Semantics of ``prdc.compute_prdc`` (Naeem et al. 2020): Euclidean distances; a point's radius is the
distance to its k-th nearest neighbour counting itself (so the (k+1)-th smallest, self = 0); membership
of a ball is strict ``<``. Density = (1/k) * mean over fakes of the number of real balls containing it
(can exceed 1); coverage = fraction of reals whose nearest fake lies inside that real's ball.

Exactness, ties included. Duplicated points, fakes that copy or permute the reals and integer-valued
features put distances exactly on a radius, so every ``<`` must see the very numbers prdc sees. prdc gets
them from ``sklearn.metrics.pairwise_distances(X, Y, n_jobs=8)``, which splits Y into
``effective_n_jobs(8)`` even column slices and evaluates ``sqrt(max(-2 X.Ys^T + |x|^2 + |y|^2, 0))`` per
slice (float64 when either side is not float32; for two float32 sides it upcasts row and column chunks
of a size derived from the slice shape, and rounds to float32 before the sqrt), then zeroes the diagonal
when X is Y. The BLAS product's rounding depends on the shape of the call (small-matrix kernels, edge
tiles, thread split), not only on the two vectors: a row block of X times Y^T does *not* reproduce the
rows of X times Y^T. So this module issues exactly the BLAS calls sklearn issues (same operands, same
shapes, numpy/OpenBLAS on the CPU, same order of the additions) and only reduces the results
differently: radii keep the k+1 smallest values per row across slices, the comparisons are counted
slice by slice. Never more than one slice's block of distances exists at a time:

* float32 features (both sides): one of sklearn's upcast chunks of rows against a column slice;
* otherwise: all rows against one column slice, N x ceil(M / 8) float64 values (prdc holds N x M).

``memory_bytes`` bounds the temporaries of the reductions on top of that block. Everything runs on the
CPU: ``device`` is accepted for API compatibility only (a GPU matmul rounds differently from OpenBLAS, so
it could not reproduce prdc's ties). Pass real features first (prdc's order); passing the very same
array object as real and fake zeroes the real-fake diagonal, as in prdc.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from joblib import effective_n_jobs
from sklearn.metrics.pairwise import check_pairwise_arrays
from sklearn.utils import gen_batches, gen_even_slices
from sklearn.utils.extmath import row_norms

from ..errors import UnitEvalError

DEFAULT_K = 5  # the D&C paper and prdc's README use k=5; prdc itself has no default
PRDC_N_JOBS = 8  # prdc.compute_pairwise_distance calls pairwise_distances(..., n_jobs=8)


def _as_numpy(features) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        return features.detach().cpu().numpy()
    return np.asarray(features)


def _upcast_batch(n_x: int, n_y: int, n_features: int) -> int:
    # sklearn.metrics.pairwise._euclidean_distances_upcast's chunk size for dense inputs (batch_size=None)
    maxmem = max(((n_x + n_y) * n_features + n_x * n_y) / 10, 10 * 2**17)
    tmp = 2 * n_features
    return max(int((-tmp + math.sqrt(tmp**2 + 4 * maxmem)) / 2), 1)


def _upcast_product(x_chunk: np.ndarray, y_chunk: np.ndarray) -> np.ndarray:
    # one chunk of _euclidean_distances_upcast: float64 operands, -2 x.y + |x|^2 + |y|^2, rounded to float32
    d = -2 * (x_chunk @ y_chunk.T)
    d += row_norms(x_chunk, squared=True)[:, None]
    d += row_norms(y_chunk, squared=True)[None, :]
    return d.astype(np.float32)


def _distance_blocks(x: np.ndarray, y: np.ndarray, same: bool):
    """Yield (rows, cols, block): prdc's distance matrix pairwise_distances(x, y, n_jobs=8)[rows, cols].

    x and y come from check_pairwise_arrays (x is y when ``same``). Each block is computed by the BLAS
    calls sklearn makes for it, so its values are sklearn's bit for bit; ``same`` zeroes the diagonal.
    """
    n_x, n_y = x.shape[0], y.shape[0]
    n_jobs = effective_n_jobs(PRDC_N_JOBS)
    # n_jobs == 1: sklearn calls euclidean_distances(X, Y) once; otherwise once per even slice of Y.
    for cols in [slice(0, n_y)] if n_jobs == 1 else gen_even_slices(n_y, n_jobs):
        y_slice = y if n_jobs == 1 else y[cols, ...]
        if x.dtype == np.float32 and y_slice.dtype == np.float32:
            batch = _upcast_batch(n_x, y_slice.shape[0], x.shape[1])
            symmetric = n_jobs == 1 and same  # sklearn then copies the transposed lower blocks
            for i, rows in enumerate(gen_batches(n_x, batch)):
                x_chunk = x[rows, :].astype(np.float64)
                block = np.empty((rows.stop - rows.start, y_slice.shape[0]), dtype=np.float32)
                for j, y_rows in enumerate(gen_batches(y_slice.shape[0], batch)):
                    if symmetric and j < i:
                        block[:, y_rows] = _upcast_product(x[y_rows, :].astype(np.float64), x_chunk).T
                    else:
                        block[:, y_rows] = _upcast_product(x_chunk, y_slice[y_rows, :].astype(np.float64))
                yield rows, cols, _finish(block, rows, cols, same)
        else:
            # _euclidean_distances: XX of all of x, YY of the slice, (-2 x.y^T + XX) + YY in float64
            block = x @ y_slice.T
            block *= -2
            block += row_norms(x, squared=True)[:, None]
            block += row_norms(y_slice, squared=True)[None, :]
            yield slice(0, n_x), cols, _finish(block, slice(0, n_x), cols, same)


def _finish(block: np.ndarray, rows: slice, cols: slice, same: bool) -> np.ndarray:
    np.maximum(block, 0, out=block)
    if same:  # sklearn sets d(x_i, x_i) = 0 when X is Y
        first, last = max(rows.start, cols.start), min(rows.stop, cols.stop)
        idx = np.arange(first, last)
        block[idx - rows.start, idx - cols.start] = 0
    return np.sqrt(block, out=block)


def _sub_rows(n_rows: int, n_cols: int, memory_bytes: int):
    step = max(1, memory_bytes // (8 * max(n_cols, 1) * 2))
    return (slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step))


def _radii(features: np.ndarray, k: int, memory_bytes: int) -> np.ndarray:
    """prdc's radii: the (k+1)-th smallest of each row of pairwise_distances(features, features)."""
    x, _ = check_pairwise_arrays(features, features)
    smallest = None  # per row, the k+1 smallest distances seen so far (their values, in no order)
    for rows, cols, block in _distance_blocks(x, x, same=True):
        if smallest is None:
            smallest = np.full((x.shape[0], k + 1), np.inf, dtype=block.dtype)
        for sub in _sub_rows(block.shape[0], block.shape[1] + k + 1, memory_bytes):
            candidates = np.concatenate([smallest[rows][sub], block[sub]], axis=1)
            part = np.partition(candidates, k, axis=1)[:, : k + 1]
            smallest[rows.start + sub.start : rows.start + sub.stop] = part
    return smallest.max(axis=1)


def knn_radii(features, k: int, memory_bytes: int = 256 << 20) -> torch.Tensor:
    """Distance of each row to its k-th nearest neighbour, counting itself (prdc's radius), as prdc computes it.

    float32 features give float32 radii (prdc's distances are float32 then); computed on the CPU.
    """
    radii = torch.from_numpy(_radii(_as_numpy(features), k, memory_bytes))
    return radii.to(features.device) if isinstance(features, torch.Tensor) else radii


def compute_prdc(
    real_features,
    fake_features,
    k: int = DEFAULT_K,
    device: str | torch.device = "cpu",
    memory_bytes: int = 256 << 20,
) -> dict[str, float]:
    """Precision, recall, density, coverage of fake features against real features, equal to prdc's.

    Computed on the CPU whatever ``device`` says (see the module docstring: exactness needs OpenBLAS's
    arithmetic); ``memory_bytes`` bounds the temporaries beyond one slice of distances.
    """
    torch.device(device)  # still validated, though unused
    same = real_features is fake_features  # prdc (sklearn) zeroes the real-fake diagonal then
    real, fake = _as_numpy(real_features), _as_numpy(fake_features)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise UnitEvalError(f"feature shapes do not match: real {tuple(real.shape)}, fake {tuple(fake.shape)}")
    if k < 1:
        raise UnitEvalError(f"k must be at least 1, got {k}")
    for name, feats in (("real", real), ("fake", fake)):
        if feats.shape[0] <= k:
            raise UnitEvalError(f"density & coverage with k={k} need more than {k} {name} samples, got {feats.shape[0]}")
        if not np.isfinite(feats).all():
            raise UnitEvalError(f"{name} features contain NaN or infinite values")

    real_radii = _radii(real, k, memory_bytes)
    fake_radii = real_radii if same else _radii(fake, k, memory_bytes)

    n_real, n_fake = real.shape[0], fake.shape[0]
    balls_containing_fake = np.zeros(n_fake, dtype=np.int64)
    fake_in_some_real_ball = np.zeros(n_fake, dtype=bool)
    real_in_some_fake_ball = np.zeros(n_real, dtype=bool)
    real_nearest_fake = None

    x, y = check_pairwise_arrays(real, real) if same else check_pairwise_arrays(real, fake)
    for rows, cols, block in _distance_blocks(x, y, same):  # rows: reals, cols: fakes
        if real_nearest_fake is None:
            real_nearest_fake = np.full(n_real, np.inf, dtype=block.dtype)
        for sub in _sub_rows(block.shape[0], block.shape[1], memory_bytes):
            dist = block[sub]
            r = slice(rows.start + sub.start, rows.start + sub.stop)
            inside_real = dist < real_radii[r, None]
            balls_containing_fake[cols] += inside_real.sum(axis=0)
            fake_in_some_real_ball[cols] |= inside_real.any(axis=0)
            real_in_some_fake_ball[r] |= (dist < fake_radii[None, cols]).any(axis=1)
            np.minimum(real_nearest_fake[r], dist.min(axis=1), out=real_nearest_fake[r])

    return {
        "precision": float(fake_in_some_real_ball.mean()),
        "recall": float(real_in_some_fake_ball.mean()),
        "density": float((1.0 / float(k)) * balls_containing_fake.mean()),
        "coverage": float((real_nearest_fake < real_radii).mean()),
    }
