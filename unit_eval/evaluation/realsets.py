"""Real image sets, for folder commands and protocols alike: their features and :class:`~unit_eval.metrics.fid.Gaussian`,
memoised in the process (seeds, protocols and checkpoints share them), cached on disk
(:class:`~unit_eval.features.FeatureCache`; ``cache=None`` is the one way to say "no cache"), sharded under torchrun.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import sharding
from ..features import FeatureCache
from ..metrics.fid import Gaussian
from ..stagetimes import stage
from .batches import ImageCache


def _memo_key(paths: list[Path], extractor, size, resize_filter, flips) -> tuple:
    """In-process memo key of a real set: like FeatureCache's, a touched file makes a new key."""
    listing = tuple((str(p), *(lambda st: (st.st_size, st.st_mtime_ns))(p.stat())) for p in paths)
    return (extractor.describe(), size, resize_filter, listing, None if flips is None else flips.tobytes())


class RealSets:
    """``batch_size``: images per decoded batch of a flipped set (default: the extractor's)."""

    def __init__(self, cache: FeatureCache | None = None, batch_size: int | None = None):
        self.cache, self.batch_size = cache, batch_size
        self._features: dict[tuple, np.ndarray] = {}
        self._gaussians: dict[tuple, Gaussian] = {}

    def features(self, paths: list[Path], extractor, size: int | None = None, resize_filter: str = "bicubic",
                 desc: str = "real", flips: np.ndarray | None = None) -> np.ndarray:
        """All features of ``paths`` in order; ``flips`` (one bool per image) mirrors images first (TUNIT's
        training transform) and is part of every key."""
        key = _memo_key(paths, extractor, size, resize_filter, flips)
        if key not in self._features:
            if flips is not None:
                bs = self.batch_size or extractor.batch_size
                compute = lambda: _flipped(paths, flips, extractor, size, resize_filter, desc, bs)  # noqa: E731
                extra = {"hflip": "".join("1" if f else "0" for f in flips)}
                self._features[key] = compute() if self.cache is None else \
                    self.cache.features(paths, extractor, size, resize_filter, desc=desc, extra=extra, compute=compute)
            elif self.cache is not None:
                self._features[key] = self.cache.features(paths, extractor, size, resize_filter, desc=desc)
            else:
                self._features[key] = sharding.extract_features(extractor, paths, size, resize_filter, desc=desc)
        return self._features[key]

    def gaussian(self, paths: list[Path], extractor, size: int | None = None, resize_filter: str = "bicubic",
                 desc: str = "real", flips: np.ndarray | None = None) -> Gaussian:
        """The set's Gaussian, its covariance factor reused by every fake set it meets. Without a cache, under
        torchrun, a large set is reduced over the ranks (features never gathered), unless its features were
        already extracted here (KID, ``--bootstrap-real``), which are then used rather than extracted again."""
        key = _memo_key(paths, extractor, size, resize_filter, flips)
        if key not in self._gaussians:
            if flips is None and self.cache is None and key not in self._features:
                self._gaussians[key] = sharding.extract_statistics(extractor, paths, size, resize_filter, desc=desc)
            else:
                features = self.features(paths, extractor, size, resize_filter, desc, flips)
                with stage("statistics"):
                    self._gaussians[key] = Gaussian(features, getattr(extractor, "device", "cpu"))
        return self._gaussians[key]


def _flipped(paths: list[Path], flips: np.ndarray, extractor, size: int | None, resize_filter: str, desc: str,
             bs: int) -> np.ndarray:
    images = ImageCache(size, resize_filter, capacity=0)
    batches = (images.uint8(paths[i: i + bs], [bool(f) for f in flips[i: i + bs]]) for i in range(0, len(paths), bs))
    return extractor.stream(batches, total=len(paths), desc=desc)
