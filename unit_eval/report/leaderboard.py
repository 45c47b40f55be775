"""The report's leaderboard and provenance: :func:`unit_eval.tables.build_table`'s board as HTML, one table per
dataset, with the numbers and the bold cells of ``unit-eval table`` (both come from ``table_cells._cells``), and the
result rows behind every number.

Every number cell is a ``<td>`` carrying ``data-run``, ``data-dataset``, ``data-protocol``, ``data-metric``,
``data-class``, ``data-value`` (``repr`` of the mean over seeds, full precision), ``data-std`` and ``data-n``, and a
``title`` naming where the number comes from; the provenance section lists, per run and dataset, the rows behind
each cell (one ``<tr>`` per row with its own ``data-*`` keys, ``data-value`` its ``repr``). Every user-given
string goes through :func:`html.escape`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from html import escape
from typing import Iterable, Mapping

from ..aggregate import dataset_of
from ..results import row_iteration
from ..selection import Selected
from ..table_cells import Column, Leaderboard, _cells, _header_parts

ARROWS = {True: "↑", False: "↓"}
MISSING = "–"  # as the Markdown table prints an empty cell
FID_LIKE = ("fid", "mfid")
SMALL_N = 2048  # FID's bias grows below this many images per set (Chong & Forsyth 2020; pytorch-fid's README)


def esc(value) -> str:
    """HTML text and attribute escaping of anything a user or a results file gave (quotes included)."""
    return escape("" if value is None else str(value), quote=True)


def _key(run: str, col: Column) -> tuple[str, str, str, str, str]:
    return (run, col.dataset, col.protocol, col.metric, col.cls)


@dataclass
class Cell:
    """One leaderboard cell: the numbers as ``unit-eval table`` prints them and the rows behind them."""

    run: str
    column: Column
    mean: float | None
    std: float | None
    n: int
    text: str  # visible text, as the Markdown table's cell without its ** bold marks
    bold: bool
    rows: list[dict]  # the result rows this number is computed from (after selection and de-duplication)
    anchor: str = ""  # id of the provenance block listing the rows


def rows_behind(rows: Iterable[Mapping], selected: Selected) -> dict[tuple, list[dict]]:
    """(run, dataset, protocol, metric, class) -> the input rows a selected cell is computed from.

    Mirrors :func:`unit_eval.selection.select_rows` and :func:`unit_eval.aggregate.aggregate`: a (run, dataset)
    with chosen iterations keeps the rows of those iterations (its rows without an iteration are left out), and
    with several chosen iterations only seeds present at all of them; a re-evaluation (same seed and iteration)
    replaces the earlier row."""
    kept: dict[tuple, dict[tuple, dict]] = {}
    for row in rows:
        run, dataset = str(row["run"]), dataset_of(row)
        key = (run, dataset, str(row["protocol"]), str(row["metric"]), str(row["class"]))
        it = row_iteration(row)
        chosen = selected.iterations.get((run, dataset))
        if chosen is not None and it not in chosen:
            continue
        per = kept.setdefault(key, {})
        slot = (repr(row.get("seed")), it)
        per.pop(slot, None)  # the last row of a (seed, iteration) wins, in file order
        per[slot] = dict(row)
    out = {}
    for key, per in kept.items():
        chosen = selected.iterations.get(key[:2])
        if chosen is not None and len(chosen) > 1:
            seeds = {}
            for seed, it in per:
                seeds.setdefault(seed, set()).add(it)
            per = {slot: r for slot, r in per.items() if seeds[slot[0]] >= set(chosen)}
        out[key] = list(per.values())
    return out


def board_cells(board: Leaderboard, behind: Mapping[tuple, list[dict]]) -> list[list[Cell]]:
    """Per run, per column of ``board``: text and bold exactly as ``render_markdown`` (``second=False``) styles them."""
    styled = _cells(board, None, None, True, True)
    out = []
    for run, row in zip(board.runs, styled):
        cells = []
        for col, c in zip(board.columns, row):
            mean, std, n = board.cell(run, col)
            if c.mean is None:
                text = MISSING
            else:
                text = c.mean if c.std is None else f"{c.mean} ± {c.std}"
            cells.append(Cell(run, col, mean, std, n, text, c.mark == "best", behind.get(_key(run, col), [])
                              if mean is not None else []))
        out.append(cells)
    return out


def _values(rows: list[dict], field: str) -> list[str]:
    seen = dict.fromkeys("–" if r.get(field) is None else str(r.get(field)) for r in rows)
    return list(seen)


def _iterations(rows: list[dict]) -> list[str]:
    its = sorted({row_iteration(r) for r in rows if row_iteration(r) is not None})
    return [str(i) for i in its]


def cell_title(cell: Cell) -> str:
    """One line of provenance for a cell's hover text."""
    rows = cell.rows
    parts = [f"protocol {cell.column.protocol}", f"dataset {cell.column.dataset or '–'}",
             f"seed(s) {', '.join(_values(rows, 'seed'))}"]
    its = _iterations(rows)
    if its:
        parts.append(f"iteration(s) {', '.join(its)}")
    parts += [f"n_real {', '.join(_values(rows, 'n_real'))}", f"n_fake {', '.join(_values(rows, 'n_fake'))}",
              f"extractor {', '.join(_values(rows, 'extractor'))}", f"unit-eval {', '.join(_values(rows, 'version'))}"]
    shas = [s[:12] for s in _values(rows, "ckpt_sha256") if s != "–"]
    if shas:
        parts.append(f"checkpoint sha256 {', '.join(shas)}")
    return "; ".join(parts)


