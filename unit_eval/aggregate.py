"""Result rows -> one cell per (run, dataset, protocol, metric, class): mean, sample std and count over seeds.

Tables and regression checks both read rows through :func:`aggregate`; neither re-implements it.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import pandas as pd

from .errors import UnitEvalError
from .results import row_iteration

KEY = ["run", "dataset", "protocol", "metric", "class"]


def _value(row: Mapping) -> float:
    value = row["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UnitEvalError(f"result value is not a finite number: {value!r} (run {row['run']!r}, metric {row['metric']!r})")
    return float(value)


def dataset_of(row: Mapping) -> str:
    """The dataset name a row records ("" for rows written before unit-eval recorded it)."""
    value = row.get("dataset")
    return "" if value is None else str(value)


def aggregate(rows: Iterable[Mapping]) -> pd.DataFrame:
    """Mean, sample std (ddof=1, NaN for a single seed) and seed count per (run, dataset, protocol, metric, class).

    Several rows with the same (run, dataset, protocol, metric, class, seed) are re-evaluations: the last one
    wins. Rows of one cell from several training iterations are refused: :func:`unit_eval.selection.select_rows`
    chooses the iterations first (tables and checks do). The result has columns run, dataset, protocol, metric, class, mean, std, n and ci_half (the mean half-width of the rows' bootstrap intervals, NaN without) in first-appearance order.
    """
    rows = list(rows)
    if not rows:
        raise UnitEvalError("no result rows to aggregate")
    try:
        frame = pd.DataFrame(
            {
                "run": [str(r["run"]) for r in rows],
                "dataset": [dataset_of(r) for r in rows],
                "protocol": [str(r["protocol"]) for r in rows],
                "metric": [str(r["metric"]) for r in rows],
                "class": [str(r["class"]) for r in rows],
                "seed": [repr(r.get("seed")) for r in rows],
                "value": [_value(r) for r in rows],
                "extractor": [str(r.get("extractor")) for r in rows],
                "iteration": [row_iteration(r) for r in rows],
                "ci_half": [_half_width(r) for r in rows],
            }
        )
    except KeyError as exc:
        raise UnitEvalError(f"result row lacks key {exc.args[0]!r}") from None
    _refuse_mixed_iterations(frame)
    frame["first"] = frame.groupby(KEY + ["seed"], sort=False).ngroup()
    frame = frame.drop_duplicates(subset=KEY + ["seed"], keep="last").sort_values("first", kind="stable")
    _refuse_mixed_extractors(frame)
    stats = frame.groupby(KEY, sort=False)["value"].agg(mean="mean", std="std", n="count")
    stats["ci_half"] = frame.groupby(KEY, sort=False)["ci_half"].mean()  # NaN unless the rows carry intervals
    return stats.reset_index()


def _half_width(row: Mapping) -> float:
    """Half the width of a row's bootstrap interval (NaN without one)."""
    low, high = row.get("ci_low"), row.get("ci_high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        return float("nan")
    return (float(high) - float(low)) / 2


def _refuse_mixed_extractors(frame: pd.DataFrame) -> None:
    """Seeds of one cell must come from one feature extractor: fp32 and bf16 (or legacy) numbers never average."""
    kinds = frame.groupby(KEY, sort=False)["extractor"].unique()
    mixed = kinds[kinds.map(len) > 1]
    if len(mixed):
        (run, dataset, protocol, metric, cls), names = mixed.index[0], mixed.iloc[0]
        on = f" on {dataset}" if dataset else ""
        raise UnitEvalError(f"run {run!r}{on}, {protocol} {metric} [{cls}] mixes extractors {' and '.join(sorted(names))}; "
                            "give each setting its own --run name")


def _refuse_mixed_iterations(frame: pd.DataFrame) -> None:
    """One cell is one checkpoint: rows of several training iterations are never averaged as if they were seeds."""
    spans = frame.dropna(subset=["iteration"]).groupby(KEY, sort=False)["iteration"].unique()
    mixed = spans[spans.map(len) > 1]
    if len(mixed):
        (run, dataset, protocol, metric, cls), its = mixed.index[0], sorted(int(i) for i in mixed.iloc[0])
        on = f" on {dataset}" if dataset else ""
        raise UnitEvalError(f"run {run!r}{on}, {protocol} {metric} [{cls}] has rows of {len(its)} iterations "
                            f"({its[0]} to {its[-1]}); choose with --select last|best|best5|iter=N")
