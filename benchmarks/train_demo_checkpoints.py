"""Re-create the demo checkpoints shipped in ``unit_eval/demo_checkpoints/`` and measure them as the demo does.

    python benchmarks/train_demo_checkpoints.py --out /tmp/demo-ckpts                  # train all, compare, evaluate
    python benchmarks/train_demo_checkpoints.py --out /tmp/demo-ckpts --only tunit_digits
    python benchmarks/train_demo_checkpoints.py --out /tmp/demo-ckpts --evaluate-only  # the shipped files' numbers
    python benchmarks/train_demo_checkpoints.py --ship RUN_DIR/run.pt tunit_digits.pt   # write a file to ship

Each checkpoint's command, seed and iterations are recorded in :data:`unit_eval.demo_assets.DEMO_CHECKPOINTS` (the
one place they live). The script materializes the embedded digits, links them as ``OUT/digits`` and runs each
command in ``OUT`` (so the run.pt records the dataset as ``digits/train``, no path of this machine), one thread
(``OMP_NUM_THREADS=1``), on the CPU. It then compares the new weights with the shipped ones tensor by tensor: on
the machine and PyTorch version that trained them they are identical (the file's sha256 differs anyway: the run.pt
records the time it was written); elsewhere, float round-off may differ and the numbers should be close.

``--ship RUN.pt NAME`` writes ``unit_eval/demo_checkpoints/NAME``: the run.pt's weights, config and meta with
``meta.dataset`` made the relative ``digits/train`` (the trainer records the absolute path it read) and
``meta.shipped`` saying so; then pin the printed sha256 in ``unit_eval/demo_assets.py``.

Evaluation (default on) scores the new (or, with ``--evaluate-only``, the shipped) checkpoints with the demo
protocols on the demo's digits subset (40 train and 8 test images per class, seed 0), beside the two reference
rows, and prints the markdown table: the numbers recorded in ``DEMO_CHECKPOINTS[...].measured``. It also prints
how often a translation takes the reference's class and how often it keeps the source's (``reference_class_rate``,
``source_class_rate``): 400 random pairs of test digits (seed 0; pairs of one class left out), each output
classified by an RBF SVM trained on the train split at scikit-learn's native 8 x 8 (98.8 % accurate on the real
test digits). Chance is about 0.1; an identity scores 0 and about 0.99.
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def train(entry, out: Path) -> tuple[Path, float]:
    cmd = shlex.split(entry.command)
    assert cmd[:2] == ["unit-eval", "train"], entry.command
    run_dir = Path(cmd[cmd.index("--out") + 1])
    if (out / run_dir).exists():
        raise SystemExit(f"{out / run_dir} exists; choose another --out")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "unit_eval.cli", *cmd[1:]], cwd=out, check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    return out / run_dir / "run.pt", time.perf_counter() - t0


def compare(new: Path, shipped: Path) -> str:
    from unit_eval.checkpoint import load_run

    a, b = load_run(new), load_run(shipped)
    if a["config"] != b["config"]:
        return "config differs: " + ", ".join(k for k in a["config"] if a["config"].get(k) != b["config"].get(k))
    if set(a["state_dict"]) != set(b["state_dict"]):
        return "different tensors"
    worst = max(float((a["state_dict"][k].double() - b["state_dict"][k].double()).abs().max())
                for k in a["state_dict"] if a["state_dict"][k].numel())
    return "weights identical to the shipped file" if worst == 0 else f"weights differ by at most {worst:.3g}"


def ship(run_pt: Path, name: str) -> Path:
    from unit_eval.cache import sha256_file
    from unit_eval.checkpoint import load_run, save_run
    from unit_eval.demo_assets import checkpoint_folder

    run = load_run(run_pt)
    meta = {**run["meta"], "dataset": "digits/train",
            "shipped": "unit-eval demo checkpoint; meta.dataset made relative (the embedded digits' train split)"}
    target = save_run(checkpoint_folder() / name, model=run["model"], config=run["config"],
                      state_dict=run["state_dict"], meta=meta)
    print(f"{target}: {target.stat().st_size / 2**20:.2f} MB, sha256 {sha256_file(target)}")
    return target


def class_follow_rates(ckpt: Path) -> tuple[float, float]:
    """(reference-class rate, source-class rate) of the model's translations (module docstring)."""
    import numpy as np
    import torch
    from PIL import Image
    from sklearn.svm import SVC

    from unit_eval.embedded import materialize
    from unit_eval.translator import load_checkpoint_translator

    root = materialize("digits", progress=False)
    model = load_checkpoint_translator(ckpt, "cpu")
    size = model.image_size

    def load(split, per_class=None):
        xs, ys = [], []
        for c in sorted(p.name for p in (root / split).iterdir() if p.is_dir()):
            for p in sorted((root / split / c).glob("*.png"))[:per_class]:
                img = Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)
                xs.append(torch.from_numpy(np.array(img)).permute(2, 0, 1))
                ys.append(int(c))
        return torch.stack(xs), np.array(ys)

    def features(u8):  # ink at 8 x 8 on scikit-learn's 0..16 scale
        gray = u8.float().mean(1, keepdim=True)
        return (255 - torch.nn.functional.adaptive_avg_pool2d(gray, 8)).flatten(1).numpy() / 16

    x_train, y_train = load("train")
    x_test, y_test = load("test", 8)  # the demo's held-out digits
    classifier = SVC(gamma="scale").fit(features(x_train), y_train)
    gen = torch.Generator().manual_seed(0)
    src, ref = (torch.randint(0, len(x_test), (400,), generator=gen) for _ in range(2))
    keep = y_test[src.numpy()] != y_test[ref.numpy()]
    x = x_test.float() / 127.5 - 1
    with torch.no_grad():
        out = model.translate(x[src], x[ref])
    pred = classifier.predict(features(((out.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)))
    return float((pred == y_test[ref.numpy()])[keep].mean()), float((pred == y_test[src.numpy()])[keep].mean())


def evaluate(checkpoints: dict[str, Path], work: Path) -> str:
    import torch

    from unit_eval.commands.demo import (BRIEF, CLUSTER, DC, DIVERSITY, FLOOR, IDENTITY, MFID, SHIPPED,
                                         digits_subset, write_demo_protocols)
    from unit_eval.commands.demo_parts import Evaluator, in_table_order
    from unit_eval.embedded import materialize
    from unit_eval.tables import make_table

    torch.set_num_threads(1)
    digits = digits_subset(materialize("digits", progress=False), work / "demo-digits", 40, 8)
    evaluator = Evaluator(write_demo_protocols(work / "protocols"), device="cpu", seed=0)
    rows = []
    for name, path in checkpoints.items():
        model = name.split("_")[0]
        names = [MFID, DC, DIVERSITY] + ([CLUSTER] if model == "tunit" else [])
        rows += evaluator.checkpoint(path, names, digits, SHIPPED[model])
    rows += evaluator.reference(FLOOR, [MFID, DC, DIVERSITY], digits, 32)
    rows += evaluator.reference(IDENTITY, [MFID, DC, DIVERSITY], digits, 32)
    return make_table(in_table_order(rows, [*SHIPPED.values(), *BRIEF.values(), FLOOR, IDENTITY]), "markdown")


def main() -> None:
    from unit_eval.demo_assets import DEMO_CHECKPOINTS, checkpoint_folder
    from unit_eval.embedded import materialize

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--ship", nargs=2, metavar=("RUN_PT", "NAME"), help="write RUN_PT as the shipped file NAME")
    ap.add_argument("--only", action="append", choices=sorted(DEMO_CHECKPOINTS))
    ap.add_argument("--no-evaluate", action="store_true")
    ap.add_argument("--evaluate-only", action="store_true", help="score the shipped files, train nothing")
    args = ap.parse_args()
    if args.ship:
        ship(Path(args.ship[0]), args.ship[1])
        return
    if args.out is None:
        ap.error("--out is required")
    names = args.only or sorted(DEMO_CHECKPOINTS)
    args.out.mkdir(parents=True, exist_ok=True)
    link = args.out / "digits"
    if not link.exists():
        link.symlink_to(materialize("digits", progress=False), target_is_directory=True)
    made: dict[str, Path] = {}
    for name in names:
        entry = DEMO_CHECKPOINTS[name]
        shipped = checkpoint_folder() / entry.file
        if args.evaluate_only:
            made[name] = shipped
            continue
        print(f"{name}: {entry.command}", flush=True)
        path, seconds = train(entry, args.out)
        print(f"{name}: {seconds:.0f} s wall; {path} ({path.stat().st_size / 2**20:.2f} MB); {compare(path, shipped)}",
              flush=True)
        made[name] = path
    if not args.no_evaluate:
        for name, path in made.items():
            ref_rate, src_rate = class_follow_rates(path)
            print(f"{name}: reference_class_rate {ref_rate:.3f}, source_class_rate {src_rate:.3f}")
        print(evaluate(made, args.out))


if __name__ == "__main__":
    main()
