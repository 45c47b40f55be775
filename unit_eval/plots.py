"""Figures: translation grids, pseudo-domain samples, style-code embeddings, metric curves, per-class FID.

Pure plotting functions take arrays or result rows and write a PNG (and, with ``pdf=True``, a PDF
next to it); each returns the list of files written. Matplotlib is imported lazily and drawn with
the Agg canvas directly (no pyplot state, no display needed).

- :func:`translation_grid` references across the top, sources down the left, outputs in the cells.
- :func:`domain_samples` one row of samples per pseudo-domain (cluster id).
- :func:`style_codes` 2-D t-SNE (or PCA) of style codes, coloured by pseudo-label and by true label.
- :func:`metric_curves` metric value against the training iteration, one panel per metric, selected points ringed.
- :func:`fid_bars` per-class FID bars (classes other than the mean) with the mean as a dashed line.

What a model produces for these figures (translation grids, clusters, style codes) comes from
:mod:`unit_eval.evaluation.figures`; this module only draws.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .cache import atomic_write_bytes
from .errors import UnitEvalError
from .results import MEAN, row_iteration

CELL_INCHES = 1.15
GAP = 4  # pixels between tiles in mosaics


# --------------------------------------------------------------------------------------------------
# saving


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike, pdf: bool, dpi: int = 150) -> list[Path]:
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png") if path.suffix.lower() in (".pdf", "") else Path(f"{path}.png")
    written = []
    for target, options in [(path, {"dpi": dpi})] + ([(path.with_suffix(".pdf"), {})] if pdf else []):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=target.suffix[1:], bbox_inches="tight", facecolor="white", **options)
        atomic_write_bytes(target, buffer.getvalue())  # a figure is whole or absent, never half written
        written.append(target)
    return written


def _as_images(images, what: str) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise UnitEvalError(f"{what} must be N x H x W x 3 uint8 images, got shape {arr.shape} dtype {arr.dtype}")
    return arr


def _mosaic(rows: list[list[np.ndarray | None]], size: int) -> np.ndarray:
    """Tiles (size x size x 3 or None for blank) on a white canvas with GAP pixels between them."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    canvas = np.full((n_rows * size + (n_rows - 1) * GAP, n_cols * size + (n_cols - 1) * GAP, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            if tile is not None:
                y, x = i * (size + GAP), j * (size + GAP)
                canvas[y:y + size, x:x + size] = tile
    return canvas


def _fit(img: np.ndarray, size: int) -> np.ndarray:
    if img.shape[:2] == (size, size):
        return img
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), resample=Image.BICUBIC))


def _centers(n: int, size: int) -> list[float]:
    return [k * (size + GAP) + size / 2 - 0.5 for k in range(n)]


