"""``unit-eval plot``: figures from a model (grid, domains, codes) or from result rows (curves, fid-bars)."""
from __future__ import annotations

import click

from ..errors import UnitEvalError
from ..results import MEAN
from .common import emit, info, json_option, select_options, writable_out


def _model_options(fn):
    options = [
        click.option("--ckpt", type=click.Path(dir_okay=False), default=None, help="A run.pt of a bundled baseline."),
        click.option("--model", "model_spec", default=None, help="Your own model as module:factory (Translator interface)."),
        click.option("--data", required=True, help="Class folders, or a dataset name (digits, afhq, ...)."),
        click.option("--data-root", type=click.Path(file_okay=False), default=None, help="Where named datasets live."),
        click.option("--split", default="test", show_default=True, help="Dataset split to draw images from (train, test, all)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, ..."),
        click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed for choosing images."),
    ]
    for option in reversed(options):  # click lists options in the order they wrap the function, last first
        fn = option(fn)
    return fn


def _output_options(fn):
    options = [
        click.option("--out", type=click.Path(dir_okay=False), required=True, callback=writable_out, help="PNG file to write."),
        click.option("--pdf", is_flag=True, help="Also write a PDF next to the PNG."),
        click.option("--title", default=None, help="Figure title."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _load_model(ckpt, model_spec, device):
    """(model, the device it runs on): the device is decided here, once, and handed to what runs the model."""
    from ..device import resolve_device

    if bool(ckpt) == bool(model_spec):
        raise UnitEvalError("give exactly one of --ckpt run.pt or --model module:factory")
    dev = resolve_device(device)
    if ckpt:
        from ..translator import load_checkpoint_translator

        return load_checkpoint_translator(ckpt, dev), dev
    from ..translator import load_user_model

    return load_user_model(model_spec, dev), dev


def _split(data, data_root, split):
    from ..datasets import resolve_dataset

    return resolve_dataset(data, data_root).split(split)


def _done(files, as_json, extra=None):
    result = {"files": [str(f) for f in files], **(extra or {})}
    emit(result, as_json, "\n".join(result["files"]))


@click.group("plot")
def plot_group():
    """Figures: translation grids, pseudo-domains, style codes, metric curves, per-class FID."""


@plot_group.command("grid")
@_model_options
@_output_options
@click.option("--sources", "n_sources", type=click.IntRange(min=1), default=5, show_default=True, help="Rows: source images (one class after another).")
@click.option("--references", "n_references", type=click.IntRange(min=1), default=5, show_default=True, help="Columns: reference images.")
@json_option
def grid_command(ckpt, model_spec, data, data_root, split, device, seed, out, pdf, title, n_sources, n_references, as_json):
    """Reference-guided translation grid: references across the top, sources down the left."""
    from ..evaluation.figures import grid_from_model
    from ..plots import translation_grid

    model, dev = _load_model(ckpt, model_spec, device)
    g = grid_from_model(model, _split(data, data_root, split), dev, n_sources=n_sources, n_references=n_references, seed=seed)
    files = translation_grid(
        g["sources"], g["references"], g["outputs"], out, source_labels=g["source_labels"],
        reference_labels=g["reference_labels"], title=title or "Reference-guided translation", pdf=pdf,
    )
    _done(files, as_json)


@plot_group.command("domains")
@_model_options
@_output_options
@click.option("--per-cluster", type=click.IntRange(min=1), default=8, show_default=True, help="Samples shown per pseudo-domain.")
@click.option("--max-images", type=click.IntRange(min=1), default=500, show_default=True, help="Images assigned to pseudo-domains.")
@json_option
def domains_command(ckpt, model_spec, data, data_root, split, device, seed, out, pdf, title, per_cluster, max_images, as_json):
    """Samples of each pseudo-domain (rows = cluster ids), from the model's cluster()."""
    from ..evaluation.figures import clusters_from_model
    from ..plots import domain_samples

    model, dev = _load_model(ckpt, model_spec, device)
    c = clusters_from_model(model, _split(data, data_root, split), dev, max_images=max_images, per_cluster=per_cluster,
                            seed=seed)
    k_hat = c["num_domains"]
    empty = [k for k in range(k_hat) if k not in c["counts"]] if isinstance(k_hat, int) else []
    default_title = f"Pseudo-domains of {c['n_images']} images" + (f" (K={k_hat}; empty: {', '.join(map(str, empty))})" if empty else "")
    files = domain_samples(c["samples"], out, counts=c["counts"], title=title or default_title, pdf=pdf)
    if empty:
        info(f"pseudo-domains with no image: {', '.join(map(str, empty))}")
    _done(files, as_json, {"counts": c["counts"]})


@plot_group.command("codes")
@_model_options
@_output_options
@click.option("--method", type=click.Choice(["auto", "tsne", "pca"]), default="auto", show_default=True,
              help="2-D embedding (auto: t-SNE from 10 codes on, else PCA).")
@click.option("--max-images", type=click.IntRange(min=1), default=1000, show_default=True, help="Images embedded (class-balanced).")
@json_option
def codes_command(ckpt, model_spec, data, data_root, split, device, seed, out, pdf, title, method, max_images, as_json):
    """Style codes in 2-D, coloured by pseudo-label (if the model clusters) and by true class."""
    from ..evaluation.figures import codes_from_model
    from ..plots import style_codes

    model, dev = _load_model(ckpt, model_spec, device)
    c = codes_from_model(model, _split(data, data_root, split), dev, max_images=max_images, seed=seed)
    info(f"embedding {len(c['codes'])} style codes in 2-D ({method})")
    files = style_codes(c["codes"], c["pseudo_labels"], c["true_labels"], out, class_names=c["class_names"],
                        method=method, seed=seed, title=title, pdf=pdf)
    _done(files, as_json, {"n_codes": len(c["codes"])})


@plot_group.command("curves")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_output_options
@click.option("--metric", "metrics", multiple=True, help="Metric(s) to plot (default: all that have iterations).")
@click.option("--run", "runs", multiple=True, help="Run name(s) to plot (default: all).")
@click.option("--class", "cls", default=MEAN, show_default=True, help="Class of the rows to plot.")
@select_options("to ring, as 'unit-eval table --select' picks them (e.g. best5)")
@json_option
def curves_command(results, out, pdf, title, metrics, runs, cls, select, select_by, as_json):
    """Metric against training iteration (the rows' iteration: a sweep's or train --eval-every's) from RESULTS
    JSONL files; several runs as several lines, --select rings the selected points."""
    from ..plots import metric_curves

    rows = _rows(results)
    selected, extra = None, {}
    if select:
        from ..selection import select_rows

        chosen = select_rows(rows, select, select_by)
        for note in chosen.notes:
            info(note)
        selected = {run: its for (run, _), its in chosen.iterations.items()}
        extra = {"selected": selected}
    files = metric_curves(rows, out, metrics=metrics or None, cls=cls, runs=runs or None, title=title, pdf=pdf,
                          selected=selected, selection_label=f"--select {select}" if select else "selected")
    _done(files, as_json, extra)


@plot_group.command("fid-bars")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_output_options
@click.option("--run", "runs", multiple=True, help="Run name(s) to show (default: all).")
@click.option("--protocol", default=None, help="Only rows of this protocol.")
@click.option("--metric", default="fid", show_default=True, help="Per-class metric to draw.")
@json_option
def fid_bars_command(results, out, pdf, title, runs, protocol, metric, as_json):
    """Per-class FID bars with the mean as a dashed line, from RESULTS JSONL files."""
    from ..plots import fid_bars

    files = fid_bars(_rows(results), out, metric=metric, runs=runs or None, protocol=protocol, title=title, pdf=pdf)
    _done(files, as_json)


def _rows(paths):
    from ..results import read_rows

    rows = []
    for p in paths:
        rows.extend(read_rows(p))
    return rows
