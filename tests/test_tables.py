"""Leaderboard tables: golden LaTeX/Markdown/CSV, escaping, bold/underline with ties, mean ± std."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from unit_eval.cli import cli
from unit_eval.errors import UnitEvalError
from unit_eval.results import append_rows, make_row
from unit_eval.markup import latex_escape, markdown_escape
from unit_eval.tables import aggregate, build_table, make_table, rank_marks

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("UNIT_EVAL_REGEN_GOLDEN") == "1"

# TUNIT-Table-1-like: per run, one dict of metric values per seed.
TABLE1 = {
    "FUNIT (unsup.)": [{"mfid": 88.31, "density": 0.652, "coverage": 0.493, "cluster_acc": 0.512}],
    "TUNIT": [
        {"mfid": 47.71, "density": 1.041, "coverage": 0.861, "cluster_acc": 0.854},
        {"mfid": 48.02, "density": 1.012, "coverage": 0.872, "cluster_acc": 0.861},
        {"mfid": 47.35, "density": 1.066, "coverage": 0.858, "cluster_acc": 0.849},
    ],
    "Ours_v2 & co": [
        {"mfid": 45.10, "density": 1.051, "coverage": 0.869, "cluster_acc": 0.882},
        {"mfid": 46.20, "density": 1.030, "coverage": 0.881, "cluster_acc": 0.870},
    ],
    "k-means #2 (50% labels)": [{"mfid": 60.04, "density": 0.911, "coverage": 0.752, "cluster_acc": 0.879}],
}


def table1_rows(protocol: str = "tunit-animalfaces10", scale: float = 1.0) -> list[dict]:
    return [
        make_row(run=run, protocol=protocol, metric=metric, value=value * scale, seed=seed)
        for run, seeds in TABLE1.items()
        for seed, values in enumerate(seeds)
        for metric, value in values.items()
    ]


def rows_of(values: dict[str, float | list[float]], metric: str = "mfid", protocol: str = "p") -> list[dict]:
    out = []
    for run, vals in values.items():
        for seed, v in enumerate(vals if isinstance(vals, list) else [vals]):
            out.append({"run": run, "protocol": protocol, "metric": metric, "class": "mean", "value": v, "seed": seed})
    return out


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{name} differs (UNIT_EVAL_REGEN_GOLDEN=1 rewrites it)"


LATEX_OPTS = dict(second=True, metric_decimals={"density": 3, "coverage": 3}, caption="Results on AnimalFaces-10 (mean ± std over seeds, 50% labels)", label="tab:table1")
TWO_PROTOCOLS = table1_rows() + table1_rows("tunit-food10", scale=1.1)


@pytest.mark.parametrize(
    "name, rows, fmt, opts",
    [
        ("table1.tex", table1_rows(), "latex", LATEX_OPTS),
        ("table1.md", table1_rows(), "markdown", dict(second=True)),
        ("table1.csv", table1_rows(), "csv", {}),
        ("table1_two_protocols.tex", TWO_PROTOCOLS, "latex", dict(metrics=["mfid", "cluster_acc"])),
        ("table1_two_protocols.md", TWO_PROTOCOLS, "markdown", dict(metrics=["mfid", "cluster_acc"])),
    ],
)
def test_golden(name, rows, fmt, opts):
    check_golden(name, make_table(rows, fmt, **opts))


# TUNIT Table 1's shape: one run per row, a column group per dataset, mFID, D&C and Acc. in each.
TUNIT_TABLE1 = {  # (AnimalFaces-10, Food-10) values of TUNIT Table 1, rows C and G
    "(B) + K-means on image space": ((110.7, 0.822, 0.615, 0.215), (90.7, 0.849, 0.648, 0.201)),
    "TUNIT w/ joint training": ((47.7, 1.039, 0.805, 0.841), (52.2, 1.079, 0.875, 0.848)),
    "TUNIT w/ sequential training": ((46.0, 1.060, 0.789, 0.850), (61.1, 0.908, 0.777, 0.860)),
}


def tunit_table1_rows() -> list[dict]:
    rows = []
    for run, per_dataset in TUNIT_TABLE1.items():
        for dataset, (mfid, density, coverage, acc) in zip(("animalfaces10", "food10"), per_dataset):
            rows.append(make_row(run=run, dataset=dataset, protocol="tunit-mfid", metric="mfid", value=mfid, seed=0))
            rows.append(make_row(run=run, dataset=dataset, protocol="tunit-dc", metric="density", value=density, seed=0))
            rows.append(make_row(run=run, dataset=dataset, protocol="tunit-dc", metric="coverage", value=coverage, seed=0))
            rows.append(make_row(run=run, dataset=dataset, protocol="tunit-cluster", metric="cluster_acc", value=acc, seed=0))
    return rows


def test_golden_tunit_table1_datasets_and_dc_cell():
    """TUNIT Table 1: a column group per dataset, the paper's decimals (mFID 1, D&C and Acc. 3), D&C in one
    'density / coverage' cell bold by coverage ("we boldify the one which has the best coverage")."""
    rows = tunit_table1_rows()
    tex = make_table(rows, "latex", dc_cell=True)
    check_golden("tunit_table1.tex", tex)
    check_golden("tunit_table1.md", make_table(rows, "markdown", dc_cell=True))
    assert r"\multicolumn{3}{c}{animalfaces10} & \multicolumn{3}{c}{food10}".replace("\\\\", "\\") in tex
    assert r"\textbf{1.039 / 0.805}" in tex and r"\textbf{1.079 / 0.875}" in tex  # best coverage, not best density
    assert r"\textbf{46.0}" in tex and r"110.7" in tex and r"0.215" in tex


def test_rows_of_two_datasets_never_share_a_cell():
    """One run name evaluated on two datasets: both values appear, under their datasets (the table key has the
    dataset; before it did, the second row silently replaced the first)."""
    rows = [make_row(run="tunit", dataset="afhq", protocol="tunit-mfid", metric="mfid", value=10.0, seed=0),
            make_row(run="tunit", dataset="animalfaces10", protocol="tunit-mfid", metric="mfid", value=20.0, seed=0)]
    board = build_table(rows)
    assert [(c.dataset, c.metric) for c in board.columns] == [("afhq", "mfid"), ("animalfaces10", "mfid")]
    assert make_table(rows, "csv") == "run,afhq/mfid,animalfaces10/mfid\ntunit,10.0,20.0\n"
    stats = aggregate(rows)
    assert list(stats["mean"]) == [10.0, 20.0]


def test_default_decimals_are_the_papers_and_decimals_overrides():
    rows = tunit_table1_rows()[:4]
    csv = make_table(rows, "csv")
    assert csv.splitlines()[1] == "(B) + K-means on image space,110.7,0.822,0.615,0.215"
    assert make_table(rows, "csv", decimals=2).splitlines()[1] == "(B) + K-means on image space,110.70,0.82,0.61,0.21"
    assert make_table(rows, "csv", metric_decimals={"mfid": 0}).splitlines()[1].startswith("(B) + K-means on image space,111,0.822")
    with pytest.raises(UnitEvalError, match="D&C cell applies to the latex and markdown"):
        make_table(rows, "csv", dc_cell=True)
    with pytest.raises(UnitEvalError, match="needs density and coverage"):
        make_table([r for r in rows if r["metric"] != "coverage"], "markdown", dc_cell=True)


def test_cli_writes_the_golden_latex(tmp_path):
    results = tmp_path / "results.jsonl"
    append_rows(results, table1_rows()[:10])
    append_rows(tmp_path / "more.jsonl", table1_rows()[10:])
    out = tmp_path / "t.tex"
    args = ["table", str(results), str(tmp_path / "more.jsonl"), "--out", str(out), "--second",
            "--decimals", "density=3", "--decimals", "coverage=3", "--caption", LATEX_OPTS["caption"], "--label", "tab:table1"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    assert out.read_text(encoding="utf-8") == (GOLDEN / "table1.tex").read_text(encoding="utf-8")


def test_cli_stdout_markdown_default_and_usage_errors(tmp_path):
    results = tmp_path / "r.jsonl"
    append_rows(results, table1_rows())
    res = CliRunner().invoke(cli, ["table", str(results), "--second"])
    assert res.exit_code == 0, res.output
    assert res.stdout == (GOLDEN / "table1.md").read_text(encoding="utf-8")
    assert CliRunner().invoke(cli, ["table", str(results), "--caption", "x"]).exit_code == 2
    assert CliRunner().invoke(cli, ["table", str(results), "--decimals", "x=y"]).exit_code == 2
    res = CliRunner().invoke(cli, ["table", str(results), "--metrics", "fid"])
    assert res.exit_code == 1 and "metric 'fid' not in the results" in str(res.exception)
    assert "ddof=1" in CliRunner().invoke(cli, ["table", "--help"]).output


def test_latex_escape_every_special():
    assert latex_escape("a_b 50% #1 & {x} ~y ^z \\ $ <|>") == (
        r"a\_b 50\% \#1 \& \{x\} \textasciitilde{}y \textasciicircum{}z \textbackslash{} \$ \textless{}\textbar{}\textgreater{}"
    )


def test_escaping_in_run_names_headers_and_caption():
    rows = rows_of({"Ours_v2 & co": 1.0, "50% #labels": 2.0}, metric="my_metric%")
    tex = make_table(rows, "latex", caption="top-1 & 5%", label="tab:x_y")
    assert r"Ours\_v2 \& co" in tex and r"50\% \#labels" in tex
    assert r"my\_metric\% $\downarrow$" in tex  # unregistered: raw name, lower is better
    assert r"\caption{top-1 \& 5\%}" in tex and r"\label{tab:x_y}" in tex
    md = make_table(rows + rows_of({"a|b*c": 3.0}, metric="my_metric%"), "markdown")
    assert r"Ours\_v2 & co" in md and r"a\|b\*c" in md and r"my\_metric% ↓" in md
    assert markdown_escape("<b>") == r"\<b\>"
    with pytest.raises(UnitEvalError):
        make_table(rows, "latex", label="tab:{bad}")


def test_booktabs_and_table_environment_only_with_caption_or_label():
    tex = make_table(table1_rows(), "latex")
    assert tex.startswith("\\begin{tabular}{lcccc}\n\\toprule\n")
    assert "\\midrule\n" in tex and tex.endswith("\\bottomrule\n\\end{tabular}\n")
    assert "\\begin{table}" not in tex
    assert make_table(table1_rows(), "latex", label="tab:a").startswith("\\begin{table}[t]\n\\centering\n\\label{tab:a}\n")


def test_arrows_follow_metric_direction():
    md = make_table(table1_rows(), "markdown")
    assert "mFID ↓" in md and "Density ↑" in md and "Coverage ↑" in md and "Acc. ↑" in md
    tex = make_table(table1_rows(), "latex")
    assert r"mFID $\downarrow$" in tex and r"Density $\uparrow$" in tex


def test_best_bold_ties_and_second_underlined():
    # lower is better: 10.0 and 10.001 both print as 10.00 -> both bold; 12 second (dense ranking); 15 plain
    rows = rows_of({"a": 12.0, "b": 10.0, "c": 10.001, "d": 15.0, "e": 12.0})
    md = make_table(rows, "markdown", second=True, decimals=2)
    cells = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in md.splitlines()[2:]}
    assert cells == {"a": "<ins>12.00</ins>", "b": "**10.00**", "c": "**10.00**", "d": "15.00", "e": "<ins>12.00</ins>"}
    tex = make_table(rows, "latex", second=True, decimals=3)
    assert r"\textbf{10.000}" in tex and r"\underline{10.001}" in tex and r"\underline{12" not in tex
    assert "underline" not in make_table(rows, "latex")  # second best only on request
    # higher is better flips the order
    hib = make_table(rows_of({"a": 0.5, "b": 0.7, "c": 0.6}, metric="coverage"), "markdown", second=True, decimals=2)
    assert "**0.70**" in hib and "<ins>0.60</ins>" in hib and " 0.50 |" in hib


def test_rank_marks_edge_cases():
    assert rank_marks([1.0], False, 2) == [""]
    assert rank_marks([None, 1.0, None], True, 2) == ["", "", ""]
    assert rank_marks([1.0, None, 2.0], True, 2) == ["second", "", "best"]
    assert rank_marks([3.0, 3.0], True, 2) == ["best", "best"]
    assert rank_marks([-0.001, 0.001], False, 2) == ["best", "best"]


def test_mean_and_sample_std_over_seeds():
    rows = rows_of({"a": [1.0, 2.0, 3.0], "b": 5.0})
    md = make_table(rows, "markdown", decimals=2)
    assert "**2.00 ± 1.00**" in md  # ddof=1; population std would print 0.82
    assert " 5.00 |" in md and "5.00 ±" not in md
    assert "1.00" not in make_table(rows, "markdown", show_std=False, decimals=2)
    assert make_table(rows, "csv", decimals=2) == "run,mfid,mfid_std\na,2.00,1.00\nb,5.00,\n"


def test_same_seed_twice_keeps_the_last_row_and_first_position():
    rows = rows_of({"a": 1.0, "b": 2.0}) + rows_of({"a": 9.0})
    stats = aggregate(rows)
    assert list(stats["run"]) == ["a", "b"]
    assert stats.loc[0, "mean"] == 9.0 and stats.loc[0, "n"] == 1


def test_metrics_pick_and_order_and_missing_cells():
    rows = table1_rows()
    rows = [r for r in rows if not (r["run"] == "TUNIT" and r["metric"] == "coverage")]
    board = build_table(rows, metrics=["coverage,mfid"])
    assert [c.metric for c in board.columns] == ["coverage", "mfid"]
    csv = make_table(rows, "csv", metrics=["coverage", "mfid"], decimals=2)
    assert csv.splitlines()[0] == "run,coverage,coverage_std,mfid,mfid_std"
    assert csv.splitlines()[2].startswith("TUNIT,,,47.69,")
    assert "| TUNIT" in make_table(rows, "markdown") and "–" in make_table(rows, "markdown")
    assert "& -- " in make_table(rows, "latex")
    with pytest.raises(UnitEvalError, match="metric 'nmi' not in the results"):
        build_table(rows, metrics=["nmi"])
    with pytest.raises(UnitEvalError, match="protocol 'x' not in the results"):
        build_table(rows, protocols=["x"])


def test_class_columns_on_request():
    rows = rows_of({"a": 3.0, "b": 4.0})
    per_class = [dict(r, **{"class": "cat_s"}) for r in rows_of({"a": 1.0, "b": 2.0})]
    per_class += [dict(r, **{"class": "dog"}) for r in rows_of({"a": 6.0, "b": 5.0})]
    assert make_table(per_class + rows, "csv", decimals=2) == "run,mfid\na,3.00\nb,4.00\n"
    assert make_table(per_class + rows, "csv", classes=True, decimals=2) == "run,mfid/mean,mfid/cat_s,mfid/dog\na,3.00,1.00,6.00\nb,4.00,2.00,5.00\n"
    tex = make_table(per_class + rows, "latex", classes=True)
    assert r"\multicolumn{3}{c}{mFID $\downarrow$}" in tex and r"cat\_s" in tex and r"\cmidrule(lr){2-4}" in tex
    with pytest.raises(UnitEvalError, match="--classes"):
        make_table(per_class, "markdown")


def test_bad_rows_and_formats():
    with pytest.raises(UnitEvalError, match="lacks key 'value'"):
        make_table([{"run": "a", "protocol": "p", "metric": "m", "class": "mean"}], "csv")
    with pytest.raises(UnitEvalError, match="finite"):
        make_table(rows_of({"a": float("nan")}), "csv")
    with pytest.raises(UnitEvalError, match="unknown table format"):
        make_table(rows_of({"a": 1.0}), "html")


def _pdflatex_ready() -> str | None:
    if shutil.which("pdflatex") is None:
        return "pdflatex is not on PATH"
    if shutil.which("kpsewhich") and not subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True, text=True).stdout.strip():
        return "booktabs.sty is not installed"
    return None


@pytest.mark.parametrize("golden", ["table1.tex", "table1_two_protocols.tex", "tunit_table1.tex", "sweep_best5.tex"])
def test_golden_latex_compiles(tmp_path, golden):
    """Skipped where pdflatex is missing, except where UNIT_EVAL_REQUIRE_PDFLATEX is set (.ci/run installs a
    minimal TeX and sets it, so CI never skips this)."""
    missing = _pdflatex_ready()
    if missing is not None:
        if os.environ.get("UNIT_EVAL_REQUIRE_PDFLATEX"):
            pytest.fail(f"UNIT_EVAL_REQUIRE_PDFLATEX is set but {missing}")
        pytest.skip(missing)
    doc = tmp_path / "doc.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        + (GOLDEN / golden).read_text(encoding="utf-8")
        + "\\end{document}\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0


def test_seeds_from_different_extractors_never_average():
    from unit_eval.errors import UnitEvalError

    rows = rows_of({"a": [1.0, 2.0]})
    rows[0]["extractor"], rows[1]["extractor"] = "inception/fp32", "inception/bf16"
    with pytest.raises(UnitEvalError, match="run 'a', p mfid \\[mean\\] mixes extractors inception/bf16 and inception/fp32"):
        aggregate(rows)
    rows[1]["extractor"] = "inception/fp32"
    assert aggregate(rows).loc[0, "n"] == 2
