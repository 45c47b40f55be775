"""kill -9 at any point of `unit-eval fid` and `unit-eval evaluate` leaves nothing a later run trusts wrongly.

Each command first runs uninterrupted (its value and rows are the reference), then is killed with SIGKILL at
several points of its run time, in one shared cache and results file, and finally runs to the end: the results
file holds only whole rows, the final value equals the reference bit for bit, and a rerun from the cache too.
(`weights fetch` has the same test in test_weights.py.)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import write_digits

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
FRACTIONS = (0.15, 0.35, 0.55, 0.75, 0.9)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from unit_eval.weights import inception_weights_path

    weights = inception_weights_path()  # fetched once by the product; every run below reads this file
    root = tmp_path_factory.mktemp("kill")
    for split, offset in (("train", 0), ("test", 60)):
        write_digits(root / "data" / split, classes=(0, 1), per_class=20, offset=offset, size=32)
    write_digits(root / "fake", classes=(0, 1), per_class=20, offset=120, size=32)
    return root, {**os.environ, "UNIT_EVAL_INCEPTION_WEIGHTS": str(weights)}


def _run(args, environ, cache: Path):
    return subprocess.Popen([sys.executable, "-m", "unit_eval.cli", *map(str, args)], cwd=REPO,
                            env={**environ, "UNIT_EVAL_CACHE": str(cache)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "a torn last line"
    rows = [json.loads(line) for line in text.splitlines()]
    assert all(set(r) >= {"run", "dataset", "protocol", "metric", "class", "value"} for r in rows)
    return rows


def _killed_then_finished(args, environ, root: Path, name: str):
    reference_out = root / f"{name}-reference.jsonl"
    start = time.perf_counter()
    proc = _run(args + ["--out", reference_out], environ, root / f"{name}-reference-cache")
    stdout, stderr = proc.communicate(timeout=900)
    duration = time.perf_counter() - start
    assert proc.returncode == 0, stderr
    reference = json.loads(stdout)

    cache, out = root / f"{name}-cache", root / f"{name}.jsonl"
    for fraction in FRACTIONS:
        proc = _run(args + ["--out", out], environ, cache)
        time.sleep(duration * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        rows = _rows(out)  # whole rows only, after every kill
        assert len(rows) % len(_rows(reference_out)) == 0
    finished = []
    for _ in range(2):  # the first run may still compute; the second reads the cache its predecessor wrote
        proc = _run(args + ["--out", out], environ, cache)
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr
        finished.append(json.loads(stdout))
    return reference, finished, _rows(out), _rows(reference_out)


def test_fid_killed_at_any_point(env):
    root, environ = env
    args = ["fid", root / "data" / "train", root / "fake", "--json", "--batch-size", "8"]
    reference, finished, rows, reference_rows = _killed_then_finished(args, environ, root, "fid")
    assert [f["fid"] for f in finished] == [reference["fid"]] * 2
    assert [r["value"] for r in rows[-2:]] == [reference_rows[0]["value"]] * 2


def test_evaluate_killed_at_any_point(env):
    root, environ = env
    args = ["evaluate", "--model", "tests.tiny_translator:factory", "--protocol", REPO / "ci" / "digits-mfid.toml",
            "--data", root / "data", "--device", "cpu", "--json", "--run", "tiny"]
    reference, finished, rows, reference_rows = _killed_then_finished(args, environ, root, "evaluate")
    values = [[r["mfid"] for r in f["results"]] for f in finished]
    assert values == [[reference["results"][0]["mfid"]]] * 2
    per_run = len(reference_rows)
    assert [r["value"] for r in rows[-per_run:]] == [r["value"] for r in reference_rows]
