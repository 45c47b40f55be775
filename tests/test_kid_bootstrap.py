"""KID against torch-fidelity, bootstrap replicates against direct recomputation (numpy, prdc), intervals, the
sample-size note and the significance-aware check (pure rows; the real-extractor runs are in
tests/test_significance_integration.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unit_eval.check import REGRESSION, WITHIN_NOISE, compare
from unit_eval.errors import UnitEvalError
from unit_eval.evaluation.intervals import BootstrapPlan, class_fid_intervals, class_kid
from unit_eval.metrics import bootstrap as bs
from unit_eval.metrics import kid as kid_mod
from unit_eval.metrics.fid import Gaussian, fid_from_features
from unit_eval.results import MEAN, make_row, undersampled


def torch_fidelity_kid(fake, real, subsets=100, subset_size=1000, seed=2020):
    from torch_fidelity.metric_kid import kid_features_to_metric

    out = kid_features_to_metric(torch.from_numpy(np.asarray(fake, np.float64)),
                                 torch.from_numpy(np.asarray(real, np.float64)),
                                 kid_subsets=subsets, kid_subset_size=subset_size, kid_kernel="poly",
                                 kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
                                 rng_seed=seed, verbose=False)
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(0)
    return rng.normal(size=(1100, 48)), rng.normal(0.15, 1.1, size=(1050, 48))


@pytest.mark.parametrize("gram", [True, False])
def test_kid_equals_torch_fidelity(sets, gram, monkeypatch):
    real, fake = sets
    if not gram:  # the per-subset route taken for very large sets
        monkeypatch.setattr(kid_mod, "_GRAM_LIMIT", 10)
    ours = kid_mod.kid(fake, real)
    mean, std = torch_fidelity_kid(fake, real)
    assert ours.mean == pytest.approx(mean, rel=1e-9) and ours.std == pytest.approx(std, rel=1e-9)
    assert ours.subsets == 100 and ours.subset_size == 1000
    assert ours.mean > 0


def test_kid_subsets_shrink_to_the_smaller_set(sets):
    real, fake = sets
    ours = kid_mod.kid(fake[:300], real[:500], subsets=20, seed=7)
    assert ours.subset_size == 300
    assert (ours.mean, ours.std) == pytest.approx(torch_fidelity_kid(fake[:300], real[:500], 20, 300, 7), rel=1e-9)
    same = kid_mod.kid(real[:400], real[400:800], subsets=10)
    assert abs(same.mean) < 0.1 * ours.mean  # two halves of one distribution: about 0 (may be slightly negative)


def test_kid_bad_inputs():
    with pytest.raises(UnitEvalError, match="at least 2"):
        kid_mod.kid(np.zeros((1, 4)), np.zeros((5, 4)))
    with pytest.raises(UnitEvalError, match="dimensions differ"):
        kid_mod.kid(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(UnitEvalError, match="NaN"):
        kid_mod.kid(np.full((5, 4), np.nan), np.zeros((5, 4)))


@pytest.mark.parametrize("n_real,n_fake,dim", [(300, 120, 64), (50, 40, 64), (60, 300, 32)])
def test_fid_replicates_equal_fid_of_the_resampled_features(n_real, n_fake, dim):
    """The fast route (real factor reused, Gram matrices of the fakes) against FID recomputed from scratch on
    each resample's features; both the n <= rank and the D x D branches."""
    rng = np.random.default_rng(1)
    real, fake = rng.normal(size=(n_real, dim)), rng.normal(0.2, 1.1, size=(n_fake, dim))
    route = bs.FakeFID(Gaussian(real), fake)
    for _ in range(3):
        counts = bs.resample_counts(n_fake, 1, rng)[0]
        direct = fid_from_features(real, fake[bs.counts_to_index(counts)])
        assert route.fid(counts) == pytest.approx(direct, rel=1e-6)
    assert route.fid(np.ones(n_fake, dtype=int)) == pytest.approx(Gaussian(real).fid(fake), rel=1e-6)


def test_prdc_replicates_equal_prdc_of_the_resampled_features():
    from prdc import compute_prdc

    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(200, 16)), rng.normal(0.3, 1.0, size=(150, 16))
    route = bs.FakePRDC(real, fake, k=5)
    for _ in range(3):
        counts = bs.resample_counts(150, 1, rng)[0]
        reference = compute_prdc(real, fake[bs.counts_to_index(counts)], nearest_k=5)
        ours = route.scores(counts)
        for metric in ("density", "coverage", "precision"):
            assert ours[metric] == pytest.approx(reference[metric], abs=1e-12), metric


