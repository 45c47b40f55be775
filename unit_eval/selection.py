"""Which training iterations a table, check or figure shows, when rows come from several snapshots of a run.

A sweep (``unit-eval sweep``) or evaluation during training gives rows of one run at many iterations. Papers print
one number per run, chosen in a stated way; :func:`select_rows` reduces the rows to it:

- ``last``: the last evaluated iteration of each run (the final checkpoint);
- ``best``: the iteration whose selection metric is best;
- ``bestK`` (``best5``): the mean over the K iterations with the best selection metric, as TUNIT reports mFID
  ("the mean value of the best five mFIDs over 100K iterations", TUNIT Appendix C); every metric of the run is
  averaged over those same K iterations;
- ``iter=N``: iteration N.

Iterations are chosen per (run, dataset), from the selection metric's class-"mean" rows averaged over the seeds
present at each iteration, so one table row is always the same checkpoints across its columns; each seed's rows
are then reduced over the chosen iterations and :mod:`unit_eval.aggregate` turns seeds into mean ± std as usual.
Rows without an iteration (a user model, a folder of images, the demo's reference rows) pass through unchanged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .errors import UnitEvalError
from .metrics.registry import metric_info
from .results import MEAN, row_iteration

#: the selection metrics tried, in order, when ``--select-by`` is not given
DEFAULT_BY = ("mfid", "fid")


@dataclass(frozen=True)
class Selection:
    kind: str  # "last" | "best" | "iter"
    k: int = 1  # best: how many best iterations are averaged
    iteration: int | None = None  # iter

    @property
    def text(self) -> str:
        if self.kind == "iter":
            return f"iter={self.iteration}"
        if self.kind == "best":
            return "best" if self.k == 1 else f"best{self.k}"
        return self.kind

    @property
    def needs_metric(self) -> bool:
        return self.kind == "best"


def parse_selection(text: str) -> Selection:
    """``last``, ``best``, ``bestK`` (K >= 1, e.g. ``best5``) or ``iter=N``; anything else is one clear error."""
    value = str(text).strip().lower()
    if value == "last":
        return Selection("last")
    m = re.fullmatch(r"best(\d*)", value)
    if m:
        k = int(m.group(1) or 1)
        if k < 1:
            raise UnitEvalError(f"--select {text!r}: K in bestK must be at least 1")
        return Selection("best", k=k)
    m = re.fullmatch(r"iter=(\d+)", value)
    if m:
        return Selection("iter", iteration=int(m.group(1)))
    raise UnitEvalError(f"--select {text!r} is not one of last, best, bestK (e.g. best5), iter=N")


@dataclass
class Selected:
    """The rows a table shows, the iterations chosen per (run, dataset), and what a reader must be told."""

    rows: list[dict]
    selection: Selection | None
    by: tuple[str | None, str] | None = None  # (protocol or None, metric) that chose the iterations
    iterations: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (run, dataset) -> chosen
    notes: list[str] = field(default_factory=list)  # said once on stderr

    def footnote(self) -> str | None:
        """One sentence naming the selection and every run's iterations (for a table's footnote or caption)."""
        if self.selection is None or not self.iterations:
            return None
        multi = len({d for _, d in self.iterations}) > 1
        chosen = "; ".join(f"{run}{f' ({dataset})' if multi and dataset else ''}: {', '.join(map(str, its))}"
                           for (run, dataset), its in self.iterations.items())
        sel = self.selection
        if sel.kind == "last":
            head = "Values at the last evaluated iteration"
        elif sel.kind == "iter":
            head = f"Values at iteration {sel.iteration}"
        else:
            protocol, metric = self.by
            label = metric_info(metric).label + (f" ({protocol})" if protocol else "")
            head = (f"Values at the iteration with the best {label}" if sel.k == 1 else
                    f"Mean over the {sel.k} iterations with the best {label} ({sel.text})")
        return f"{head}. Iterations: {chosen}."


def has_iterations(rows: Iterable[Mapping]) -> bool:
    return any(row_iteration(r) is not None for r in rows)


def _dataset(row: Mapping) -> str:
    return "" if row.get("dataset") is None else str(row["dataset"])


def _resolve_by(rows: list[dict], by: str | None) -> tuple[str | None, str]:
    """``[PROTOCOL:]METRIC`` -> (protocol or None, metric); by default mFID, else FID, else the first metric."""
    metrics = list(dict.fromkeys(r["metric"] for r in rows if r["class"] == MEAN))
    if by:
        protocol, sep, metric = str(by).rpartition(":")
        protocol = protocol if sep else None
        have = [r for r in rows if r["metric"] == metric and (protocol is None or r["protocol"] == protocol)]
        if not have:
            raise UnitEvalError(f"--select-by {by!r}: no rows of that {'protocol and ' if protocol else ''}metric "
                                f"(metrics: {', '.join(metrics)})")
    else:
        metric = next((m for m in DEFAULT_BY if m in metrics), metrics[0] if metrics else None)
        if metric is None:
            raise UnitEvalError('no rows of class "mean" to select iterations by')
        protocol = None
    protocols = list(dict.fromkeys(r["protocol"] for r in rows if r["metric"] == metric
                                   and (protocol is None or r["protocol"] == protocol)))
    if protocol is None and len(protocols) > 1:
        raise UnitEvalError(f"{metric} comes from several protocols ({', '.join(protocols)}); "
                            f"name one with --select-by PROTOCOL:{metric}")
    return protocol, metric


def select_rows(rows: Iterable[Mapping], selection: str | Selection | None = None, by: str | None = None) -> Selected:
    """The rows of the selected iterations (``selection`` None: ``last`` when rows carry iterations, else all rows)."""
    rows = [dict(r) for r in rows]
    if selection is None:
        if not has_iterations(rows):
            return Selected(rows, None)
        selection = "last"
    sel = selection if isinstance(selection, Selection) else parse_selection(selection)
    out = Selected([], sel)
    if sel.needs_metric:
        out.by = _resolve_by(rows, by)
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((str(r["run"]), _dataset(r)), []).append(r)
    for (run, dataset), group in groups.items():
        with_it = [r for r in group if row_iteration(r) is not None]
        if not with_it:
            out.rows.extend(group)
            continue
        if len(with_it) < len(group):
            out.notes.append(f"run {run!r}: {len(group) - len(with_it)} row(s) without an iteration left out "
                             f"(the others come from training snapshots)")
        chosen = _choose(run, dataset, with_it, sel, out.by)
        if not chosen:
            continue
        out.iterations[(run, dataset)] = chosen
        out.rows.extend(_reduce(run, with_it, chosen, sel, out.notes))
    if not out.rows:
        raise UnitEvalError(f"--select {sel.text} leaves no rows")
    return out


def _choose(run: str, dataset: str, rows: list[dict], sel: Selection, by) -> list[int]:
    present = sorted({row_iteration(r) for r in rows})
    if sel.kind == "last":
        return [present[-1]]
    if sel.kind == "iter":
        if sel.iteration not in present:
            raise UnitEvalError(f"run {run!r} has no rows at iteration {sel.iteration} (it has {_span(present)})")
        return [sel.iteration]
    protocol, metric = by
    scores: dict[int, list[float]] = {}
    for r in rows:
        if r["metric"] == metric and r["class"] == MEAN and (protocol is None or r["protocol"] == protocol):
            scores.setdefault(row_iteration(r), []).append(float(r["value"]))
    if not scores:
        raise UnitEvalError(f"run {run!r}{f' on {dataset}' if dataset else ''} has no {metric} rows to select "
                            f"iterations by (--select-by)")
    if len(scores) < sel.k:
        raise UnitEvalError(f"--select {sel.text} needs {sel.k} evaluated iterations of {metric}; run {run!r} has "
                            f"{len(scores)} ({_span(sorted(scores))})")
    sign = -1.0 if metric_info(metric).higher_is_better else 1.0
    # mean over seeds at each iteration; ties go to the earlier iteration
    ranked = sorted(scores, key=lambda it: (sign * sum(scores[it]) / len(scores[it]), it))
    return sorted(ranked[: sel.k])


def _reduce(run: str, rows: list[dict], chosen: list[int], sel: Selection, notes: list[str]) -> list[dict]:
    if len(chosen) == 1:
        return [r for r in rows if row_iteration(r) == chosen[0]]
    cells: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        it = row_iteration(r)
        if it in chosen:  # a re-evaluation of one iteration: the last row wins, as in aggregate
            cells.setdefault((r["protocol"], r["metric"], r["class"], r.get("seed")), {})[it] = r
    out = []
    for (protocol, metric, cls, seed), per_it in cells.items():
        missing = [it for it in chosen if it not in per_it]
        if missing:
            notes.append(f"run {run!r}: {protocol} {metric} [{cls}] has no rows at iteration(s) "
                         f"{', '.join(map(str, missing))} of the {sel.text} selection; its cell is left empty")
            continue
        last = per_it[chosen[-1]]
        mean = sum(float(per_it[it]["value"]) for it in chosen) / len(chosen)
        out.append({**last, "value": mean, "iteration": None, "ckpt_sha256": None,
                    "options": {**(last.get("options") or {}), "iteration": None, "selection": sel.text,
                                "iterations": list(chosen)}})
    return out


def _span(iterations: list[int]) -> str:
    if len(iterations) <= 6:
        return "iterations " + ", ".join(map(str, iterations))
    return f"{len(iterations)} iterations from {iterations[0]} to {iterations[-1]}"
