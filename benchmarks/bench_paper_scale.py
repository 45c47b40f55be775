"""Paper-scale dry run: the published configurations end to end, on SYNTHETIC data of the papers' shape.

    python benchmarks/bench_paper_scale.py --json > paper_scale.json             # everything, device auto
    python benchmarks/bench_paper_scale.py --stages data,protocols --json        # skip the training iterations
    python benchmarks/bench_paper_scale.py --device cpu --tiny --json            # every stage at toy size (tests)

Stages, each in its own child process (so every peak RSS is that stage's own, ``VmHWM``):

1. ``data``: ``unit-eval data synth animalfaces10-shape`` (10 x (740 + 50) at 128 px) and ``maps-shape`` (1096 +
   1098 pairs at 256 px), built from scikit-image photographs: synthetic, and named so in every row.
2. ``train``: full-size networks at the published batch sizes through the real training loop
   (``bench_train.run_config``): TUNIT 128 px batch 32, K-hat 10, guiding-network warm-up phase and joint phase;
   FUNIT 128 px batch 64; UNIT 256 px batch 1. One untimed and ``--train-iters`` timed iterations each (the FLOPs
   of the first iteration counted by ``torch.utils.flop_counter``).
3. ``checkpoints``: ``unit-eval train`` (the CLI's entry point, ``loop.train``) for one iteration at batch 2 writes
   the full-size TUNIT, FUNIT (its ``finalize`` averages class codes over all 7,400 training images) and UNIT
   ``run.pt`` that the protocols load. A protocol's cost does not depend on how trained its model is.
4. ``real``: the Inception features of the 7,400 training images into a fresh feature cache (what the first
   protocol of a first evaluation pays; later protocols, seeds and checkpoints read them from the cache).
5. ``protocols`` at the published counts: ``tunit-mfid`` (810 fakes x 10 classes), ``tunit-dc`` (7,400 fakes),
   ``tunit-cluster`` (500 test images), ``cluit-mfid`` (500 inputs x 10 references), ``unit-maps`` (1098 test pairs
   at 256 px) and ``lpips-diversity`` (10 outputs per input). The last at StarGAN v2's full count (every input
   into each of the 9 other classes: 45,000 outputs, 202,500 LPIPS pairs) is beyond a CPU session; on CPU it runs
   with ``targets = "one-random"`` (5,000 outputs, 22,500 pairs), and the full count is extrapolated from its
   measured cost per output (``--lpips-full`` runs the shipped protocol as is).

Per stage: wall time, peak RSS (and peak CUDA memory), images/s, and the seconds spent in decode, generate,
extract and statistics (``unit_eval.stagetimes``; the rest is sampling and glue). GPU extrapolation: FLOPs per
image (or per training iteration) counted by ``torch.utils.flop_counter.FlopCounterMode``, over the data-sheet
dense rate of an H100 SXM at the efficiency this CPU reached on the same work. An extrapolation, said as such.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

H100_FP32_TFLOPS = 67.0  # H100 SXM data sheet, dense float32 (no tensor cores)

PROTOCOLS = ("tunit-mfid", "tunit-dc", "tunit-cluster", "cluit-mfid", "lpips-diversity", "unit-maps")
# --tiny: the smallest counts that still run every code path
TINY_PROTOCOLS = {
    "tunit-mfid": {"sources_per_class": 1, "references_per_source": 2},
    "tunit-dc": {"max_fake": 20},
    "tunit-cluster": {},
    "cluit-mfid": {"references_per_input": 4},
    "lpips-diversity": {"outputs_per_input": 2, "targets": "one-random"},
    "unit-maps": {},
}


# --reduced: fewer fakes where the cost per fake is already known from a full-count protocol on the same
# generator and extractor (tunit-mfid's 8,100); the full-count time is then that cost times the full count
REDUCED_PROTOCOLS = {
    "tunit-mfid": {"sources_per_class": 2},
    "tunit-dc": {"max_fake": 1000},  # real set: all 7,400 train images (the D&C memory at scale)
    "tunit-cluster": {},
    "cluit-mfid": {"references_per_input": 1},
    "lpips-diversity": {"targets": "one-random"},  # on a 20% copy of the data: 100 inputs x 10 outputs
    "unit-maps": {},  # on a 20% copy of the maps split: 220 test pairs at 256 px
}
FULL_FAKES = {"tunit-mfid": 8100, "tunit-dc": 7400, "cluit-mfid": 5000, "lpips-diversity": 45000, "unit-maps": 1098}


def hwm_mb() -> float | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# ------------------------------------------------------------------------------------------------ children
def child_synth(spec: dict) -> dict:
    from unit_eval.datasets import resolve_dataset
    from unit_eval.synth import write_synth

    path = write_synth(spec["dataset"], spec["out"], scale=spec["scale"], size=spec.get("size"), progress=False)
    counts = resolve_dataset(path).describe()["counts"]
    return {"images": sum(n for split in counts.values() for n in split.values()), "counts": counts}


def child_checkpoint(spec: dict) -> dict:
    import torch

    from unit_eval.baselines.common.loop import train

    extra = {"toy": True} if spec.get("toy") else None
    summary = train(spec["model"], spec["data"], spec["out"], iters=1, img_size=spec["img_size"],
                    batch_size=spec["batch_size"], k=spec.get("k"), seed=0, device=torch.device(spec["device"]),
                    progress=False, sample_every=0, extra=extra, allow_upscale=True)
    run = Path(spec["out"]) / "run.pt"
    return {"run_pt_mb": run.stat().st_size / 2 ** 20, "summary": {k: v for k, v in summary.items() if isinstance(v, (int, float, str))}}


def _flops_per_image(fn, example) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*example)
    return counter.get_total_flops() / example[0].shape[0]


def child_real(spec: dict) -> dict:
    import torch

    from unit_eval import stagetimes
    from unit_eval.datasets import resolve_dataset
    from unit_eval.evaluation.realsets import RealSets
    from unit_eval.features import FeatureCache, InceptionFeatures

    dev = torch.device(spec["device"])
    ds = resolve_dataset(spec["data"])
    extractor = InceptionFeatures(device=dev, batch_size=spec["batch_size"], progress=False)
    real = RealSets(FeatureCache(), spec["batch_size"])
    with stagetimes.recording() as stages:
        n = sum(len(real.features(p, extractor, spec["img_size"], "bilinear", f"real {c}"))
                for c, p in ds.split("train").items())
    example = (torch.zeros(2, 3, spec["img_size"], spec["img_size"], dtype=torch.uint8, device=dev),)
    return {"images": n, "stages": dict(stages), "inception_flops_per_image": _flops_per_image(extractor.batch, example)}


def child_protocol(spec: dict) -> dict:
    import torch

    from unit_eval import stagetimes
    from unit_eval.evaluation import evaluate
    from unit_eval.evaluation.api import load_model

    start = time.perf_counter()
    with stagetimes.recording() as stages:
        results, rows = evaluate([spec["protocol"]], ckpt=spec["ckpt"], data=spec["data"], device=spec["device"],
                                 batch_size=spec["batch_size"], progress=False, out=spec["rows"])
    r = results[0]
    out = {"stages": dict(stages), "eval_s": time.perf_counter() - start, "values": {m: v.get("mean") for m, v in r.values.items()},
           "n_fake": r.n_fake.get("mean"), "n_real": r.n_real.get("mean"), "dataset": rows[0]["dataset"],
           "extractor": r.extractor}
    # FLOPs of one translation at the model's resolution (the generator's share of a GPU extrapolation)
    model, _, _ = load_model(spec["ckpt"], None, torch.device(spec["device"]))
    s = model.image_size
    x = torch.zeros(2, 3, s, s, device=torch.device(spec["device"]))
    if spec["protocol"].endswith("unit-maps"):
        out["generate_flops_per_image"] = _flops_per_image(lambda a: model.translate_to_domain(a, 0), (x,))
    elif spec["protocol"].endswith("tunit-cluster"):
        out["generate_flops_per_image"] = _flops_per_image(lambda a: (model.cluster(a), model.style(a)), (x,))
    else:
        out["generate_flops_per_image"] = _flops_per_image(model.translate, (x, x))
    return out


CHILDREN = {"synth": child_synth, "checkpoint": child_checkpoint, "real": child_real, "protocol": child_protocol}


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    res = {"ok": False}
    start, cpu_start = time.perf_counter(), _cpu()
    try:
        res = CHILDREN[spec["kind"]](spec)
        res["ok"] = True
    except BaseException as exc:  # reported by the parent with the log tail
        import traceback

        traceback.print_exc()
        res = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).strip()[:400]}"}
    res["wall_s"] = time.perf_counter() - start
    res["cpu_s"] = _cpu() - cpu_start  # all threads, decoding workers included; steadier than wall on a shared machine
    res["peak_rss_mb"] = hwm_mb()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        res["peak_gpu_allocated_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    Path(spec["result"]).write_text(json.dumps(res))


def run_child(spec: dict, workdir: Path, timeout: float, env: dict) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    spec = dict(spec, result=str(workdir / "result.json"))
    (workdir / "spec.json").write_text(json.dumps(spec))
    log = workdir / "child.log"
    with open(log, "w") as fh:
        try:
            rc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(workdir / "spec.json")],
                                stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, env=env).returncode
        except subprocess.TimeoutExpired:
            rc = None
    out = {"name": spec["name"], "kind": spec["kind"]}
    if rc is None:
        out.update(ok=False, error=f"timed out after {timeout:.0f} s")
    elif not Path(spec["result"]).exists():
        out.update(ok=False, error=f"child exited with status {rc} without a result (killed: out of memory?)")
    else:
        out.update(json.loads(Path(spec["result"]).read_text()))
    if not out.get("ok"):
        out["log_tail"] = log.read_text(errors="replace").strip().splitlines()[-12:]
    return out


# ------------------------------------------------------------------------------------------------ parent
def gpu_seconds(flops: float, cpu_seconds: float, cpu_peak_flops: float) -> dict:
    """Extrapolated H100 time: the FLOPs at the data-sheet rate times the efficiency reached on this CPU."""
    efficiency = min(1.0, flops / cpu_seconds / cpu_peak_flops) if cpu_seconds > 0 and cpu_peak_flops else None
    at_peak = flops / (H100_FP32_TFLOPS * 1e12)
    return {"flops": flops, "cpu_efficiency": efficiency, "h100_s_at_peak": at_peak,
            "h100_s_at_cpu_efficiency": at_peak / efficiency if efficiency else None}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true", help="every stage at toy size: 3%% of the data at 32 px, toy networks, tiny counts")
    parser.add_argument("--stages", default="data,train,checkpoints,real,protocols")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS))
    parser.add_argument("--train-models", default="tunit,funit,unit")
    parser.add_argument("--train-iters", type=int, default=1, help="timed training iterations per configuration")
    parser.add_argument("--train-warmup", type=int, default=1, help="untimed iterations before them (FLOPs are counted in the first)")
    parser.add_argument("--reduced", action="store_true",
                        help="protocols other than their first full-count run at fewer fakes (REDUCED_PROTOCOLS); full-count "
                             "times extrapolated from the measured cost per fake")
    parser.add_argument("--funit-micro-batch", type=int, default=16, help="FUNIT micro-batch at batch 64 (0: all at once)")
    parser.add_argument("--lpips-full", action="store_true", help="lpips-diversity into every other class (45,000 outputs)")
    parser.add_argument("--batch-size", type=int, default=None, help="evaluation batch (default 64 on CUDA, 32 on CPU)")
    parser.add_argument("--work", default=None, help="keep data, checkpoints and cache here (default: a temporary folder)")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per stage")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return

    from bench_metrics import fp32_peak_flops, machine
    from unit_eval.device import resolve_device

    dev = resolve_device(args.device)
    device, cuda = str(dev), dev.type == "cuda"
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    batch = args.batch_size or (64 if cuda else 32)
    scale, af_size, maps_size = (0.03, 32, 32) if args.tiny else (1.0, 128, 256)
    report = {"machine": machine(), "device": device, "tiny": args.tiny, "stages": {}, "synthetic_data": True}
    tmp = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="paper_scale_"))
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    if not (tmp / "cache").exists():  # a private feature cache; the converted weights are shared
        from unit_eval.weights import inception_weights_path

        (tmp / "cache").mkdir()
        (tmp / "cache" / "weights").symlink_to(inception_weights_path().parent, target_is_directory=True)
    env["UNIT_EVAL_CACHE"] = str(tmp / "cache")
    af, maps = tmp / "animalfaces10-shape", tmp / "maps-shape"
    t0 = time.perf_counter()

    def say(text):
        print(f"[{time.perf_counter() - t0:7.0f} s] {text}", file=sys.stderr, flush=True)

    def child(name, spec):
        say(f"{name} ...")
        r = run_child({**spec, "name": name, "device": device}, tmp / "stages" / name.replace(" ", "_"), args.timeout, env)
        report["stages"][name] = r
        say(f"{name}: " + (f"{r['wall_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MiB" if r.get("ok") else f"FAILED {r.get('error')}"))
        return r

    report["cpu_fp32_limit"] = fp32_peak_flops(dev) if not args.tiny else {"flops": 0}
    peak = report["cpu_fp32_limit"].get("flops", 0) if not cuda else 0
    if "data" in stages:
        child("data animalfaces10-shape", {"kind": "synth", "dataset": "animalfaces10-shape", "out": str(af), "scale": scale, "size": af_size})
        child("data maps-shape", {"kind": "synth", "dataset": "maps-shape", "out": str(maps), "scale": scale, "size": maps_size})

    if "train" in stages:
        from bench_train import run_config

        models = [m.strip() for m in args.train_models.split(",") if m.strip()]
        # --train-warmup 0: the one iteration that is run is timed (one-off allocations included: an upper bound)
        common = {"impl": "ours", "device": device, "warmup": args.train_warmup, "iters": args.train_iters, "count_flops": True}
        configs = []
        if "tunit" in models:
            for phase in ("warmup", "joint"):
                configs.append({**common, "name": f"train tunit {phase}", "model": "tunit", "phase": phase,
                                "data": str(af / "train"), "img_size": af_size, "batch_size": 4 if args.tiny else 32})
        if "funit" in models:
            # batch 64 at 128 px needs about 28 GB at once (measured at batch 8 and extrapolated): micro-batches of 16
            # give the same gradient in 24 GB (the recipe's micro_batch; tests/test_funit.py)
            configs.append({**common, "name": "train funit", "model": "funit", "data": str(af / "train"),
                            "img_size": af_size, "batch_size": 4 if args.tiny else 64,
                            "overrides": {"micro_batch": 2 if args.tiny else args.funit_micro_batch}})
        if "unit" in models:
            configs.append({**common, "name": "train unit", "model": "unit", "data": str(maps / "train"),
                            "img_size": maps_size, "batch_size": 1})
        for spec in configs:
            if args.tiny:
                spec["extra"] = {"toy": True}
            say(f"{spec['name']} (batch {spec['batch_size']}) ...")
            r = run_config(spec, tmp / "stages" / spec["name"].replace(" ", "_"), args.timeout)
            report["stages"][spec["name"]] = r
            say(f"{spec['name']}: " + (f"{r['mean_s_per_iter']:.1f} s/it, peak RSS {r['peak_rss_mb']:.0f} MiB"
                                       if r.get("ok") else f"FAILED {r.get('error')}"))

    ckpts = {"tunit": tmp / "ckpt_tunit" / "run.pt", "funit": tmp / "ckpt_funit" / "run.pt", "unit": tmp / "ckpt_unit" / "run.pt"}
    if "checkpoints" in stages:
        for model, data, size in (("tunit", af / "train", af_size), ("funit", af / "train", af_size), ("unit", maps / "train", maps_size)):
            if ckpts[model].parent.exists():
                shutil.rmtree(ckpts[model].parent)
            child(f"checkpoint {model}", {"kind": "checkpoint", "model": model, "data": str(data), "img_size": size,
                                         "batch_size": 2, "k": 10 if model == "tunit" else None, "out": str(ckpts[model].parent),
                                         "toy": args.tiny})

    if "real" in stages:
        child("real features", {"kind": "real", "data": str(af), "img_size": af_size, "batch_size": batch})

    if "protocols" in stages:
        from unit_eval.commands.demo import write_demo_protocols

        table = TINY_PROTOCOLS if args.tiny else REDUCED_PROTOCOLS if args.reduced else {p: {} for p in protocols}
        changes = {p: dict(table[p]) for p in protocols}
        if "lpips-diversity" in changes and not (args.tiny or args.lpips_full):
            changes["lpips-diversity"] = {"targets": "one-random"}
        files = write_demo_protocols(tmp / "protocols", changes, prefix="scale")
        data_for = {p: af for p in protocols}
        data_for["unit-maps"] = maps
        if args.reduced and "unit-maps" in protocols:
            small_maps = tmp / "maps-shape-0.2"
            child("data maps-shape 20%", {"kind": "synth", "dataset": "maps-shape", "out": str(small_maps),
                                          "scale": 0.2, "size": maps_size})
            data_for["unit-maps"] = small_maps
        if args.reduced and "lpips-diversity" in protocols:
            small = tmp / "animalfaces10-shape-0.2"
            child("data animalfaces10-shape 20%", {"kind": "synth", "dataset": "animalfaces10-shape", "out": str(small),
                                                   "scale": 0.2, "size": af_size})
            data_for["lpips-diversity"] = small
        for p in protocols:
            ckpt = ckpts["unit"] if p == "unit-maps" else ckpts["tunit"]
            child(f"protocol {p}", {"kind": "protocol", "protocol": str(files[f"scale-{p}"]), "ckpt": str(ckpt),
                                    "data": str(data_for[p]), "batch_size": batch, "rows": str(tmp / "rows.jsonl")})

    report["total_wall_s"] = time.perf_counter() - t0
    report["extrapolation"] = extrapolate(report, peak, args)
    report["work"] = str(tmp)
    if not args.work:
        shutil.rmtree(tmp, ignore_errors=True)
    summary(report)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    failed = [n for n, r in report["stages"].items() if not r.get("ok")]
    if failed:
        print(f"failed stages: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def extrapolate(report: dict, cpu_peak: float, args) -> dict:
    """H100 seconds per stage from counted FLOPs (only meaningful for a CPU run at full size)."""
    out = {}
    st = report["stages"]
    real = st.get("real features", {})
    inc = real.get("inception_flops_per_image")
    if real.get("ok") and inc:
        out["real features"] = gpu_seconds(inc * real["images"], real["stages"]["extract"], cpu_peak)
    for name, r in st.items():
        if not r.get("ok"):
            continue
        if name.startswith("protocol ") and r.get("n_fake"):
            n = r["n_fake"]
            gen = gpu_seconds(r["generate_flops_per_image"] * n, r["stages"]["generate"], cpu_peak)
            entry = {"generate": gen}
            if inc and (r.get("extractor") or "").startswith("inception"):
                entry["extract"] = gpu_seconds(inc * n, r["stages"]["extract"], cpu_peak)
            out[name] = entry
        if name.startswith("train ") and r.get("flops_first_iter"):
            out[name] = gpu_seconds(r["flops_first_iter"], r["mean_s_per_iter"], cpu_peak)
    for name, full in FULL_FAKES.items():  # the published count's CPU time at the measured cost per fake
        r = st.get(f"protocol {name}")
        n = r and (r.get("n_fake") or r.get("n_real"))  # unit-maps: its translated test pairs
        if r and r.get("ok") and n and not args.tiny:
            per_fake = r["eval_s"] / n  # fixed costs (weights, cached real sets) included: an upper bound
            out[f"{name} at {full} outputs, CPU estimate"] = {"measured_outputs": n, "s_per_output": per_fake,
                                                               "cpu_wall_s": per_fake * full}
    return out


def summary(report: dict) -> None:
    lines = [f"paper-scale dry run on {report['device']} ({'tiny' if report['tiny'] else 'published counts'}, SYNTHETIC data)",
             "| stage | wall s | peak RSS MiB | images | img/s | decode | generate | extract | statistics |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in report["stages"].items():
        if not r.get("ok"):
            lines.append(f"| {name} | FAILED: {r.get('error')} | | | | | | | |")
            continue
        wall = r.get("eval_s") or r.get("wall_s")  # a protocol: evaluate() alone (not the FLOP count after it)
        if name.startswith("train "):
            lines.append(f"| {name} (batch {r.get('config', {}).get('batch_size')}) | {r['mean_s_per_iter']:.1f} s/it | "
                         f"{r['peak_rss_mb']:.0f} | | | | | | |")
            continue
        n = r.get("n_fake") or r.get("images") or r.get("n_real")
        s = r.get("stages") or {}
        shares = [f"{100 * s[k] / wall:.0f}%" if k in s and wall else "" for k in ("decode", "generate", "extract", "statistics")]
        lines.append(f"| {name} | {wall:.1f} | {r['peak_rss_mb']:.0f} | {n or ''} | {n / wall if n else 0:.1f} | " + " | ".join(shares) + " |")
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