def test_kid_replicates_equal_kid_of_the_resampled_features(sets):
    real, fake = sets[0][:120], sets[1][:90]
    kernels = kid_mod.KernelSets(fake, real)
    reps = bs.kid_replicates(kernels, 3, np.random.default_rng(3), subsets=5, subset_size=1000, seed=1)
    rng = np.random.default_rng(3)
    for value in reps:
        idx = bs.counts_to_index(bs.resample_counts(90, 1, rng)[0])
        assert value == pytest.approx(kid_mod.kid(fake[idx], real, 5, 1000, 1).mean, rel=1e-9)


def test_intervals_are_seeded_cover_the_value_and_shrink_with_more_fakes():
    rng = np.random.default_rng(4)
    real = {c: rng.normal(size=(80, 24)) for c in "ab"}
    fake = {c: rng.normal(0.2, 1.0, size=(60, 24)) for c in "ab"}
    gauss = {c: Gaussian(real[c]) for c in "ab"}
    values = {c: gauss[c].fid(fake[c]) for c in "ab"}
    plan = BootstrapPlan(200)
    first = class_fid_intervals(plan, 0, gauss, fake, None, values)
    again = class_fid_intervals(plan, 0, gauss, fake, None, values)
    other = class_fid_intervals(plan, 1, gauss, fake, None, values)
    assert first == again and first != other
    mfid = float(np.mean(list(values.values())))
    iv = first["mfid"][MEAN]
    assert iv.low < mfid < iv.high and iv.resamples == 200 and iv.level == 0.95
    for c in "ab":
        assert first["fid"][c].low < values[c] < first["fid"][c].high
    more = {c: rng.normal(0.2, 1.0, size=(600, 24)) for c in "ab"}
    wide = first["fid"]["a"].high - first["fid"]["a"].low
    narrow = class_fid_intervals(plan, 0, gauss, more, None, {c: gauss[c].fid(more[c]) for c in "ab"})["fid"]["a"]
    assert narrow.high - narrow.low < wide / 2
    with_real = class_fid_intervals(BootstrapPlan(50, real=True), 0, gauss, fake, real, values)
    assert with_real["fid"]["a"].high - with_real["fid"]["a"].low > 0


def test_kid_values_and_intervals_by_class():
    rng = np.random.default_rng(5)
    real = {c: rng.normal(size=(70, 16)) for c in "xyz"}
    fake = {c: rng.normal(0.4, 1.0, size=(50, 16)) for c in "xyz"}
    result = class_kid(BootstrapPlan(40), 0, real, fake)
    for c in "xyz":
        mean, std = torch_fidelity_kid(fake[c], real[c], 100, 50)
        assert result.values["kid"][c] == pytest.approx(mean, rel=1e-9)
        assert result.values["kid_std"][c] == pytest.approx(std, rel=1e-9)
        assert result.intervals["kid"][c].low < result.values["kid"][c] < result.intervals["kid"][c].high
    assert result.values["mkid"][MEAN] == pytest.approx(np.mean([result.values["kid"][c] for c in "xyz"]))
    assert result.subset_size == {c: 50 for c in "xyz"}


def test_bootstrap_plan_refuses_bad_settings():
    for bad in (dict(resamples=1), dict(resamples=-3), dict(resamples=10, level=1.0), dict(resamples=10, level=0)):
        with pytest.raises(UnitEvalError):
            BootstrapPlan(**bad)
    assert not BootstrapPlan() and BootstrapPlan(2).options()["bootstrap"]["resamples"] == 2


def test_rows_carry_feature_dim_and_intervals_and_say_when_undersampled():
    iv = bs.Interval(1.0, 3.0, 0.95, 100, 0.5)
    row = make_row(run="r", protocol="p", metric="fid", value=2.0, n_real=500, n_fake=90, feature_dim=2048,
                   interval=iv)
    assert (row["ci_low"], row["ci_high"], row["bootstrap"], row["ci_level"], row["bootstrap_std"]) == \
        (1.0, 3.0, 100, 0.95, 0.5)
    plain = make_row(run="r", protocol="p", metric="fid", value=2.0)
    assert set(plain) == set(row) and plain["ci_low"] is None  # constant keys
    message = undersampled([row])
    assert "fid" in message and "90 samples in 2048 dimensions" in message
    assert undersampled([make_row(run="r", protocol="p", metric="fid", value=1.0, n_real=3000, n_fake=3000,
                                  feature_dim=2048)]) is None
    assert undersampled([make_row(run="r", protocol="p", metric="kid", value=1.0, n_real=9, n_fake=9,
                                  feature_dim=2048)]) is None  # KID is unbiased


def _rows(run, values, std=None, metric="mfid"):
    return [make_row(run=run, protocol="p", metric=metric, value=v, seed=s, dataset="digits",
                     interval=None if std is None else bs.Interval(v - 2 * std, v + 2 * std, 0.95, 200, std))
            for s, v in enumerate(values)]


