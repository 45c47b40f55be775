"""What a leaderboard holds: one row per run, one column per (dataset, protocol, metric, class), and its cells.

Cells are the mean over seeds, shown as ``mean ± std`` when a cell has more than one seed (std is the
sample standard deviation, ddof=1). The best value of each column is bold and, on request, the second
best underlined; both are decided on the values as displayed, so every value that prints as the best
is bold. Directions and default decimals come from :mod:`unit_eval.metrics.registry` (unregistered
metrics: lower is better, 2 decimals). Rows of different datasets never share a cell: with more than
one dataset the columns are grouped under a header per dataset (as TUNIT Table 1, GP-UNIT Table 1).
``dc_cell`` prints density and coverage in one ``density / coverage`` cell ranked by coverage, as TUNIT
Table 1 ("we boldify the one which has the best coverage").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import pandas as pd

from .aggregate import aggregate
from .errors import UnitEvalError
from .metrics.registry import MetricInfo, metric_info
from .results import MEAN

FORMATS = ("latex", "markdown", "csv")
DC_CELL = ("density", "coverage")

def _cell_styler(*, missing: str, plus_minus: str, best: str, second: str | None):
    """A cell formatter for one output format: ``best``/``second`` are templates with one ``{}`` (None: no
    second-best mark)."""
    def styled(cell: "_Cell") -> str:
        if cell.mean is None:
            return missing
        text = cell.mean if cell.std is None else f"{cell.mean}{plus_minus}{cell.std}"
        if cell.mark == "best":
            return best.format(text)
        if cell.mark == "second" and second is not None:
            return second.format(text)
        return text

    return styled


@dataclass(frozen=True)
class Column:
    dataset: str
    protocol: str
    metric: str
    cls: str
    pair: str | None = None  # a second metric printed in the same cell ("density / coverage"), which ranks it

    @property
    def info(self) -> MetricInfo:
        return metric_info(self.metric)

    @property
    def label(self) -> str:
        return "D&C" if self.pair is not None else self.info.label

    @property
    def ranked_by(self) -> MetricInfo:
        return metric_info(self.pair) if self.pair is not None else self.info

    def part(self, metric: str) -> "Column":
        return Column(self.dataset, self.protocol, metric, self.cls)


@dataclass
class Leaderboard:
    """Aggregated table data: ``mean``/``std``/``n`` frames indexed by run, one column per (dataset, protocol,
    metric, class); :attr:`columns` are the printed columns (a D&C cell stands for two of them)."""

    runs: list[str]
    columns: list[Column]
    mean: pd.DataFrame
    std: pd.DataFrame
    n: pd.DataFrame
    show_dataset: bool
    show_protocol: bool
    show_class: bool
    ci_half: pd.DataFrame | None = None
    spread: str = "std"  # what follows "±": "std" over seeds, or "ci": the bootstrap interval's half-width

    def cell(self, run: str, col: Column) -> tuple[float | None, float | None, int]:
        """(mean, spread, seeds): the spread is the std over seeds, or with ``spread="ci"`` the half-width of the
        rows' bootstrap intervals (their mean over seeds)."""
        key = (col.dataset, col.protocol, col.metric, col.cls)
        mean = self.mean.at[run, key]
        if pd.isna(mean):
            return None, None, 0
        frame = self.ci_half if self.spread == "ci" else self.std
        spread = frame.at[run, key]
        return float(mean), (None if pd.isna(spread) else float(spread)), int(self.n.at[run, key])


def _split_names(values: Iterable[str] | None) -> list[str]:
    names: list[str] = []
    for value in values or ():
        names.extend(part.strip() for part in str(value).split(",") if part.strip())
    return names


def build_table(
    rows: Iterable[Mapping],
    *,
    metrics: Sequence[str] | None = None,
    protocols: Sequence[str] | None = None,
    classes: bool = False,
    dc_cell: bool = False,
) -> Leaderboard:
    """Aggregate rows into a leaderboard.

    ``metrics`` picks and orders the columns (default: every metric, in order of first appearance);
    ``protocols`` restricts to those protocols; ``classes`` adds class-wise columns after each metric's
    "mean" column (by default only rows with class "mean" are used). Columns are grouped by dataset, then
    protocol, in order of first appearance; headers name the dataset when there are several and the protocol
    when a metric appears under several protocols of one dataset. ``dc_cell`` merges each density column with
    the coverage column of the same dataset, protocol and class into one D&C column (at density's place).
    """
    stats = aggregate(rows)
    protocols = _split_names(protocols)
    metrics = _split_names(metrics)
    if protocols:
        unknown = [p for p in protocols if p not in set(stats["protocol"])]
        if unknown:
            have = ", ".join(dict.fromkeys(stats["protocol"]))
            raise UnitEvalError(f"protocol {unknown[0]!r} not in the results (have: {have})")
        stats = stats[stats["protocol"].isin(protocols)]
    if not classes:
        stats = stats[stats["class"] == MEAN]
        if stats.empty:
            raise UnitEvalError('no result rows with class "mean" (pass --classes for class-wise columns)')
    if metrics:
        have = list(dict.fromkeys(stats["metric"]))
        unknown = [m for m in metrics if m not in have]
        if unknown:
            raise UnitEvalError(f"metric {unknown[0]!r} not in the results (have: {', '.join(have)})")
        stats = stats[stats["metric"].isin(metrics)]
    else:  # every metric but spreads of others (KID's std over subsets), unless asked for by name
        metrics = [m for m in dict.fromkeys(stats["metric"]) if not metric_info(m).spread]
        stats = stats[stats["metric"].isin(metrics)]
    protocols = protocols or list(dict.fromkeys(stats["protocol"]))
    datasets = list(dict.fromkeys(stats["dataset"]))

    cells: list[Column] = []
    for dataset in datasets:
        for protocol in protocols:
            for metric in metrics:
                present = stats.loc[(stats["dataset"] == dataset) & (stats["protocol"] == protocol)
                                    & (stats["metric"] == metric), "class"]
                names = list(dict.fromkeys(present))
                if MEAN in names:
                    names.remove(MEAN)
                    names.insert(0, MEAN)
                cells.extend(Column(dataset, protocol, metric, name) for name in names)

    runs = list(dict.fromkeys(stats["run"]))
    col_index = pd.MultiIndex.from_tuples([(c.dataset, c.protocol, c.metric, c.cls) for c in cells])

    def frame(field: str) -> pd.DataFrame:
        wide = stats.pivot(index="run", columns=["dataset", "protocol", "metric", "class"], values=field)
        return wide.reindex(index=runs, columns=col_index)

    return Leaderboard(
        runs=runs,
        columns=_merge_dc(cells) if dc_cell else cells,
        mean=frame("mean"),
        std=frame("std"),
        n=frame("n"),
        ci_half=frame("ci_half"),
        show_dataset=len(datasets) > 1,
        # the protocol is named only where it tells columns apart: a metric of one dataset under two protocols
        show_protocol=len({(c.dataset, c.metric, c.cls) for c in cells}) < len({(c.dataset, c.protocol, c.metric, c.cls) for c in cells}),
        show_class=classes,
    )


