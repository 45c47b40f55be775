"""`unit-eval demo` end to end at the smallest size (real weights, real training steps, every output written), and the
issue's done-when numbers for the shipped TUNIT checkpoint under the demo protocols."""
from __future__ import annotations

import json

import pytest

from unit_eval.cli import main
from unit_eval.commands.demo_parts import BRIEF, CLUSTER, DC, DIVERSITY, FLOOR, IDENTITY, MAPS, MFID, SHIPPED

pytestmark = pytest.mark.integration


def test_demo_smoke(tmp_path, capsys):
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(out), "--iters", "4", "--train-per-class", "6", "--test-per-class", "4",
              "--smoke", "--device", "cpu", "--json"])
    captured = capsys.readouterr()
    assert exc.value.code == 0, captured.err
    summary = json.loads(captured.out)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    seen = {(r["run"], r["protocol"], r["metric"]) for r in rows if r["class"] == "mean"}
    for expected in [(BRIEF["tunit"], MFID, "mfid"), (BRIEF["funit"], MFID, "mfid"), (BRIEF["tunit"], DC, "coverage"),
                     (BRIEF["tunit"], CLUSTER, "cluster_acc"), (BRIEF["tunit"], CLUSTER, "ioi"),
                     (BRIEF["unit"], MAPS, "pixel_accuracy"),
                     (SHIPPED["tunit"], MFID, "mfid"), (SHIPPED["tunit"], DC, "coverage"),
                     (SHIPPED["tunit"], CLUSTER, "cluster_acc"), (SHIPPED["tunit"], DIVERSITY, "lpips_diversity"),
                     (SHIPPED["funit"], MFID, "mfid"), (SHIPPED["funit"], DC, "density"),
                     (FLOOR, MFID, "mfid"), (FLOOR, DC, "coverage"), (FLOOR, DIVERSITY, "lpips_diversity"),
                     (IDENTITY, MFID, "mfid"), (IDENTITY, DC, "coverage"), (IDENTITY, MAPS, "pixel_accuracy")]:
        assert expected in seen, expected
    # the reference translators have no clusters and the floor no domain to translate to: no number is made up
    assert not {(FLOOR, CLUSTER), (IDENTITY, CLUSTER), (FLOOR, MAPS)} & {(r, p) for r, p, _ in seen}
    assert {r["iteration"] for r in rows if r["run"] == BRIEF["tunit"]} == {2, 4}  # the half-way evaluation
    assert {r["iteration"] for r in rows if r["run"] in (FLOOR, IDENTITY)} == {None}
    shipped_iterations = {r["run"]: r["iteration"] for r in rows if r["run"] in SHIPPED.values()}
    assert all(it and it >= 1000 for it in shipped_iterations.values())
    table = (out / "table.md").read_text()
    for run in [*SHIPPED.values(), *BRIEF.values(), FLOOR, IDENTITY]:
        assert run in table
    assert table.index(SHIPPED["tunit"]) < table.index(BRIEF["tunit"]) < table.index(FLOOR) < table.index(IDENTITY)
    tex = (out / "table.tex").read_text()
    assert "\\toprule" in tex and "floor" in tex and "\\caption{" in tex
    names = {p.name for p in (out / "figures").iterdir()}
    for stem in ("tunit_grid", "funit_grid", "tunit_domains", "tunit_style_codes", "mfid_curve", "fid_per_class"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    for model in ("tunit", "funit", "unit"):
        assert (out / "runs" / model / "run.pt").is_file()
    report = (out / "report.html").read_text()
    assert summary["report"].endswith("report.html") and "<html" in report and FLOOR in report
    assert report.count("data:image/png;base64,") >= 2  # both translation grids embedded
    assert summary["results"].endswith("results.jsonl")


def test_shipped_tunit_meets_the_issue_numbers(tmp_path):
    """The issue's done-when, with the demo's own protocols and data: the shipped TUNIT clusters well above chance
    (10 classes: 0.1) and its D&C is not degenerate; the floor's mFID is below the identity's and the model's."""
    from unit_eval.commands.demo import DEMO_PROTOCOLS, digits_subset, write_demo_protocols
    from unit_eval.commands.demo_parts import Evaluator
    from unit_eval.demo_assets import verified_checkpoint
    from unit_eval.embedded import materialize

    digits = digits_subset(materialize("digits", progress=False), tmp_path / "digits", 40, 8)  # the demo's defaults
    evaluator = Evaluator(write_demo_protocols(tmp_path / "protocols", DEMO_PROTOCOLS), device="cpu", seed=0)
    rows = evaluator.checkpoint(verified_checkpoint("tunit_digits"), [MFID, DC, CLUSTER], digits, SHIPPED["tunit"])
    rows += evaluator.reference(FLOOR, [MFID], digits, 32)
    rows += evaluator.reference(IDENTITY, [MFID], digits, 32)
    value = {(r["run"], r["metric"]): r["value"] for r in rows if r["class"] == "mean"}
    model = SHIPPED["tunit"]
    assert value[(model, "cluster_acc")] > 0.3
    assert value[(model, "coverage")] > 0 and value[(model, "density")] > 0
    assert value[(FLOOR, "mfid")] < value[(IDENTITY, "mfid")]
    assert value[(FLOOR, "mfid")] < value[(model, "mfid")]
