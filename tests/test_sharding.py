"""Sharded extraction under torchrun: exact reduction of statistics, ordered gathering, rank-0-only output.

The reduction math is checked in one process (ranks simulated by sharding the rows); the process-group
plumbing with 2 gloo processes launched by torchrun, first with a stand-in extractor (fast: gathering,
reduction, the feature cache, folder_fid / folder_mfid / folder_prdc), then the real CLI (``fid``, ``dc``
with real Inception weights) against the single-process CLI on scikit-learn digits.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from unit_eval import sharding
from unit_eval.errors import UnitEvalError
from unit_eval.metrics.fid import feature_statistics

from .conftest import write_digits
from .stand_in_extractor import StandInExtractor, folder_results, write_stand_in_folders

needs_dist = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")


def _features(n, d, seed=0, mean=4.0):
    """Non-negative-ish features with means several standard deviations from zero (like pool3, but harder)."""
    rng = np.random.default_rng(seed)
    return mean + rng.gamma(2.0, 0.25, size=(n, d)) + rng.normal(size=(1, d))


# --------------------------------------------------------------------------- pure: one process, simulated ranks

@pytest.mark.parametrize("n,d,world", [(101, 64, 2), (50, 300, 2), (7, 16, 3), (2, 8, 4)])
def test_reduced_statistics_equal_numpy(n, d, world):
    x = _features(n, d, seed=n)
    parts = [sharding.FeatureSums.of(np.asarray(sharding.shard(x, r, world)).reshape(-1, d)) for r in range(world)]
    total = parts[0]
    for p in parts[1:]:
        total = total + p  # what all_reduce(SUM) computes
    assert total.n == n
    mu, sigma = total.statistics()
    np.testing.assert_allclose(mu, np.mean(x, axis=0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(sigma, np.cov(x, rowvar=False), rtol=1e-12, atol=1e-12 * np.abs(np.cov(x, rowvar=False)).max())
    ref_mu, ref_sigma = feature_statistics(x)
    assert np.abs(sigma - ref_sigma).max() <= 1e-12 * np.abs(ref_sigma).max()
    np.testing.assert_array_equal(sigma, sigma.T)


def test_feature_sums_streaming_equals_one_shot_and_checks():
    x = _features(40, 12, seed=1)
    acc = sharding.FeatureSums.empty(12)
    for start in range(0, 40, 7):
        acc.add(x[start : start + 7])
    acc.add(np.empty((0, 12)))
    one = sharding.FeatureSums.of(x)
    assert acc.n == one.n == 40
    np.testing.assert_allclose(acc.S, one.S, rtol=1e-13)
    with pytest.raises(UnitEvalError, match="at least 2"):
        sharding.FeatureSums.of(x[:1]).statistics()
    bad = x[:3].copy()
    bad[1, 2] = np.nan
    with pytest.raises(UnitEvalError, match="NaN"):
        sharding.FeatureSums.of(bad)
    with pytest.raises(UnitEvalError, match="expected N x 12"):
        acc.add(np.ones((2, 5)))


def test_pool3_like_features_keep_float64_accuracy():
    """Cancellation in S - n mu mu^T: with pool3-like scales (mean ~ std) the error stays near float64 eps."""
    rng = np.random.default_rng(3)
    x = np.abs(rng.normal(0.4, 0.4, size=(600, 256)))
    mu, sigma = (sharding.FeatureSums.of(x[0::2]) + sharding.FeatureSums.of(x[1::2])).statistics()
    ref = np.cov(x, rowvar=False)
    assert np.abs(sigma - ref).max() / np.abs(ref).max() < 1e-13


def test_reduced_fid_equals_single_process_fid():
    """FID from reduced statistics equals the single-process FID to 1e-9 relative where FID is well
    conditioned (more images than dimensions). With fewer images the covariance is rank-deficient and FID
    moves by ~1e-10..1e-9 under any rounding change, even a permutation of one set's rows: that is why
    ``extract_statistics`` gathers such sets instead of reducing them."""
    from unit_eval.metrics.fid import frechet_distance

    rng = np.random.default_rng(5)
    d = 256
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    for n, tolerance in ((600, 1e-12), (100, 5e-9)):
        real = np.abs(rng.normal(0.4, 0.4, size=(n, d)) @ mix)
        fake = np.abs(rng.normal(0.45, 0.4, size=(n, d)) @ mix)
        m1, s1 = feature_statistics(real)
        reference = frechet_distance(m1, s1, *feature_statistics(fake))
        reduced = sum((sharding.FeatureSums.of(np.asarray(sharding.shard(fake, r, 3, 8))) for r in range(3)),
                      sharding.FeatureSums.empty(d))
        assert frechet_distance(m1, s1, *reduced.statistics()) == pytest.approx(reference, rel=tolerance)
        permuted = frechet_distance(m1, s1, *feature_statistics(fake[rng.permutation(n)]))
        assert permuted == pytest.approx(reference, rel=tolerance)


@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("block", [1, 2, 4])
def test_shard_and_interleave_are_inverse(world, block):
    for n in range(0, 23):
        rows = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
        parts = [np.asarray(sharding.shard(rows, r, world, block)).reshape(-1, 3) for r in range(world)]
        assert sum(len(p) for p in parts) == n
        assert max(len(p) for p in parts) - min(len(p) for p in parts) <= block
        np.testing.assert_array_equal(sharding.interleave(parts, n, block), rows)
        # every rank's share is made of whole single-process batches (the last one may be short)
        batches = [tuple(range(s, min(s + block, n))) for s in range(0, n, block)]
        for r in range(world):
            index = sharding.shard_indices(n, r, world, block)
            assert [tuple(index[i : i + block]) for i in range(0, len(index), block)] == batches[r::world]


def test_shard_examples_and_errors():
    assert sharding.shard(list("abcde"), 1, 2) == ["b", "d"]  # block 1: items[rank::world]
    assert sharding.shard(list("abcdefg"), 0, 2, block=2) == list("abef")
    assert sharding.shard(list("abcdefg"), 1, 2, block=2) == list("cdg")
    assert sharding.shard(list("ab"), 1, 2, block=2) == []
    with pytest.raises(UnitEvalError):
        sharding.shard([1, 2], 2, 2)
    with pytest.raises(UnitEvalError, match="block"):
        sharding.shard([1, 2], 0, 2, block=0)
    with pytest.raises(UnitEvalError, match="rows"):
        sharding.interleave([np.zeros((1, 2)), np.zeros((1, 2))], 3)


def test_single_process_is_the_plain_path(tmp_path, monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert sharding.is_main() and not sharding.active() and not sharding.start("cpu")
    assert sharding.local_device("cuda") == torch.device("cuda")
    paths = [tmp_path / f"{i:03d}.png" for i in range(5)]
    ext = StandInExtractor()
    feats = sharding.extract_features(ext, paths)
    assert ext.calls == [[p.name for p in paths]]
    g = sharding.extract_statistics(ext, paths)
    n, mu, sigma = g.n, g.mu, g.sigma
    ref_mu, ref_sigma = feature_statistics(feats)
    assert n == 5
    np.testing.assert_array_equal(mu, ref_mu)  # the very same code path, not the reduction
    np.testing.assert_array_equal(sigma, ref_sigma)
    assert sharding.gather_ordered(feats, 5) is feats
    assert sharding.all_true(True) and not sharding.all_true(False)
    assert sharding.on_main(lambda a, b=0: a + b, 1, b=2) == 3
    monkeypatch.setenv("RANK", "1")  # a stray RANK without WORLD_SIZE is not a torchrun job
    assert sharding.is_main()


def test_local_device_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not sharding.is_main()
    assert sharding.local_device("cuda") == torch.device("cuda", 1)
    assert sharding.local_device("cuda:0") == torch.device("cuda", 0)  # explicit index kept
    assert sharding.local_device("cpu") == torch.device("cpu")


# --------------------------------------------------------------------------- 2 gloo processes, stand-in extractor

WORKER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np, torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[3])
    from tests.stand_in_extractor import StandInExtractor, folder_results, stand_in_features
    import unit_eval.features as F
    from unit_eval import sharding
    from unit_eval import distributed as D
    from unit_eval.metrics.fid import feature_statistics

    folder, result = Path(sys.argv[1]), sys.argv[2]
    paths = sorted(folder.glob("*.png"))
    ext = StandInExtractor()
    writes = []
    original = F.atomic_write_bytes
    F.atomic_write_bytes = lambda path, data: (writes.append(Path(path).name), original(path, data))

    report = {"rank": sharding.info().rank, "active_before": sharding.active()}
    reference = np.stack([stand_in_features(p) for p in paths])
    feats = sharding.extract_features(ext, paths)
    report["backend"] = torch.distributed.get_backend()
    report["gather_exact"] = bool(np.array_equal(feats, reference))
    ref_mu, ref_sigma = feature_statistics(reference)
    g = sharding.extract_statistics(ext, paths, gather_up_to=0)  # force the all-reduce of sums
    n, mu, sigma = g.n, g.mu, g.sigma
    report["n"] = n
    report["mu_err"] = float(np.abs(mu - ref_mu).max() / np.abs(ref_mu).max())
    report["sigma_err"] = float(np.abs(sigma - ref_sigma).max() / np.abs(ref_sigma).max())
    report["sigma_sum"] = float(sigma.sum())
    g = sharding.extract_statistics(ext, paths)  # n <= D: gathered, computed as in one process
    n, mu, sigma = g.n, g.mu, g.sigma
    report["small_exact"] = n == 7 and bool(np.array_equal(mu, ref_mu) and np.array_equal(sigma, ref_sigma))
    one = sharding.extract_features(ext, paths[:1])  # rank 1's shard is empty
    report["one_exact"] = bool(np.array_equal(one, reference[:1]))
    report["calls_extract"] = list(ext.calls)

    cache = F.FeatureCache(folder / "cache")
    ext.calls.clear()
    first = cache.features(paths, ext)
    report["miss_calls"] = list(ext.calls)
    report["miss_exact"] = bool(np.array_equal(first, reference))
    D.barrier()  # rank 0's write is visible before anyone looks again
    ext.calls.clear()
    second = cache.features(paths, ext)
    report["hit_calls"] = list(ext.calls)
    report["hit_exact"] = bool(np.array_equal(second, reference))
    report["writes"] = writes
    report["agree_mixed"] = sharding.all_true(sharding.info().rank == 0)
    report["on_main"] = sharding.on_main(lambda: sharding.info().rank + 10)
    report["folders"] = folder_results(Path(sys.argv[4]), Path(sys.argv[5]))
    reports = D.gather_objects(report)
    if sharding.is_main():
        Path(result).write_text(json.dumps(reports))
    """
)


