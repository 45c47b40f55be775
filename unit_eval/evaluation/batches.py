"""Images into a model, batch by batch: the one place that turns uint8 images into the model's float input on its
device and brings the outputs back (protocols, figures), and a decoding cache for dataset images.
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..errors import UnitEvalError
from ..images import load_image, uint8_to_float
from ..stagetimes import stage


class ImageCache:
    """Decodes dataset images at one resolution (LRU-memoised: a reference is used many times)."""

    def __init__(self, size: int | None, resize_filter: str, capacity: int = 2048):
        self.size, self.resize_filter, self.capacity = size, resize_filter, capacity
        self._memo: OrderedDict[Path, np.ndarray] = OrderedDict()

    def array(self, path: Path, flip: bool = False) -> np.ndarray:
        arr = self._memo.get(path)
        if arr is None:
            arr = load_image(path, self.size, self.resize_filter)
            self._memo[path] = arr
            if len(self._memo) > self.capacity:
                self._memo.popitem(last=False)
        else:
            self._memo.move_to_end(path)
        return arr[:, ::-1] if flip else arr

    def uint8(self, paths: list[Path], flips: list[bool] | None = None) -> torch.Tensor:
        flips = flips or [False] * len(paths)
        with stage("decode"):
            arrays = [np.ascontiguousarray(self.array(p, f)) for p, f in zip(paths, flips)]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise UnitEvalError(f"images differ in size {sorted(shapes)}; they must be resized to one resolution")
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def model_batches(fn: Callable, batches: Iterator[Sequence[torch.Tensor]], device: torch.device | str
                  ) -> Iterator[tuple[list[torch.Tensor], object]]:
    """For each tuple of B x 3 x H x W batches (uint8, or floats already in [-1, 1]): (the inputs as floats in
    [-1, 1] on ``device``, ``fn(*inputs)`` computed without gradients). The caller checks and moves the outputs;
    protocols, figures and the trainers' sample grids all feed their models through here."""
    for batch in batches:
        inputs = [(uint8_to_float(x) if x.dtype == torch.uint8 else x).to(device) for x in batch]
        with torch.no_grad():
            with stage("generate"):
                out = fn(*inputs)
            yield inputs, out


def apply_in_batches(fn: Callable, images: np.ndarray, device: torch.device | str, batch_size: int = 32) -> torch.Tensor:
    """``fn`` on N x H x W x 3 uint8 images, ``batch_size`` at a time on ``device``; the outputs concatenated on
    the CPU (cluster ids, style codes)."""
    from ..images import to_tensor_uint8

    chunks = ((to_tensor_uint8(list(images[i:i + batch_size])),) for i in range(0, len(images), batch_size))
    return torch.cat([torch.as_tensor(out).detach().cpu() for _, out in model_batches(fn, chunks, device)])
