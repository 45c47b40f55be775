"""KID, bootstrap intervals and the significance-aware check with the real Inception weights on real digits: KID
against torch-fidelity, intervals seeded and around their value, and ``unit-eval check --significance`` passing a
rerun with another seed while failing a clearly worse model (the CLI in a subprocess, exit codes included)."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import pytest

from unit_eval.evaluation.intervals import BootstrapPlan
from unit_eval.features import InceptionFeatures
from unit_eval.folders import folder_fid, folder_kid, summary
from unit_eval.images import list_images
from unit_eval.results import append_rows

from .test_features_integration import fidelity_weights  # noqa: F401 (fixture)
from .test_kid_bootstrap import torch_fidelity_kid

pytestmark = pytest.mark.integration

PROTOCOL = """
name = "digits-mkid-small"
kind = "class-fid"
description = "class-wise FID and KID on a digits subset (test-sized)"
source = "tests"
seed = 0
source_split = "test"
sources_per_class = 1
references_per_source = 2
real_split = "train"
resize_filter = "bilinear"
preprocessing = "tf1-bilinear"
kid = true
"""


@pytest.fixture(scope="module")
def extractor():
    return InceptionFeatures(device="cpu", batch_size=64, progress=False, num_workers=0)


def test_kid_equals_torch_fidelity_on_digits(extractor, fidelity_weights, digits_real, digits_fake):  # noqa: F811
    import torch_fidelity

    result = summary(folder_kid(digits_real, digits_fake, extractor))
    assert (result["n_real"], result["n_fake"], result["feature_dim"]) == (36, 30, 2048)
    # the same features and subsets: torch-fidelity's KID function
    real_f, fake_f = extractor.files(list_images(digits_real)), extractor.files(list_images(digits_fake))
    mean, std = torch_fidelity_kid(fake_f, real_f, 100, 30, 2020)
    assert result["kid"] == pytest.approx(mean, rel=1e-6) and result["kid_std"] == pytest.approx(std, rel=1e-6)
    # end to end: torch-fidelity extracting its own features from the files
    with contextlib.redirect_stdout(io.StringIO()):
        out = torch_fidelity.calculate_metrics(input1=str(digits_fake), input2=str(digits_real), kid=True,
                                               kid_subset_size=30, cuda=False, batch_size=64, verbose=False,
                                               feature_extractor_weights_path=fidelity_weights, cache=False,
                                               samples_find_deep=True)
    # torch-fidelity sums its float32 kernel matrices in float32: a KID of 2e-3 is a difference of sums of
    # kernel values near 1, so its own rounding is about 1e-4 relative here (ours is float64)
    assert result["kid"] == pytest.approx(out["kernel_inception_distance_mean"], rel=1e-3)
    assert result["kid"] > 1e-3  # other instances of the same digits: small, but clearly above 0


def test_fid_bootstrap_is_seeded_and_surrounds_the_value(extractor, digits_real, digits_fake):
    plan = BootstrapPlan(200)
    first = summary(folder_fid(digits_real, digits_fake, extractor, plan=plan))
    again = summary(folder_fid(digits_real, digits_fake, extractor, plan=plan))
    assert first == again
    low, high = first["ci"]["fid"]
    assert low < first["fid"] < high and first["bootstrap"] == 200 and first["ci_level"] == 0.95
    assert summary(folder_fid(digits_real, digits_fake, extractor))["fid"] == first["fid"]  # the value is unchanged


def _session(session_args, plan):
    """One evaluation session for every model of a test (its real sets are extracted once, as in a sweep)."""
    from unit_eval.evaluation.api import Session, make_settings

    settings = make_settings(device="cpu", bootstrap=plan, no_cache=True, progress=False)
    return Session(session_args["protocols"], data=session_args["data"], data_root=None, settings=settings,
                   extractor_factory=session_args["extractor_factory"])


def _evaluate(session, model, run, seed):
    _, rows = session.run(session.jobs([seed]), model=model, evaluated={"kind": "reference-model"}, run_name=run)
    return rows


def _check(results, baseline, *extra):
    proc = subprocess.run([sys.executable, "-m", "unit_eval.cli", "check", str(results), "--baseline", str(baseline),
                           "--json", *extra], capture_output=True, text=True)
    assert proc.returncode in (0, 3), proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_check_with_significance_on_digits(tmp_path, extractor):
    from unit_eval.commands.demo import digits_subset
    from unit_eval.embedded import materialize
    from unit_eval.reference_models import ReferenceCopy, SourceCopy

    data = digits_subset(materialize("digits", progress=False), tmp_path / "digits", 12, 4)
    (tmp_path / "p.toml").write_text(PROTOCOL)
    args = {"protocols": [str(tmp_path / "p.toml")], "data": str(data), "extractor_factory": lambda _: extractor}
    session = _session(args, BootstrapPlan(100))
    baseline = _evaluate(session, ReferenceCopy(32), "model", 0)
    rerun = _evaluate(session, ReferenceCopy(32), "model", 1)
    worse = _evaluate(session, SourceCopy(32), "model", 0)
    mean = {name: {r["metric"]: r for r in rows if r["class"] == "mean"}
            for name, rows in (("base", baseline), ("rerun", rerun), ("worse", worse))}
    # class-wise KID beside class-wise FID, from the same fakes; rows say their feature dimension and intervals
    assert {"mfid", "mkid"} <= set(mean["base"])
    for row in (mean["base"]["mfid"], mean["base"]["mkid"]):
        assert row["feature_dim"] == 2048 and row["bootstrap"] == 100
        assert row["ci_low"] < row["value"] < row["ci_high"]
    assert mean["worse"]["mfid"]["value"] > mean["base"]["mfid"]["value"] + 5 * mean["base"]["mfid"]["bootstrap_std"]
    paths = {}
    for name, rows in (("base", baseline), ("rerun", rerun), ("worse", worse)):
        append_rows(tmp_path / f"{name}.jsonl", rows)
        paths[name] = tmp_path / f"{name}.jsonl"
    # the rerun differs from the baseline by more than the default 1 % tolerance: the plain gate fails it ...
    plain_rc, plain = _check(paths["rerun"], paths["base"])
    assert plain_rc == 3 and plain["regressions"]
    # ... the significance-aware gate sees noise
    rc, out = _check(paths["rerun"], paths["base"], "--significance", "0.05")
    assert rc == 0, out["regressions"]
    beyond = [r for r in out["rows"] if r["noise"] is not None]
    assert beyond and all(r["noise"] == "bootstrap" and r["verdict"] in ("within noise", "improved") for r in beyond)
    assert not any(r["metric"] == "kid_std" for r in out["rows"])  # a spread, not a score: never gated
    rc, out = _check(paths["worse"], paths["base"], "--significance", "0.05")
    assert rc == 3
    failed = {(r["metric"], r["class"]) for r in out["regressions"]}
    assert ("mfid", "mean") in failed
    assert next(r for r in out["regressions"] if r["metric"] == "mfid" and r["class"] == "mean")["noise"] == "bootstrap"


def test_cli_kid_bootstrap_json_and_the_sample_size_note(digits_real, digits_fake, tmp_path):
    out = tmp_path / "rows.jsonl"
    proc = subprocess.run([sys.executable, "-m", "unit_eval.cli", "fid", str(digits_real), str(digits_fake),
                           "--bootstrap", "50", "--device", "cpu", "--json", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # exactly one object
    assert result["bootstrap"] == 50 and result["ci"]["fid"][0] < result["fid"] < result["ci"]["fid"][1]
    assert proc.stderr.count("fewer samples than feature dimensions") == 1  # 36 and 30 images, 2048 dimensions
    row = json.loads(out.read_text())
    assert (row["feature_dim"], row["n_real"], row["n_fake"], row["bootstrap"]) == (2048, 36, 30, 50)
    for args, message in [(["fid", "a", "b", "--bootstrap", "1"], "at least 2 resamples"),
                          (["kid", "a", "b", "--bootstrap-real"], "needs --bootstrap"),
                          (["dc", "a", "b", "--bootstrap", "5", "--bootstrap-real"], "does not apply to dc")]:
        bad = subprocess.run([sys.executable, "-m", "unit_eval.cli", *args], capture_output=True, text=True)
        assert bad.returncode != 0 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
