"""Distributed training on CPU: 2 processes, gloo, launched with torchrun (``torch.distributed.run``).

Checks that ranks stay in sync (identical weights, EMA copies and MoCo queue after steps on
different data), that the shared loop runs under torchrun with finite losses and that only rank 0
writes RUN_DIR files.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from .conftest import write_digits


def run_workers(tmp_path, worker_source: str, *args) -> subprocess.CompletedProcess:
    """``worker_source`` on 2 gloo processes under torchrun (one thread each), with ``args``; asserts it exits 0."""
    worker = tmp_path / "worker.py"
    worker.write_text(worker_source)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker),
         *map(str, args)],
        capture_output=True, text=True, env=env, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc

WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(1)
    from unit_eval import distributed as D
    from unit_eval.baselines.common import data as data_mod
    from unit_eval.baselines.common.loop import train
    from unit_eval.baselines.tunit.recipe import TunitRecipe

    data, out, result = sys.argv[1:4]
    dev = torch.device("cpu")
    info = D.init(dev)
    assert info.world_size == 2 and torch.distributed.get_backend() == "gloo"

    # 1) recipe-level: different data per rank, weights must stay identical
    cfg = TunitRecipe.default_config(iters=10, toy=True)
    cfg["warmup_iters"] = 1
    torch.manual_seed(100 + info.rank)  # different init per rank: the recipe must broadcast rank 0's
    r = TunitRecipe(cfg, 3, dev, distributed=True)
    index = data_mod.scan(data)
    streams = data_mod.Streams(index, {"main": None}, img_size=32, load_size=32, hflip=True, global_batch=4, seed=0,
                               rank=info.rank, world_size=2, start=0, device=dev)
    losses = [r.train_step(next(streams), it) for it in range(3)]
    sums = torch.stack([torch.cat([p.detach().double().flatten() for p in net.state_dict().values()]).sum()
                        for net in (r.C, r.G, r.D, r.C_ema, r.G_ema)] + [r.queue.double().sum()])
    gathered = D.all_gather_cat(sums.unsqueeze(0))
    if info.rank == 0:
        with open(result, "w") as fh:
            json.dump({"sums": gathered.tolist(), "losses": losses, "queue": list(r.queue.shape)}, fh)

    # 2) the shared loop under torchrun
    summary = train("tunit", data, out, iters=4, seed=0, device="cpu", progress=False, log_every=1, sample_every=2,
                    ckpt_every=2, extra={"toy": True}, overrides={"warmup_iters": 1})
    print(f"<rank {info.rank} done {summary['iterations']}>", flush=True)
    D.shutdown()
    """
)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_process_gloo_training(tmp_path):
    data = write_digits(tmp_path / "digits", per_class=8)
    out, result = tmp_path / "run", tmp_path / "result.json"
    proc = run_workers(tmp_path, WORKER, data, out, result)
    assert "<rank 0 done 4>" in proc.stdout and "<rank 1 done 4>" in proc.stdout

    res = json.loads(result.read_text())
    sums = np.array(res["sums"])
    assert sums.shape == (2, 6)
    np.testing.assert_array_equal(sums[0], sums[1])  # bit-identical on both ranks
    assert all(math.isfinite(v) for step in res["losses"] for v in step.values())
    assert "G/total" in res["losses"][-1]
    assert res["queue"] == [4 + 3 * 4, 16]  # keys from both ranks are enqueued

    # rank-0-only I/O: one log row per iteration, one grid per sample step, one run.pt
    rows = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(v) for r in rows for k, v in r.items() if k != "iter")
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["iter_0000002.png", "iter_0000004.png"]
    assert sorted(p.name for p in out.iterdir()) == ["log.jsonl", "resume.pt", "run.pt", "samples"]
    run = torch.load(out / "run.pt", weights_only=True)
    assert run["meta"]["world_size"] == 2 and run["meta"]["iterations"] == 4
    state = torch.load(out / "resume.pt", weights_only=True)
    assert len(state["rng"]) == 2  # each rank's RNG state for exact resume
    from unit_eval.translator import load_checkpoint_translator

    tr = load_checkpoint_translator(out / "run.pt")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert tr.translate(x, x).shape == (2, 3, 32, 32)


