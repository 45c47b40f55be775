"""Time of B bootstrap resamples of a 2048-d FID against one FID, in the same run, and against the naive bootstrap a
user would write (FID recomputed from the resampled features, ``fid_from_features``, timed on a few resamples).

    python benchmarks/bench_bootstrap.py [--resamples 1000] [--real 5000] [--fakes 500,1000,3000] [--json]

Features: seeded Gaussian vectors of Inception's dimension (2048); the cost of the statistics does not depend on
what the features show. "One FID" is what a FID costs after extraction: the real Gaussian (mean, covariance, its
factor) and the Fréchet distance of the fakes. The bootstrap reuses the real Gaussian (as ``--bootstrap`` does).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import machine  # noqa: E402


def main() -> None:
    from unit_eval.evaluation.sampling import rng_for
    from unit_eval.metrics import bootstrap as bs
    from unit_eval.metrics.fid import Gaussian, fid_from_features

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--real", type=int, default=5000)
    ap.add_argument("--fakes", default="500,1000,3000")
    ap.add_argument("--naive", type=int, default=3, help="resamples timed for the naive route")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    real = rng.normal(size=(args.real, 2048))
    out = {"machine": machine(), "resamples": args.resamples, "n_real": args.real, "dim": 2048, "runs": []}
    for n_fake in [int(x) for x in args.fakes.split(",")]:
        fake = rng.normal(0.1, 1.0, size=(n_fake, 2048))
        t0 = time.perf_counter()
        real_g = Gaussian(real)
        value = real_g.fid(fake)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        reps = bs.fid_replicates(real_g, fake, args.resamples, rng_for(0, "bench"))
        boot = time.perf_counter() - t0
        interval = bs.interval(reps, value)
        t0 = time.perf_counter()
        naive_rng = np.random.default_rng(1)
        for _ in range(args.naive):
            fid_from_features(real, fake[naive_rng.integers(0, n_fake, size=n_fake)])
        naive_each = (time.perf_counter() - t0) / args.naive
        run = {"n_fake": n_fake, "one_fid_s": round(one, 3), "bootstrap_s": round(boot, 2),
               "bootstrap_per_resample_ms": round(1000 * boot / args.resamples, 2),
               "bootstrap_over_one_fid": round(boot / one, 1),
               "naive_per_resample_s": round(naive_each, 3),
               "naive_estimated_s": round(naive_each * args.resamples, 1),
               "speedup_over_naive": round(naive_each * args.resamples / boot, 1),
               "fid": round(value, 4), "ci": [round(interval.low, 4), round(interval.high, 4)]}
        out["runs"].append(run)
        print(json.dumps(run), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['machine']}; real {args.real} x 2048, {args.resamples} resamples")
        for r in out["runs"]:
            print(f"  {r['n_fake']} fakes: one FID {r['one_fid_s']} s; bootstrap {r['bootstrap_s']} s "
                  f"({r['bootstrap_over_one_fid']}x one FID); naive ~{r['naive_estimated_s']} s "
                  f"({r['speedup_over_naive']}x slower than ours)")


if __name__ == "__main__":
    main()
