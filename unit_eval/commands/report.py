"""``unit-eval report``: one self-contained HTML page (leaderboard, figures, provenance) from result files."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import UnitEvalError
from .common import emit, info, json_option, select_options, writable_out


def _evaluated_as(rows, sha: str) -> str:
    """"run R, iteration N; " for the rows evaluated from the checkpoint with this sha256, else a word that none were."""
    from ..results import row_iteration

    mine = [r for r in rows if r.get("ckpt_sha256") == sha]
    if not mine:
        return "no result row names this checkpoint; "
    runs = ", ".join(dict.fromkeys(str(r["run"]) for r in mine))
    its = sorted({row_iteration(r) for r in mine if row_iteration(r) is not None})
    return f"run {runs}" + (f", iteration {', '.join(map(str, its))}" if its else "") + "; "


def _grids(ckpts, data, device, rows) -> dict[str, bytes]:
    """A reference-guided translation grid per checkpoint (test split of --data, seed 0), as PNG bytes."""
    import tempfile

    from ..cache import sha256_file
    from ..datasets import resolve_dataset
    from ..device import resolve_device
    from ..evaluation.figures import grid_from_model
    from ..plots import translation_grid
    from ..translator import load_checkpoint_translator

    dev = resolve_device(device)
    split = resolve_dataset(data).split("test")
    data_name = Path(data).name or str(data)
    grids = {}
    with tempfile.TemporaryDirectory(prefix="unit-eval-report-") as tmp:
        for k, ckpt in enumerate(ckpts):
            path = Path(ckpt)
            if not path.is_file():
                raise UnitEvalError(f"--ckpt {ckpt} is not a file" if path.exists() else f"--ckpt {ckpt} not found")
            info(f"sample grid of {ckpt}")
            model = load_checkpoint_translator(path, dev)
            sha = getattr(model, "ckpt_sha256", None) or sha256_file(path)
            g = grid_from_model(model, split, dev, n_sources=5, n_references=5, seed=0)
            name = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
            png = Path(tmp) / f"grid{k}.png"
            translation_grid(g["sources"], g["references"], g["outputs"], png, source_labels=g["source_labels"],
                             reference_labels=g["reference_labels"], title=f"{name} on {data_name}")
            caption = (f"{name} ({_evaluated_as(rows, sha)}checkpoint sha256 {sha[:12]}): reference-guided translation "
                       f"of {data_name} test images, references across the top, sources down the left (seed 0)")
            grids[caption] = png.read_bytes()
    return grids


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True, callback=writable_out,
              help="HTML file to write (self-contained: open it anywhere, offline).")
@click.option("--title", default=None, help="Page title [default: unit-eval report].")
@select_options("the leaderboard shows, as 'unit-eval table --select' [default: last]; the curves ring them")
@click.option("--metrics", multiple=True, metavar="M1,M2,...",
              help="Metrics of the leaderboard, in this order (comma-separated or repeated) [default: all].")
@click.option("--protocol", "protocols", multiple=True, help="Only these protocols (repeatable).")
@click.option("--ckpt", "ckpts", multiple=True, type=click.Path(dir_okay=False),
              help="A run.pt (or official TUNIT .ckpt) to draw a sample grid of (repeatable); needs --data.")
@click.option("--data", default=None, help="Class folders or a dataset name for the sample grids (required with --ckpt).")
@click.option("--device", default="auto", show_default=True, help="Where the sample grids' models run: auto, cpu, cuda, ...")
@json_option
def report_command(results, out, title, select, select_by, metrics, protocols, ckpts, data, device, as_json):
    """One self-contained HTML page of RESULTS (JSONL files): the leaderboard (numbers and bold as 'unit-eval
    table'), per-class FID bars, curves over iterations, sample grids of --ckpt checkpoints, and the provenance of
    every number (protocol, seed, extractor, dataset, version, checkpoint hash). Nothing is loaded at view time."""
    from ..report import write_report
    from ..results import read_rows

    if ckpts and not data:
        raise click.UsageError("--ckpt needs --data (the dataset whose test images the sample grids translate)")
    if data and not ckpts:
        raise click.UsageError("--data applies to the sample grids of --ckpt only")
    rows = [row for path in results for row in read_rows(path)]
    if ckpts:  # a bad --select, --metrics or --protocol is said before the models run
        from ..selection import select_rows
        from ..tables import build_table

        build_table(select_rows(rows, select, select_by).rows, metrics=metrics, protocols=protocols)
    grids = _grids(ckpts, data, device, rows) if ckpts else None
    path = write_report(rows, out, grids=grids, title=title, select=select, select_by=select_by, on_note=info,
                        metrics=metrics, protocols=protocols)
    emit({"out": str(path), "rows": len(rows), "grids": len(grids or {})}, as_json, str(path))
