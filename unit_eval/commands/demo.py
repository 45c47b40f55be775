"""``unit-eval demo``: the whole loop on the embedded data, sized for a 2-core CPU in a few minutes.

Data: scikit-learn's handwritten digits (10 classes, 64 px, a per-class subset) for TUNIT and FUNIT, and
the synthetic paired photo/flat-render set built from scikit-image's photos for UNIT and pixel accuracy.
Neither is a paper's dataset, and the demo protocols are toy-sized variants of the shipped ones (their
names start with ``demo-`` and their files are written next to the results), so the numbers show the
machinery working, not a result to compare with a paper.

The story the table tells, row by row (see ``ROW_NOTES``): the shipped checkpoints (trained for thousands of
iterations by ``unit-eval train``, pinned by sha256 in :mod:`unit_eval.demo_assets`) cluster the digits and give
non-zero density and coverage (how far they translate is in that module's docstring); the runs trained here for a few hundred iterations show the loop but do not translate yet;
two reference rows give the scale: held-out real images as the outputs (the floor) and the identity (the source
returned unchanged).
"""
from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import click

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
from .demo_parts import (BRIEF, CLUSTER, DC, DIVERSITY, FLOOR, IDENTITY, MAPS, MFID, ROW_NOTES,  # noqa: F401 (re-exported)
                         SHIPPED)


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


