"""Benchmarks for the metrics core, each against the tool a researcher would otherwise use, in one run.

    python benchmarks/bench_metrics.py trace      # FID trace term: scipy sqrtm vs unit-eval (eigen, low-rank)
    python benchmarks/bench_metrics.py features   # Inception features: torch-fidelity calculate_metrics vs unit-eval
    python benchmarks/bench_metrics.py dc         # density & coverage: prdc vs unit-eval (time, peak memory)
    python benchmarks/bench_metrics.py sweep      # Inception images/s by batch size and numerics vs the measured fp32 limit
    python benchmarks/bench_metrics.py shard      # fid and dc CLI: one process vs torchrun ranks (time, equal results)
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

    from unit_eval.metrics.fid import Gaussian, feature_statistics, frechet_distance

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
        reference = Gaussian(real)  # built once per real set and reused (cached real statistics)
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


def inception_state_with_head() -> dict:
    """unit-eval's converted Inception weights with the classifier head the offline source lacks filled with NaN,
    as strict loaders (torch-fidelity's, the official TUNIT's) require; pool3 features never touch it."""
    import torch

    from unit_eval.weights import inception_weights_path

    state = torch.load(inception_weights_path(), map_location="cpu", weights_only=True)
    state.setdefault("fc.weight", torch.full((1008, 2048), float("nan")))
    state.setdefault("fc.bias", torch.full((1008,), float("nan")))
    return state


def write_torch_fidelity_weights(path: Path) -> Path:
    """The same weights as a file for torch-fidelity's ``feature_extractor_weights_path``."""
    import torch

    torch.save(inception_state_with_head(), path)
    return path


def bench_features(n: int = 200, size: int = 128, batch_size: int = 64, repeat: int = 2) -> dict:
    import torch
    import torch_fidelity

    from unit_eval.features import InceptionFeatures
    from unit_eval.folders import folder_fid, summary

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        a, b = _digit_folders(Path(tmp), n, size)
        extractor = InceptionFeatures(device=device, batch_size=batch_size, progress=False)
        fidelity_weights = write_torch_fidelity_weights(Path(tmp) / "inception.pth")

        def ours():
            return summary(folder_fid(a, b, extractor))["fid"]

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