def _merge_dc(columns: list[Column]) -> list[Column]:
    """Density and coverage of one (dataset, protocol, class) as one D&C column where density stood."""
    density, coverage = DC_CELL
    have = set(columns)
    pairs = [c for c in columns if c.metric == density and c.part(coverage) in have]
    if not pairs:
        raise UnitEvalError("the D&C cell needs density and coverage results of the same protocol and class")
    merged = {c.part(coverage) for c in pairs}
    return [Column(c.dataset, c.protocol, c.metric, c.cls, coverage) if c in pairs else c
            for c in columns if c not in merged]


def format_number(value: float, decimals: int) -> str:
    """Fixed-point with ``decimals`` digits; never prints a negative zero."""
    text = f"{value:.{decimals}f}"
    return f"{0.0:.{decimals}f}" if float(text) == 0 else text


def rank_marks(values: Sequence[float | None], higher_is_better: bool, decimals: int) -> list[str]:
    """``"best"``/``"second"``/``""`` per value, compared as displayed at ``decimals`` (ties share a mark).

    Nothing is marked in a column with fewer than two values.
    """
    shown = [None if v is None else float(format_number(v, decimals)) for v in values]
    distinct = sorted({v for v in shown if v is not None}, reverse=higher_is_better)
    if sum(v is not None for v in shown) < 2:
        return [""] * len(values)
    best = distinct[0]
    second = distinct[1] if len(distinct) > 1 else None
    return ["best" if v == best and v is not None else "second" if v == second and v is not None else "" for v in shown]


def decimals_for(metric: str, decimals: int | None, metric_decimals: Mapping[str, int] | None) -> int:
    """Places for ``metric``: its own override, else the table-wide ``decimals``, else the registry's (as the
    papers print it)."""
    places = (metric_decimals or {}).get(metric)
    if places is None:
        places = metric_info(metric).decimals if decimals is None else decimals
    if places < 0:
        raise UnitEvalError(f"decimals must be >= 0, got {places} for {metric}")
    return places


@dataclass(frozen=True)
class _Cell:
    mean: str | None
    std: str | None
    mark: str


def _texts(board: Leaderboard, col: Column, decimals, metric_decimals, show_std: bool):
    """(mean text or None, std text or None) per run for one metric column, and the means for ranking."""
    places = decimals_for(col.metric, decimals, metric_decimals)
    stats = [board.cell(run, col) for run in board.runs]
    texts = [(None if mean is None else format_number(mean, places),
              format_number(std, places) if show_std and std is not None and (n > 1 or board.spread == "ci") else None)
             for mean, std, n in stats]
    return texts, [s[0] for s in stats], places


def _cells(board: Leaderboard, decimals: int | None, metric_decimals, show_std: bool, marks: bool,
           plus_minus: str = " ± ") -> list[list[_Cell]]:
    by_column = []
    for col in board.columns:
        texts, means, places = _texts(board, col, decimals, metric_decimals, show_std)
        if col.pair is not None:  # "density / coverage" in one cell, ranked by the second metric
            second, means, places = _texts(board, col.part(col.pair), decimals, metric_decimals, show_std)
            joined = []
            for (m1, s1), (m2, s2) in zip(texts, second):
                if m1 is None or m2 is None:
                    joined.append((None, None))
                    continue
                part1 = m1 if s1 is None else f"{m1}{plus_minus}{s1}"
                part2 = m2 if s2 is None else f"{m2}{plus_minus}{s2}"
                joined.append((f"{part1} / {part2}", None))
            texts = joined
        flags = rank_marks(means, col.ranked_by.higher_is_better, places) if marks else [""] * len(means)
        by_column.append([_Cell(mean, std, flag) for (mean, std), flag in zip(texts, flags)])
    return [list(row) for row in zip(*by_column)] if by_column else [[] for _ in board.runs]


def _header_parts(board: Leaderboard, col: Column, arrow: Mapping[bool, str], escape) -> list[str]:
    parts = [escape(col.dataset or "(no dataset)")] if board.show_dataset else []
    if board.show_protocol:
        parts.append(escape(col.protocol))
    parts.append(f"{escape(col.label)} {arrow[col.ranked_by.higher_is_better]}")
    if board.show_class:
        parts.append(escape(col.cls))
    return parts
