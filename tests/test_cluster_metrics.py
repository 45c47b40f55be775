from itertools import permutations

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from unit_eval.errors import UnitEvalError
from unit_eval.metrics.cluster import hungarian_accuracy, ioi, majority_accuracy, nmi


def brute_force_accuracy(pred, label, k):
    return max(np.mean(np.array(perm)[pred] == label) for perm in permutations(range(k)))


def test_hungarian_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(5):
        label = rng.integers(0, 5, 200)
        pred = np.where(rng.random(200) < 0.6, (label + 2) % 5, rng.integers(0, 5, 200))
        assert hungarian_accuracy(pred, label) == pytest.approx(brute_force_accuracy(pred, label, 5))


def test_relabelled_perfect_clustering():
    label = np.repeat(np.arange(4), 25)
    assert hungarian_accuracy((label * 3 + 1) % 4, label) == 1.0


def test_more_clusters_than_classes():
    label = np.repeat(np.arange(3), 10)
    pred = label * 2 + np.tile([0, 1], 15)  # every class split into two pure clusters
    assert hungarian_accuracy(pred, label) == pytest.approx(0.5)  # one-to-one: half the samples unmatched
    assert majority_accuracy(pred, label) == 1.0  # many-to-one: every cluster pure


def test_nmi_matches_sklearn():
    rng = np.random.default_rng(1)
    label, pred = rng.integers(0, 4, 100), rng.integers(0, 6, 100)
    assert nmi(pred, label) == pytest.approx(normalized_mutual_info_score(label, pred))


def test_length_mismatch():
    with pytest.raises(UnitEvalError, match="predictions"):
        hungarian_accuracy([0, 1], [0])


def test_ioi_analytic_value():
    # Two clusters along e1 and e2, each {e + eps*e3, e - eps*e3}: intra = 1 - 1/sqrt(1+eps^2), inter = 1.
    eps = 1.0
    e1, e2, e3 = np.eye(3)
    codes = np.stack([e1 + eps * e3, e1 - eps * e3, e2 + eps * e3, e2 - eps * e3])
    expected = 1.0 / (1.0 - 1.0 / np.sqrt(1 + eps**2))
    assert ioi(codes, [0, 0, 1, 1]) == pytest.approx(expected, rel=1e-12)


def test_ioi_grows_with_separation_and_ignores_scale():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(5), 40)
    noise = rng.standard_normal((200, 32))
    centres = rng.standard_normal((5, 32))
    values = [ioi(centres[labels] * s + noise, labels) for s in (0.5, 2.0, 8.0)]
    assert values[0] < values[1] < values[2]
    codes = centres[labels] * 2 + noise
    assert ioi(codes * 37.0, labels) == pytest.approx(ioi(codes, labels), rel=1e-12)


def test_ioi_random_labels_score_like_chance():
    # Like a between/within variance ratio, IOI is about 1 for labels unrelated to the codes.
    rng = np.random.default_rng(3)
    codes = rng.standard_normal((400, 16))
    chance = ioi(codes, rng.integers(0, 4, 400))
    assert 0.7 < chance < 1.6
    labels = np.repeat(np.arange(4), 100)
    assert ioi(codes + rng.standard_normal((4, 16))[labels] * 2, labels) > 2 * chance


@pytest.mark.parametrize("codes,clusters,match", [
    (np.ones((4, 3)), [0, 0, 0, 0], "at least 2 clusters"),
    (np.zeros((4, 3)), [0, 0, 1, 1], "all zeros"),
    (np.ones((4, 3)), [0, 1], "N x D"),
])
def test_ioi_bad_input(codes, clusters, match):
    with pytest.raises(UnitEvalError, match=match):
        ioi(codes, clusters)