def _short(label: str, limit: int = 14) -> str:
    label = str(label)
    return label if len(label) <= limit else label[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------
# image figures


def translation_grid(
    sources,
    references,
    outputs,
    path: str | os.PathLike,
    *,
    source_labels: Sequence[str] | None = None,
    reference_labels: Sequence[str] | None = None,
    title: str | None = None,
    pdf: bool = False,
) -> list[Path]:
    """Reference-guided translation grid: ``outputs[i, j]`` = source i translated with reference j.

    ``sources`` N x H x W x 3, ``references`` M x H x W x 3, ``outputs`` N x M x H x W x 3, all uint8.
    """
    src = _as_images(sources, "sources")
    ref = _as_images(references, "references")
    out = np.asarray(outputs)
    if out.ndim != 5 or out.shape[:2] != (len(src), len(ref)) or out.dtype != np.uint8:
        raise UnitEvalError(
            f"outputs must be {len(src)} x {len(ref)} x H x W x 3 uint8 (sources x references), got {out.shape} {out.dtype}"
        )
    size = out.shape[2]
    rows = [[None] + [_fit(r, size) for r in ref]]
    rows += [[_fit(s, size)] + [out[i, j] for j in range(len(ref))] for i, s in enumerate(src)]
    canvas = _mosaic(rows, size)
    n_cols, n_rows = len(ref) + 1, len(src) + 1
    fig = _figure(CELL_INCHES * n_cols + 0.9, CELL_INCHES * n_rows + (0.7 if title else 0.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks(_centers(n_cols, size)[1:])
    ax.set_xticklabels([_short(t) for t in (reference_labels or [""] * len(ref))], fontsize=8)
    ax.set_yticks(_centers(n_rows, size)[1:])
    ax.set_yticklabels([_short(t) for t in (source_labels or [""] * len(src))], fontsize=8)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.text(size / 2, size / 2, "reference →\n\n↓ source", ha="center", va="center", fontsize=9, color="0.3")
    if title:
        ax.set_title(title, fontsize=11, pad=22)
    return _save(fig, path, pdf)


def domain_samples(
    samples: dict,
    path: str | os.PathLike,
    *,
    counts: dict | None = None,
    title: str | None = None,
    pdf: bool = False,
) -> list[Path]:
    """One row per pseudo-domain: ``samples`` {cluster id: N x H x W x 3 uint8}; ``counts`` {id: images assigned}."""
    if not samples:
        raise UnitEvalError("no pseudo-domain has any image to show")
    ids = sorted(samples)
    arrays = {k: _as_images(samples[k], f"samples of cluster {k}") for k in ids}
    size = next(iter(arrays.values())).shape[1]
    n_cols = max(len(a) for a in arrays.values())
    rows = [[_fit(im, size) for im in arrays[k]] for k in ids]
    canvas = _mosaic(rows, size)
    fig = _figure(CELL_INCHES * n_cols + 1.4, CELL_INCHES * len(ids) + (0.6 if title else 0.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(canvas, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks(_centers(len(ids), size))
    labels = [f"cluster {k}" + (f"\n(n={counts[k]})" if counts and k in counts else "") for k in ids]
    ax.set_yticklabels(labels, fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=11)
    return _save(fig, path, pdf)


def embed_2d(codes, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """N x D codes -> N x 2 with t-SNE (``auto``: when N >= 10) or PCA; returns (points, method used)."""
    x = np.asarray(codes, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise UnitEvalError(f"style codes must be N x D with N >= 2, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise UnitEvalError("style codes contain NaN or infinite values")
    if method not in ("auto", "tsne", "pca"):
        raise UnitEvalError(f"unknown embedding method {method!r}; choose auto, tsne or pca")
    if method == "tsne" or (method == "auto" and len(x) >= 10):
        if len(x) < 4:
            raise UnitEvalError(f"t-SNE needs at least 4 codes, got {len(x)}; use --method pca")
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(1.0, (len(x) - 1) / 3.0)))
        from threadpoolctl import threadpool_limits

        # One thread: for the few thousand points a figure shows, OpenMP threads cost more than they
        # save, and on a busy machine (CI, shared cores) oversubscription made t-SNE 40x slower.
        with threadpool_limits(limits=1):
            xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
        return np.asarray(xy), "t-SNE"
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    if xy.shape[1] < 2:
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    return xy, "PCA"


def _scatter(ax, xy, labels, names, title, prefix=""):
    labels = np.asarray(labels)
    uniq = sorted(set(labels.tolist()))
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(uniq) <= 10 else "tab20"]
    for k, lab in enumerate(uniq):
        sel = labels == lab
        name = names[lab] if names is not None and isinstance(lab, (int, np.integer)) and 0 <= lab < len(names) else lab
        ax.scatter(xy[sel, 0], xy[sel, 1], s=10, color=cmap(k % cmap.N), label=prefix + _short(name, 18), alpha=0.85, linewidths=0)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(uniq) <= 20:
        ax.legend(fontsize=7, markerscale=1.6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def style_codes(
    codes,
    pseudo_labels,
    true_labels,
    path: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    method: str = "auto",
    seed: int = 0,
    title: str | None = None,
    pdf: bool = False,
) -> list[Path]:
    """Two panels of the 2-D embedded style codes: coloured by pseudo-label and by true label.

    Either label array may be None (its panel is left out); ``class_names[i]`` names true label i.
    """
    xy, used = embed_2d(codes, method, seed)
    panels = []
    if pseudo_labels is not None:
        panels.append((np.asarray(pseudo_labels), None, "by pseudo-domain", "cluster "))
    if true_labels is not None:
        panels.append((np.asarray(true_labels), class_names, "by true class", ""))
    if not panels:
        raise UnitEvalError("style_codes needs pseudo_labels, true_labels or both")
    for labels, _, what, _ in panels:
        if len(labels) != len(xy):
            raise UnitEvalError(f"{len(labels)} labels {what} for {len(xy)} style codes")
    fig = _figure(5.2 * len(panels) + 0.4, 4.2)
    for k, (labels, names, what, prefix) in enumerate(panels):
        _scatter(fig.add_subplot(1, len(panels), k + 1), xy, labels, names, f"{used} of style codes, {what}", prefix)
    fig.suptitle(title or f"Style codes ({len(xy)} images)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path, pdf)


# --------------------------------------------------------------------------------------------------
# result-row figures


def metric_curves(
    rows: Iterable[dict],
    path: str | os.PathLike,
    *,
    metrics: Sequence[str] | None = None,
    cls: str = MEAN,
    runs: Sequence[str] | None = None,
    title: str | None = None,
    pdf: bool = False,
    selected: Mapping[str, Sequence[int]] | None = None,
    selection_label: str = "selected",
) -> list[Path]:
    """Value against the training iteration (``row["iteration"]``): one panel per metric, one line per (run,
    protocol), several seeds averaged per iteration (a re-evaluation of one seed: the last row wins).

    Rows of class ``cls`` only. ``selected`` maps a run to the iterations a table selected (``--select``); they
    are ringed on every line of that run and named ``selection_label`` in the legend.
    """
    series: dict[str, dict[tuple[str, str], dict[int, dict]]] = {}
    for row in rows:
        it = row_iteration(row)
        if it is None or row.get("class") != cls:
            continue
        if metrics and row["metric"] not in metrics:
            continue
        if runs and row["run"] not in runs:
            continue
        per_seed = series.setdefault(row["metric"], {}).setdefault((row["run"], row["protocol"]), {}).setdefault(it, {})
        per_seed[repr(row.get("seed"))] = float(row["value"])
    if not series:
        raise UnitEvalError(
            f"no result rows with an iteration and class {cls!r}"
            + (f" for metric(s) {', '.join(metrics)}" if metrics else "")
            + " (rows of snapshots: unit-eval sweep, or train --eval-every)"
        )
    names = [m for m in (metrics or sorted(series)) if m in series]
    n_cols = min(3, len(names))
    n_rows = math.ceil(len(names) / n_cols)
    fig = _figure(4.6 * n_cols + 0.6, 3.4 * n_rows + 0.5)
    multi_protocol = len({p for m in series.values() for (_, p) in m}) > 1
    for k, metric in enumerate(names):
        ax = fig.add_subplot(n_rows, n_cols, k + 1)
        marked = False
        for (run, protocol), points in sorted(series[metric].items()):
            its = sorted(points)
            values = [sum(points[i].values()) / len(points[i]) for i in its]
            label = f"{run} ({protocol})" if multi_protocol else run
            line, = ax.plot(its, values, marker="o", markersize=3, linewidth=1.5, label=_short(label, 28))
            chosen = [i for i in (selected or {}).get(run, ()) if i in points]
            if chosen:
                ax.plot(chosen, [values[its.index(i)] for i in chosen], linestyle="none", marker="o", markersize=9,
                        markerfacecolor="none", markeredgewidth=1.5, color=line.get_color(),
                        label=None if marked else selection_label)
                marked = True
        ax.set_xlabel("iteration")
        ax.set_ylabel(metric)
        ax.set_title(metric if cls == MEAN else f"{metric} ({cls})", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle(title or "Metrics during training", fontsize=11)
    fig.tight_layout()
    return _save(fig, path, pdf)


def fid_bars(
    rows: Iterable[dict],
    path: str | os.PathLike,
    *,
    metric: str = "fid",
    runs: Sequence[str] | None = None,
    protocol: str | None = None,
    title: str | None = None,
    pdf: bool = False,
) -> list[Path]:
    """Per-class bars (rows of ``metric`` with class != "mean"), grouped by (run, protocol).

    The mean is drawn as a dashed line: the run's "mean" row when present, else the arithmetic mean
    of its bars (then labelled "computed"). Repeated rows keep the last one; rows carrying
    an iteration keep only the latest iteration of each run.
    """
    latest: dict[tuple[str, str], float] = {}
    picked = []
    for row in rows:
        if row["metric"] != metric or (protocol and row["protocol"] != protocol) or (runs and row["run"] not in runs):
            continue
        picked.append(row)
        key = (row["run"], row["protocol"])
        it = row_iteration(row)
        if it is not None:
            latest[key] = max(latest.get(key, it), it)
    groups: dict[tuple[str, str], dict[str, float]] = {}
    for row in picked:
        key = (row["run"], row["protocol"])
        if key in latest and row_iteration(row) != latest[key]:
            continue
        groups.setdefault(key, {})[str(row["class"])] = float(row["value"])
    groups = {k: v for k, v in groups.items() if any(c != MEAN for c in v)}
    if not groups:
        raise UnitEvalError(f"no per-class {metric!r} rows (class other than 'mean') in the results")
    classes = sorted({c for v in groups.values() for c in v if c != MEAN}, key=_class_key)
    n = len(groups)
    width = 0.8 / n
    fig = _figure(max(5.0, 0.45 * len(classes) * max(1, n) ** 0.5 + 2.5), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    multi_protocol = len({p for _, p in groups}) > 1
    for g, ((run, proto), values) in enumerate(sorted(groups.items())):
        xs = [i + (g - (n - 1) / 2) * width for i in range(len(classes))]
        ys = [values.get(c, np.nan) for c in classes]
        label = f"{run} ({proto})" if multi_protocol else run
        ax.bar(xs, ys, width=width * 0.95, color=cmap(g % 10), label=_short(label, 28))
        per_class = [v for c, v in values.items() if c != MEAN]
        mean, how = (values[MEAN], "mean") if MEAN in values else (float(np.mean(per_class)), "mean, computed")
        ax.axhline(mean, color=cmap(g % 10), linestyle="--", linewidth=1.2, label=f"{_short(label, 20)} {how} {mean:.1f}")
    ax.set_xticks(range(len(classes)))
    rotate = max(len(c) for c in classes) > 4 or len(classes) > 12
    ax.set_xticklabels(classes, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=8)
    ax.set_ylabel(metric.upper() if metric == "fid" else metric)
    ax.set_xlabel("class")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or (f"Per-class {metric.upper()}" + (f" ({protocol})" if protocol else "")), fontsize=11)
    fig.tight_layout()
    return _save(fig, path, pdf)


def _class_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


# --------------------------------------------------------------------------------------------------
# model-driven figures
