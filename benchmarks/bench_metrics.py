"""Benchmarks for the metrics core, each against the tool a researcher would otherwise use, in one run.

    python benchmarks/bench_metrics.py trace      # FID trace term: scipy sqrtm vs unit-eval (eigen, low-rank)
    python benchmarks/bench_metrics.py features   # Inception features: torch-fidelity calculate_metrics vs unit-eval
    python benchmarks/bench_metrics.py dc         # density & coverage: prdc vs unit-eval (time, peak memory)
    python benchmarks/bench_metrics.py all --json

Prints a Markdown summary (stderr) and, with --json, one JSON object on stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def machine() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_cores": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "gpu": gpu, "load_avg": os.getloadavg()[0]}


def timed(fn, repeat: int = 1):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def bench_trace(n_real: int = 5000, n_fake: int = 810, dim: int = 2048, repeat: int = 1) -> dict:
    import scipy.linalg
    import torch

    from unit_eval.metrics.fid import GaussianReference, feature_statistics, frechet_distance

    rng = np.random.default_rng(0)
    real = rng.standard_normal((n_real, dim)) @ (rng.standard_normal((dim, dim)) * 0.03)
    fake_full = rng.standard_normal((n_real, dim)) * 1.1
    fake_few = fake_full[:n_fake]
    mu1, s1 = feature_statistics(real)

    def scipy_fid(mu2, s2):
        covmean = scipy.linalg.sqrtm(s1 @ s2)
        diff = mu1 - mu2
        return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))

    out = {"dim": dim, "n_real": n_real, "cases": []}
    for label, fake in ((f"{n_real} fakes (full rank)", fake_full), (f"{n_fake} fakes (rank-deficient, TUNIT mFID size)", fake_few)):
        mu2, s2 = feature_statistics(fake)
        t_scipy, v_scipy = timed(lambda: scipy_fid(mu2, s2), repeat)
        t_eigen, v_eigen = timed(lambda: frechet_distance(mu1, s1, mu2, s2), repeat)
        reference = GaussianReference(real)  # built once per real set and reused (cached real statistics)
        t_cached, v_cached = timed(lambda: reference.fid(fake), repeat)
        case = {"case": label, "scipy_sqrtm_s": t_scipy, "eigen_s": t_eigen, "cached_reference_s": t_cached,
                "speedup_eigen": t_scipy / t_eigen, "speedup_cached": t_scipy / t_cached,
                "rel_diff_eigen_vs_scipy": abs(v_eigen - v_scipy) / abs(v_scipy),
                "rel_diff_cached_vs_scipy": abs(v_cached - v_scipy) / abs(v_scipy)}
        if torch.cuda.is_available():
            t_gpu, v_gpu = timed(lambda: frechet_distance(mu1, s1, mu2, s2, device="cuda"), repeat + 1)
            case.update(gpu_eigen_s=t_gpu, speedup_gpu=t_scipy / t_gpu, rel_diff_gpu_vs_scipy=abs(v_gpu - v_scipy) / abs(v_scipy))
        out["cases"].append(case)
    return out


def _digit_folders(root: Path, n: int, size: int) -> tuple[Path, Path]:
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for half, offset in (("a", 0), ("b", n)):
        folder = root / half
        folder.mkdir(parents=True)
        for i in range(n):
            img = (digits.images[offset + i] * (255 / 16)).astype(np.uint8)
            Image.fromarray(img).resize((size, size), Image.BICUBIC).convert("RGB").save(folder / f"{i:05d}.png")
    return root / "a", root / "b"


def bench_features(n: int = 200, size: int = 128, batch_size: int = 64, repeat: int = 2) -> dict:
    import torch
    import torch_fidelity

    from unit_eval.features import InceptionFeatures
    from unit_eval.folders import folder_fid

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        a, b = _digit_folders(Path(tmp), n, size)
        extractor = InceptionFeatures(device=device, batch_size=batch_size, progress=False)
        fidelity_weights = Path(tmp) / "inception.pth"
        state = torch.load(extractor.weights_path, map_location="cpu", weights_only=True)
        state.setdefault("fc.weight", torch.full((1008, 2048), float("nan")))
        state.setdefault("fc.bias", torch.full((1008,), float("nan")))
        torch.save(state, fidelity_weights)

        def ours():
            return folder_fid(a, b, extractor)["fid"]

        def theirs():
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                return torch_fidelity.calculate_metrics(
                    input1=str(b), input2=str(a), fid=True, cuda=device == "cuda", batch_size=batch_size,
                    feature_extractor_weights_path=str(fidelity_weights), verbose=False, cache=False,
                )["frechet_inception_distance"]

        ours()  # warm-up: network built, weights read
        t_theirs = t_ours = float("inf")
        for _ in range(repeat):  # interleaved, best of each: background load hits both alike
            t, v_theirs = timed(theirs)
            t_theirs = min(t_theirs, t)
            t, v_ours = timed(ours)
            t_ours = min(t_ours, t)
    images = 2 * n
    return {"images": images, "size": size, "batch_size": batch_size, "device": device, "repeat": repeat,
            "torch_fidelity_s": t_theirs, "unit_eval_s": t_ours,
            "torch_fidelity_img_per_s": images / t_theirs, "unit_eval_img_per_s": images / t_ours,
            "speedup": t_theirs / t_ours, "fid_rel_diff": abs(v_ours - v_theirs) / abs(v_theirs)}


_DC_CHILD = r"""
import contextlib, io, json, sys, time
import numpy as np
n, dim, which = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
real = rng.standard_normal((n, dim)).astype(np.float32)
fake = (rng.standard_normal((n, dim)) * 1.05).astype(np.float32)
def hwm_mb():  # VmHWM: this process's own peak (ru_maxrss would carry the parent's peak across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
before = hwm_mb()
start = time.perf_counter()
if which == "prdc":
    import prdc
    with contextlib.redirect_stdout(io.StringIO()):
        out = {k: float(v) for k, v in prdc.compute_prdc(real, fake, 5).items()}
