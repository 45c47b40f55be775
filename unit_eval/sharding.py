"""Feature extraction sharded over processes launched by torchrun, with exactly reduced statistics.

``torchrun --nproc_per_node N -m unit_eval.cli fid REAL FAKE --json`` runs N copies of the command. Each
rank extracts the features of its shard of every image list and the ranks then combine their work:

- **statistics** (FID, mFID): each rank accumulates ``n``, the float64 sum ``s`` (D) and the float64 sum of
  outer products ``S`` (D x D) of its features; one ``all_reduce(SUM)`` of the packed buffer gives the
  totals on every rank, and ``mu = s / n``, ``sigma = (S - n mu mu^T) / (n - 1)``. Features are never
  gathered, so a 50k-image fake set costs one D x D reduction. Sets of at most D images are gathered
  instead (no more data than the reduction, and bit-identical statistics; see :func:`extract_statistics`).
- **features** (D&C, cached real sets): every rank gets all rows, gathered and put back in the original
  order, identical to the single-process array.

Sharding is deterministic (image lists are sorted by relative path): :func:`shard` deals items round robin
(``items[rank::world]``), in blocks. Extraction uses the extractor's batch size as the block, so rank r runs
batches r, r + N, ... of exactly the batches one process would run, and its features are bit-identical to
the single-process ones (CPU kernels may otherwise round differently for another batch size). Sets smaller
than N batches leave some ranks idle: pass a smaller ``--batch-size`` (it never changes a result).

Numerical note: the one-pass formula subtracts ``n mu mu^T`` from ``S``; the rounding error of an entry
of ``sigma`` is about ``eps * (|mu_i mu_j| + |sigma_ij|)``, i.e. ``eps * mu^2 / var`` relative to the
covariance's scale. Inception pool3 features are averages of ReLU outputs, non-negative with means of
the order of their standard deviations, so the amplification is a small factor and the error stays near
1e-15 in float64, far below the float32 noise of the network itself (two-pass centring is not needed).
``tests/test_sharding.py`` checks the reduction against ``np.mean`` / ``np.cov`` to 1e-12, including data
whose mean is several standard deviations from zero.

Process groups: gloo when the extractor runs on the CPU, nccl on CUDA with every rank on
``cuda:LOCAL_RANK`` (an unindexed ``cuda`` / ``auto`` device is mapped there; an explicit ``cuda:K`` is
kept). The group is created lazily by the first sharded call (:func:`start`) and destroyed at exit
(:mod:`unit_eval.distributed` does that work, for the bundled trainers too).
Outside torchrun (no ``WORLD_SIZE`` > 1) every function here is the plain single-process path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, TypeVar

import numpy as np
import torch

from . import distributed as _dist
from .errors import UnitEvalError

T = TypeVar("T")


# The process group and collectives live in unit_eval.distributed; these names are the evaluator's entry points.
info, is_main, local_device, start, all_true, on_main = (_dist.info, _dist.is_main, _dist.local_device, _dist.start,
                                                         _dist.all_true, _dist.on_main)
active = _dist.is_active


# --------------------------------------------------------------------------- sharding and gathering

def _world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is None or world_size is None:
        env = info()
        rank, world_size = env.rank, env.world_size
    if not 0 <= rank < world_size:
        raise UnitEvalError(f"rank {rank} outside a world of {world_size}")
    return rank, world_size


def shard_indices(n: int, rank: int | None = None, world_size: int | None = None, block: int = 1) -> np.ndarray:
    """Positions of rank ``rank``'s items among ``n``: blocks of ``block`` consecutive items, dealt round robin.

    With ``block=1`` this is ``range(rank, n, world_size)``. Extraction uses the extractor's batch size as
    the block, so every rank runs exactly the batches a single process would run (see :func:`shard`).
    """
    rank, world_size = _world(rank, world_size)
    if block < 1:
        raise UnitEvalError(f"block must be positive, got {block}")
    starts = np.arange(rank * block, n, world_size * block)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(s, min(s + block, n)) for s in starts])


def shard(items: Sequence[T], rank: int | None = None, world_size: int | None = None, block: int = 1) -> list[T]:
    """Rank ``rank``'s share of ``items`` (default: this process's), in their original order.

    ``block=1``: ``items[rank::world_size]``. With ``block`` = the extraction batch size, ranks take whole
    batches (batch b goes to rank b mod world_size): CPU convolution kernels can round the last float32 bit
    differently for different batch sizes (seen: 2e-6 between batches of 12 and 24 at one thread), so
    identical batches are what makes the sharded features bit-identical to the single-process ones.
    """
    return [items[i] for i in shard_indices(len(items), rank, world_size, block)]


def interleave(parts: Sequence[np.ndarray], n: int, block: int = 1) -> np.ndarray:
    """Inverse of :func:`shard` for arrays: ``parts[r]`` holds rank r's rows of the ``n``-row result."""
    world = len(parts)
    dim = parts[0].shape[1:]
    out = np.empty((n, *dim), dtype=np.result_type(*parts))
    for r, part in enumerate(parts):
        index = shard_indices(n, r, world, block)
        if part.shape[0] != len(index):
            raise UnitEvalError(f"rank {r} returned {part.shape[0]} rows, expected {len(index)}")
        out[index] = part
    return out