def test_significance_by_bootstrap_passes_noise_and_fails_a_real_change():
    base = _rows("a", [100.0], std=3.0)
    assert compare(_rows("a", [104.0], std=3.0), base).rows[0]["verdict"] == REGRESSION  # tolerance alone: 1 %
    noisy = compare(_rows("a", [104.0], std=3.0), base, significance=0.05)
    assert noisy.passed and noisy.rows[0]["verdict"] == WITHIN_NOISE and noisy.rows[0]["noise"] == "bootstrap"
    assert noisy.rows[0]["p_value"] == pytest.approx(0.345, abs=0.002)  # z = 4 / sqrt(18)
    worse = compare(_rows("a", [120.0], std=3.0), base, significance=0.05)
    assert not worse.passed and worse.rows[0]["verdict"] == REGRESSION and worse.rows[0]["p_value"] < 1e-5
    assert "within noise" in __import__("unit_eval.check", fromlist=["summary"]).summary(noisy)


def test_significance_across_seeds_uses_welch():
    from scipy.stats import ttest_ind

    base, new = _rows("a", [100.0, 103.0, 98.0]), _rows("a", [104.0, 101.0, 106.0])
    result = compare(new, base, significance=0.05).rows[0]
    assert result["noise"] == "seeds"
    assert result["p_value"] == pytest.approx(ttest_ind([104, 101, 106], [100, 103, 98], equal_var=False).pvalue)
    assert result["verdict"] == WITHIN_NOISE
    far = compare(_rows("a", [150.0, 151.0, 149.0]), base, significance=0.05).rows[0]
    assert far["verdict"] == REGRESSION and far["noise"] == "seeds"


def test_significance_without_noise_information_falls_back_to_tolerance():
    result = compare(_rows("a", [104.0]), _rows("a", [100.0]), significance=0.05)
    assert result.rows[0]["verdict"] == REGRESSION and result.rows[0]["noise"] is None
    assert "tolerance alone" in __import__("unit_eval.check", fromlist=["summary"]).summary(result)
    with pytest.raises(UnitEvalError, match="significance"):
        compare(_rows("a", [1.0]), _rows("a", [1.0]), significance=1.5)


def test_table_shows_the_interval_half_width_with_ci():
    from unit_eval.tables import make_table

    rows = [make_row(run="A", protocol="p", metric="fid", value=40.0, seed=0, dataset="d",
                     interval=bs.Interval(37.0, 45.0, 0.95, 100, 2.0)),
            make_row(run="A", protocol="p", metric="kid_std", value=0.001, seed=0, dataset="d"),
            make_row(run="B", protocol="p", metric="fid", value=50.0, seed=0, dataset="d")]
    with_ci = make_table(rows, "markdown", spread="ci")
    assert "40.0 ± 4.0" in with_ci and "50.0 ±" not in with_ci  # B has no interval
    assert "±" not in make_table(rows, "markdown")  # one seed, no interval shown: no std
    assert "KID std" not in with_ci  # a spread of KID, not a column of its own unless asked
    assert "KID std" in make_table(rows, "markdown", metrics=["fid", "kid_std"])
    assert "40.0 $\\pm$ 4.0" in make_table(rows, "latex", spread="ci")
    with pytest.raises(UnitEvalError, match="spread"):
        make_table(rows, "markdown", spread="iqr")


def test_report_warns_when_an_fid_has_fewer_samples_than_dimensions():
    from unit_eval.report import render_report

    rows = [make_row(run="A", protocol="p", metric="fid", value=40.0, seed=0, dataset="d", n_real=500, n_fake=90,
                     feature_dim=2048)]
    page = render_report(rows)
    assert "Fewer samples than feature dimensions" in page and "90 samples in 2048 dimensions" in page
    rows[0]["n_fake"] = 5000
    rows[0]["n_real"] = 5000
    assert "Fewer samples than feature dimensions" not in render_report(rows)


def test_read_rows_checks_intervals(tmp_path):
    import json

    from unit_eval.results import read_rows

    good = make_row(run="A", protocol="p", metric="fid", value=1.0, interval=bs.Interval(0.5, 1.5, 0.95, 10, 0.2))
    for change, message in [({"ci_low": 2.0}, "ci_low <= ci_high"), ({"ci_high": None}, "both"),
                            ({"ci_low": "x"}, "finite")]:
        path = tmp_path / "r.jsonl"
        path.write_text(json.dumps({**good, **change}) + "\n")
        with pytest.raises(UnitEvalError, match=message):
            read_rows(path)
    path.write_text(json.dumps(good) + "\n")
    assert read_rows(path)[0]["ci_low"] == 0.5
