"""Regression gate: compare new result rows with baseline rows, direction-aware.

Each (dataset, protocol, metric, class) is reduced to its mean over seeds (see :func:`unit_eval.aggregate.aggregate`);
results of different datasets are never compared with each other.
A value is a regression when it is worse than the baseline by more than ``max(atol, rtol * |baseline|)``,
"worse" meaning lower for higher-is-better metrics and higher otherwise. A baseline entry absent from
the new results is a regression too ("missing in new"); an entry only in the new results passes
("new metric"). When both sides hold exactly one run, run names are ignored (a branch is compared
with main whatever the runs are called); otherwise entries are matched by run as well.

With ``significance`` (``unit-eval check --significance 0.05``) a change beyond tolerance is a regression only when
it is also beyond the resampling noise, judged per entry by the first test that applies:

* ``seeds``: both sides hold at least two seeds: Welch's t-test of the per-seed values (``scipy.stats.ttest_ind``,
  unequal variances), two-sided;
* ``bootstrap``: every row on both sides carries ``bootstrap_std`` (``--bootstrap B``): z = delta /
  sqrt(se_new^2 + se_baseline^2), each side's standard error being its bootstrap standard deviation (divided by
  sqrt(n) for a mean over n seeds), two-sided normal p-value. The two evaluations draw their fakes
  independently, so their bootstrap variances add;
* neither: the tolerance alone decides, and the entry says so (``noise`` is null).

A change beyond tolerance whose p-value is not below ``significance`` gets the verdict "within noise" (passes).
Each entry records ``noise`` (which test) and ``p_value``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .errors import UnitEvalError
from .metrics.registry import metric_info
from .aggregate import aggregate, dataset_of
from .markup import markdown_escape

DEFAULT_RTOL = 0.01
DEFAULT_ATOL = 0.0

OK = "ok"
IMPROVED = "improved"
REGRESSION = "REGRESSION"
MISSING = "missing in new"
NEW = "new metric"
WITHIN_NOISE = "within noise"
FAILING = frozenset({REGRESSION, MISSING})


@dataclass(frozen=True)
class Tolerance:
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL

    def __post_init__(self):
        for name in ("atol", "rtol"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise UnitEvalError(f"{name} must be a finite number >= 0, got {value}")

    def allowed(self, baseline: float) -> float:
        return max(self.atol, self.rtol * abs(baseline))


def parse_tolerance(spec: str, default_rtol: float = DEFAULT_RTOL) -> tuple[str, Tolerance]:
    """Parse ``metric=atol[,rtol]``; without ``rtol`` the default one applies."""
    metric, sep, numbers = spec.partition("=")
    parts = [p.strip() for p in numbers.split(",")]
    if not sep or not metric.strip() or len(parts) not in (1, 2) or not all(parts):
        raise UnitEvalError(f"tolerance must look like metric=atol[,rtol], got {spec!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UnitEvalError(f"tolerance must look like metric=atol[,rtol], got {spec!r}") from None
    return metric.strip(), Tolerance(values[0], values[1] if len(values) == 2 else default_rtol)


@dataclass
class Comparison:
    """One dict per compared entry: run (None unless matched by run), dataset, protocol, metric, class,
    higher_is_better, baseline, new, delta (new - baseline), allowed, verdict, n_baseline, n_new."""

    rows: list[dict] = field(default_factory=list)
    by_run: bool = False
    significance: float | None = None

    @property
    def regressions(self) -> list[dict]:
        return [r for r in self.rows if r["verdict"] in FAILING]

    @property
    def passed(self) -> bool:
        return not self.regressions

    def to_json(self) -> dict:
        return {"passed": self.passed, "regressions": self.regressions, "rows": self.rows, "matched_by_run": self.by_run,
                "significance": self.significance}


def _means(rows: list[Mapping], by_run: bool) -> dict[tuple, tuple[float, int]]:
    stats = aggregate(rows)
    out = {}
    for rec in stats.itertuples(index=False):
        run, dataset, protocol, metric, cls, mean, _std, n = rec[:8]
        out[(run if by_run else None, dataset, protocol, metric, cls)] = (float(mean), int(n))
    return out


def _extractors(rows: list[Mapping], by_run: bool) -> dict[tuple, set[str]]:
    out: dict[tuple, set[str]] = {}
    for r in rows:
        key = (str(r.get("run")) if by_run else None, dataset_of(r), str(r.get("protocol")), str(r.get("metric")),
               str(r.get("class")))
        out.setdefault(key, set()).add(str(r.get("extractor")))
    return out


def _refuse_unnamed_datasets(new_rows: list[Mapping], baseline_rows: list[Mapping]) -> None:
    """A baseline written before rows recorded their dataset cannot be matched to named results safely."""
    if any(dataset_of(r) for r in new_rows) and not any(dataset_of(r) for r in baseline_rows):
        raise UnitEvalError("the baseline's rows record no dataset (written before unit-eval recorded it), so they cannot "
                            "be matched to these results; regenerate the baseline with --update")


def _refuse_other_extractor(new_rows: list[Mapping], baseline_rows: list[Mapping], by_run: bool) -> None:
    """A score is only comparable with a baseline from the same extractor (numerics, preprocessing, weights)."""
    new, base = _extractors(new_rows, by_run), _extractors(baseline_rows, by_run)
    for key in new.keys() & base.keys():
        if new[key] != base[key]:
            _, _, protocol, metric, cls = key
            raise UnitEvalError(f"{protocol} {metric} [{cls}]: baseline from {' and '.join(sorted(base[key]))}, new from "
                                f"{' and '.join(sorted(new[key]))}; compare like with like (same --numerics and protocol)")


def compare(
    new_rows: Iterable[Mapping],
    baseline_rows: Iterable[Mapping],
    *,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    tolerances: Mapping[str, Tolerance] | None = None,
    by_run: bool | None = None,
    select: str | None = None,
    select_by: str | None = None,
    significance: float | None = None,
) -> Comparison:
    """Compare new results with a baseline; ``tolerances`` overrides (atol, rtol) per metric name.

    ``by_run=None`` matches by run only when either side holds more than one run. Rows of several training
    iterations are first reduced on each side by ``select`` (:func:`unit_eval.selection.select_rows`; the last
    iteration by default).
    """
    from .selection import select_rows

    # a spread (KID's std over subsets) describes an estimate; it is not a score to gate on
    new_rows = [r for r in select_rows(new_rows, select, select_by).rows if not metric_info(str(r["metric"])).spread]
    baseline_rows = [r for r in select_rows(baseline_rows, select, select_by).rows
                     if not metric_info(str(r["metric"])).spread]
    default = Tolerance(atol, rtol)
    tolerances = dict(tolerances or {})
    if by_run is None:
        by_run = len({str(r["run"]) for r in new_rows}) > 1 or len({str(r["run"]) for r in baseline_rows}) > 1
    _refuse_unnamed_datasets(new_rows, baseline_rows)
    _refuse_other_extractor(new_rows, baseline_rows, by_run)
    if significance is not None and not 0 < significance < 1:
        raise UnitEvalError(f"--significance must lie strictly between 0 and 1, got {significance}")
    new, base = _means(new_rows, by_run), _means(baseline_rows, by_run)
    new_noise, base_noise = (_noise(new_rows, by_run), _noise(baseline_rows, by_run)) if significance else ({}, {})

    result = Comparison(by_run=by_run, significance=significance)
    for key in list(base) + [k for k in new if k not in base]:
        run, dataset, protocol, metric, cls = key
        info = metric_info(metric)
        tol = tolerances.get(metric, default)
        old_value, n_old = base.get(key, (None, 0))
        new_value, n_new = new.get(key, (None, 0))
        delta = allowed = p_value = noise = None
        if old_value is None:
            verdict = NEW
        elif new_value is None:
            verdict = MISSING
        else:
            delta = new_value - old_value
            allowed = tol.allowed(old_value)
            worse = -delta if info.higher_is_better else delta
            verdict = REGRESSION if worse > allowed else IMPROVED if -worse > allowed else OK
            if significance and verdict != OK:
                noise, p_value = _p_value(new_noise.get(key), base_noise.get(key), delta)
                if p_value is not None and p_value >= significance:
                    verdict = WITHIN_NOISE
        result.rows.append(
            {
                "run": run,
                "dataset": dataset,
                "protocol": protocol,
                "metric": metric,
                "class": cls,
                "higher_is_better": info.higher_is_better,
                "baseline": old_value,
                "new": new_value,
                "delta": delta,
                "allowed": allowed,
                "verdict": verdict,
                "n_baseline": n_old,
                "n_new": n_new,
                "noise": noise,
                "p_value": p_value,
            }
        )
    return result


def _noise(rows: list[Mapping], by_run: bool) -> dict[tuple, tuple[list[float], list[float | None]]]:
    """Per entry: the per-seed values and their bootstrap standard deviations (None where a row has none)."""
    out: dict[tuple, tuple[list[float], list[float | None]]] = {}
    for r in rows:
        key = (str(r.get("run")) if by_run else None, dataset_of(r), str(r.get("protocol")), str(r.get("metric")),
               str(r.get("class")))
        values, stds = out.setdefault(key, ([], []))
        values.append(float(r["value"]))
        std = r.get("bootstrap_std")
        stds.append(float(std) if isinstance(std, (int, float)) and not isinstance(std, bool) else None)
    return out


def _p_value(new, base, delta: float) -> tuple[str | None, float | None]:
    """(which test, two-sided p-value) for a change of ``delta`` (module docstring), or (None, None)."""
    if new is None or base is None:
        return None, None
    (new_values, new_stds), (base_values, base_stds) = new, base
    if len(new_values) >= 2 and len(base_values) >= 2:
        from scipy.stats import ttest_ind

        if max(new_values) == min(new_values) and max(base_values) == min(base_values):
            return "seeds", 1.0 if delta == 0 else 0.0
        return "seeds", float(ttest_ind(new_values, base_values, equal_var=False).pvalue)
    if None not in new_stds and None not in base_stds:
        from scipy.stats import norm

        se_new = math.sqrt(sum(s * s for s in new_stds)) / len(new_stds)
        se_base = math.sqrt(sum(s * s for s in base_stds)) / len(base_stds)
        se = math.hypot(se_new, se_base)
        if se == 0:
            return "bootstrap", 1.0 if delta == 0 else 0.0
        return "bootstrap", float(2 * norm.sf(abs(delta) / se))
    return None, None


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.6g}" if signed else f"{value:.6g}"


def _p_text(r: dict) -> str:
    if r.get("p_value") is None:
        return "–"
    return f"{r['p_value']:.3g} ({r['noise']})"


def render_markdown(result: Comparison) -> str:
    """The comparison as a GitHub pipe table followed by a one-line summary."""
    from tabulate import tabulate

    show_dataset = len({r["dataset"] for r in result.rows}) > 1
    headers = ((["run"] if result.by_run else []) + (["dataset"] if show_dataset else [])
               + ["protocol", "metric", "class", "baseline", "new", "delta", "allowed"]
               + (["p (noise test)"] if result.significance else []) + ["verdict"])
    body = []
    for r in result.rows:
        arrow = "↑" if r["higher_is_better"] else "↓"
        body.append(
            ([markdown_escape(r["run"])] if result.by_run else [])
            + ([markdown_escape(r["dataset"])] if show_dataset else [])
            + [markdown_escape(r["protocol"]), f"{markdown_escape(r['metric'])} {arrow}", markdown_escape(r["class"])]
            + [_num(r["baseline"]), _num(r["new"]), _num(r["delta"], signed=True), _num(r["allowed"])]
            + ([_p_text(r)] if result.significance else []) + [r["verdict"]]
        )
    numeric = 4 + bool(result.significance)
    align = ["left"] * (len(headers) - numeric - 1) + ["right"] * numeric + ["left"]
    table = tabulate(body, headers=headers, tablefmt="pipe", disable_numparse=True, colalign=align)
    return f"{table}\n\n{summary(result)}\n"


def summary(result: Comparison) -> str:
    counts = {v: sum(r["verdict"] == v for r in result.rows)
              for v in (OK, IMPROVED, REGRESSION, MISSING, NEW, WITHIN_NOISE)}
    compared = counts[OK] + counts[IMPROVED] + counts[REGRESSION] + counts[WITHIN_NOISE]
    noise = sorted({r["noise"] for r in result.rows if r.get("noise")})
    tested = (f", {counts[WITHIN_NOISE]} beyond tolerance but within noise ({' and '.join(noise) or 'no test'})"
              if counts[WITHIN_NOISE] else "")
    untested = sum(1 for r in result.rows if r["verdict"] == REGRESSION and r.get("noise") is None
                   and result.significance)
    if untested:
        tested += f"; {untested} without bootstrap or seeds, judged by tolerance alone"
    if result.passed:
        return f"passed: {compared} compared, {counts[IMPROVED]} improved, {counts[NEW]} new{tested}"
    failing = counts[REGRESSION] + counts[MISSING]
    return (
        f"FAILED: {failing} regression{'s' if failing != 1 else ''} ({counts[REGRESSION]} worse than the baseline "
        f"beyond tolerance, {counts[MISSING]} missing in the new results, which counts as a regression); "
        f"{compared} compared{tested}"
    )
