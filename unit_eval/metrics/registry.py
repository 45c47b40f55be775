"""Every metric unit-eval reports, with its direction (drives table arrows, bolding and regression checks)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    label: str  # column header in tables
    description: str


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        MetricInfo("fid", False, "FID", "Frechet Inception distance (TF-Inception pool3)"),
        MetricInfo("mfid", False, "mFID", "mean of class-wise FIDs"),
        MetricInfo("density", True, "Density", "prdc density (k-NN balls of real features)"),
        MetricInfo("coverage", True, "Coverage", "prdc coverage"),
        MetricInfo("precision", True, "Precision", "improved precision (k-NN manifold)"),
        MetricInfo("recall", True, "Recall", "improved recall (k-NN manifold)"),
        MetricInfo("lpips", False, "LPIPS", "paired LPIPS distance (lower = closer)"),
        MetricInfo("lpips_content", False, "LPIPS (content)", "LPIPS between source and output"),
        MetricInfo("lpips_diversity", True, "LPIPS div.", "mean pairwise LPIPS among outputs of one input"),
        MetricInfo("cluster_acc", True, "Acc.", "Hungarian (one-to-one) cluster accuracy"),
        MetricInfo("cluster_acc_majority", True, "Acc. (maj.)", "many-to-one majority cluster accuracy"),
        MetricInfo("nmi", True, "NMI", "normalised mutual information of clusters and labels"),
        MetricInfo("ioi", True, "IOI", "inter- over intra-cluster variance of style-code cosine similarity"),
        MetricInfo("pixel_accuracy", True, "Pix. acc.", "fraction of pixels within the colour threshold"),
    ]
}


def metric_info(name: str) -> MetricInfo:
    """Look a metric up; unknown names (a user's own) default to lower-is-better with their raw name."""
    if name in METRICS:
        return METRICS[name]
    return MetricInfo(name, False, name, "unregistered metric (assumed lower is better)")