def _torchrun(args, tmp_path, extra_env=None, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(extra_env or {}))
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp_path)


@needs_dist
def test_two_process_gloo_sharding_with_stand_in_extractor(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(7):
        (folder / f"{i:03d}.png").write_bytes(b"")  # the stand-in never decodes; the cache key stats the files
    worker, result = tmp_path / "worker.py", tmp_path / "result.json"
    worker.write_text(WORKER)
    real, fake = write_stand_in_folders(tmp_path / "classes")
    proc = _torchrun([str(worker), str(folder), str(result), str(Path(__file__).parents[1]), str(real), str(fake)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = json.loads(result.read_text())
    assert [r["rank"] for r in reports] == [0, 1]
    for r in reports:
        assert r["backend"] == "gloo" and not r["active_before"]
        assert r["gather_exact"] and r["one_exact"] and r["miss_exact"] and r["hit_exact"] and r["small_exact"]
        assert r["n"] == 7 and r["mu_err"] < 1e-14 and r["sigma_err"] < 1e-12
        assert r["agree_mixed"] is False and r["on_main"] == 10
        assert r["hit_calls"] == []  # a hit on every rank extracts nothing
    assert reports[0]["sigma_sum"] == reports[1]["sigma_sum"]  # identical reduction on both ranks
    names = [f"{i:03d}.png" for i in range(7)]
    mine = {0: [names[i] for i in (0, 1, 4, 5)], 1: [names[i] for i in (2, 3, 6)]}  # whole batches of 2, dealt in turn
    assert reports[0]["calls_extract"] == [mine[0], mine[0], mine[0], names[:1]]
    assert reports[1]["calls_extract"] == [mine[1], mine[1], mine[1]]  # then an empty shard: no extraction
    assert reports[0]["miss_calls"] == [mine[0]] and reports[1]["miss_calls"] == [mine[1]]
    assert len(reports[0]["writes"]) == 1 and reports[1]["writes"] == []  # only rank 0 writes the cache
    assert len(list((folder / "cache").glob("*.npz"))) == 1

    # folder_fid / folder_mfid / folder_prdc under torchrun equal the single-process results
    single = json.loads(json.dumps(folder_results(real, fake)))
    for r in reports:
        got = r["folders"]
        assert got["fid"]["fid"] == pytest.approx(single["fid"]["fid"], rel=1e-9)
        assert got["mfid"]["mfid"] == pytest.approx(single["mfid"]["mfid"], rel=1e-9)
        assert got["mfid"]["per_class"] == pytest.approx(single["mfid"]["per_class"], rel=1e-9)
        assert got["prdc"] == single["prdc"]  # gathered features: exactly equal
        for key in ("fid", "mfid"):
            assert (got[key]["n_real"], got[key]["n_fake"]) == (single[key]["n_real"], single[key]["n_fake"])


# --------------------------------------------------------------------------- 2 gloo processes, the real CLI

def _single_json(capsys, args):
    """The single-process CLI, in this process, at one thread like each torchrun child."""
    from unit_eval.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.raises(SystemExit) as exc:
            main([*args, "--json"])
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err[-3000:]
    return json.loads(out)


def _torchrun_json(args, tmp_path, env):
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "unit_eval.cli", *args, "--json"], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # exactly one JSON object: rank 1 prints nothing
    return json.loads(lines[0])


@needs_dist
@pytest.mark.integration
def test_torchrun_cli_equals_single_process(tmp_path, monkeypatch, capsys):
    from unit_eval.weights import inception_weights_path

    real = write_digits(tmp_path / "real", per_class=8, offset=0)
    fake = write_digits(tmp_path / "fake", per_class=8, offset=30)
    monkeypatch.setenv("UNIT_EVAL_INCEPTION_WEIGHTS", str(inception_weights_path()))  # before the caches move
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    common = ["--device", "cpu", "--batch-size", "8"]  # 3 batches per set: rank 0 runs two, rank 1 one

    # Each launcher gets its own, empty feature cache: the real set is extracted (sharded under torchrun) and
    # cached by fid, then read back on every rank by dc (a cache hit).
    outs = {}
    for label in ("single", "dist"):
        monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path / f"cache-{label}"))
        results = tmp_path / f"{label}.jsonl"
        fid_args = ["fid", str(real), str(fake), *common, "--out", str(results)]
        dc_args = ["dc", str(real), str(fake), "--k", "3", *common]
        if label == "single":
            fid, dc = _single_json(capsys, fid_args), _single_json(capsys, dc_args)
        else:
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
            fid, dc = _torchrun_json(fid_args, tmp_path, env), _torchrun_json(dc_args, tmp_path, env)
        cached = sorted((tmp_path / f"cache-{label}" / "features").glob("*.npz"))
        outs[label] = fid, dc, [np.load(p) for p in cached], results.read_text().splitlines()

    (fid1, dc1, cache1, rows1), (fid2, dc2, cache2, rows2) = outs["single"], outs["dist"]
    assert (fid2["n_real"], fid2["n_fake"]) == (fid1["n_real"], fid1["n_fake"]) == (24, 24)
    assert fid2["fid"] == pytest.approx(fid1["fid"], rel=1e-9)
    assert {m: dc2[m] for m in ("density", "coverage", "precision", "recall")} == \
        {m: dc1[m] for m in ("density", "coverage", "precision", "recall")}
    assert len(cache1) == len(cache2) == 1
    np.testing.assert_array_equal(cache2[0], cache1[0])  # gathered in the original order, bit for bit
    assert len(rows2) == len(rows1) == 1  # rank 0 alone appends the result row
    assert json.loads(rows2[0])["value"] == fid2["fid"]


