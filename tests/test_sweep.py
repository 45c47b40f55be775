"""``unit-eval sweep`` end to end on digits (CPU): a TUNIT run with snapshots every 25 iterations, a sweep killed
half-way and run again (no duplicate row, the rows of an uninterrupted sweep), ``--select best5`` in a LaTeX table,
a curves figure, the same rows under torchrun, and evaluation during training equal to the sweep's rows.

Real pieces throughout: real training steps, the real TF-Inception weights fetched by unit-eval's own code, the
real CLI in subprocesses.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from unit_eval.results import read_rows

from .conftest import write_digits

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
SNAPSHOT_EVERY, ITERS = 25, 150


def _protocol(folder: Path) -> Path:
    """ci/digits-mfid.toml at sweep-test size: 3 sources x 2 references per target class (24 fakes for K = 4)."""
    text = (REPO / "ci" / "digits-mfid.toml").read_text(encoding="utf-8")
    text = re.sub(r'^name = ".*"$', 'name = "test-sweep-mfid"', text, count=1, flags=re.M)
    text = re.sub(r"^sources_per_class = .*$", "sources_per_class = 1", text, count=1, flags=re.M)
    text = re.sub(r"^references_per_source = .*$", "references_per_source = 2", text, count=1, flags=re.M)
    path = folder / "test-sweep-mfid.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def sweep_setup(tmp_path_factory):
    from unit_eval.baselines.common.loop import train
    from unit_eval.weights import inception_weights_path

    root = tmp_path_factory.mktemp("sweep")
    data = root / "digits"
    write_digits(data / "train", classes=(0, 1, 2, 3), per_class=12, size=32)
    write_digits(data / "test", classes=(0, 1, 2, 3), per_class=4, offset=60, size=32)
    protocol = _protocol(root)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the CLI subprocesses below (OMP_NUM_THREADS=1): CPU kernels round by thread count
    try:
        train("tunit", data / "train", root / "tunit", iters=ITERS, k=4, batch_size=8, img_size=32, seed=0,
              device="cpu", progress=False, sample_every=0, extra={"toy": True}, snapshot_every=SNAPSHOT_EVERY,
              eval_every=SNAPSHOT_EVERY, eval_protocols=[str(protocol), "tunit-cluster"], eval_data=str(data))
    finally:
        torch.set_num_threads(threads)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", UNIT_EVAL_CACHE=str(root / "cache"),
               UNIT_EVAL_INCEPTION_WEIGHTS=str(inception_weights_path()))
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return root, data, protocol, env


def _sweep_args(root, data, protocol, out):
    return ["sweep", str(root / "tunit"), "--protocol", str(protocol), "--protocol", "tunit-cluster",
            "--data", str(data), "--out", str(out), "--device", "cpu", "--batch-size", "8"]


def _cli(args, env, timeout=900):
    return subprocess.run([sys.executable, "-m", "unit_eval.cli", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _table(rows):
    """(checkpoint, protocol, metric, class, seed, iteration) -> value; asserts no key appears twice."""
    out = {}
    for r in rows:
        key = (r["ckpt_sha256"], r["protocol"], r["metric"], r["class"], r["seed"], r["iteration"])
        assert key not in out, f"duplicate row {key}"
        out[key] = r["value"]
    return out


@pytest.fixture(scope="module")
def full_sweep(sweep_setup):
    root, data, protocol, env = sweep_setup
    out = root / "full.jsonl"
    proc = _cli(_sweep_args(root, data, protocol, out) + ["--json"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout), proc.stderr


def test_sweep_evaluates_every_snapshot_once(sweep_setup, full_sweep):
    root, *_ = sweep_setup
    out, summary, err = full_sweep
    snapshots = sorted((root / "tunit" / "snapshots").glob("iter_*.pt"))
    assert len(snapshots) == ITERS // SNAPSHOT_EVERY
    assert summary["checkpoints"] == len(snapshots) + 1 and len(summary["evaluated"]) == len(snapshots)
    assert "has the same bytes as" in err  # run.pt = the last snapshot, evaluated once
    assert re.search(r"sweep \[6/6\] .*iter_0000150\.pt \(iteration 150\): [\d.]+ s, \d+ rows; 0 left", err)
    rows = read_rows(out)
    _table(rows)
    assert sorted({r["iteration"] for r in rows}) == list(range(SNAPSHOT_EVERY, ITERS + 1, SNAPSHOT_EVERY))
    assert {r["run"] for r in rows} == {"tunit"}


def test_killed_sweep_rerun_equals_an_uninterrupted_one(sweep_setup, full_sweep):
    root, data, protocol, env = sweep_setup
    full = _table(read_rows(full_sweep[0]))
    out = root / "killed.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "unit_eval.cli", *_sweep_args(root, data, protocol, out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and len({r["ckpt_sha256"] for r in read_rows(out)}) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the sweep finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {r["ckpt_sha256"] for r in read_rows(out)}
    assert 2 <= len(done_before) < 6
    rerun = _cli(_sweep_args(root, data, protocol, out), env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{len(done_before)} checkpoint(s) already in" in rerun.stderr
    assert _table(read_rows(out)) == full  # every row, once, bit-identical values
    again = _cli(_sweep_args(root, data, protocol, out) + ["--json"], env)
    assert json.loads(again.stdout)["evaluated"] == [] and _table(read_rows(out)) == full


def test_evaluation_during_training_equals_the_sweep(sweep_setup, full_sweep):
    root, *_ = sweep_setup
    during = _table(read_rows(root / "tunit" / "results.jsonl"))
    assert during == _table(read_rows(full_sweep[0]))


def test_sweep_skips_what_training_evaluated(sweep_setup, tmp_path):
    root, data, protocol, env = sweep_setup
    results = tmp_path / "results.jsonl"
    results.write_bytes((root / "tunit" / "results.jsonl").read_bytes())
    proc = _cli(_sweep_args(root, data, protocol, results) + ["--json"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["evaluated"] == []
    other_seed = _cli(["sweep", str(root / "tunit"), "--protocol", "tunit-cluster", "--data", str(data), "--out",
                       str(results), "--device", "cpu", "--seed", "7", "--json"], env)
    assert other_seed.returncode == 0, other_seed.stderr[-2000:]
    assert len(json.loads(other_seed.stdout)["evaluated"]) == 6  # another seed is another evaluation


def test_best5_table_and_curves(sweep_setup, full_sweep, tmp_path):
    root, *_ = sweep_setup
    out = full_sweep[0]
    rows = read_rows(out)
    mfid = {r["iteration"]: r["value"] for r in rows if r["metric"] == "mfid"}
    best = sorted(sorted(mfid, key=lambda it: (mfid[it], it))[:5])
    expected = np.mean([mfid[it] for it in best])
    env = sweep_setup[3]
    tex = _cli(["table", str(out), "--select", "best5", "--metrics", "mfid,cluster_acc", "--format", "latex",
                "--caption", "TUNIT on digits, best five snapshots"], env)
    assert tex.returncode == 0, tex.stderr
    assert f"{expected:.1f}" in tex.stdout
    assert f"tunit: {', '.join(map(str, best))}" in tex.stdout and "best5" in tex.stdout
    cluster = {r["iteration"]: r["value"] for r in rows if r["metric"] == "cluster_acc"}
    assert f"{np.mean([cluster[it] for it in best]):.3f}" in tex.stdout  # the same five iterations
    png = tmp_path / "curves.png"
    curves = _cli(["plot", "curves", str(out), "--metric", "mfid", "--metric", "cluster_acc", "--select", "best5",
                   "--out", str(png), "--json"], env)
    assert curves.returncode == 0, curves.stderr
    assert json.loads(curves.stdout)["selected"] == {"tunit": best}
    from PIL import Image

    with Image.open(png) as img:
        assert img.size[0] > 600 and len(img.convert("RGB").getcolors(1 << 20) or []) > 20


def test_evaluate_on_one_snapshot_equals_its_sweep_rows(sweep_setup, full_sweep, tmp_path):
    root, data, protocol, env = sweep_setup
    snapshot = root / "tunit" / "snapshots" / "iter_0000075.pt"
    out = tmp_path / "one.jsonl"
    proc = _cli(["evaluate", "--ckpt", str(snapshot), "--protocol", str(protocol), "--data", str(data), "--out", str(out),
                 "--device", "cpu", "--batch-size", "8"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    one = _table(read_rows(out))
    full = _table(read_rows(full_sweep[0]))
    assert one and all(full[k] == v for k, v in one.items())
    assert {r["run"] for r in read_rows(out)} == {"tunit"} and {k[-1] for k in one} == {75}


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_torchrun_sweep_equals_one_process(sweep_setup, full_sweep):
    root, data, protocol, env = sweep_setup
    out = root / "torchrun.jsonl"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "unit_eval.cli", *_sweep_args(root, data, protocol, out), "--json"],
                          capture_output=True, text=True, env=env, timeout=900, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.strip().splitlines()) == 1  # rank 0 alone prints
    assert _table(read_rows(out)) == _table(read_rows(full_sweep[0]))


def test_sweep_bad_inputs_are_one_line(sweep_setup, tmp_path):
    root, data, protocol, env = sweep_setup
    empty = tmp_path / "empty_run"
    empty.mkdir()
    cases = [
        (["sweep", str(empty), "--protocol", "tunit-cluster", "--data", str(data), "--out", str(tmp_path / "o.jsonl")],
         "holds no checkpoint"),
        (["sweep", str(tmp_path / "missing"), "--protocol", "tunit-cluster", "--data", str(data), "--out", str(tmp_path / "o.jsonl")],
         "not found"),
        (["sweep", str(root / "tunit"), "--protocol", "no-such", "--data", str(data), "--out", str(tmp_path / "o.jsonl")],
         "unknown protocol"),
    ]
    for args, message in cases:
        proc = _cli(args, env, timeout=300)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("error:") and message in proc.stderr
    assert not (tmp_path / "o.jsonl").exists()


def test_report_of_the_sweep_renders_in_a_browser(sweep_setup, full_sweep, tmp_path):
    """The sweep's rows as the HTML report (best5, the run's grid), rendered by headless Chromium: no console
    message, a screenshot that is not blank, and the numbers in the page equal to the JSONL's."""
    from .test_report import assert_not_blank, assert_page_equals_rows, browse, console_lines, parse_page
    from .test_report import chromium as find_chromium

    browser = find_chromium.__wrapped__()
    root, data, _, env = sweep_setup
    out = tmp_path / "report.html"
    proc = _cli(["report", str(full_sweep[0]), "--select", "best5", "--ckpt", str(root / "tunit" / "run.pt"),
                 "--data", str(data), "--device", "cpu", "--out", str(out)], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shot = tmp_path / "shot.png"
    assert console_lines(browse(browser, out, tmp_path, f"--screenshot={shot}").stderr) == []
    assert_not_blank(shot)
    dom = browse(browser, out, tmp_path, "--dump-dom")
    assert console_lines(dom.stderr) == []
    assert assert_page_equals_rows(parse_page(dom.stdout), read_rows(full_sweep[0]), "best5") >= 2