def inception_flops_per_image(extractor) -> float:
    """Floating-point operations (2 per multiply-add) of one 299 x 299 forward to pool3, counted by torch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, 299, 299, device=extractor.device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        extractor.trunk(x)
    return float(counter.get_total_flops())


def fp32_peak_flops(device, repeat: int = 5) -> dict:
    """The machine's float32 arithmetic limit as achieved by the best single kernel we can find on it (TF32 off):
    one large GEMM and one large 3x3 convolution (channels-last on CPU, as the extractor runs), the faster of the two.
    Measured, not taken from a data sheet; a convolution network can approach it but not exceed it by much."""
    import torch
    import torch.nn.functional as F

    from unit_eval.device import exact_numerics

    n = 4096
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    x = torch.randn(32, 256, 36, 36, device=device)
    w = torch.randn(256, 256, 3, 3, device=device)
    if torch.device(device).type == "cpu":
        x, w = x.to(memory_format=torch.channels_last), w.to(memory_format=torch.channels_last)
    kernels = {"gemm": (lambda: a @ b, 2 * n ** 3),
               "conv3x3": (lambda: F.conv2d(x, w, padding=1), 2 * 32 * 256 * 256 * 9 * 36 * 36)}
    rates = {}
    with exact_numerics(), torch.no_grad():
        for name, (fn, flops) in kernels.items():
            fn()
            sync(device)
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                fn()
                sync(device)
                best = min(best, time.perf_counter() - start)
            rates[name] = flops / best
    return {**{f"{k}_flops": v for k, v in rates.items()}, "peak_flops": max(rates.values())}


def sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def bench_sweep(batch_sizes: list[int], images_per_size: int, size: int = 128, precisions: tuple = ("fp32", "bf16"),
                fid_images: int = 200) -> dict:
    """Inception images/s at ``size`` px uint8 inputs (resized to 299 inside, TF1-exact), per batch size and
    numerics, against the fp32 limit derived from the measured GEMM rate; then the same from image files
    (decoding and resizing in worker processes) at the best batch size; then each fast mode's effect on FID."""
    import torch

    from unit_eval.features import InceptionFeatures
    from unit_eval.folders import folder_fid, summary

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        precisions = tuple(dict.fromkeys(precisions + ("tf32",)))
    exact = InceptionFeatures(device=device, batch_size=max(batch_sizes), progress=False)
    flops = inception_flops_per_image(exact)
    measured = fp32_peak_flops(device)
    peak = measured["peak_flops"]
    limit = peak / flops
    rng = np.random.default_rng(0)
    out = {"device": device, "input_size": size, "flops_per_image": flops, "gmac_per_image": flops / 2e9,
           "fp32_kernel_flops": measured, "fp32_peak_flops": peak, "fp32_limit_img_per_s": limit, "goal_img_per_s": limit / 2, "rows": []}
    best = {}
    for precision in precisions:
        for bs in batch_sizes:
            extractor = InceptionFeatures(device=device, batch_size=bs, progress=False, precision=precision)
            n = max(images_per_size, 2 * bs)
            batches = [torch.from_numpy(rng.integers(0, 256, (bs, 3, size, size), dtype=np.uint8)) for _ in range(-(-n // bs))]
            extractor.batch(batches[0])  # warm-up: kernels chosen, memory allocated
            sync(device)
            start = time.perf_counter()
            for b in batches:
                extractor.batch(b)
            sync(device)
            rate = len(batches) * bs / (time.perf_counter() - start)
            out["rows"].append({"precision": precision, "batch_size": bs, "img_per_s": rate, "fraction_of_fp32_limit": rate / limit})
            if rate > best.get(precision, (0, 0))[1]:
                best[precision] = (bs, rate)
    out["best"] = {p: {"batch_size": b, "img_per_s": r, "fraction_of_fp32_limit": r / limit} for p, (b, r) in best.items()}
    with tempfile.TemporaryDirectory() as tmp:
        a, b = _digit_folders(Path(tmp), fid_images, size)
        bs = best["fp32"][0]
        exact = InceptionFeatures(device=device, batch_size=bs, progress=False)
        from unit_eval.images import list_images

        paths = list_images(a) + list_images(b)
        exact.files(paths[:bs])  # warm-up of the worker pool path
        start = time.perf_counter()
        exact.files(paths)
        sync(device)
        files_rate = len(paths) / (time.perf_counter() - start)
        out["from_files"] = {"images": len(paths), "batch_size": bs, "workers": exact.num_workers,
                             "img_per_s": files_rate, "ratio_to_in_memory": files_rate / best["fp32"][1]}
        reference = summary(folder_fid(a, b, exact))["fid"]
        out["fid_effect"] = {"fp32": reference}
        for precision in precisions:
            if precision == "fp32":
                continue
            fast = InceptionFeatures(device=device, batch_size=bs, progress=False, precision=precision)
            value = summary(folder_fid(a, b, fast))["fid"]
            out["fid_effect"][precision] = value
            out["fid_effect"][f"{precision}_rel_diff"] = abs(value - reference) / reference
    return out


def bench_shard(n: int = 200, ranks: int = 2, size: int = 128) -> dict:
    """``unit-eval fid`` and ``unit-eval dc`` on two folders: one process against ``torchrun`` with ``ranks``
    processes (each extracts every ranks-th batch; statistics reduced in float64), same threads in total."""
    import torch

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    threads = max(1, (os.cpu_count() or 1) // ranks)
    out = {"images": 2 * n, "ranks": ranks, "device": device, "commands": {}}
    with tempfile.TemporaryDirectory() as tmp:
        a, b = _digit_folders(Path(tmp), n, size)
        base_env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
        for command in (["fid", str(a), str(b)], ["dc", str(a), str(b)]):
            args = [*command, "--device", device, "--batch-size", "16", "--no-cache", "--json"]
            single_env = dict(base_env, OMP_NUM_THREADS=str(threads * ranks))
            sharded_env = dict(base_env, OMP_NUM_THREADS=str(threads))
            runs = {}
            for label, prefix, env in (("single", [sys.executable, "-m", "unit_eval.cli"], single_env),
                                       ("torchrun", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                                     "--nproc_per_node", str(ranks), "-m", "unit_eval.cli"], sharded_env)):
                start = time.perf_counter()
                proc = subprocess.run([*prefix, *args], capture_output=True, text=True, env=env, check=True)
                runs[label] = {"seconds": time.perf_counter() - start, "result": json.loads(proc.stdout.strip().splitlines()[-1])}
            keys = ["fid"] if command[0] == "fid" else ["density", "coverage", "precision", "recall"]
            diff = max(abs(runs["single"]["result"][k] - runs["torchrun"]["result"][k]) / max(abs(runs["single"]["result"][k]), 1e-12)
                       for k in keys)
            out["commands"][command[0]] = {"single_s": runs["single"]["seconds"], "torchrun_s": runs["torchrun"]["seconds"],
                                           "speedup": runs["single"]["seconds"] / runs["torchrun"]["seconds"],
                                           "values": {k: runs["single"]["result"][k] for k in keys}, "max_rel_diff": diff}
    return out


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
    parser.add_argument("which", choices=["trace", "features", "dc", "sweep", "shard", "all"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--images", type=int, default=200, help="images per set for the features benchmark")
    parser.add_argument("--dc-n", type=int, default=10000)
    parser.add_argument("--dc-without-prdc", action="store_true", help="unit-eval alone (sizes where prdc runs out of memory)")
    parser.add_argument("--batch-sizes", default=None, help="sweep: comma-separated (default 1,8,32,64 on CPU; 1,32,64,128,256,512 on CUDA)")
    parser.add_argument("--sweep-images", type=int, default=None, help="sweep: images per batch size (default 64 on CPU, 4096 on CUDA)")
    parser.add_argument("--sweep-fid-images", type=int, default=200, help="sweep: images per folder for the fast modes' effect on FID")
    parser.add_argument("--ranks", type=int, default=2, help="shard: torchrun processes (one per GPU on CUDA)")
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
    if args.which in ("sweep", "all"):
        import torch

        cuda = torch.cuda.is_available()
        sizes = [int(b) for b in (args.batch_sizes or ("1,32,64,128,256,512" if cuda else "1,4,8,32,64")).split(",")]
        w = report["sweep"] = bench_sweep(sizes, args.sweep_images or (4096 if cuda else 64), fid_images=args.sweep_fid_images)
        k = w["fp32_kernel_flops"]
        print(f"Inception at {w['input_size']} px on {w['device']}: {w['gmac_per_image']:.2f} GMAC/image, measured fp32 peak "
              f"{w['fp32_peak_flops'] / 1e12:.3f} TFLOP/s (GEMM {k['gemm_flops'] / 1e12:.3f}, conv {k['conv3x3_flops'] / 1e12:.3f}) -> limit {w['fp32_limit_img_per_s']:.0f} img/s, goal (half) "
              f"{w['goal_img_per_s']:.0f} img/s", file=sys.stderr)
        for r in w["rows"]:
            print(f"  {r['precision']} batch {r['batch_size']}: {r['img_per_s']:.1f} img/s ({r['fraction_of_fp32_limit']:.0%} of the fp32 limit)", file=sys.stderr)
        f = w["from_files"]
        print(f"  from files (decoding in {f['workers']} workers), batch {f['batch_size']}: {f['img_per_s']:.1f} img/s "
              f"({f['ratio_to_in_memory']:.2f}x in-memory)", file=sys.stderr)
        for p, v in w["fid_effect"].items():
            if p.endswith("_rel_diff"):
                print(f"  FID with {p[:-9]}: {w['fid_effect'][p[:-9]]:.4f} vs fp32 {w['fid_effect']['fp32']:.4f} (rel. diff {v:.1e})", file=sys.stderr)
    if args.which in ("shard", "all"):
        h = report["shard"] = bench_shard(args.images, ranks=args.ranks)
        for name, c in h["commands"].items():
            print(f"{name} on {h['images']} images ({h['device']}): one process {c['single_s']:.1f} s, torchrun x{h['ranks']} "
                  f"{c['torchrun_s']:.1f} s ({c['speedup']:.2f}x); max rel. diff {c['max_rel_diff']:.1e}", file=sys.stderr)
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