@needs_dist
@pytest.mark.integration
def test_torchrun_evaluate_protocol_equals_single_process(tmp_path, monkeypatch, capsys):
    """A protocol against a model under torchrun: each rank generates and extracts its batches of fakes (and of the
    real set); the mFID and the rows rank 0 writes equal the single process's."""
    from unit_eval.weights import inception_weights_path

    data = tmp_path / "digits"
    write_digits(data / "train", classes=(0, 1, 2), per_class=8, size=32)
    write_digits(data / "test", classes=(0, 1, 2), per_class=4, offset=60, size=32)
    monkeypatch.setenv("UNIT_EVAL_INCEPTION_WEIGHTS", str(inception_weights_path()))
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(repo))
    protocol = repo / "ci" / "digits-mfid.toml"
    outs = {}
    for label in ("single", "dist"):
        monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path / f"cache-{label}"))
        results = tmp_path / f"{label}.jsonl"
        args = ["evaluate", "--model", "tests.tiny_translator:factory", "--protocol", str(protocol), "--data", str(data),
                "--device", "cpu", "--batch-size", "4", "--no-cache", "--out", str(results)]  # no --run: torchrun's own option
        if label == "single":
            payload = _single_json(capsys, args)
        else:
            env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(repo))
            payload = _torchrun_json(args, tmp_path, env)
        rows = [json.loads(line) for line in results.read_text().splitlines()]
        outs[label] = payload["results"][0], [(r["metric"], r["class"], r["value"]) for r in rows]
    (single, rows1), (dist, rows2) = outs["single"], outs["dist"]
    assert dist["mfid"] == pytest.approx(single["mfid"], rel=1e-9)
    assert len(rows2) == len(rows1) == 4  # mean + 3 classes, appended once (rank 0)
    for (m1, c1, v1), (m2, c2, v2) in zip(rows1, rows2):
        assert (m1, c1) == (m2, c2) and v2 == pytest.approx(v1, rel=1e-9)
