"""The project's own CI gate: a small seeded protocol end to end on real images (scikit-learn digits, real
Inception weights, a fixed tiny model), checked with `unit-eval check` against the committed baseline
`ci/baseline.jsonl`. Regenerate it (after an intended change of numbers) with UNIT_EVAL_UPDATE_CI_BASELINE=1.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from unit_eval.cli import main

from .conftest import assert_no_absolute_paths, write_digits

pytestmark = pytest.mark.integration

CI = Path(__file__).resolve().parents[1] / "ci"


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_seeded_protocol_matches_committed_baseline(tmp_path, capsys):
    data = tmp_path / "digits"
    write_digits(data / "train", classes=(0, 1, 2), per_class=8, size=32)
    write_digits(data / "test", classes=(0, 1, 2), per_class=4, offset=60, size=32)
    results = tmp_path / "results.jsonl"
    code, _, err = run_cli(capsys, "evaluate", "--model", "tests.tiny_translator:factory", "--protocol", str(CI / "digits-mfid.toml"),
                           "--data", str(data), "--seed", "0", "--out", str(results), "--run", "tiny", "--device", "cpu")
    assert code == 0, err
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert {r["class"] for r in rows} == {"mean", "0", "1", "2"} and all(r["n_fake"] for r in rows)
    assert_no_absolute_paths(rows)
    assert_no_absolute_paths([json.loads(line) for line in (CI / "baseline.jsonl").read_text().splitlines()])

    baseline = CI / "baseline.jsonl"
    if os.environ.get("UNIT_EVAL_UPDATE_CI_BASELINE"):
        code, _, err = run_cli(capsys, "check", str(results), "--baseline", str(baseline), "--update")
        assert code == 0, err
    # Across machines CPU float32 convolutions differ in the last bits: 1e-4 relative is far below any real change.
    code, out, err = run_cli(capsys, "check", str(results), "--baseline", str(baseline), "--rtol", "1e-4")
    assert code == 0, out + err

    worse = tmp_path / "worse.jsonl"
    worse.write_text("".join(json.dumps({**r, "value": r["value"] * 1.05}) + "\n" for r in rows))
    code, out, _ = run_cli(capsys, "check", str(worse), "--baseline", str(baseline), "--rtol", "1e-4")
    assert code == 3 and "REGRESSION" in out
