"""Regression checks: direction-aware tolerances, verdicts, exit codes (CliRunner, cli.main and the script)."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from unit_eval import cli as cli_module
from unit_eval.check import IMPROVED, MISSING, NEW, OK, REGRESSION, Tolerance, compare, parse_tolerance, render_markdown
from unit_eval.cli import cli
from unit_eval.errors import UnitEvalError
from unit_eval.results import append_rows, make_row, read_rows

BASE = {"mfid": [47.71, 48.02, 47.35], "density": [1.041, 1.012, 1.066], "cluster_acc": [0.854, 0.861, 0.849]}


def rows(values: dict[str, list[float]], run: str = "main", protocol: str = "tunit-animalfaces10") -> list[dict]:
    return [
        make_row(run=run, protocol=protocol, metric=metric, value=v, seed=seed)
        for metric, vals in values.items()
        for seed, v in enumerate(vals)
    ]


def changed(**deltas: float) -> dict[str, list[float]]:
    return {m: [v + deltas.get(m, 0.0) for v in vals] for m, vals in BASE.items()}


def verdicts(result) -> dict[str, str]:
    return {r["metric"]: r["verdict"] for r in result.rows}


def test_direction_aware_verdicts():
    base = rows(BASE)
    assert verdicts(compare(rows(BASE, run="pr"), base)) == {"mfid": OK, "density": OK, "cluster_acc": OK}
    worse = compare(rows(changed(mfid=+2.0, density=-0.1, cluster_acc=-0.05), run="pr"), base)
    assert verdicts(worse) == {"mfid": REGRESSION, "density": REGRESSION, "cluster_acc": REGRESSION}
    assert not worse.passed and len(worse.regressions) == 3
    better = compare(rows(changed(mfid=-2.0, density=+0.1, cluster_acc=+0.05)), base)
    assert verdicts(better) == {"mfid": IMPROVED, "density": IMPROVED, "cluster_acc": IMPROVED}
    assert better.passed


def test_tolerance_is_max_of_atol_and_rtol_times_baseline():
    base = rows({"mfid": [50.0]})
    assert verdicts(compare(rows({"mfid": [50.4]}), base))["mfid"] == OK  # 1% of 50 = 0.5
    assert verdicts(compare(rows({"mfid": [50.6]}), base))["mfid"] == REGRESSION
    assert verdicts(compare(rows({"mfid": [50.6]}), base, atol=1.0))["mfid"] == OK
    assert verdicts(compare(rows({"mfid": [50.6]}), base, rtol=0.0, atol=0.5))["mfid"] == REGRESSION
    assert verdicts(compare(rows({"mfid": [50.6]}), base, tolerances={"mfid": Tolerance(1.0, 0.0)}))["mfid"] == OK
    result = compare(rows({"mfid": [50.6]}), base)
    assert result.rows[0]["delta"] == pytest.approx(0.6) and result.rows[0]["allowed"] == pytest.approx(0.5)


def test_mean_over_seeds_is_compared():
    base = rows({"mfid": [40.0, 60.0]})
    assert verdicts(compare(rows({"mfid": [50.0]}), base, rtol=0.0))["mfid"] == OK
    assert compare(rows({"mfid": [50.0]}), base).rows[0]["n_baseline"] == 2


def test_missing_metric_is_a_regression_and_new_metric_passes():
    new = rows({k: v for k, v in BASE.items() if k != "density"} | {"coverage": [0.86]})
    result = compare(new, rows(BASE))
    assert verdicts(result) == {"mfid": OK, "density": MISSING, "cluster_acc": OK, "coverage": NEW}
    assert [r["metric"] for r in result.regressions] == ["density"]
    assert "missing in the new results, which counts as a regression" in render_markdown(result)


def test_runs_matched_only_when_a_file_holds_several():
    assert compare(rows(BASE, run="pr-7"), rows(BASE, run="main")).by_run is False
    two = rows(BASE, run="a") + rows(BASE, run="b")
    result = compare(rows(BASE, run="a"), two)
    assert result.by_run is True
    assert sorted({(r["run"], r["verdict"]) for r in result.rows}) == [("a", OK), ("b", MISSING)]
    assert "| run " in render_markdown(result)


def test_parse_tolerance():
    assert parse_tolerance("mfid=0.5") == ("mfid", Tolerance(0.5, 0.01))
    assert parse_tolerance("density=0.01,0.02", default_rtol=0.1) == ("density", Tolerance(0.01, 0.02))
    for bad in ["mfid", "=1", "mfid=", "mfid=a", "mfid=1,2,3", "mfid=-1"]:
        with pytest.raises(UnitEvalError):
            parse_tolerance(bad)


# --- command line ------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    def write(name: str, values: dict[str, list[float]], run: str = "main"):
        path = tmp_path / name
        append_rows(path, rows(values, run=run))
        return str(path)

    return write


def invoke(*args: str):
    return CliRunner().invoke(cli, ["check", *args])


def test_cli_exit_codes(files):
    base = files("base.jsonl", BASE)
    assert invoke(files("same.jsonl", BASE, run="pr"), "--baseline", base).exit_code == 0
    res = invoke(files("worse.jsonl", changed(mfid=+3.0), run="pr"), "--baseline", base)
    assert res.exit_code == 3, res.output
    assert "| REGRESSION" in res.stdout and "FAILED" in res.stdout
    assert invoke(files("better.jsonl", changed(mfid=-3.0, density=+0.2)), "--baseline", base).exit_code == 0
    missing = files("missing.jsonl", {k: v for k, v in BASE.items() if k != "density"})
    assert invoke(missing, "--baseline", base).exit_code == 3
    worse = files("worse.jsonl", changed(mfid=+3.0))
    assert invoke(worse, "--baseline", base, "--tol", "mfid=5").exit_code == 0
    assert invoke(worse, "--baseline", base, "--atol", "5").exit_code == 0
    assert invoke(worse, "--baseline", base, "--tol", "mfid").exit_code == 1
    assert invoke(worse, "--baseline", base + ".nope").exit_code == 1


def test_cli_json_is_one_object(files):
    base = files("base.jsonl", BASE)
    res = invoke(files("worse.jsonl", changed(cluster_acc=-0.1)), "--baseline", base, "--json")
    assert res.exit_code == 3
    report = json.loads(res.stdout)
    assert report["passed"] is False
    assert [r["metric"] for r in report["regressions"]] == ["cluster_acc"]
    assert {r["metric"] for r in report["rows"]} == set(BASE)
    res = invoke(base, "--baseline", base, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["passed"] is True


def test_cli_update_writes_the_baseline(files, tmp_path):
    base = files("base.jsonl", BASE)
    worse = files("worse.jsonl", changed(mfid=+3.0), run="pr")
    res = invoke(worse, "--baseline", base, "--update")
    assert res.exit_code == 0, res.output
    assert read_rows(base) == read_rows(worse)
    assert invoke(worse, "--baseline", base).exit_code == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left over
    fresh = tmp_path / "ci" / "baseline.jsonl"
    res = invoke(worse, "--baseline", str(fresh), "--update", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["updated"] is True
    assert read_rows(fresh) == read_rows(worse)


def test_console_entry_point_returns_3(files):
    base = files("base.jsonl", BASE)
    worse = files("worse.jsonl", changed(mfid=+3.0))
    with pytest.raises(SystemExit) as exc:
        cli_module.main(["check", worse, "--baseline", base])
    assert exc.value.code == 3
    with pytest.raises(SystemExit) as exc:
        cli_module.main(["check", base, "--baseline", base])
    assert exc.value.code == 0


@pytest.mark.skipif(shutil.which("unit-eval") is None, reason="the unit-eval console script is not installed")
def test_installed_script_exit_codes(files):
    base = files("base.jsonl", BASE)
    worse = files("worse.jsonl", changed(mfid=+3.0))
    proc = subprocess.run(["unit-eval", "check", worse, "--baseline", base, "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["passed"] is False
    proc = subprocess.run(["unit-eval", "check", base, "--baseline", base], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_baseline_from_another_extractor_is_refused():
    """A bf16 (or legacy-preprocessed) score is not a regression test of an fp32 baseline: one clear error."""
    exact = "inception-v3-tf-2015-12-05/pool3/tf1-bilinear"
    base = [dict(r, extractor=exact) for r in rows(BASE)]
    assert compare([dict(r) for r in base], base).passed
    fast = [dict(r, extractor=exact + "/bf16") for r in rows(BASE)]
    with pytest.raises(UnitEvalError, match="baseline from .*tf1-bilinear, new from .*bf16"):
        compare(fast, base)


def test_datasets_are_compared_separately_and_unnamed_baselines_refused():
    """A run evaluated on two datasets: each (dataset, protocol, metric, class) is its own entry, so a regression on
    one dataset is not hidden by the other, and the table names the dataset."""
    def on(dataset, value):
        return [make_row(run="main", dataset=dataset, protocol="tunit-mfid", metric="mfid", value=value, seed=0)]

    base = on("afhq", 40.0) + on("animalfaces10", 60.0)
    result = compare(on("afhq", 40.0) + on("animalfaces10", 70.0), base)
    assert {(r["dataset"], r["verdict"]) for r in result.rows} == {("afhq", OK), ("animalfaces10", REGRESSION)}
    assert "| dataset " in render_markdown(result)
    missing = compare(on("afhq", 40.0), base)
    assert {(r["dataset"], r["verdict"]) for r in missing.rows} == {("afhq", OK), ("animalfaces10", MISSING)}
    legacy = [{k: v for k, v in r.items() if k != "dataset"} for r in base]
    with pytest.raises(UnitEvalError, match="baseline's rows record no dataset.*--update"):
        compare(on("afhq", 40.0), legacy)
