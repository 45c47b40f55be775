"""A sweep of N checkpoints (``unit-eval sweep RUN_DIR``) against N separate ``unit-eval evaluate --ckpt`` calls,
the way a user evaluates snapshots without it: same checkpoints, same protocol, same machine, one run.

    python benchmarks/bench_sweep.py [--snapshots 10] [--protocol demo-tunit-mfid] [--smoke] [--modes cache,no-cache] [--json]

Data: scikit-learn digits (embedded; a per-class subset as in the demo). Checkpoints: a toy TUNIT run trained here
with ``--snapshot-every`` (a protocol's cost does not depend on how good the model is). Each route runs in fresh
processes (the CLI), twice: with the feature cache (the default; each route starts from an empty cache, so the
separate calls pay the real-set extraction once and then read it, and also pay start-up, weight loading and the
cache read N times) and with ``--no-cache`` (every separate call extracts the real set again). The rows of both
routes are checked to be equal before any time is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import machine  # noqa: E402


def _cli(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "unit_eval.cli", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"unit-eval {' '.join(args[:2])} failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def _values(path: Path) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["ckpt_sha256"], r["protocol"], r["metric"], r["class"], r["seed"]): r["value"] for r in rows}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshots", type=int, default=10)
    parser.add_argument("--every", type=int, default=20, help="iterations between snapshots")
    parser.add_argument("--protocol", default="demo-tunit-mfid", help="a demo protocol name or a .toml file")
    parser.add_argument("--smoke", action="store_true", help="the demo protocols at their --smoke sizes (90 fakes)")
    parser.add_argument("--train-per-class", type=int, default=40)
    parser.add_argument("--test-per-class", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=None, help="keep the run and results here")
    parser.add_argument("--modes", default="cache,no-cache", help="cache (the default feature cache), no-cache, or both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from unit_eval.baselines.common.loop import train
    from unit_eval.commands.demo import SMOKE_PROTOCOLS, DEMO_PROTOCOLS, digits_subset, write_demo_protocols
    from unit_eval.embedded import materialize
    from unit_eval.weights import inception_weights_path

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    data = digits_subset(materialize("digits", progress=False), work / "digits", args.train_per_class, args.test_per_class)
    protocols = write_demo_protocols(work / "protocols", SMOKE_PROTOCOLS if args.smoke else DEMO_PROTOCOLS)
    protocol = str(protocols.get(args.protocol, args.protocol))
    run = work / "tunit"
    iters = args.snapshots * args.every
    if not (run / "run.pt").exists():
        train("tunit", data / "train", run, iters=iters, k=10, img_size=32, seed=0, device=args.device, progress=False,
              sample_every=0, extra={"toy": True}, snapshot_every=args.every)
    snapshots = sorted((run / "snapshots").glob("iter_*.pt"))
    assert len(snapshots) == args.snapshots, snapshots

    base_env = dict(os.environ, UNIT_EVAL_INCEPTION_WEIGHTS=str(inception_weights_path()))
    common = ["--protocol", protocol, "--data", str(data), "--device", args.device]
    result = {"machine": machine(), "checkpoints": len(snapshots), "protocol": Path(protocol).stem, "modes": {}}
    modes = {"cache": ("feature cache (default)", []), "no-cache": ("--no-cache", ["--no-cache"])}
    for mode, extra in (modes[m.strip()] for m in args.modes.split(",")):
        times = {}
        for route in ("sweep", "evaluate"):
            env = dict(base_env, UNIT_EVAL_CACHE=str(work / f"cache-{route}-{len(extra)}"))
            out = work / f"{route}-{len(extra)}.jsonl"
            out.unlink(missing_ok=True)
            if route == "sweep":
                # the snapshots alone: run.pt is the last snapshot's bytes and is evaluated once anyway
                times[route] = _cli(["sweep", *map(str, snapshots), *common, *extra, "--out", str(out)], env)
            else:
                times[route] = sum(_cli(["evaluate", "--ckpt", str(s), *common, *extra, "--out", str(out)], env)
                                   for s in snapshots)
            result.setdefault("rows", {})[route] = _values(out)
        if result["rows"]["sweep"] != result["rows"]["evaluate"]:
            raise SystemExit("the sweep's rows differ from the separate evaluations' rows")
        result["modes"][mode] = {"sweep_s": round(times["sweep"], 1), "evaluate_calls_s": round(times["evaluate"], 1),
                                 "speedup": round(times["evaluate"] / times["sweep"], 2)}
    result["rows_equal"] = True
    result.pop("rows")
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{len(snapshots)} checkpoints, protocol {result['protocol']}, {result['machine']}")
        print("| mode | one sweep | separate evaluate calls | ratio |\n| --- | --- | --- | --- |")
        for mode, m in result["modes"].items():
            print(f"| {mode} | {m['sweep_s']} s | {m['evaluate_calls_s']} s | {m['speedup']}x |")
    return result


if __name__ == "__main__":
    main()