def _td(cell: Cell) -> str:
    col = cell.column
    attrs = {"data-run": cell.run, "data-dataset": col.dataset, "data-protocol": col.protocol, "data-metric": col.metric,
             "data-class": col.cls, "data-value": "" if cell.mean is None else repr(cell.mean),
             "data-std": "" if cell.std is None else repr(cell.std), "data-n": cell.n}
    classes = ["num"] + (["best"] if cell.bold else []) + (["missing"] if cell.mean is None else [])
    if cell.mean is not None:
        attrs["title"] = cell_title(cell)
    text = esc(cell.text)
    body = f"<strong>{text}</strong>" if cell.bold else text
    attr_text = " ".join(f'{k}="{esc(v)}"' for k, v in attrs.items())
    return f'<td class="{" ".join(classes)}" {attr_text}>{body}</td>'


def leaderboard_html(board: Leaderboard, cells: list[list[Cell]]) -> str:
    """One table per dataset (a heading names it when there are several); runs without a number there are left out.

    The protocol is named above its columns (grouped), the metric with its arrow below, as ``unit-eval table``
    labels it."""
    datasets = list(dict.fromkeys(c.dataset for c in board.columns))
    plain = replace(board, show_dataset=False, show_protocol=False)
    parts = []
    for dataset in datasets:
        idx = [i for i, c in enumerate(board.columns) if c.dataset == dataset]
        runs = [(run, row) for run, row in zip(board.runs, cells) if any(row[i].mean is not None for i in idx)]
        if len(datasets) > 1:
            parts.append(f'<h3 class="dataset">{esc(dataset or "(no dataset)")}</h3>')
        head_groups: list[list] = []
        for i in idx:
            protocol = board.columns[i].protocol
            if head_groups and head_groups[-1][0] == protocol:
                head_groups[-1][1] += 1
            else:
                head_groups.append([protocol, 1])
        proto_row = "".join(f'<th colspan="{span}" class="protocol">{esc(p)}</th>' for p, span in head_groups)
        metric_row = "".join(f'<th class="metric" title="{esc(board.columns[i].info.description)}">'
                             f'{" ".join(_header_parts(plain, board.columns[i], ARROWS, esc))}</th>' for i in idx)
        body = []
        for run, row in runs:
            anchor = row[idx[0]].anchor or next((row[i].anchor for i in idx if row[i].anchor), "")
            name = f'<a href="#{anchor}">{esc(run)}</a>' if anchor else esc(run)
            body.append(f'<tr><th scope="row" class="run" data-run="{esc(run)}">{name}</th>'
                        + "".join(_td(row[i]) for i in idx) + "</tr>")
        parts.append(
            f'<div class="wide"><table class="board" data-dataset="{esc(dataset)}">\n<thead>\n'
            f'<tr><th rowspan="2" class="method">Method</th>{proto_row}</tr>\n<tr>{metric_row}</tr>\n</thead>\n'
            f'<tbody>\n' + "\n".join(body) + "\n</tbody>\n</table></div>")
    return "\n".join(parts)


