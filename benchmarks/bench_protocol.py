"""tunit-mfid end to end (generation + features + FID) with unit-eval vs the usual route: generate PNGs
with the same model and the same source/reference pairs, then torch-fidelity's ``calculate_metrics`` per class.

    python benchmarks/bench_protocol.py [--device auto] [--sources 2 --references 2] [--train-per-class 40] [--json]

Data: scikit-learn digits (10 classes, 64 px, embedded); model: a TUNIT checkpoint trained for a few toy
iterations here (the speed of a protocol does not depend on how good the model is). The protocol is
tunit-mfid with the counts given (the paper's 18 x 5 on a GPU: --sources 18 --references 5). Three timings:
unit-eval cold (no feature cache), unit-eval warm (real-set features cached, as when a leaderboard
evaluates many checkpoints), and the PNG + torch-fidelity route. Both routes must give the same mFID.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import machine  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sources", type=int, default=2, help="sources per other class (paper: 18)")
    parser.add_argument("--references", type=int, default=2, help="references per source (paper: 5)")
    parser.add_argument("--train-per-class", type=int, default=40, help="real images per class")
    parser.add_argument("--test-per-class", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch_fidelity

    from unit_eval.baselines.common.loop import train
    from unit_eval.commands.demo import digits_subset, write_demo_protocols
    from unit_eval.datasets import resolve_dataset
    from unit_eval.device import resolve_device
    from unit_eval.embedded import materialize
    from unit_eval.images import float_to_uint8, save_image, uint8_to_float
    from unit_eval.protocol_runner import _Images, evaluate, sample_class_fid
    from unit_eval.protocol_specs import load_protocol
    from unit_eval.translator import load_checkpoint_translator
    from unit_eval.weights import inception_weights_path

    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = digits_subset(materialize("digits", progress=False), tmp / "digits", args.train_per_class, args.test_per_class)
        train("tunit", data / "train", tmp / "run", iters=10, img_size=32, k=10, device=device, progress=False,
              extra={"toy": True}, sample_every=0)
        ckpt = tmp / "run" / "run.pt"
        sizes = {"tunit-mfid": {"sources_per_class": args.sources, "references_per_source": args.references}}
        toml = write_demo_protocols(tmp / "protocols", sizes)["demo-tunit-mfid"]
        spec = load_protocol(toml)

        def ours(no_cache: bool):
            results, _ = evaluate([str(toml)], ckpt=str(ckpt), data=str(data), seeds=[0], device=str(device),
                                  batch_size=args.batch_size, no_cache=no_cache, progress=False)
            return results[0].summary()["mfid"]

        # A private, empty feature cache; the converted weights are shared with the default cache.
        weights_dir = inception_weights_path().parent
        os.environ["UNIT_EVAL_CACHE"] = str(tmp / "cache")
        (tmp / "cache").mkdir()
        (tmp / "cache" / "weights").symlink_to(weights_dir, target_is_directory=True)
        ours(no_cache=True)  # warm-up: networks built, weights verified

        start = time.perf_counter()
        v_cold = ours(no_cache=True)
        t_cold = time.perf_counter() - start
        ours(no_cache=False)  # fills the real-set cache
        start = time.perf_counter()
        v_warm = ours(no_cache=False)
        t_warm = time.perf_counter() - start

        weights = tmp / "inception.pth"
        state = torch.load(inception_weights_path(), map_location="cpu", weights_only=True)
        state.setdefault("fc.weight", torch.full((1008, 2048), float("nan")))
        state.setdefault("fc.bias", torch.full((1008,), float("nan")))
        torch.save(state, weights)

        start = time.perf_counter()
        model = load_checkpoint_translator(ckpt, device)
        dataset = resolve_dataset(str(data))
        test, train_split = dataset.split("test"), dataset.split("train")
        plan = sample_class_fid(test, spec.sources_per_class, spec.references_per_source, 0, purpose="class-fid", label=spec.name)
        images = _Images(model.image_size, spec.resize_filter)
        per_class = {}
        n_fake = 0
        for cls, jobs in plan.items():
            for i in range(0, len(jobs), args.batch_size):
                chunk = jobs[i : i + args.batch_size]
                with torch.no_grad():
                    out = model.translate(uint8_to_float(images.uint8([j.source for j in chunk])).to(device),
                                          uint8_to_float(images.uint8([j.reference for j in chunk])).to(device))
                for j, img in zip(chunk, float_to_uint8(out).cpu()):
                    save_image(img, tmp / "fake" / f"{j.name}.png")
            n_fake += len(jobs)
            for p in train_split[cls]:  # the real set at the model's resolution, as the protocol defines it
                save_image(images.array(p), tmp / "real" / cls / f"{p.stem}.png")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                per_class[cls] = torch_fidelity.calculate_metrics(
                    input1=str(tmp / "fake" / cls), input2=str(tmp / "real" / cls), fid=True, cuda=device.type == "cuda",
                    batch_size=args.batch_size, feature_extractor_weights_path=str(weights), verbose=False, cache=False,
                )["frechet_inception_distance"]
        t_theirs = time.perf_counter() - start
        v_theirs = float(np.mean(list(per_class.values())))

    report = {
        "machine": machine(), "device": str(device), "classes": len(plan), "fakes_per_class": n_fake // len(plan),
        "real_per_class": args.train_per_class,
        "unit_eval_cold_s": t_cold, "unit_eval_warm_s": t_warm, "png_torch_fidelity_s": t_theirs,
        "speedup_cold": t_theirs / t_cold, "speedup_warm": t_theirs / t_warm,
        "mfid_unit_eval": v_cold, "mfid_torch_fidelity": v_theirs, "mfid_rel_diff": abs(v_cold - v_theirs) / v_theirs,
        "warm_equals_cold": v_warm == v_cold,
    }
    print(f"tunit-mfid, {report['classes']} classes x {report['fakes_per_class']} fakes, {args.train_per_class} reals/class on {device}: "
          f"PNG + torch-fidelity {t_theirs:.1f} s, unit-eval {t_cold:.1f} s cold ({report['speedup_cold']:.2f}x), "
          f"{t_warm:.1f} s with cached real features ({report['speedup_warm']:.2f}x); mFID rel. diff {report['mfid_rel_diff']:.1e}",
          file=sys.stderr)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
