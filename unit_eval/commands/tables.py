"""``unit-eval table`` (leaderboard tables) and ``unit-eval check`` (regression gate)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..cache import atomic_write_text
from ..errors import UnitEvalError
from ..results import check_writable, read_rows
from .common import emit, info, json_option, select_options, writable_out

_SUFFIX_FORMATS = {".tex": "latex", ".md": "markdown", ".markdown": "markdown", ".csv": "csv"}


def _parse_decimals(values: tuple[str, ...]) -> tuple[int | None, dict[str, int]]:
    default, per_metric = None, {}
    for value in values:
        metric, sep, number = value.rpartition("=")
        try:
            places = int(number)
        except ValueError:
            raise click.BadParameter(f"expected N or METRIC=N, got {value!r}", param_hint="--decimals") from None
        if places < 0:
            raise click.BadParameter(f"must be >= 0, got {value!r}", param_hint="--decimals")
        if sep:
            per_metric[metric.strip()] = places
        else:
            default = places
    return default, per_metric


@click.command("table")
@click.argument("results", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["latex", "markdown", "csv"]), default=None,
              help="Output format [default: from the --out suffix (.tex, .md, .csv), else markdown].")
@click.option("--metrics", multiple=True, metavar="M1,M2,...",
              help="Metrics to show, in this order (comma-separated or repeated) [default: all, in file order].")
@click.option("--protocol", "protocols", multiple=True, help="Only these protocols (repeatable).")
@click.option("--classes", is_flag=True, help="Add class-wise columns after each metric's mean column.")
@click.option("--decimals", multiple=True, metavar="N|METRIC=N",
              help="Decimal places, for all metrics or one (repeatable, e.g. --decimals 2 --decimals density=3) "
                   "[default: as the papers print each metric: FID/mFID 1, D&C, accuracies, LPIPS and pixel accuracy 3, IOI 2].")
@click.option("--dc-cell", is_flag=True,
              help="TUNIT Table 1's combined 'density / coverage' cell (D&C), bold by coverage (latex, markdown).")
@click.option("--second", is_flag=True, help="Underline the second best of each column (latex, markdown).")
@click.option("--no-std", is_flag=True, help="Show only the mean over seeds.")
@click.option("--ci", "show_ci", is_flag=True,
              help="After ±, the half-width of each value's --bootstrap interval instead of the std over seeds.")
@select_options("to show [default: last]; the iterations are named under the table")
@click.option("--caption", help="LaTeX caption (escaped; wraps the tabular in a table environment).")
@click.option("--label", help="LaTeX label, e.g. tab:main (wraps the tabular in a table environment).")
@click.option("--out", type=click.Path(dir_okay=False), callback=writable_out, help="Write the table to this file instead of stdout.")
def table_command(results, fmt, metrics, protocols, classes, decimals, dc_cell, second, no_std, show_ci, select, select_by, caption,
                  label, out):
    """Leaderboard table from result files: one row per run, one column per metric.

    Uses the rows with class "mean" unless --classes is given. A cell with several seeds shows
    mean ± std, where std is the sample standard deviation (ddof=1) over seeds; when a seed was
    evaluated more than once the last row wins. Arrows give each metric's direction (unregistered
    metrics count as lower-is-better); the best value of each column, as displayed, is bold (all
    ties), the second best underlined with --second. Results of several datasets get one column
    group per dataset.
    """
    from ..tables import make_table

    if fmt is None:
        fmt = _SUFFIX_FORMATS.get(Path(out).suffix.lower(), "markdown") if out else "markdown"
    if fmt != "latex" and (caption is not None or label is not None):
        raise click.UsageError("--caption and --label apply to --format latex only")
    if fmt == "csv" and dc_cell:
        raise click.UsageError("--dc-cell applies to --format latex and markdown only")
    places, per_metric = _parse_decimals(decimals)
    rows = [row for path in results for row in read_rows(path)]
    text = make_table(
        rows,
        fmt,
        metrics=metrics,
        protocols=protocols,
        classes=classes,
        decimals=places,
        metric_decimals=per_metric,
        second=second,
        show_std=not no_std,
        spread="ci" if show_ci else "std",
        caption=caption,
        label=label,
        dc_cell=dc_cell,
        select=select,
        select_by=select_by,
        on_note=info,
    )
    if out:
        atomic_write_text(out, text)
        info(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@click.command("check")
@click.argument("results")
@click.option("--baseline", required=True, help="Baseline results file (JSONL, same form as RESULTS).")
@click.option("--rtol", type=float, default=0.01, show_default=True, help="Relative tolerance (of |baseline|).")
@click.option("--atol", type=float, default=0.0, show_default=True, help="Absolute tolerance.")
@click.option("--tol", "tols", multiple=True, metavar="METRIC=ATOL[,RTOL]",
              help="Per-metric tolerance (repeatable); without RTOL, --rtol applies.")
@select_options("to compare, on both sides [default: last]")
@click.option("--significance", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Flag a regression only when the change is also beyond the resampling noise at this level (two-sided "
                   "p-value): across seeds when both sides hold two or more, else from the rows' --bootstrap intervals; "
                   "entries with neither are judged by the tolerance alone, and the output says which test each used.")
@click.option("--update", is_flag=True, help="Write RESULTS as the new baseline (atomically) and exit 0.")
@json_option
@click.pass_context
def check_command(ctx, results, baseline, rtol, atol, tols, select, select_by, significance, update, as_json):
    """Compare RESULTS with a baseline; exit 3 on a regression, 0 otherwise.

    Each (protocol, metric, class) present in the baseline is compared by its mean over seeds. A
    regression is a value worse than the baseline by more than max(atol, rtol*|baseline|), worse
    meaning lower for higher-is-better metrics and higher otherwise. Baseline entries missing from
    RESULTS are regressions too; entries only in RESULTS pass as new metrics. When both files hold a
    single run the run names are ignored, otherwise entries are matched by run. Prints a Markdown
    table (or, with --json, one object with passed, regressions and rows).
    """
    from ..check import compare, parse_tolerance, render_markdown

    tolerances = dict(parse_tolerance(spec, default_rtol=rtol) for spec in tols)
    if update:
        check_writable(baseline, "--baseline")
    new_rows = read_rows(results)
    comparison = None
    if Path(baseline).exists():
        try:
            comparison = compare(new_rows, read_rows(baseline), rtol=rtol, atol=atol, tolerances=tolerances,
                                 select=select, select_by=select_by, significance=significance)
        except UnitEvalError as exc:
            if not update:
                raise
            info(f"the old baseline cannot be compared ({exc}); replacing it")
    elif not update:
        raise UnitEvalError(f"baseline not found: {baseline} (create it with --update)")

    if as_json:
        report = comparison.to_json() if comparison is not None else {"passed": True, "regressions": [], "rows": []}
        emit({**report, "updated": update, "baseline": str(baseline)}, True)
    elif comparison is not None:
        click.echo(render_markdown(comparison), nl=False)

    if update:
        existed = Path(baseline).exists()
        atomic_write_text(baseline, "".join(json.dumps(row) + "\n" for row in new_rows))
        info(f"baseline {'updated' if existed else 'created'}: {baseline}")
        return
    if not comparison.passed:
        ctx.exit(3)
