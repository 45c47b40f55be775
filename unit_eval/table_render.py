"""Rendering a :class:`~unit_eval.tables.Leaderboard` as LaTeX (booktabs), Markdown (GitHub pipes) or CSV.

The cells (numbers, decimals, best and second-best marks) come from :mod:`unit_eval.table_cells`; this module only
lays them out. :func:`unit_eval.tables.make_table` is the entry point; the HTML report has its own layout in
:mod:`unit_eval.report.leaderboard`, from the same cells.
"""
from __future__ import annotations

import csv
import io
from typing import Mapping

from .errors import UnitEvalError
from .markup import latex_escape, markdown_escape
from .table_cells import Leaderboard, _cell_styler, _cells, _header_parts


def render_latex(
    board: Leaderboard,
    *,
    decimals: int | None = None,
    metric_decimals: Mapping[str, int] | None = None,
    second: bool = False,
    show_std: bool = True,
    caption: str | None = None,
    label: str | None = None,
    footnote: str | None = None,
) -> str:
    """A booktabs ``tabular`` (wrapped in a ``table`` environment when a caption or label is given), with
    ``footnote`` (which iterations were selected) in small type under it."""
    if label is not None and (not label.strip() or any(ch in label for ch in "{}\\%#$&^~ ")):
        raise UnitEvalError(f"LaTeX label must be non-empty without spaces or any of {{}}\\%#$&^~: {label!r}")
    arrows = {True: r"$\uparrow$", False: r"$\downarrow$"}
    headers = [_header_parts(board, col, arrows, latex_escape) for col in board.columns]
    levels = len(headers[0]) if headers else 1

    styled = _cell_styler(missing="--", plus_minus=" $\\pm$ ", best="\\textbf{{{}}}", second="\\underline{{{}}}" if second else None)
    cells = _cells(board, decimals, metric_decimals, show_std, True, plus_minus=" $\\pm$ ")
    body = [[latex_escape(run)] + [styled(c) for c in row] for run, row in zip(board.runs, cells)]
    last_header = ["Method"] + [h[-1] for h in headers]
    widths = [max(len(r[i]) for r in body + [last_header]) for i in range(len(last_header))]

    def line(cells: list[str]) -> str:
        return " & ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() + r" \\"

    out = []
    if caption is not None or label is not None:
        out += [r"\begin{table}[t]", r"\centering"]
        if caption is not None:
            out.append(f"\\caption{{{latex_escape(caption)}}}")
        if label is not None:
            out.append(f"\\label{{{label}}}")
    out += [f"\\begin{{tabular}}{{l{'c' * len(board.columns)}}}", r"\toprule"]
    for level in range(levels - 1):
        groups: list[tuple[tuple[str, ...], int, int]] = []
        for i, head in enumerate(headers):
            prefix = tuple(head[: level + 1])
            if groups and groups[-1][0] == prefix:
                groups[-1] = (prefix, groups[-1][1], i)
            else:
                groups.append((prefix, i, i))
        cells = [f"\\multicolumn{{{end - start + 1}}}{{c}}{{{prefix[-1]}}}" for prefix, start, end in groups]
        out.append(" & ".join([""] + cells) + r" \\")
        out.append(" ".join(f"\\cmidrule(lr){{{start + 2}-{end + 2}}}" for _, start, end in groups))
    out += [line(last_header), r"\midrule"]
    out += [line(row) for row in body]
    out += [r"\bottomrule", r"\end{tabular}"]
    if footnote:
        out += [r"\par\smallskip", rf"{{\footnotesize {latex_escape(footnote)}\par}}"]
    if caption is not None or label is not None:
        out.append(r"\end{table}")
    return "\n".join(out) + "\n"


def render_markdown(
    board: Leaderboard,
    *,
    decimals: int | None = None,
    metric_decimals: Mapping[str, int] | None = None,
    second: bool = False,
    show_std: bool = True,
) -> str:
    """A GitHub pipe table; best in ``**bold**``, second best in ``<ins>`` (GitHub's underline)."""
    from tabulate import tabulate

    styled = _cell_styler(missing="–", plus_minus=" ± ", best="**{}**", second="<ins>{}</ins>" if second else None)
    headers = ["Method"] + [" / ".join(_header_parts(board, c, {True: "↑", False: "↓"}, markdown_escape)) for c in board.columns]
    body = [[markdown_escape(run)] + [styled(c) for c in row] for run, row in zip(board.runs, _cells(board, decimals, metric_decimals, show_std, True))]
    return tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True, colalign=["left"] + ["right"] * len(board.columns)) + "\n"


def render_csv(
    board: Leaderboard,
    *,
    decimals: int | None = None,
    metric_decimals: Mapping[str, int] | None = None,
    show_std: bool = True,
) -> str:
    """Plain numbers: ``run`` then one column per metric (``dataset/protocol/metric/class`` parts as needed),
    followed by ``<column>_std`` where some cell of it has several seeds; empty where missing."""
    if any(col.pair is not None for col in board.columns):
        raise UnitEvalError("the D&C cell applies to the latex and markdown formats; CSV keeps one column per metric")
    names = []
    for col in board.columns:
        parts = (([col.dataset] if board.show_dataset else []) + ([col.protocol] if board.show_protocol else [])
                 + [col.metric] + ([col.cls] if board.show_class else []))
        names.append("/".join(parts))
    cells = _cells(board, decimals, metric_decimals, show_std, False)
    with_std = [any(row[i].std is not None for row in cells) for i in range(len(board.columns))]
    header = ["run"]
    for name, has_std in zip(names, with_std):
        header += [name, f"{name}_{'ci_half' if board.spread == 'ci' else 'std'}"] if has_std else [name]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for run, row in zip(board.runs, cells):
        values = [run]
        for cell, has_std in zip(row, with_std):
            values.append(cell.mean or "")
            if has_std:
                values.append(cell.std or "")
        writer.writerow(values)
    return buffer.getvalue()
