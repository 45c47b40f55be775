"""Bootstrap intervals and KID for the FID-type results of protocols and folder commands alike: what to resample,
with which seeded stream, and how per-class replicates become the interval of a class-wise mean (mFID, mKID).

Streams: ``rng_for(seed, "bootstrap", what, class)``: each class and metric draws independently, so adding a
class or a metric never shifts another's resamples, and the same seed gives the same interval.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnitEvalError
from ..metrics import bootstrap as bs
from ..metrics.kid import SEED as KID_SEED
from ..metrics.kid import SUBSET_SIZE, SUBSETS, KernelSets
from ..results import MEAN
from ..stagetimes import stage
from .sampling import rng_for


@dataclass(frozen=True)
class BootstrapPlan:
    """``--bootstrap B`` (0 = none), ``--bootstrap-real`` (resample the real set too), ``--ci-level``."""

    resamples: int = 0
    real: bool = False
    level: float = bs.LEVEL

    def __post_init__(self):
        if self.resamples:
            bs.check_resamples(self.resamples, self.level)
        elif self.resamples != 0:
            raise UnitEvalError(f"--bootstrap must be 0 (none) or at least 2, got {self.resamples!r}")

    def __bool__(self) -> bool:
        return self.resamples > 0

    def options(self) -> dict:
        """What a result's options record (and sweep skip keys see)."""
        return {"bootstrap": {"resamples": self.resamples, "resample_real": self.real, "level": self.level}} if self \
            else {}


NONE = BootstrapPlan()


def class_fid_intervals(plan: BootstrapPlan, seed: int | None, real: dict, fake: dict, real_features: dict | None,
                        values: dict[str, float]) -> dict[str, dict[str, bs.Interval]]:
    """Intervals of per-class FIDs (``fid``) and of their mean (``mfid``); a set without classes has the one
    class ``mean`` and gets ``fid`` only. ``real``: class -> Gaussian; ``fake``: class -> features;
    ``real_features``: class -> features, needed when ``plan.real``; ``values``: class -> the FID itself."""
    per_class: dict[str, np.ndarray] = {}
    with stage("bootstrap"):
        for c in real:
            rng = rng_for(seed or 0, "bootstrap", "fid", c)
            per_class[c] = bs.fid_replicates(real[c], fake[c], plan.resamples, rng,
                                             real_features[c] if plan.real else None)
    out = {"fid": {c: bs.interval(v, values[c], plan.level) for c, v in per_class.items()}}
    if list(real) != [MEAN]:
        mean = float(np.mean([values[c] for c in per_class]))
        out["mfid"] = {MEAN: bs.interval(np.mean(list(per_class.values()), axis=0), mean, plan.level)}
    return out


@dataclass(frozen=True)
class KidValues:
    values: dict[str, dict[str, float]]       # metric -> class -> value (kid, kid_std, and mkid for classes)
    intervals: dict[str, dict[str, bs.Interval]]
    subset_size: dict[str, int]


def class_kid(plan: BootstrapPlan, seed: int | None, real_features: dict, fake: dict) -> KidValues:
    """KID per class (torch-fidelity's estimator and subsets, :mod:`unit_eval.metrics.kid`), their mean ``mkid``
    when there are classes, and bootstrap intervals when ``plan`` asks."""
    values: dict[str, dict[str, float]] = {"kid": {}, "kid_std": {}}
    replicates, sizes = {}, {}
    with stage("statistics"):
        for c in real_features:
            kernels = KernelSets(fake[c], real_features[c])
            result = kernels.kid(SUBSETS, SUBSET_SIZE, KID_SEED)
            values["kid"][c], values["kid_std"][c], sizes[c] = result.mean, result.std, result.subset_size
            if plan:
                with stage("bootstrap"):
                    replicates[c] = bs.kid_replicates(kernels, plan.resamples, rng_for(seed or 0, "bootstrap", "kid", c),
                                                      subsets=SUBSETS, subset_size=SUBSET_SIZE, seed=KID_SEED,
                                                      resample_real=plan.real)
    intervals: dict[str, dict[str, bs.Interval]] = {}
    if list(real_features) != [MEAN]:
        values = {"mkid": {MEAN: float(np.mean(list(values["kid"].values())))}, **values}
    if plan:
        intervals["kid"] = {c: bs.interval(v, values["kid"][c], plan.level) for c, v in replicates.items()}
        if "mkid" in values:
            intervals["mkid"] = {MEAN: bs.interval(np.mean(list(replicates.values()), axis=0), values["mkid"][MEAN],
                                                   plan.level)}
    return KidValues(values, intervals, sizes)


def kid_options(sizes: dict[str, int]) -> dict:
    """KID's settings for a result's options (the subset size may differ per class: min(1000, set sizes))."""
    distinct = sorted(set(sizes.values()))
    return {"kid": {"subsets": SUBSETS, "subset_size": distinct[0] if len(distinct) == 1 else sizes,
                    "kernel": "polynomial, degree 3, gamma 1/D, coef0 1", "seed": KID_SEED}}


def prdc_intervals(plan: BootstrapPlan, seed: int | None, real, fake, k: int, scores: dict[str, float]
                   ) -> dict[str, dict[str, bs.Interval]]:
    """Density, coverage and precision intervals around ``scores`` (recall has none: see
    :mod:`unit_eval.metrics.bootstrap`). The real set is never resampled: its k-NN balls are the reference."""
    with stage("bootstrap"):
        reps = bs.prdc_replicates(real, fake, k, plan.resamples, rng_for(seed or 0, "bootstrap", "prdc"))
    return {m: {MEAN: bs.interval(v, scores[m], plan.level)} for m, v in reps.items()}
