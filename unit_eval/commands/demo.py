"""``unit-eval demo``: the whole loop on the embedded data, sized for a 2-core CPU in a few minutes.

Data: scikit-learn's handwritten digits (10 classes, 64 px, a per-class subset) for TUNIT and FUNIT, and
the synthetic paired photo/flat-render set built from scikit-image's photos for UNIT and pixel accuracy.
Neither is a paper's dataset, and the demo protocols are toy-sized variants of the shipped ones (their
names start with ``demo-`` and their files are written next to the results), so the numbers show the
machinery working, not a result to compare with a paper.
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import click

from ..checkpoint import MODELS
from .common import emit, info, json_option

# Shipped protocol -> the counts the demo shrinks (key = TOML field, value = demo value).
DEMO_PROTOCOLS: dict[str, dict[str, object]] = {
    "tunit-mfid": {"sources_per_class": 2, "references_per_source": 2},
    "tunit-dc": {"max_fake": 200},
    "tunit-cluster": {},
    "lpips-diversity": {"outputs_per_input": 3, "targets": "one-random"},
    "unit-maps": {"target_domain": "render"},
}
# --smoke: the smallest counts that still run every code path (tests of the demo itself).
SMOKE_PROTOCOLS: dict[str, dict[str, object]] = {
    **DEMO_PROTOCOLS,
    "tunit-mfid": {"sources_per_class": 1, "references_per_source": 1},
    "tunit-dc": {"max_fake": 30},
    "lpips-diversity": {"outputs_per_input": 2, "targets": "one-random"},
}
CLASS_PROTOCOLS = ("demo-tunit-mfid", "demo-tunit-dc", "demo-lpips-diversity")


def write_demo_protocols(folder: Path, sizes: dict[str, dict[str, object]] = DEMO_PROTOCOLS, prefix: str = "demo"
                         ) -> dict[str, Path]:
    """Copy each shipped protocol with other values and a ``<prefix>-`` name into ``folder``."""
    from importlib.resources import files

    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, changes in sizes.items():
        text = (files("unit_eval.protocols") / f"{name}.toml").read_text(encoding="utf-8")
        text = re.sub(r'^name = ".*"$', f'name = "{prefix}-{name}"', text, count=1, flags=re.M)
        for key, value in changes.items():
            literal = json.dumps(value)
            text, n = re.subn(rf"^{key} *=.*$", f"{key} = {literal}  # {prefix}", text, count=1, flags=re.M)
            if n != 1:
                raise RuntimeError(f"protocol {name} has no field {key}")
        path = folder / f"{prefix}-{name}.toml"
        path.write_text(text, encoding="utf-8")
        written[f"{prefix}-{name}"] = path
    return written


def digits_subset(source: Path, target: Path, train_per_class: int, test_per_class: int) -> Path:
    """The first N train and M test images of every digit class, copied into ``target/{train,test}``."""
    if target.exists():
        shutil.rmtree(target)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for class_dir in sorted(p for p in (source / split).iterdir() if p.is_dir()):
            out = target / split / class_dir.name
            out.mkdir(parents=True)
            for path in sorted(class_dir.glob("*.png"))[:count]:
                shutil.copy2(path, out / path.name)
    return target


def _with_iteration(rows: list[dict], iteration: int) -> list[dict]:
    for row in rows:
        row["options"] = {**row.get("options", {}), "iteration": iteration}
    return rows


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="demo-out", show_default=True, help="Output folder (replaced).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda ...")
@click.option("--iters", type=click.IntRange(min=2), default=300, show_default=True, help="Training iterations per model.")
@click.option("--img-size", type=click.IntRange(min=16), default=32, show_default=True, help="Training and evaluation resolution.")
@click.option("--train-per-class", type=click.IntRange(min=4), default=40, show_default=True, help="Digits per class used for training and as the real set.")
@click.option("--test-per-class", type=click.IntRange(min=4), default=8, show_default=True, help="Held-out digits per class (sources and references).")
@click.option("--full-size", is_flag=True, help="Paper-size networks instead of the tiny CPU ones (use with --device cuda).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--smoke", is_flag=True, help="Smallest sampling counts (a quick check that every step runs).")
@json_option
def demo_command(out_dir, device, iters, img_size, train_per_class, test_per_class, full_size, seed, smoke, as_json):
    """Train TUNIT, FUNIT and UNIT briefly on embedded data, evaluate, tabulate and plot (toy-sized: numbers are not paper results)."""
    from ..baselines.common.loop import train
    from ..embedded import materialize
    from ..evaluation import evaluate
    from ..results import append_rows
    from ..tables import make_table
    from ..weights import fetch_weights

    started = time.perf_counter()
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    results = out / "results.jsonl"
    timings: dict[str, float] = {}

    def lap(name, t0):
        timings[name] = round(time.perf_counter() - t0, 1)

    t0 = time.perf_counter()
    info("[1/5] pretrained weights (fetched and converted on first use)")
    fetch_weights()
    lap("weights", t0)

    t0 = time.perf_counter()
    info("[2/5] embedded data: scikit-learn digits, scikit-image photo/flat-render pairs")
    digits = digits_subset(materialize("digits", progress=False), out / "data" / "digits", train_per_class, test_per_class)
    paired = materialize("photos-paired", progress=False)
    protocols = write_demo_protocols(out / "protocols", SMOKE_PROTOCOLS if smoke else DEMO_PROTOCOLS)
    lap("data", t0)

    toy = {} if full_size else {"toy": True}
    common = dict(img_size=img_size, seed=seed, device=device, progress=True, extra=toy, log_every=10)
    runs = {name: out / "runs" / name for name in MODELS}

    def evaluate_run(name, names, data, iteration):
        _, rows = evaluate([str(protocols[p]) for p in names], ckpt=str(runs[name] / "run.pt"), data=str(data),
                           device=device, run_name=name.upper(), seeds=[seed])
        append_rows(results, _with_iteration(rows, iteration))

    t0 = time.perf_counter()
    info(f"[3/5] training TUNIT, FUNIT, UNIT ({iters} iterations each; TUNIT evaluated half-way too)")
    half = max(1, iters // 2)
    train("tunit", digits / "train", runs["tunit"], iters=half, k=10, **common)
    evaluate_run("tunit", ["demo-tunit-mfid"], digits, half)
    train("tunit", digits / "train", runs["tunit"], iters=iters, k=10, resume=True, **common)
    train("funit", digits / "train", runs["funit"], iters=iters, **common)
    train("unit", paired / "train", runs["unit"], iters=iters, **common)
    lap("training", t0)

    t0 = time.perf_counter()
    info("[4/5] evaluating with the demo protocols")
    evaluate_run("tunit", [*CLASS_PROTOCOLS, "demo-tunit-cluster"], digits, iters)
    evaluate_run("funit", CLASS_PROTOCOLS, digits, iters)
    evaluate_run("unit", ["demo-unit-maps"], paired, iters)
    lap("evaluation", t0)

    t0 = time.perf_counter()
    info("[5/5] tables and figures")
    from ..results import read_rows

    rows = read_rows(results)
    final = [r for r in rows if r["options"].get("iteration") == iters]
    table_md = make_table(final, "markdown")
    (out / "table.md").write_text(table_md + "\n", encoding="utf-8")
    (out / "table.tex").write_text(make_table(final, "latex", caption="unit-eval demo on embedded toy data (not a paper result)",
                                              label="tab:unit-eval-demo") + "\n", encoding="utf-8")
    figures = _figures(out, runs["tunit"] / "run.pt", digits, rows, device, seed)
    lap("figures", t0)

    summary = {
        "out": str(out.resolve()),
        "results": str(results.resolve()),
        "table_markdown": str((out / "table.md").resolve()),
        "table_latex": str((out / "table.tex").resolve()),
        "figures": [str(p.resolve()) for p in figures],
        "runs": {k: str((v / "run.pt").resolve()) for k, v in runs.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "timings": timings,
    }
    human = "\n".join([
        table_md,
        "",
        f"Demo finished in {summary['seconds']:.0f} s (toy data and toy-sized protocols: not paper numbers).",
        f"  results (JSONL): {summary['results']}",
        f"  tables:          {summary['table_markdown']}, {summary['table_latex']}",
        f"  figures:         {out.resolve() / 'figures'}",
        f"  checkpoints:     {out.resolve() / 'runs'}/<model>/run.pt",
    ])
    emit(summary, as_json, human)


def _figures(out: Path, tunit_ckpt: Path, digits: Path, rows: list[dict], device: str, seed: int) -> list[Path]:
    from ..datasets import resolve_dataset
    from ..evaluation.figures import clusters_from_model, codes_from_model, grid_from_model
    from ..plots import domain_samples, fid_bars, metric_curves, style_codes, translation_grid
    from ..translator import load_checkpoint_translator

    folder = out / "figures"
    dev = _device(device)
    model = load_checkpoint_translator(tunit_ckpt, dev)
    test = resolve_dataset(str(digits)).split("test")
    files: list[Path] = []
    g = grid_from_model(model, test, dev, n_sources=5, n_references=5, seed=seed)
    files += translation_grid(g["sources"], g["references"], g["outputs"], folder / "tunit_grid.png",
                              source_labels=g["source_labels"], reference_labels=g["reference_labels"],
                              title="TUNIT reference-guided translation (digits demo)", pdf=True)
    c = clusters_from_model(model, test, dev, per_cluster=8, seed=seed)
    files += domain_samples(c["samples"], folder / "tunit_domains.png", counts=c["counts"], title="TUNIT pseudo-domains (digits demo)", pdf=True)
    codes = codes_from_model(model, test, dev, seed=seed)
    files += style_codes(codes["codes"], codes["pseudo_labels"], codes["true_labels"], folder / "tunit_style_codes.png",
                         class_names=codes["class_names"], seed=seed, pdf=True)
    files += metric_curves([r for r in rows if r["run"] == "TUNIT"], folder / "tunit_mfid_curve.png", metrics=["mfid"], pdf=True)
    files += fid_bars(rows, folder / "fid_per_class.png", protocol="demo-tunit-mfid", pdf=True)
    return files


def _device(device: str):
    from ..device import resolve_device

    return resolve_device(device)
