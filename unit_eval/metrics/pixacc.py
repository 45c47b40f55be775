"""Pixel accuracy of translated maps (UNIT paper, Sec. 4 / Fig. 2).

"A pixel is correct if the colour difference is within 16 of the ground truth." Following the nearest
public implementation (GcGAN's evaluate_maps.py): colour difference = max over RGB channels of
|pred - gt|, counted correct when strictly below the threshold, pooled over all pixels of all images.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnitEvalError

DEFAULT_THRESHOLD = 16


def correct_pixels(pred: np.ndarray, gt: np.ndarray, threshold: int = DEFAULT_THRESHOLD) -> tuple[int, int]:
    """(correct, total) pixel counts for one H x W x 3 uint8 pair."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise UnitEvalError(f"prediction {pred.shape} and ground truth {gt.shape} differ in size; resize explicitly (--size)")
    if pred.ndim != 3 or pred.shape[2] != 3:
        raise UnitEvalError(f"expected H x W x 3 images, got {pred.shape}")
    diff = np.abs(pred.astype(np.int16) - gt.astype(np.int16)).max(axis=2)
    return int((diff < threshold).sum()), int(diff.size)


def pixel_accuracy(pairs, threshold: int = DEFAULT_THRESHOLD) -> float:
    """Pooled pixel accuracy over an iterable of (pred, gt) uint8 H x W x 3 pairs."""
    correct = total = 0
    for pred, gt in pairs:
        c, t = correct_pixels(pred, gt, threshold)
        correct += c
        total += t
    if total == 0:
        raise UnitEvalError("no image pairs to score")
    return correct / total