def gather_ordered(local: np.ndarray, n: int, block: int = 1) -> np.ndarray:
    """All ``n`` rows, in the original order, on every rank, from each rank's :func:`shard` of them.

    Shards are padded to the longest one for ``all_gather`` and trimmed again. Outside a process group
    ``local`` is returned as it is.
    """
    if not active():
        return local
    world = torch.distributed.get_world_size()
    sizes = [len(shard_indices(n, r, world, block)) for r in range(world)]
    rank = torch.distributed.get_rank()
    if local.shape[0] != sizes[rank]:
        raise UnitEvalError(f"rank {rank} holds {local.shape[0]} rows, expected {sizes[rank]}")
    per = max(sizes)
    padded = np.zeros((per, *local.shape[1:]), dtype=np.float64)
    padded[: local.shape[0]] = local
    gathered = _dist.all_gather_cat(torch.from_numpy(padded).to(_dist.comm_device())).cpu().numpy()
    gathered = gathered.reshape(world, per, *local.shape[1:])
    return interleave([gathered[r, : sizes[r]] for r in range(world)], n, block)


# --------------------------------------------------------------------------- exact statistics

@dataclass
class FeatureSums:
    """Sufficient statistics of a feature set: count, float64 sum and float64 sum of outer products.

    Sums of disjoint sets add up (``a + b``, or an ``all_reduce(SUM)`` across ranks), which is what makes
    the sharded mean and covariance equal to the single-process ones up to float64 rounding.
    """

    n: int
    s: np.ndarray
    S: np.ndarray

    @classmethod
    def empty(cls, dim: int) -> "FeatureSums":
        return cls(0, np.zeros(dim, dtype=np.float64), np.zeros((dim, dim), dtype=np.float64))

    @classmethod
    def of(cls, features) -> "FeatureSums":
        feats = np.asarray(features, dtype=np.float64)
        if feats.ndim != 2:
            raise UnitEvalError(f"features must be an N x D matrix, got shape {feats.shape}")
        out = cls.empty(feats.shape[1])
        out.add(feats)
        return out

    def add(self, features) -> None:
        feats = np.asarray(features, dtype=np.float64)
        if feats.shape[0] == 0:
            return
        if feats.ndim != 2 or feats.shape[1] != self.s.shape[0]:
            raise UnitEvalError(f"expected N x {self.s.shape[0]} features, got shape {feats.shape}")
        if not np.isfinite(feats).all():
            raise UnitEvalError("features contain NaN or infinite values")
        self.n += feats.shape[0]
        self.s += feats.sum(axis=0)
        self.S += feats.T @ feats

    def __add__(self, other: "FeatureSums") -> "FeatureSums":
        return FeatureSums(self.n + other.n, self.s + other.s, self.S + other.S)

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and unbiased covariance (ddof=1), as ``metrics.fid.feature_statistics`` returns them."""
        if self.n < 2:
            raise UnitEvalError(f"FID needs at least 2 images per set, got {self.n}")
        mu = self.s / self.n
        sigma = (self.S - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, (sigma + sigma.T) / 2


def all_reduce_sums(local: FeatureSums) -> FeatureSums:
    """Sum every rank's :class:`FeatureSums` (one float64 all-reduce of 1 + D + D^2 values)."""
    if not active():
        return local
    d = local.s.shape[0]
    buf = torch.cat([torch.tensor([float(local.n)], dtype=torch.float64), torch.from_numpy(local.s),
                     torch.from_numpy(np.ascontiguousarray(local.S)).reshape(-1)]).to(_dist.comm_device())
    torch.distributed.all_reduce(buf, op=torch.distributed.ReduceOp.SUM)
    buf = buf.cpu().numpy()
    return FeatureSums(int(round(buf[0])), buf[1 : 1 + d].copy(), buf[1 + d :].reshape(d, d).copy())