def _sha_cell(sha) -> str:
    if not sha:
        return "–"
    return f'<code title="{esc(sha)}">{esc(str(sha)[:12])}</code>'


PROV_HEAD = ("protocol", "metric", "class", "seed", "iteration", "value", "n_real", "n_fake", "extractor", "unit-eval",
             "checkpoint sha256", "time")


def provenance_html(board: Leaderboard, cells: list[list[Cell]]) -> str:
    """Per (dataset, run): a ``<details>`` block with the rows behind each of its numbers; sets each cell's anchor."""
    blocks = []
    datasets = list(dict.fromkeys(c.dataset for c in board.columns))
    for d_index, dataset in enumerate(datasets):
        for r_index, (run, row) in enumerate(zip(board.runs, cells)):
            mine = [c for c in row if c.column.dataset == dataset and c.mean is not None]
            if not mine:
                continue
            anchor = f"prov-{d_index}-{r_index}"
            lines = []
            for cell in mine:
                cell.anchor = anchor
                col = cell.column
                seeds = len({repr(r.get("seed")) for r in cell.rows})
                lines.append(f'<tr class="cell-head"><th colspan="{len(PROV_HEAD)}">{esc(col.info.label)} '
                             f'({esc(col.protocol)}): {esc(cell.text)} = mean over {seeds} seed(s) of the rows below'
                             f'{" (each seed averaged over the selected iterations first)" if len(_iterations(cell.rows)) > 1 else ""}'
                             '</th></tr>')
                for r in cell.rows:
                    it = row_iteration(r)
                    attrs = {"data-run": run, "data-dataset": col.dataset, "data-protocol": col.protocol,
                             "data-metric": col.metric, "data-class": col.cls, "data-seed": repr(r.get("seed")),
                             "data-iteration": "" if it is None else it, "data-value": repr(float(r["value"]))}
                    values = [r.get("protocol"), r.get("metric"), r.get("class"), r.get("seed"), it,
                              repr(float(r["value"])), r.get("n_real"), r.get("n_fake"), r.get("extractor"),
                              r.get("version"), None, r.get("time")]
                    tds = ["<td>" + ("–" if v is None else esc(v)) + "</td>" for v in values]
                    tds[10] = f"<td>{_sha_cell(r.get('ckpt_sha256'))}</td>"
                    lines.append('<tr class="source" ' + " ".join(f'{k}="{esc(v)}"' for k, v in attrs.items()) + ">"
                                 + "".join(tds) + "</tr>")
            n_rows = sum(len(c.rows) for c in mine)
            its = _iterations([r for c in mine for r in c.rows])
            summary = (f"{esc(run)} on {esc(dataset or '(no dataset)')}: {len(mine)} number(s) from {n_rows} result "
                       f"row(s)" + (f", iteration(s) {esc(', '.join(its))}" if its else ""))
            blocks.append(f'<details id="{anchor}" class="prov" data-run="{esc(run)}" data-dataset="{esc(dataset)}">'
                          f"<summary>{summary}</summary>\n<div class=\"wide\"><table class=\"prov\">\n<thead><tr>"
                          + "".join(f"<th>{h}</th>" for h in PROV_HEAD) + "</tr></thead>\n<tbody>\n"
                          + "\n".join(lines) + "\n</tbody>\n</table></div>\n</details>")
    return "\n".join(blocks)


def small_sample_cells(cells: list[list[Cell]]) -> list[str]:
    """FID-type numbers computed from fewer than :data:`SMALL_N` images in a set, one line each (escaped)."""
    out = []
    for row in cells:
        for cell in row:
            if cell.column.metric not in FID_LIKE or not cell.rows:
                continue
            n_real = [r.get("n_real") for r in cell.rows if isinstance(r.get("n_real"), int)]
            n_fake = [r.get("n_fake") for r in cell.rows if isinstance(r.get("n_fake"), int)]
            if any(n < SMALL_N for n in n_real + n_fake):
                col = cell.column
                where = f"{cell.run}" + (f" on {col.dataset}" if col.dataset else "") + f", {col.protocol}"
                out.append(f"{esc(where)} {esc(col.info.label)}: n_real {esc(', '.join(map(str, sorted(set(n_real)))) or '–')}, "
                           f"n_fake {esc(', '.join(map(str, sorted(set(n_fake)))) or '–')}")
    return out
