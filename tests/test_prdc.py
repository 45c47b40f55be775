import contextlib
import io

import joblib
import numpy as np
import prdc
import pytest

from unit_eval.errors import UnitEvalError
from unit_eval.metrics.prdc import compute_prdc, knn_radii

KEYS = ("precision", "recall", "density", "coverage")


def reference(real, fake, k):
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints to stdout
        return prdc.compute_prdc(real, fake, k)


def assert_equals_prdc(ours, ref, what=""):
    for key in KEYS:
        assert abs(ours[key] - float(ref[key])) <= 1e-9, f"{key}: ours {ours[key]!r} prdc {float(ref[key])!r} {what}"


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


# Seeded differential fuzz against prdc.compute_prdc, aimed at exact ties: duplicated points, fakes that copy,
# permute or resample the reals, the very same array passed twice, integer-valued features (where every distance
# is exact and ties abound), float32 inputs (prdc's distances are then float32, which rounds more pairs into ties),
# mixed dtypes and Fortran-ordered arrays; sizes k + 2 .. 200 a side, dims 2, 8, 64, k in {1, 2, 3, 5}. Every `<`
# that prdc evaluates must come out the same here, so all four values must agree. 256 cases (8 kinds x 4 value
# families, 8 seeds each); prdc's own thread pool makes it the slow side (~50 ms a call). It fails when any of
# the three `<` in unit_eval/metrics/prdc.py becomes `<=`, and on the torch float64 version it replaced.
FUZZ_CASES = 256
FUZZ_KINDS = ("independent", "duplicates", "copy", "same_object", "permutation", "subset_duplicates",
              "partial_copy", "mixed_dtype")
FUZZ_VALUES = ("gauss", "grid", "wide_grid", "dyadic")  # all but gauss make every distance exact