else:
    from unit_eval.metrics.prdc import compute_prdc
    out = compute_prdc(real, fake, 5)
elapsed = time.perf_counter() - start
peak = hwm_mb()
print(json.dumps({"seconds": elapsed, "peak_rss_mb": peak, "rss_before_mb": before, "scores": out}))
"""


def bench_dc(n: int = 10000, dim: int = 2048, with_prdc: bool = True) -> dict:
    results = {}
    for which in (("prdc",) if with_prdc else ()) + ("unit-eval",):
        proc = subprocess.run([sys.executable, "-c", _DC_CHILD, str(n), str(dim), which], capture_output=True, text=True, check=True)
        results[which] = json.loads(proc.stdout)
    if not with_prdc:  # prdc's full N x N matrices do not fit in memory at this size
        return {"n": n, "dim": dim, "prdc": None, "unit_eval": results["unit-eval"]}
    diff = max(abs(results["prdc"]["scores"][k] - results["unit-eval"]["scores"][k]) for k in results["prdc"]["scores"])
    return {"n": n, "dim": dim, "prdc": results["prdc"], "unit_eval": results["unit-eval"],
            "speedup": results["prdc"]["seconds"] / results["unit-eval"]["seconds"],
            "peak_memory_ratio": results["prdc"]["peak_rss_mb"] / results["unit-eval"]["peak_rss_mb"], "max_abs_diff": diff}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["trace", "features", "dc", "all"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--images", type=int, default=200, help="images per set for the features benchmark")
    parser.add_argument("--dc-n", type=int, default=10000)
    parser.add_argument("--dc-without-prdc", action="store_true", help="unit-eval alone (sizes where prdc runs out of memory)")
    args = parser.parse_args()
    report = {"machine": machine()}
    if args.which in ("trace", "all"):
        report["trace"] = bench_trace()
        for c in report["trace"]["cases"]:
            print(f"trace 2048-d, {c['case']}: scipy sqrtm {c['scipy_sqrtm_s']:.2f} s, eigen {c['eigen_s']:.2f} s "
                  f"({c['speedup_eigen']:.1f}x), reused real reference {c['cached_reference_s']:.2f} s ({c['speedup_cached']:.1f}x); "
                  f"rel. diff {c['rel_diff_eigen_vs_scipy']:.1e} / {c['rel_diff_cached_vs_scipy']:.1e}", file=sys.stderr)
    if args.which in ("features", "all"):
        f = report["features"] = bench_features(args.images)
        print(f"features {f['images']} images {f['size']}px on {f['device']}: torch-fidelity {f['torch_fidelity_img_per_s']:.1f} img/s, "
              f"unit-eval {f['unit_eval_img_per_s']:.1f} img/s ({f['speedup']:.2f}x); FID rel. diff {f['fid_rel_diff']:.1e}", file=sys.stderr)
    if args.which in ("dc", "all"):
        d = report["dc"] = bench_dc(args.dc_n, with_prdc=not args.dc_without_prdc)
        if d["prdc"] is None:
            print(f"D&C {d['n']}x{d['n']} {d['dim']}-d: unit-eval {d['unit_eval']['seconds']:.1f} s / "
                  f"{d['unit_eval']['peak_rss_mb']:.0f} MB peak (prdc not run: its full matrices need "
                  f"{3 * d['n'] ** 2 * 4 / 2 ** 30:.0f} GiB)", file=sys.stderr)
        else:
            print(f"D&C {d['n']}x{d['n']} {d['dim']}-d: prdc {d['prdc']['seconds']:.1f} s / {d['prdc']['peak_rss_mb']:.0f} MB, "
                  f"unit-eval {d['unit_eval']['seconds']:.1f} s / {d['unit_eval']['peak_rss_mb']:.0f} MB "
                  f"({d['speedup']:.2f}x time, {d['peak_memory_ratio']:.2f}x memory); max diff {d['max_abs_diff']:.1e}", file=sys.stderr)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
