"""Every metric unit-eval reports, with its direction (drives table arrows, bolding and regression checks)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    label: str  # column header in tables
    description: str
    decimals: int = 2  # places tables print by default, as the papers print this metric
    spread: bool = False  # the spread of another metric's estimate, not a score: tables and checks skip it by default


# Decimals as the seed papers print them: TUNIT Table 1 (mFID 74.0, D&C 0.749 / 0.671, Acc. 1.000), TUNIT
# Sec. 4.2 (IOI 2.05), StarGAN v2 / GP-UNIT Table 1 (LPIPS 0.xxx), UNIT Fig. 2 (pixel accuracy 0.600).


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        MetricInfo("fid", False, "FID", "Frechet Inception distance (TF-Inception pool3; stargan-v2-fid: torchvision's "
                   "ImageNet Inception, named in the row's extractor)", 1),
        MetricInfo("fid_torchvision", False, "FID (tv)", "Frechet distance on torchvision's ImageNet Inception-V3 "
                   "avgpool features (StarGAN v2 / GP-UNIT; unit-eval fd --features torchvision-inception)", 1),
        MetricInfo("mfid", False, "mFID", "mean of class-wise FIDs", 1),
        MetricInfo("kid", False, "KID", "kernel Inception distance (unbiased MMD^2, polynomial kernel, subset mean)", 4),
        MetricInfo("kid_std", False, "KID std", "standard deviation of KID over its subsets (torch-fidelity's)", 4,
                   spread=True),
        MetricInfo("mkid", False, "mKID", "mean of class-wise KIDs", 4),
        MetricInfo("fd_dinov2", False, "FD DINOv2", "Frechet distance on DINOv2 ViT-L/14 features (EDM2, dgm-eval)", 1),
        MetricInfo("fd_dinov2_vitb14", False, "FD DINOv2-B", "Frechet distance on DINOv2 ViT-B/14 features", 1),
        MetricInfo("fd_clip", False, "FD CLIP", "Frechet distance on CLIP ViT-L/14@336px embeddings", 2),
        MetricInfo("cmmd", False, "CMMD", "RBF-kernel MMD on CLIP ViT-L/14@336px embeddings (sigma 10, x1000)", 3),
        MetricInfo("density", True, "Density", "prdc density (k-NN balls of real features)", 3),
        MetricInfo("coverage", True, "Coverage", "prdc coverage", 3),
        MetricInfo("precision", True, "Precision", "improved precision (k-NN manifold)", 3),
        MetricInfo("recall", True, "Recall", "improved recall (k-NN manifold)", 3),
        MetricInfo("lpips", False, "LPIPS", "paired LPIPS distance (lower = closer)", 3),
        MetricInfo("lpips_content", False, "LPIPS (content)", "LPIPS between source and output", 3),
        MetricInfo("lpips_diversity", True, "LPIPS div.", "mean pairwise LPIPS among outputs of one input", 3),
        MetricInfo("cluster_acc", True, "Acc.", "Hungarian (one-to-one) cluster accuracy", 3),
        MetricInfo("cluster_acc_majority", True, "Acc. (maj.)", "many-to-one majority cluster accuracy", 3),
        MetricInfo("nmi", True, "NMI", "normalised mutual information of clusters and labels", 3),
        MetricInfo("ioi", True, "IOI", "inter- over intra-cluster variance of style-code cosine similarity", 2),
        MetricInfo("pixel_accuracy", True, "Pix. acc.", "fraction of pixels within the colour threshold", 3),
        MetricInfo("translation_accuracy", True, "Trans. acc.",
                   "fraction of outputs an oracle classifier assigns to the reference's class (CLUIT)", 3),
    ]
}


def metric_info(name: str) -> MetricInfo:
    """Look a metric up; unknown names (a user's own) default to lower-is-better with their raw name."""
    if name in METRICS:
        return METRICS[name]
    return MetricInfo(name, False, name, "unregistered metric (assumed lower is better)")