def fuzz_case(case):
    rng = np.random.default_rng([20250611, case])
    kind = FUZZ_KINDS[case % len(FUZZ_KINDS)]
    values = FUZZ_VALUES[(case // len(FUZZ_KINDS)) % len(FUZZ_VALUES)]
    k = int(rng.choice([1, 2, 3, 5]))
    dim = int(rng.choice([2, 8, 64]))
    # prdc needs at least k + 2 points per side (np.argpartition at k + 1); sizes straddle its 8 column slices
    n_real, n_fake = (int(n) for n in rng.integers(k + 2, 201, size=2))
    # far from the origin, x.x - 2 x.y + y.y cancels: copies sit at round-off distances, not at 0
    offset = float(rng.choice([0.0, 0.0, 40.0]))

    def draw(n):
        if values == "gauss":
            return rng.standard_normal((n, dim)) + offset
        if values == "grid":  # a few lattice points: many duplicates and equal distances
            return rng.integers(0, 3, (n, dim)).astype(np.float64)
        if values == "wide_grid":  # large integer distances: float32 sqrt maps neighbouring d^2 to one value
            return rng.integers(-1000, 1001, (n, dim)).astype(np.float64)
        return np.round(rng.standard_normal((n, dim)) * 4) / 4  # dyadic: exact in float32 and float64

    real = draw(n_real)
    fake = draw(n_fake)
    if values == "gauss" and kind == "independent":
        fake = fake * 1.1 + 0.05
    if kind == "duplicates" or rng.random() < 0.4:  # reals repeat, often more than k times: radii of 0 or round-off
        pool = draw(max(2, n_real // int(rng.integers(2, 9))))
        real = pool[rng.integers(0, len(pool), n_real)]
    if kind == "duplicates":  # fakes from the same pool too, so points also repeat across the sets
        fake = np.concatenate([pool[rng.integers(0, len(pool), n_fake // 2)], fake[: n_fake - n_fake // 2]])
    elif kind in ("copy", "same_object"):
        fake = real.copy()
    elif kind == "permutation":
        fake = real[rng.permutation(n_real)]
    elif kind == "subset_duplicates":
        fake = real[rng.integers(0, n_real, n_fake)]
    elif kind == "partial_copy":
        fake = np.concatenate([real[rng.permutation(n_real)[: max(1, n_real // 2)]], fake])
        fake = fake[rng.permutation(len(fake))]
    dtypes = ["float64", "float32", "int64"] if values in ("grid", "wide_grid") else ["float64", "float32"]
    dtype = str(rng.choice(dtypes))
    real = real.astype(dtype)
    if kind == "mixed_dtype":
        fake = fake.astype("float32" if dtype == "float64" else "float64")
    else:
        fake = fake.astype(dtype)
    if rng.random() < 0.125:
        real = np.asfortranarray(real)
    if kind == "same_object":
        fake = real  # prdc then zeroes the real-fake diagonal too (sklearn's X is Y)
    what = f"case {case}: {kind} {values} {dtype} k={k} dim={dim} {len(real)}x{len(fake)}"
    return real, fake, k, values, what


@pytest.mark.parametrize("case", range(FUZZ_CASES))
def test_fuzz_equals_prdc_ties_included(case):
    real, fake, k, values, what = fuzz_case(case)
    ours = compute_prdc(real, fake, k=k)
    assert_equals_prdc(ours, reference(real, fake, k), what)
    # The order of the fakes. Where all arithmetic is exact (integer-valued and dyadic features) the result
    # cannot depend on it. With Gaussian ties prdc's own result can (BLAS rounds a product differently at
    # another column of another slice shape), so there the permuted set is checked against prdc again.
    shuffled = fake[np.random.default_rng(case).permutation(len(fake))]
    ours_shuffled = compute_prdc(real, shuffled, k=k)
    if values == "gauss":
        assert_equals_prdc(ours_shuffled, reference(real, shuffled, k), what + " (fakes permuted)")
    else:
        assert ours_shuffled == ours, what + " (fakes permuted)"


@pytest.mark.parametrize("case", range(0, FUZZ_CASES, 4))
def test_fuzz_equals_prdc_under_sequential_joblib(case):
    # effective_n_jobs(8) == 1: sklearn then computes each matrix in one call (X @ X.T, symmetric chunks)
    # instead of eight column slices; the result must follow it there too.
    real, fake, k, values, what = fuzz_case(case)
    with joblib.parallel_config(backend="sequential"):
        assert_equals_prdc(compute_prdc(real, fake, k=k), reference(real, fake, k), what)


@pytest.mark.parametrize("order", ["C", "F"])
def test_memorisation_gives_density_one_like_prdc(order):
    # Fakes that are a permutation of the reals (float32, as in the benchmark): every real ball holds its own
    # copy and k - 1 strict neighbours (its k-th neighbour sits exactly on the radius), so prdc's density is 1.
    # The copy's distance must round exactly like the neighbour's distance that set the radius.
    rng = np.random.default_rng(11)
    real = np.asarray(rng.standard_normal((300, 2048)).astype(np.float32), order=order)
    fake = np.ascontiguousarray(real[rng.permutation(300)])
    ref = reference(real, fake, 5)
    assert float(ref["density"]) == 1.0
    assert compute_prdc(real, fake, k=5) == {key: float(ref[key]) for key in KEYS}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tiny_memory_bytes_gives_identical_results(dtype):
    rng = np.random.default_rng(12)
    pool = rng.integers(0, 3, (40, 8))
    real = pool[rng.integers(0, 40, 230)].astype(dtype)
    fake = np.concatenate([real[rng.integers(0, 230, 90)], rng.integers(0, 3, (60, 8))]).astype(dtype)
    default = compute_prdc(real, fake, k=3)
    assert compute_prdc(real, fake, k=3, memory_bytes=1) == default  # one row per reduction block
    assert compute_prdc(real, fake, k=3, memory_bytes=5_000) == default
    assert_equals_prdc(default, reference(real, fake, 3))


@pytest.mark.parametrize("fake_is", ["same object", "copy"])
def test_round_off_distances_of_copies_follow_sklearn(fake_is):
    # 64-d points far from the origin, each repeated about 7 times: x.x - 2 x.y + y.y leaves round-off, so
    # copies lie at tiny nonzero distances and many radii are round-off too. sklearn zeroes the diagonal
    # when X is Y (the radii; real-fake too when one array is passed twice), never for a copy.
    rng = np.random.default_rng(3)
    pool = rng.standard_normal((12, 64)) + 40
    real = pool[rng.integers(0, 12, 90)]
    fake = real if fake_is == "same object" else real.copy()
    for k in (3, 5):
        assert_equals_prdc(compute_prdc(real, fake, k=k), reference(real, fake, k), f"k={k}")


# The mutation check, in the suite: each of the three strict comparisons of unit_eval/metrics/prdc.py turned into
# `<=` in a copy of the module must make the fuzz above find a difference from prdc.
MUTATIONS = {
    "real balls (precision, density)": ("inside_real = dist < real_radii[r, None]", "inside_real = dist <= real_radii[r, None]"),
    "fake balls (recall)": ("(dist < fake_radii[None, cols])", "(dist <= fake_radii[None, cols])"),
    "coverage": ("(real_nearest_fake < real_radii)", "(real_nearest_fake <= real_radii)"),
}


def mutated_compute_prdc(original: str, mutant: str):
    import importlib.util
    import inspect

    import unit_eval.metrics.prdc as module

    source = inspect.getsource(module)
    assert source.count(original) == 1, f"the comparison {original!r} moved; update MUTATIONS"
    spec = importlib.util.spec_from_loader("unit_eval.metrics._prdc_mutant", loader=None)
    mutant_module = importlib.util.module_from_spec(spec)
    mutant_module.__package__ = "unit_eval.metrics"
    exec(compile(source.replace(original, mutant), module.__file__, "exec"), mutant_module.__dict__)
    return mutant_module.compute_prdc


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_fuzz_catches_each_strict_comparison_made_loose(mutation):
    compute = mutated_compute_prdc(*MUTATIONS[mutation])
    for case in range(FUZZ_CASES):
        real, fake, k, _, what = fuzz_case(case)
        ours, ref = compute(real, fake, k=k), reference(real, fake, k)
        if any(abs(ours[key] - float(ref[key])) > 1e-9 for key in KEYS):
            return
    pytest.fail(f"no fuzz case tells `{MUTATIONS[mutation][1]}` from prdc")
