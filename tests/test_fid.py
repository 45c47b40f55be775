import numpy as np
import pytest
import scipy.linalg

from unit_eval.errors import UnitEvalError
from unit_eval.metrics.fid import (Gaussian, class_wise_fid, feature_statistics, fid_from_features, frechet_distance,
                                   psd_sqrt, trace_sqrt_product)


def scipy_fid(mu1, s1, mu2, s2):
    """The textbook formula with scipy's matrix square root: the independent reference."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


def test_analytic_vector_identity_covariances():
    d = 2048
    assert frechet_distance(np.zeros(d), np.eye(d), np.ones(d), np.eye(d)) == pytest.approx(2048.0, rel=1e-12)


def test_analytic_vector_correlated():
    s2 = 2 * np.eye(3) + 1
    value = frechet_distance(np.array([0.0, 1, 2]), np.eye(3), np.array([1.0, 3, 5]), s2)
    assert value == pytest.approx(15.87100979550804, rel=1e-12)


@pytest.mark.parametrize("n", [2000, 300])  # full rank, and fewer samples than dimensions
def test_equals_scipy_sqrtm(n):
    rng = np.random.default_rng(n)
    d = 512
    a = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.05
    b = rng.standard_normal((n, d)) * 1.2 + 0.3
    mu1, s1 = feature_statistics(a)
    mu2, s2 = feature_statistics(b)
    ours = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(ours)
    assert ours == pytest.approx(scipy_fid(mu1, s1, mu2, s2), rel=1e-6)


def test_fewer_samples_than_dimensions_is_defined():
    rng = np.random.default_rng(0)
    value = fid_from_features(rng.standard_normal((10, 64)), rng.standard_normal((12, 64)) + 1)
    assert np.isfinite(value) and value > 0


def test_identical_sets_give_zero():
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((200, 32))
    assert abs(fid_from_features(feats, feats)) < 1e-9


def test_symmetric():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((100, 16)), rng.standard_normal((80, 16)) * 2
    assert fid_from_features(a, b) == pytest.approx(fid_from_features(b, a), rel=1e-10)


def test_cached_sqrt_gives_same_trace():
    rng = np.random.default_rng(3)
    _, s1 = feature_statistics(rng.standard_normal((100, 20)))
    _, s2 = feature_statistics(rng.standard_normal((100, 20)))
    assert trace_sqrt_product(s1, s2, sqrt_sigma1=psd_sqrt(s1)) == pytest.approx(trace_sqrt_product(s1, s2), rel=1e-12)


def test_statistics_match_numpy():
    rng = np.random.default_rng(4)
    feats = rng.standard_normal((50, 8)).astype(np.float32)
    mu, sigma = feature_statistics(feats)
    np.testing.assert_allclose(mu, feats.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(feats.astype(np.float64), rowvar=False), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((1, 4)), "at least 2"),
    (np.zeros(4), "N x D"),
    (np.full((3, 4), np.nan), "NaN"),
])
def test_bad_features(bad, match):
    with pytest.raises(UnitEvalError, match=match):
        feature_statistics(bad)


def test_mismatched_statistics():
    with pytest.raises(UnitEvalError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_class_wise_mean_and_class_mismatch():
    rng = np.random.default_rng(5)
    stats = {c: feature_statistics(rng.standard_normal((30, 6)) + i) for i, c in enumerate("abc")}
    fakes = {c: feature_statistics(rng.standard_normal((30, 6)) + 2 * i) for i, c in enumerate("abc")}
    real = {c: Gaussian.from_moments(30, *s) for c, s in stats.items()}
    fake = {c: Gaussian.from_moments(30, *s) for c, s in fakes.items()}
    mean, per_class = class_wise_fid(real, fake)
    assert set(per_class) == {"a", "b", "c"}
    assert mean == pytest.approx(np.mean(list(per_class.values())))
    assert per_class["a"] == pytest.approx(frechet_distance(*stats["a"], *fakes["a"]))
    with pytest.raises(UnitEvalError, match="class sets differ"):
        class_wise_fid(real, {k: fake[k] for k in "ab"})


@pytest.mark.parametrize("n_real,n_fake", [(30, 40), (30, 900), (900, 40), (900, 1200)])
def test_gaussian_every_path_equals_eigen_formula(n_real, n_fake):
    rng = np.random.default_rng(n_real + n_fake)
    d = 300
    real = rng.standard_normal((n_real, d)) @ rng.standard_normal((d, d)) * 0.1
    fake = rng.standard_normal((n_fake, d)) * 1.2 + 0.1
    expected = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    ref = Gaussian(real)
    assert ref.fid(fake) == pytest.approx(expected, rel=1e-6)
    assert ref.fid(real) == pytest.approx(0.0, abs=1e-6 * np.trace(ref.sigma))
    # against a Gaussian, and from moments only (a sharded reduction's mean and covariance)
    assert ref.fid(Gaussian(fake)) == pytest.approx(expected, rel=1e-6)
    moments = Gaussian.from_moments(n_real, *feature_statistics(real))
    assert moments.fid(fake) == pytest.approx(expected, rel=1e-6)
    assert moments.fid(Gaussian.from_moments(n_fake, *feature_statistics(fake))) == pytest.approx(expected, rel=1e-6)


def test_gaussian_matches_scipy_when_both_sets_are_small():
    rng = np.random.default_rng(11)
    real, fake = rng.standard_normal((50, 64)), rng.standard_normal((60, 64)) + 0.5
    mu1, s1 = feature_statistics(real)
    mu2, s2 = feature_statistics(fake)
    assert Gaussian(real).fid(fake) == pytest.approx(scipy_fid(mu1, s1, mu2, s2), rel=1e-6)
