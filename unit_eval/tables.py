"""Leaderboard tables from result rows (``unit-eval table``): :func:`make_table` selects the iterations
(:mod:`unit_eval.selection`), builds the board and its cells (:mod:`unit_eval.table_cells`) and renders it
(:mod:`unit_eval.table_render`: LaTeX, Markdown, CSV).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from .aggregate import aggregate
from .errors import UnitEvalError
from .markup import markdown_escape
from .selection import select_rows
from .table_cells import FORMATS, Column, Leaderboard, build_table, rank_marks
from .table_render import render_csv, render_latex, render_markdown

__all__ = ["FORMATS", "Column", "Leaderboard", "aggregate", "build_table", "make_table", "rank_marks"]


def make_table(
    rows: Iterable[Mapping],
    fmt: str = "markdown",
    *,
    metrics: Sequence[str] | None = None,
    protocols: Sequence[str] | None = None,
    classes: bool = False,
    decimals: int | None = None,
    metric_decimals: Mapping[str, int] | None = None,
    second: bool = False,
    show_std: bool = True,
    spread: str = "std",
    caption: str | None = None,
    label: str | None = None,
    dc_cell: bool = False,
    select: str | None = None,
    select_by: str | None = None,
    on_note=None,
) -> str:
    """Result rows in, rendered table out (``fmt`` one of :data:`FORMATS`). ``decimals=None``: each metric's
    registry default (as the papers print it); an int applies to every metric; ``metric_decimals`` per metric.

    Rows from several training iterations are reduced by ``select`` (:mod:`unit_eval.selection`: ``last`` by
    default, ``best``, ``best5``, ``iter=N``; ``select_by`` = ``[PROTOCOL:]METRIC``); the chosen iterations are
    named under the LaTeX and Markdown tables, and ``on_note(text)`` hears what a reader should know. ``spread``:
    what "±" shows: ``std`` over seeds, or ``ci``, the half-width of the rows' ``--bootstrap`` intervals."""
    if fmt not in FORMATS:
        raise UnitEvalError(f"unknown table format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt != "latex" and (caption is not None or label is not None):
        raise UnitEvalError("caption and label apply to the latex format only")
    if fmt == "csv" and dc_cell:
        raise UnitEvalError("the D&C cell applies to the latex and markdown formats; CSV keeps one column per metric")
    selected = select_rows(rows, select, select_by)
    for note in selected.notes:
        if on_note is not None:
            on_note(note)
    footnote = selected.footnote()
    if spread not in ("std", "ci"):
        raise UnitEvalError(f"spread must be 'std' (over seeds) or 'ci' (bootstrap half-width), got {spread!r}")
    board = build_table(selected.rows, metrics=metrics, protocols=protocols, classes=classes, dc_cell=dc_cell)
    board.spread = spread
    style = dict(decimals=decimals, metric_decimals=metric_decimals, show_std=show_std)
    if fmt == "latex":
        return render_latex(board, second=second, caption=caption, label=label, footnote=footnote, **style)
    if fmt == "markdown":
        text = render_markdown(board, second=second, **style)
        return text + (f"\n{markdown_escape(footnote)}\n" if footnote else "")
    if footnote and on_note is not None:
        on_note(footnote)
    return render_csv(board, **style)