@click.command("demo")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="demo-out", show_default=True, help="Output folder (replaced).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda ...")
@click.option("--iters", type=click.IntRange(min=2), default=200, show_default=True, help="Brief training iterations per model.")
@click.option("--img-size", type=click.IntRange(min=16), default=32, show_default=True, help="Training and evaluation resolution (the shipped checkpoints need 32).")
@click.option("--train-per-class", type=click.IntRange(min=4), default=40, show_default=True, help="Digits per class used for training and as the real set.")
@click.option("--test-per-class", type=click.IntRange(min=4), default=8, show_default=True, help="Held-out digits per class (sources and references).")
@click.option("--full-size", is_flag=True, help="Paper-size networks instead of the tiny CPU ones (use with --device cuda).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--smoke", is_flag=True, help="Smallest sampling counts (a quick check that every step runs).")
@json_option
def demo_command(out_dir, device, iters, img_size, train_per_class, test_per_class, full_size, seed, smoke, as_json):
    """Train TUNIT, FUNIT and UNIT briefly on embedded data, evaluate them beside the shipped demo checkpoints and two
    reference rows, tabulate, plot and write an HTML report (toy-sized: numbers are not paper results)."""
    from ..baselines.common.loop import train
    from ..demo_assets import DEMO_CHECKPOINTS, verified_checkpoint
    from ..embedded import materialize
    from ..results import append_rows
    from ..weights import fetch_weights
    from . import demo_parts as parts

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
    info("[1/6] pretrained weights (fetched and converted on first use); shipped demo checkpoints (sha256 checked)")
    fetch_weights()
    shipped = {m: verified_checkpoint(f"{m}_digits") for m in SHIPPED if f"{m}_digits" in DEMO_CHECKPOINTS}
    shipped_size = {m: parts.checkpoint_size(p) for m, p in shipped.items()}
    shipped = {m: p for m, p in shipped.items() if shipped_size[m] == img_size}
    if len(shipped) < len(SHIPPED):
        info(f"  --img-size {img_size}: the shipped checkpoints are {sorted(set(shipped_size.values()))} px; "
             "their rows are left out")
    lap("weights", t0)

    t0 = time.perf_counter()
    info("[2/6] embedded data: scikit-learn digits, scikit-image photo/flat-render pairs")
    digits = digits_subset(materialize("digits", progress=False), out / "data" / "digits", train_per_class, test_per_class)
    paired = materialize("photos-paired", progress=False)
    protocols = write_demo_protocols(out / "protocols", SMOKE_PROTOCOLS if smoke else DEMO_PROTOCOLS)
    lap("data", t0)

    toy = {} if full_size else {"toy": True}
    common = dict(img_size=img_size, seed=seed, device=device, progress=True, extra=toy, log_every=10)
    runs = {name: out / "runs" / name for name in BRIEF}
    evaluator = parts.Evaluator(protocols, device=device, seed=seed)

    def evaluate_run(name, names, data):
        append_rows(results, evaluator.checkpoint(runs[name] / "run.pt", names, data, BRIEF[name]))

    t0 = time.perf_counter()
    info(f"[3/6] brief training: TUNIT, FUNIT, UNIT ({iters} iterations each, to show the loop; TUNIT evaluated half-way too)")
    half = max(1, iters // 2)
    train("tunit", digits / "train", runs["tunit"], iters=half, k=10, **common)
    evaluate_run("tunit", [MFID], digits)
    train("tunit", digits / "train", runs["tunit"], iters=iters, k=10, resume=True, **common)
    train("funit", digits / "train", runs["funit"], iters=iters, **common)
    train("unit", paired / "train", runs["unit"], iters=iters, **common)
    lap("training", t0)

    t0 = time.perf_counter()
    info("[4/6] evaluating with the demo protocols: shipped checkpoints, brief runs, reference rows")
    for name, path in shipped.items():
        names = [MFID, DC, DIVERSITY] + ([CLUSTER] if name == "tunit" else [])
        append_rows(results, evaluator.checkpoint(path, names, digits, SHIPPED[name]))
    evaluate_run("tunit", [MFID, DC, CLUSTER], digits)
    evaluate_run("funit", [MFID, DC], digits)
    evaluate_run("unit", [MAPS], paired)
    append_rows(results, evaluator.reference(FLOOR, [MFID, DC, DIVERSITY], digits, img_size))
    append_rows(results, evaluator.reference(IDENTITY, [MFID, DC, DIVERSITY], digits, img_size))
    append_rows(results, evaluator.reference(IDENTITY, [MAPS], paired, img_size))
    lap("evaluation", t0)

    t0 = time.perf_counter()
    info("[5/6] tables and figures")
    from ..results import read_rows

    rows = parts.in_table_order(read_rows(results), [*SHIPPED.values(), *BRIEF.values(), FLOOR, IDENTITY])
    notes = [ROW_NOTES["shipped"] if shipped else None, ROW_NOTES["brief"].replace("--iters", str(iters)),
             ROW_NOTES[FLOOR], ROW_NOTES[IDENTITY], ROW_NOTES["empty"]]
    tables = parts.write_tables(out, rows, [n for n in notes if n])
    grid_ckpt, grid_label = (shipped["tunit"], SHIPPED["tunit"]) if "tunit" in shipped else \
        (runs["tunit"] / "run.pt", BRIEF["tunit"])
    figures, grids = parts.figures(out / "figures", grid_ckpt, grid_label, shipped.get("funit"), digits, rows, device, seed)
    lap("figures", t0)

    t0 = time.perf_counter()
    info("[6/6] HTML report")
    report = parts.report(out / "report.html", rows, grids)
    lap("report", t0)

    summary = {
        "out": str(out.resolve()),
        "results": str(results.resolve()),
        "table_markdown": str(tables["markdown"].resolve()),
        "table_latex": str(tables["latex"].resolve()),
        "report": str(report.resolve()),
        "figures": [str(p.resolve()) for p in figures],
        "runs": {k: str((v / "run.pt").resolve()) for k, v in runs.items()},
        "shipped": {k: str(v) for k, v in shipped.items()},
        "seconds": round(time.perf_counter() - started, 1),
        "timings": timings,
    }
    human = "\n".join([
        tables["markdown"].read_text(encoding="utf-8").rstrip(),
        "",
        f"Demo finished in {summary['seconds']:.0f} s (toy data and toy-sized protocols: not paper numbers).",
        f"  report (HTML):   {summary['report']}",
        f"  results (JSONL): {summary['results']}",
        f"  tables:          {summary['table_markdown']}, {summary['table_latex']}",
        f"  figures:         {out.resolve() / 'figures'}",
        f"  checkpoints:     {out.resolve() / 'runs'}/<model>/run.pt (brief runs)",
    ])
    emit(summary, as_json, human)
