import contextlib
import io

import numpy as np
import prdc
import pytest

from unit_eval.errors import UnitEvalError
from unit_eval.metrics.prdc import compute_prdc, knn_radii


def reference(real, fake, k):
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints to stdout
        return prdc.compute_prdc(real, fake, k)


@pytest.mark.parametrize("n_real,n_fake,dim,k", [(200, 150, 16, 5), (120, 300, 2048, 5), (60, 60, 4, 3), (40, 90, 8, 1)])
def test_equals_prdc(n_real, n_fake, dim, k):
    rng = np.random.default_rng(n_real + dim)
    real = rng.standard_normal((n_real, dim)).astype(np.float32)
    fake = (rng.standard_normal((n_fake, dim)) * 1.1 + 0.05).astype(np.float32)
    ours = compute_prdc(real, fake, k=k)
    ref = reference(real, fake, k)
    for key in ("precision", "recall", "density", "coverage"):
        assert abs(ours[key] - float(ref[key])) <= 1e-9, key


def test_block_size_does_not_change_result():
    rng = np.random.default_rng(7)
    real, fake = rng.standard_normal((257, 10)), rng.standard_normal((131, 10))
    big = compute_prdc(real, fake, k=5)
    small = compute_prdc(real, fake, k=5, memory_bytes=10_000)  # a few rows per block
    assert big == small


def test_duplicated_points_give_zero_radii_like_prdc():
    rng = np.random.default_rng(8)
    real = np.repeat(rng.standard_normal((20, 6)), 6, axis=0)  # every point 6 times: k=5 radius is 0
    fake = rng.standard_normal((50, 6))
    ours = compute_prdc(real, fake, k=5)
    ref = reference(real, fake, 5)
    assert ours["density"] == float(ref["density"]) == 0.0
    assert ours["coverage"] == float(ref["coverage"]) == 0.0


def test_density_can_exceed_one():
    # Seven reals on a line 0.0 .. 0.6: each k=5 radius exceeds its distance to 0.3, so a fake at 0.3
    # lies in all seven balls: density 7/5.
    real = np.arange(7, dtype=np.float64)[:, None] / 10
    fake = np.full((7, 1), 0.3)
    assert compute_prdc(real, fake, k=5)["density"] == pytest.approx(1.4)
    assert float(reference(real, fake, 5)["density"]) == pytest.approx(1.4)


def test_radii_count_self():
    x = np.array([[0.0], [1.0], [3.0], [6.0]])
    np.testing.assert_allclose(knn_radii(__import__("torch").tensor(x), 1).numpy(), [1, 1, 2, 3])


def test_too_few_samples():
    with pytest.raises(UnitEvalError, match="more than 5 real"):
        compute_prdc(np.zeros((5, 3)), np.ones((10, 3)), k=5)


def test_nan_features():
    bad = np.ones((10, 3))
    bad[0, 0] = np.nan
    with pytest.raises(UnitEvalError, match="NaN"):
        compute_prdc(np.ones((10, 3)), bad, k=2)
