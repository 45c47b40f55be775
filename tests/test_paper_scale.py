"""The paper-scale dry run and the GPU suite run end to end at their smallest sizes on the CPU, so both are known
to work before a GPU sees them; the stage timer that splits their wall time adds up and moves no number."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from unit_eval import stagetimes

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _module(name):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_times_add_up_and_are_off_by_default():
    with stagetimes.stage("extract"):
        pass  # not recording: nothing to charge, no error
    with stagetimes.recording() as totals:
        with stagetimes.stage("decode"):
            time.sleep(0.02)
        items = list(stagetimes.timed_iter("generate", (time.sleep(0.01) or i for i in range(3))))
        with pytest.raises(RuntimeError):
            with stagetimes.recording():
                pass
    assert items == [0, 1, 2]
    assert totals["decode"] >= 0.02 and totals["generate"] >= 0.03 and totals["extract"] == 0.0
    with stagetimes.recording() as again:
        pass
    assert sum(again.values()) == 0.0


@pytest.mark.parametrize("kind", ["mfid", "dc", "diversity"])
def test_recording_moves_no_number(tmp_path, kind):
    """Regression check: a protocol gives the same values with the stage timer on and off, and the timer sees the
    model run and the statistics (the stand-in extractor here has no Inception forward to charge)."""
    from unit_eval.datasets import resolve_dataset

    from .conftest import write_digits
    from .test_protocol_runner import SMALL, runner

    write_digits(tmp_path / "train", classes=(0, 1, 2), per_class=6, offset=0, size=32)
    write_digits(tmp_path / "test", classes=(0, 1, 2), per_class=5, offset=50, size=32)
    dataset = resolve_dataset(tmp_path)
    plain = runner(dataset).run(SMALL[kind](), seed=0)
    with stagetimes.recording() as totals:
        timed = runner(dataset).run(SMALL[kind](), seed=0)
    assert timed.values == plain.values
    assert totals["generate"] > 0 and totals["decode"] > 0
    assert (totals["statistics"] > 0) == (kind != "diversity")


def test_flop_counter_counts_through_gradient_penalties():
    """``CountFlops`` (bench_train) against torch's own FlopCounterMode where that one works, and through
    autograd.grad(create_graph=True), where FlopCounterMode raises (TUNIT's R1, FUNIT's gradient penalty)."""
    from torch.utils.flop_counter import FlopCounterMode

    count_flops = _module("bench_train").CountFlops
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3))
    x = torch.randn(2, 3, 12, 12, requires_grad=True)
    with FlopCounterMode(display=False) as reference:
        net(x).sum().backward()
    with count_flops() as ours:
        net(x).sum().backward()
    assert ours.total == reference.get_total_flops() > 0
    forward = 2 * (2 * 10 * 10 * 8 * 27 + 2 * 8 * 8 * 1 * 72)  # 2 FLOPs per MAC, batch 2, both convolutions
    with count_flops() as fwd:
        with torch.no_grad():
            net(x)
    assert fwd.total == forward
    with count_flops() as penalty:
        y = net(x).sum()
        (grad,) = torch.autograd.grad(y, x, create_graph=True)
        (grad.pow(2).sum() + y).backward()
    assert penalty.total > ours.total


def _run(args, timeout):
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.slow
def test_paper_scale_dry_run_tiny(tmp_path):
    rc, out, err = _run([BENCH / "bench_paper_scale.py", "--device", "cpu", "--tiny", "--work", tmp_path, "--json"], 1200)
    assert rc == 0, err[-3000:]
    report = json.loads(out)
    stages = report["stages"]
    expected = {"data animalfaces10-shape", "data maps-shape", "train tunit warmup", "train tunit joint", "train funit",
                "train unit", "checkpoint tunit", "checkpoint funit", "checkpoint unit", "real features",
                *(f"protocol {p}" for p in ("tunit-mfid", "tunit-dc", "tunit-cluster", "cluit-mfid", "lpips-diversity", "unit-maps"))}
    assert set(stages) == expected
    assert all(r["ok"] and r["peak_rss_mb"] > 0 for r in stages.values())
    for name in ("train tunit joint", "train funit"):  # counted through the gradient penalties
        assert stages[name]["flops_first_iter"] > 0
    mfid = stages["protocol tunit-mfid"]
    assert mfid["dataset"] == "synthetic-animalfaces10-shape" and mfid["n_fake"] == 10 * 9 * 2
    assert mfid["stages"]["generate"] > 0 and mfid["stages"]["extract"] > 0
    assert sum(mfid["stages"].values()) <= mfid["eval_s"]
    assert stages["protocol unit-maps"]["dataset"] == "synthetic-maps-shape"
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert rows and all(r["dataset"].startswith("synthetic-") for r in rows)  # labelled synthetic where used
    assert report["extrapolation"]["protocol tunit-mfid"]["extract"]["flops"] > 0


@pytest.mark.slow
def test_gpu_suite_runs_end_to_end_on_cpu(tmp_path):
    out = tmp_path / "figures.json"
    rc, _, err = _run([BENCH / "gpu_suite.py", "run", "--device", "cpu", "--tiny", "--budget", "900", "--out", out], 1200)
    assert rc == 0, err[-3000:]
    report = json.loads(out.read_text())
    assert set(report["parts"]) == {"sweep", "protocol", "train", "ddp"}
    parts = report["parts"]
    assert all(p["ok"] for p in parts.values())
    assert parts["sweep"]["figures"]["sweep"]["fid_effect"]["fp32"] > 0
    assert parts["protocol"]["figures"]["mfid"]["mfid_rel_diff"] < 1e-5  # against PNGs + torch-fidelity
    assert parts["train"]["figures"]["configs"][0]["ok"]
    assert parts["ddp"]["figures"]["shard"]["commands"]["fid"]["max_rel_diff"] < 1e-6


def test_gpu_suite_weights_travel_in_parts_and_join_exactly(tmp_path, monkeypatch):
    """The Inception weights (91 MiB) exceed one device call's 64 MiB: 'pack' splits them into one folder per call,
    'run --from' joins them into the weights cache byte for byte (the product then verifies its pin on load)."""
    suite = _module("gpu_suite")
    weights = tmp_path / "cache" / "weights" / suite.WEIGHTS
    weights.parent.mkdir(parents=True)
    payload = bytes(range(256)) * 41 + b"tail"
    weights.write_bytes(payload)
    (weights.parent / (suite.WEIGHTS + ".json")).write_text("{}")
    import unit_eval.weights

    monkeypatch.setattr(unit_eval.weights, "inception_weights_path", lambda: weights)
    monkeypatch.setattr(suite, "PART_BYTES", 1000)
    suite.command_pack(type("Args", (), {"to": str(tmp_path / "pack"), "wheels": False, "official_tunit": None})())
    folders = {p.name for p in (tmp_path / "pack").iterdir()}
    assert folders == {f"p{i}" for i in range(11)}  # 10500 bytes in parts of 1000; p10 must join last, not third
    note = suite.unpack_weights(tmp_path / "pack", tmp_path / "there")
    assert "11 parts" in note
    assert (tmp_path / "there" / "weights" / suite.WEIGHTS).read_bytes() == payload
    assert (tmp_path / "there" / "weights" / (suite.WEIGHTS + ".json")).exists()
