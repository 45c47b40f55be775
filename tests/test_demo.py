"""`unit-eval demo` end to end at the smallest size: real weights, real training steps, every output written."""
from __future__ import annotations

import json

import pytest

from unit_eval.cli import main

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
    for expected in [("TUNIT", "demo-tunit-mfid", "mfid"), ("FUNIT", "demo-tunit-mfid", "mfid"), ("TUNIT", "demo-tunit-dc", "coverage"),
                     ("TUNIT", "demo-tunit-cluster", "cluster_acc"), ("TUNIT", "demo-tunit-cluster", "ioi"),
                     ("FUNIT", "demo-lpips-diversity", "lpips_diversity"), ("UNIT", "demo-unit-maps", "pixel_accuracy")]:
        assert expected in seen
    assert {r["options"]["iteration"] for r in rows if r["run"] == "TUNIT"} == {2, 4}  # the half-way evaluation
    assert "\\toprule" in (out / "table.tex").read_text() and "TUNIT" in (out / "table.md").read_text()
    names = {p.name for p in (out / "figures").iterdir()}
    for stem in ("tunit_grid", "tunit_domains", "tunit_style_codes", "tunit_mfid_curve", "fid_per_class"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names
    for model in ("tunit", "funit", "unit"):
        assert (out / "runs" / model / "run.pt").is_file()
    assert summary["results"].endswith("results.jsonl")