CLUIT_WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(1)
    from unit_eval import distributed as D
    from unit_eval.baselines.common import data as data_mod
    from unit_eval.baselines.common.loop import train
    from unit_eval.baselines.cluit.recipe import CluitRecipe

    data, out, result = sys.argv[1:4]
    dev = torch.device("cpu")
    info = D.init(dev)
    cfg = CluitRecipe.default_config(iters=10, toy=True)
    cfg["r1_every"] = 2
    from unit_eval.errors import UnitEvalError
    try:  # a global batch of 2 leaves one image per process: nothing to split into input and reference
        CluitRecipe({**cfg, "batch_size": 2}, 3, dev, distributed=True)
        odd_refused = False
    except UnitEvalError as exc:
        odd_refused = "odd 1 per process" in str(exc)
    torch.manual_seed(100 + info.rank)  # different init and dictionary per rank: the recipe must broadcast rank 0's
    r = CluitRecipe(cfg, 3, dev, distributed=True)
    queue0 = r.queue.clone()
    index = data_mod.scan(data)
    streams = data_mod.Streams(index, {"main": None}, img_size=32, load_size=32, hflip=True, global_batch=4, seed=0,
                               rank=info.rank, world_size=2, start=0, device=dev)
    batches = [next(streams) for _ in range(2)]
    losses = [r.train_step(b, it) for it, b in enumerate(batches)]
    nets = (r.G, r.E, r.D, r.G_ema, r.E_ema, r.D_ema)
    sums = torch.stack([torch.cat([p.detach().double().flatten() for p in n.state_dict().values()]).sum() for n in nets]
                       + [r.queue.double().sum(), queue0.double().sum()])
    gathered = D.all_gather_cat(sums.unsqueeze(0))
    images = D.all_gather_cat(batches[-1]["main"]["image"])
    if info.rank == 0:
        with open(result, "w") as fh:
            json.dump({"sums": gathered.tolist(), "losses": losses, "queue": list(r.queue.shape),
                       "distinct_data": not torch.equal(images[:2], images[2:]),
                       "fifo": bool(torch.equal(r.queue[:-8], queue0[8:])), "odd_refused": odd_refused}, fh)
    summary = train("cluit", data, out, iters=2, seed=0, device="cpu", progress=False, log_every=1, sample_every=0,
                    ckpt_every=0, extra={"toy": True})
    print(f"<rank {info.rank} done {summary['iterations']}>", flush=True)
    D.shutdown()
    """
)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_cluit_two_process_gloo_training(tmp_path):
    """CLUIT under gloo: each rank splits its own half-batch into an input and a reference; gradients are averaged,
    the MoCo dictionary gets both ranks' keys and stays identical, and the shared loop runs."""
    data = write_digits(tmp_path / "digits", per_class=4)
    out, result = tmp_path / "run", tmp_path / "result.json"
    proc = run_workers(tmp_path, CLUIT_WORKER, data, out, result)
    assert "<rank 0 done 2>" in proc.stdout and "<rank 1 done 2>" in proc.stdout
    res = json.loads(result.read_text())
    sums = np.array(res["sums"])
    np.testing.assert_array_equal(sums[0], sums[1])  # weights, EMA copies, dictionary (and its start) bit-identical
    assert res["odd_refused"] and res["distinct_data"] and res["queue"] == [64, 16] and res["fifo"]  # 2 x 4 keys: both ranks' 2 per step
    assert ["D/r1" in step for step in res["losses"]] == [True, False]
    assert all(math.isfinite(v) for step in res["losses"] for v in step.values())
    run = torch.load(out / "run.pt", weights_only=True)
    assert run["model"] == "cluit" and run["meta"]["world_size"] == 2 and run["meta"]["iterations"] == 2


GPUNIT_WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    torch.set_num_threads(1)
    from unit_eval import distributed as D
    from unit_eval.baselines.common import data as data_mod
    from unit_eval.baselines.common.loop import train
    from unit_eval.baselines.gpunit.recipe import GPUNITRecipe

    data, out, result, enc = sys.argv[1:5]
    dev = torch.device("cpu")
    info = D.init(dev)
    cfg = {**GPUNITRecipe.default_config(iters=10, toy=True), "content_encoder": enc}
    torch.manual_seed(100 + info.rank)  # different init per rank: the recipe must broadcast rank 0's
    r = GPUNITRecipe(cfg, 3, dev, distributed=True)
    index = data_mod.scan(data)
    streams = data_mod.Streams(index, GPUNITRecipe.streams, img_size=32, load_size=36, hflip=True, global_batch=4,
                               seed=0, rank=info.rank, world_size=2, start=0, device=dev)
    batches = [next(streams) for _ in range(2)]
    losses = [r.train_step(b, it) for it, b in enumerate(batches)]
    sums = torch.stack([torch.cat([p.detach().double().flatten() for p in n.state_dict().values()]).sum()
                        for n in (r.gen, r.dis, r.gen_ema)])
    gathered = D.all_gather_cat(sums.unsqueeze(0))
    images = D.all_gather_cat(batches[-1]["target"]["image"])
    if info.rank == 0:
        with open(result, "w") as fh:
            json.dump({"sums": gathered.tolist(), "losses": losses,
                       "distinct_data": not torch.equal(images[:2], images[2:])}, fh)
    summary = train("gpunit", data, out, iters=2, seed=0, device="cpu", progress=False, log_every=1, sample_every=0,
                    ckpt_every=0, extra={"toy": True}, overrides={"content_encoder": enc, "sampler_samples": 30})
    print(f"<rank {info.rank} done {summary['iterations']}>", flush=True)
    D.shutdown()
    """
)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_gpunit_two_process_gloo_training(tmp_path):
    """GP-UNIT under gloo: rank 0's generator and (spectral-normed) discriminator are broadcast, gradients are
    averaged, so weights, EMA and power-iteration vectors stay bit-identical on different data; the loop runs."""
    from unit_eval.baselines.gpunit.networks import ContentEncoder

    data = write_digits(tmp_path / "digits", per_class=4, size=36)
    torch.manual_seed(0)
    enc = tmp_path / "content_encoder.pt"
    torch.save(ContentEncoder(8, 3, 32, sn=True).state_dict(), enc)
    out, result = tmp_path / "run", tmp_path / "result.json"
    proc = run_workers(tmp_path, GPUNIT_WORKER, data, out, result, enc)
    assert "<rank 0 done 2>" in proc.stdout and "<rank 1 done 2>" in proc.stdout
    res = json.loads(result.read_text())
    sums = np.array(res["sums"])
    np.testing.assert_array_equal(sums[0], sums[1])
    assert res["distinct_data"] and all(math.isfinite(v) for step in res["losses"] for v in step.values())
    run = torch.load(out / "run.pt", weights_only=True)
    assert run["model"] == "gpunit" and run["meta"]["world_size"] == 2 and run["meta"]["iterations"] == 2
