"""Feature spaces behind one interface: TF-Inception (``unit_eval.features``), DINOv2 ViT-L/14 and ViT-B/14
(``dinov2``, timm's network), CLIP ViT-L/14@336px (``clip``, torch-fidelity's copy of OpenAI's network),
torchvision's ImageNet Inception-V3 (``torchvision_inception``, StarGAN v2's and GP-UNIT's FID network).

``base``: the interface (:class:`FeatureExtractor`), row provenance, the shared batching; ``registry``:
:func:`get_extractor`. Weights come from ``unit_eval.weights.feature_nets`` (user-provided, sha256 pinned).
"""
from .base import FeatureExtractor, NetworkFeatures, provenance
from .registry import EXTRACTORS, get_extractor

__all__ = ["FeatureExtractor", "NetworkFeatures", "provenance", "EXTRACTORS", "get_extractor"]
