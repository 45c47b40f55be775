import numpy as np
import pytest

from unit_eval.errors import UnitEvalError
from unit_eval.metrics.pixacc import correct_pixels, pixel_accuracy


def test_max_channel_difference_and_strict_threshold():
    gt = np.zeros((1, 4, 3), dtype=np.uint8)
    pred = gt.copy()
    pred[0, 0] = (15, 0, 0)   # max diff 15 < 16: correct
    pred[0, 1] = (0, 16, 0)   # 16 is not < 16: wrong
    pred[0, 2] = (10, 10, 10)  # each channel 10: correct (max, not sum)
    pred[0, 3] = (0, 0, 200)  # wrong
    assert correct_pixels(pred, gt, 16) == (2, 4)


def test_pooled_over_all_pixels():
    a = (np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 3), np.uint8))  # 4/4 correct
    b = (np.full((4, 4, 3), 255, np.uint8), np.zeros((4, 4, 3), np.uint8))  # 0/16 correct
    assert pixel_accuracy([a, b]) == pytest.approx(4 / 20)  # pooled, not the mean of 1.0 and 0.0


def test_size_mismatch_is_an_error():
    with pytest.raises(UnitEvalError, match="differ in size"):
        correct_pixels(np.zeros((2, 2, 3), np.uint8), np.zeros((3, 3, 3), np.uint8))


def test_no_pairs():
    with pytest.raises(UnitEvalError, match="no image pairs"):
        pixel_accuracy([])