# --------------------------------------------------------------------------- extraction

def _block(extractor) -> int:
    """The sharding unit: the extractor's batch, so each rank runs exactly the single process's batches."""
    return max(1, int(getattr(extractor, "batch_size", 1)))


def feature_dim_of(extractor) -> int:
    return int(extractor.feature_dim)


def _shard_features(extractor, paths: list, size, resize_filter: str, desc: str) -> np.ndarray:
    mine = shard(paths, block=_block(extractor))
    if not mine:  # fewer batches than ranks
        return np.empty((0, feature_dim_of(extractor)), dtype=np.float64)
    return extractor.files(mine, size, resize_filter, desc=desc)


def extract_features(extractor, paths: list, size=None, resize_filter: str = "bicubic", desc: str = "features") -> np.ndarray:
    """``extractor.files(paths, ...)``; under torchrun each rank extracts its shard and all get every row, in order."""
    if not start(extractor.device):
        return extractor.files(paths, size, resize_filter, desc=desc)
    if not paths:
        raise UnitEvalError("no images to extract features from")
    local = _shard_features(extractor, paths, size, resize_filter, desc)
    return gather_ordered(local, len(paths), block=_block(extractor))


def extract_statistics(extractor, paths: list, size=None, resize_filter: str = "bicubic", desc: str = "features",
                       gather_up_to: int | None = None):
    """The :class:`~unit_eval.metrics.fid.Gaussian` of the features of ``paths``; under torchrun computed from every
    rank's shard.

    Sets of more than ``gather_up_to`` images (default: the feature dimension D) are reduced: one all-reduce
    of the float64 sums and cross-products, features never leave their rank. Smaller sets are gathered and
    their statistics computed exactly as in one process: moving n <= D rows costs no more than the D x D
    reduction, and the FID of such a rank-deficient covariance is sensitive to rounding (permuting the rows
    of a 24-image set moves it by 1e-9 relative), so it is reproduced bit for bit instead of to rounding.
    """
    from .metrics.fid import Gaussian

    device = getattr(extractor, "device", "cpu")
    if not start(extractor.device):
        return Gaussian(extractor.files(paths, size, resize_filter, desc=desc), device)
    if not paths:
        raise UnitEvalError("no images to extract features from")
    if len(paths) <= (feature_dim_of(extractor) if gather_up_to is None else gather_up_to):
        return Gaussian(extract_features(extractor, paths, size, resize_filter, desc), device)
    sums = all_reduce_sums(FeatureSums.of(_shard_features(extractor, paths, size, resize_filter, desc)))
    return Gaussian.from_moments(sums.n, *sums.statistics(), device=device)


__all__ = [
    "FeatureSums", "active", "all_reduce_sums", "all_true", "extract_features", "extract_statistics", "feature_dim_of",
    "gather_ordered",
    "info", "interleave", "is_main", "local_device", "on_main", "shard", "shard_indices", "start",
]
