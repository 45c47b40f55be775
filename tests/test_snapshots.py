"""Snapshots (``--snapshot-every``, ``--keep``) and evaluation during training (``--eval-every``).

Real training steps of the bundled models at toy size on scikit-learn digits; the evaluations use
``tunit-cluster`` (no Inception network needed, so these run in seconds).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from unit_eval.baselines.common import snapshots as snap_mod
from unit_eval.baselines.common.loop import train
from unit_eval.checkpoint import load_run
from unit_eval.errors import UnitEvalError
from unit_eval.results import read_rows

from .conftest import write_digits

pytestmark = pytest.mark.usefixtures("one_thread")

TOY = dict(img_size=32, seed=3, device="cpu", progress=False, sample_every=0, log_every=1, extra={"toy": True})


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    write_digits(root / "train", classes=(0, 1, 2, 3), per_class=6, size=40)
    write_digits(root / "test", classes=(0, 1, 2, 3), per_class=4, offset=40, size=40)
    return root


def _weights(path):
    return load_run(path)["state_dict"]


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _same_state(a, b) -> bool:
    """Nested training states (resume.pt's recipe: networks, optimisers, running codes) equal bit for bit."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    if torch.is_tensor(a):
        return torch.is_tensor(b) and a.shape == b.shape and torch.equal(a, b)
    return a == b


def _training_state(run_dir):
    return torch.load(run_dir / "resume.pt", weights_only=True)["recipe"]


@pytest.mark.parametrize("model,kw", [("tunit", {"k": 4, "batch_size": 4}), ("funit", {"batch_size": 4})])
def test_snapshots_and_evaluations_do_not_change_training(tmp_path, digits, model, kw):
    """FUNIT's finalize overwrites its running class codes; TUNIT's stores domain styles: both are put back."""
    plain = train(model, digits / "train", tmp_path / "plain", iters=6, **kw, **TOY)
    snapped = train(model, digits / "train", tmp_path / "snap", iters=6, snapshot_every=2, **kw, **TOY)
    assert plain["iterations"] == snapped["iterations"] == 6
    assert _equal(_weights(tmp_path / "plain" / "run.pt"), _weights(tmp_path / "snap" / "run.pt"))
    assert _same_state(_training_state(tmp_path / "plain"), _training_state(tmp_path / "snap"))
    snaps = snap_mod.existing(tmp_path / "snap")
    assert list(snaps) == [2, 4, 6]
    assert load_run(snaps[4])["meta"]["iterations"] == 4 and load_run(snaps[4])["model"] == model
    assert snaps[6].read_bytes() == (tmp_path / "snap" / "run.pt").read_bytes()  # the last one is run.pt's bytes
    assert not _equal(_weights(snaps[4]), _weights(snaps[6]))  # weights of their own iteration
    assert load_run(snaps[4])["config"] == load_run(tmp_path / "snap" / "run.pt")["config"]


def test_without_restoring_finalize_state_training_changes(tmp_path, digits, monkeypatch):
    """The check above can fail: FUNIT without ``finalize_touches`` goes on from the finalized class codes (its
    running averages, part of the training state, differ from a run without snapshots)."""
    from unit_eval.baselines.funit.recipe import FUNITRecipe

    monkeypatch.setattr(FUNITRecipe, "finalize_touches", ())
    train("funit", digits / "train", tmp_path / "plain", iters=6, batch_size=4, **TOY)
    train("funit", digits / "train", tmp_path / "snap", iters=6, batch_size=4, snapshot_every=2, **TOY)
    assert not _same_state(_training_state(tmp_path / "plain"), _training_state(tmp_path / "snap"))


def test_keep_only_the_newest_snapshots(tmp_path, digits):
    train("tunit", digits / "train", tmp_path / "run", iters=8, k=4, batch_size=4, snapshot_every=2, keep=2, **TOY)
    assert list(snap_mod.existing(tmp_path / "run")) == [6, 8]


def test_resume_keeps_snapshots_exact_and_drops_an_abandoned_future(tmp_path, digits, monkeypatch):
    from unit_eval.baselines.common.iterate import Loop

    common = dict(k=4, batch_size=4, snapshot_every=2, eval_every=2, eval_protocols=["tunit-cluster"],
                  eval_data=str(digits), ckpt_every=4, **TOY)
    whole = tmp_path / "whole"
    train("tunit", digits / "train", whole, iters=8, **common)
    part = tmp_path / "part"
    original = Loop.save_resume

    def keep_copy_at_4(self, iteration, elapsed):
        original(self, iteration, elapsed)
        if iteration == 4:
            (tmp_path / "resume_at_4.pt").write_bytes(self.files.resume.read_bytes())

    monkeypatch.setattr(Loop, "save_resume", keep_copy_at_4)
    train("tunit", digits / "train", part, iters=8, **common)
    monkeypatch.setattr(Loop, "save_resume", original)
    # as if killed after iteration 8's evaluation but before its resume.pt: resume.pt holds iteration 4
    (part / "resume.pt").write_bytes((tmp_path / "resume_at_4.pt").read_bytes())
    (part / "run.pt").unlink()
    summary = train("tunit", digits / "train", part, iters=8, resume=True, **common)
    assert summary["trained_now"] == 4
    for it, path in snap_mod.existing(whole).items():
        assert _equal(_weights(path), _weights(snap_mod.existing(part)[it])), it
    rows = read_rows(part / "results.jsonl")
    keys = [(r["iteration"], r["metric"], r["class"]) for r in rows]
    assert len(keys) == len(set(keys))  # the abandoned rows of 6 and 8 were dropped, then evaluated again
    assert sorted({r["iteration"] for r in rows}) == [2, 4, 6, 8]
    values = {(r["iteration"], r["metric"], r["class"]): r["value"] for r in read_rows(whole / "results.jsonl")}
    assert {(r["iteration"], r["metric"], r["class"]): r["value"] for r in rows} == values


def test_eval_rows_name_the_iteration_and_the_snapshot(tmp_path, digits):
    run = tmp_path / "myrun"
    train("tunit", digits / "train", run, iters=4, k=4, batch_size=4, snapshot_every=2, eval_every=2,
          eval_protocols=["tunit-cluster"], eval_data=str(digits), **TOY)
    rows = read_rows(run / "results.jsonl")
    assert {r["run"] for r in rows} == {"myrun"} and {r["dataset"] for r in rows} == {digits.name}
    from unit_eval.cache import sha256_file

    shas = {it: sha256_file(p) for it, p in snap_mod.existing(run).items()}
    assert {(r["iteration"], r["ckpt_sha256"]) for r in rows} == set(shas.items())
    assert all(r["options"]["numerics"] == "fp32" for r in rows)


def test_eval_problems_are_found_before_training(tmp_path, digits):
    with pytest.raises(UnitEvalError, match="unknown protocol"):
        train("tunit", digits / "train", tmp_path / "a", iters=4, k=4, batch_size=4, eval_every=2,
              eval_protocols=["no-such"], eval_data=str(digits), **TOY)
    with pytest.raises(UnitEvalError, match="needs --eval-every N, --eval-protocol P and --eval-data D"):
        train("tunit", digits / "train", tmp_path / "b", iters=4, k=4, batch_size=4, eval_every=2, **TOY)
    with pytest.raises(UnitEvalError, match="paired"):  # UNIT maps needs a paired dataset
        train("tunit", digits / "train", tmp_path / "c", iters=4, k=4, batch_size=4, eval_every=2,
              eval_protocols=["unit-maps"], eval_data=str(digits), **TOY)
    for name in "abc":
        assert not (tmp_path / name / "log.jsonl").exists()  # nothing trained


def test_cli_eval_options_one_line(tmp_path, digits):
    proc = subprocess.run([sys.executable, "-m", "unit_eval.cli", "train", "tunit", "--data", str(digits / "train"),
                           "--out", str(tmp_path / "r"), "--iters", "2", "--toy", "--device", "cpu", "--eval-every", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: evaluation during training needs")
    summary = subprocess.run([sys.executable, "-m", "unit_eval.cli", "train", "tunit", "--data", str(digits / "train"),
                              "--out", str(tmp_path / "ok"), "--iters", "2", "--toy", "--k", "4", "--batch-size", "4",
                              "--device", "cpu", "--snapshot-every", "1", "--quiet", "--json"],
                             capture_output=True, text=True, timeout=300)
    assert summary.returncode == 0, summary.stderr[-2000:]
    assert json.loads(summary.stdout)["iterations"] == 2
    assert list(snap_mod.existing(tmp_path / "ok")) == [1, 2]
