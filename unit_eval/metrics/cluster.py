"""Cluster accuracy (Hungarian one-to-one and many-to-one majority), NMI, and IOI of style codes."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import normalized_mutual_info_score

from ..errors import UnitEvalError


def _labels(pred, label) -> tuple[np.ndarray, np.ndarray]:
    pred, label = np.asarray(pred).reshape(-1), np.asarray(label).reshape(-1)
    if pred.shape != label.shape:
        raise UnitEvalError(f"{pred.size} predictions but {label.size} labels")
    if pred.size == 0:
        raise UnitEvalError("no samples to score")
    return pred, label


def _contingency(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Votes matrix: rows = predicted clusters, columns = true classes (both re-indexed densely)."""
    _, p = np.unique(pred, return_inverse=True)
    _, t = np.unique(label, return_inverse=True)
    votes = np.zeros((p.max() + 1, t.max() + 1), dtype=np.int64)
    np.add.at(votes, (p, t), 1)
    return votes


def hungarian_accuracy(pred, label) -> float:
    """One-to-one accuracy: the best matching of clusters to classes (``linear_sum_assignment`` on the vote
    matrix, as TUNIT's validation does). With more clusters than classes, unmatched clusters count as
    wrong; with fewer, unmatched classes are wrong."""
    pred, label = _labels(pred, label)
    votes = _contingency(pred, label)
    rows, cols = linear_sum_assignment(votes, maximize=True)
    return float(votes[rows, cols].sum() / pred.size)


def majority_accuracy(pred, label) -> float:
    """Many-to-one accuracy: each cluster takes its majority class (meaningful when clusters outnumber classes)."""
    pred, label = _labels(pred, label)
    return float(_contingency(pred, label).max(axis=1).sum() / pred.size)


def nmi(pred, label) -> float:
    """Normalised mutual information (arithmetic normalisation, scikit-learn's default)."""
    pred, label = _labels(pred, label)
    return float(normalized_mutual_info_score(label, pred))


def ioi(codes, clusters) -> float:
    """IOI: inter-cluster over intra-cluster variance of style codes in terms of cosine similarity.

    The TUNIT paper (Sec. 4.2) names the ratio but gives no formula; unit-eval defines it as follows.
    Codes are L2-normalised: z_i = s_i / |s_i|. With the cosine distance d(a, b) = 1 - cos(a, b), which for
    unit vectors equals |a - b|^2 / 2 (so the means below are variances on the unit sphere), and m_c the
    mean direction of cluster c (its normalised mean of z_i):

        intra = (1/C) sum_c (1/|c|) sum_{i in c} d(z_i, m_c)
        inter = (1/(C(C-1))) sum_{c != c'} d(m_c, m_c')
        IOI   = inter / intra

    Higher is more discriminative. Needs at least two clusters with at least two members each; clusters
    with a single member contribute zero intra-variance. Invariant to scaling of the codes.
    """
    z = np.asarray(codes, dtype=np.float64)
    clusters = np.asarray(clusters).reshape(-1)
    if z.ndim != 2 or z.shape[0] != clusters.size:
        raise UnitEvalError(f"IOI needs N x D codes and N cluster ids, got {z.shape} and {clusters.size}")
    if not np.isfinite(z).all():
        raise UnitEvalError("style codes contain NaN or infinite values")
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    if (norms == 0).any():
        raise UnitEvalError("a style code is all zeros: cosine similarity is undefined")
    z = z / norms
    ids = np.unique(clusters)
    if ids.size < 2:
        raise UnitEvalError(f"IOI needs at least 2 clusters, got {ids.size}")
    centres, intra = [], []
    for c in ids:
        members = z[clusters == c]
        mean = members.mean(axis=0)
        centre = mean / max(np.linalg.norm(mean), 1e-300)
        centres.append(centre)
        intra.append(float(np.mean(1.0 - members @ centre)))
    centres = np.stack(centres)
    cos = centres @ centres.T
    off_diagonal = ~np.eye(ids.size, dtype=bool)
    inter = float(np.mean(1.0 - cos[off_diagonal]))
    intra_mean = float(np.mean(intra))
    if intra_mean <= 0:
        raise UnitEvalError("intra-cluster variance is zero (every cluster's codes are identical): IOI is undefined")
    return inter / intra_mean
