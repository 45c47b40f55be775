"""The ``density-coverage`` protocol kind: D&C (and precision/recall) of generated images or a fake folder against
every real image of the split (TUNIT Appendix C, Naeem et al. 2020)."""
from __future__ import annotations

import numpy as np

from ..images import list_images
from ..protocol_specs import DensityCoverage
from ..results import MEAN, ProtocolResult
from ..stagetimes import stage
from .batches import ImageCache
from .intervals import prdc_intervals
from .runner import image_size_of
from .sampling import sample_pairs_uniform


def density_coverage(runner, spec: DensityCoverage, seed: int) -> ProtocolResult:
    from ..metrics.prdc import compute_prdc

    extractor = runner.extractor(spec.preprocessing)
    train = runner.split(spec.real_split)
    n_train = sum(len(p) for p in train.values())
    if runner.fake_dir is not None:
        fake_paths = list_images(runner.fake_dir)
        size = image_size_of(fake_paths[0])
        fake = extractor.files(fake_paths, None, "bicubic", desc="fake")
        extra = {}
    else:
        size = runner.image_size
        n = min(n_train, spec.max_fake)
        jobs = sample_pairs_uniform(runner.split(spec.source_split), n, seed, purpose="dc")
        fake = runner.fake_features(jobs, ImageCache(size, spec.resize_filter), spec, extractor, "fake")
        extra = {"n_fake_rule": f"min({n_train} {spec.real_split} images, max_fake {spec.max_fake})"}
    real = np.concatenate([runner.real.features(p, extractor, size, spec.resize_filter, f"real {c}")
                           for c, p in train.items()])
    with stage("statistics"):
        scores = compute_prdc(real, fake, k=spec.k, device=getattr(extractor, "device", "cpu"))
    values = {m: {MEAN: scores[m]} for m in ("density", "coverage", "precision", "recall")}
    plan = runner.settings.bootstrap
    intervals = prdc_intervals(plan, seed, real, fake, spec.k, scores) if plan else {}
    return ProtocolResult(spec.name, seed, values, {MEAN: len(real)}, {MEAN: len(fake)}, extractor.describe(),
                          runner.options(spec, size, **extra, **plan.options()), feature_dim=real.shape[1],
                          intervals=intervals)
