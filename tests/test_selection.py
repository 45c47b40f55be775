"""Iteration selection (``--select``) for tables, checks and curves, against values computed here by hand."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from unit_eval.aggregate import aggregate
from unit_eval.check import compare
from unit_eval.errors import UnitEvalError
from unit_eval.results import append_rows, make_row, read_rows, row_iteration
from unit_eval.selection import parse_selection, select_rows
from unit_eval.tables import make_table

ITERS = [50, 100, 150, 200, 250, 300, 350]
MFID = {"A": [90.0, 70.0, 55.0, 61.0, 52.0, 58.0, 54.0], "B": [95.0, 80.0, 75.0, 72.0, 71.0, 73.0, 70.5]}
COVERAGE = {"A": [0.1, 0.2, 0.3, 0.25, 0.4, 0.35, 0.33], "B": [0.05, 0.1, 0.12, 0.2, 0.22, 0.21, 0.3]}


def sweep_rows(seeds=(0,), jitter=0.0):
    rows = []
    for run in ("A", "B"):
        for seed in seeds:
            for k, it in enumerate(ITERS):
                shift = jitter * seed
                rows.append(make_row(run=run, dataset="digits", protocol="tunit-mfid", metric="mfid",
                                     value=MFID[run][k] + shift, seed=seed, iteration=it, ckpt_sha256=f"{run}{it}"))
                rows.append(make_row(run=run, dataset="digits", protocol="tunit-dc", metric="coverage",
                                     value=COVERAGE[run][k] + shift / 100, seed=seed, iteration=it))
    return rows


def best_iterations(values, k, lower=True):
    order = sorted(range(len(values)), key=lambda i: (values[i] if lower else -values[i], ITERS[i]))
    return sorted(ITERS[i] for i in order[:k])


def test_parse_selection():
    assert parse_selection("best5").k == 5 and parse_selection("best").k == 1
    assert parse_selection("iter=300").iteration == 300 and parse_selection("LAST").kind == "last"
    for bad in ("best0", "worst", "iter=", "iter=-1", "best5x"):
        with pytest.raises(UnitEvalError, match="--select"):
            parse_selection(bad)


def test_best5_is_the_mean_of_the_five_best_mfids_and_their_other_metrics():
    chosen = select_rows(sweep_rows(), "best5")
    stats = aggregate(chosen.rows)
    for run in ("A", "B"):
        its = best_iterations(MFID[run], 5)
        assert chosen.iterations[(run, "digits")] == its
        idx = [ITERS.index(i) for i in its]
        cell = stats[(stats["run"] == run) & (stats["metric"] == "mfid")].iloc[0]
        assert cell["mean"] == pytest.approx(np.mean([MFID[run][i] for i in idx]), rel=1e-12)
        cov = stats[(stats["run"] == run) & (stats["metric"] == "coverage")].iloc[0]
        assert cov["mean"] == pytest.approx(np.mean([COVERAGE[run][i] for i in idx]), rel=1e-12)  # same iterations
    assert "Mean over the 5 iterations with the best mFID" in chosen.footnote()
    assert "A: 150, 200, 250, 300, 350" in chosen.footnote()


def test_best_by_a_higher_is_better_metric_and_last_and_iter():
    best = select_rows(sweep_rows(), "best", by="coverage")
    assert best.iterations[("A", "digits")] == [250] and best.iterations[("B", "digits")] == [350]
    last = select_rows(sweep_rows(), "last")
    assert {row_iteration(r) for r in last.rows} == {350}
    at = select_rows(sweep_rows(), "iter=150")
    assert sorted(r["value"] for r in at.rows if r["metric"] == "mfid") == [55.0, 75.0]
    with pytest.raises(UnitEvalError, match="no rows at iteration 175"):
        select_rows(sweep_rows(), "iter=175")
    with pytest.raises(UnitEvalError, match="needs 8 evaluated iterations"):
        select_rows(sweep_rows(), "best8")
    with pytest.raises(UnitEvalError, match="--select-by"):
        select_rows(sweep_rows(), "best", by="lpips")


def test_iterations_are_chosen_on_the_mean_over_seeds():
    rows = sweep_rows(seeds=(0, 1, 2), jitter=1.0)
    chosen = select_rows(rows, "best5")
    assert chosen.iterations[("A", "digits")] == best_iterations(MFID["A"], 5)
    stats = aggregate(chosen.rows)
    cell = stats[(stats["run"] == "A") & (stats["metric"] == "mfid")].iloc[0]
    idx = [ITERS.index(i) for i in best_iterations(MFID["A"], 5)]
    per_seed = [np.mean([MFID["A"][i] + s for i in idx]) for s in (0, 1, 2)]
    assert cell["n"] == 3 and cell["mean"] == pytest.approx(np.mean(per_seed)) and cell["std"] == pytest.approx(np.std(per_seed, ddof=1))


def test_aggregate_refuses_iterations_as_seeds():
    with pytest.raises(UnitEvalError, match="choose with --select"):
        aggregate(sweep_rows())


def test_rows_without_iterations_pass_through_beside_a_sweep():
    rows = sweep_rows() + [make_row(run="real images (floor)", dataset="digits", protocol="tunit-mfid", metric="mfid", value=12.0)]
    chosen = select_rows(rows, "best5")
    assert [r["value"] for r in chosen.rows if r["run"] == "real images (floor)"] == [12.0]


def test_a_missing_iteration_leaves_the_cell_empty_and_says_so():
    rows = [r for r in sweep_rows() if not (r["run"] == "A" and r["metric"] == "coverage" and r["iteration"] == 250)]
    chosen = select_rows(rows, "best5")
    assert not [r for r in chosen.rows if r["run"] == "A" and r["metric"] == "coverage"]
    assert any("250" in note and "coverage" in note for note in chosen.notes)


def test_latex_table_names_the_iterations_and_prints_the_means():
    text = make_table(sweep_rows(), "latex", select="best5", caption="Sweep", label="tab:s")
    a = np.mean([MFID["A"][ITERS.index(i)] for i in best_iterations(MFID["A"], 5)])
    assert f"\\textbf{{{a:.1f}}}" in text
    assert "best5" in text and "A: 150, 200, 250, 300, 350" in text and "\\footnotesize" in text
    assert text.index("\\end{tabular}") < text.index("\\footnotesize") < text.index("\\end{table}")
    md = make_table(sweep_rows(), "markdown")  # default: the last iteration, said under the table
    assert "last evaluated iteration" in md and f"{MFID['A'][-1]:.1f}" in md


def test_check_compares_the_selected_iterations():
    base = sweep_rows()
    worse = [dict(r, value=r["value"] + 5.0) if r["metric"] == "mfid" and r["iteration"] == 350 else r for r in base]
    assert not compare(worse, base, rtol=0.01).passed  # the last iteration regressed
    assert compare(worse, base, rtol=0.01, select="iter=300").passed
    assert not compare(worse, base, rtol=0.01, select="best", select_by="tunit-dc:coverage").passed  # B's best is 350


def test_cli_table_select_and_errors(tmp_path):
    results = tmp_path / "sweep.jsonl"
    append_rows(results, sweep_rows())
    assert len(read_rows(results)) == len(sweep_rows())
    run = lambda *a: subprocess.run([sys.executable, "-m", "unit_eval.cli", *a], capture_output=True, text=True, timeout=120)
    ok = run("table", str(results), "--select", "best5", "--format", "latex")
    assert ok.returncode == 0 and "A: 150, 200, 250, 300, 350" in ok.stdout, ok.stderr
    bad = run("table", str(results), "--select", "worst")
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    bad = run("table", str(results), "--select", "best9")
    assert bad.returncode == 1 and "needs 9 evaluated iterations" in bad.stderr
    curves = run("plot", "curves", str(results), "--metric", "mfid", "--select", "best5", "--out", str(tmp_path / "c.png"), "--json")
    assert curves.returncode == 0, curves.stderr
    assert json.loads(curves.stdout)["selected"]["B"] == best_iterations(MFID["B"], 5)
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_regression_best5_latex_equals_golden():
    """Regression check (the product against its own earlier output; tests/test_tables.py compiles it)."""
    from pathlib import Path

    golden = Path(__file__).parent / "golden" / "sweep_best5.tex"
    text = make_table(sweep_rows(), "latex", select="best5", caption="Two runs, best five of seven snapshots", label="tab:best5")
    assert text == golden.read_text(encoding="utf-8")
