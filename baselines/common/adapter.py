"""Input checks shared by the baselines' Translator adapters."""
from __future__ import annotations

import torch

from unit_eval.errors import UnitEvalError


def model_input(x, model: str, what: str, image_size: int, device: torch.device) -> torch.Tensor:
    """``x`` as float32 on ``device`` once it is a B x 3 x S x S tensor at the model's size; else one clear error."""
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise UnitEvalError(f"{model} {what} must be a B x 3 x H x W float tensor, got {shape}")
    if x.shape[-2:] != (image_size, image_size):
        raise UnitEvalError(
            f"{model} {what} images are {x.shape[-2]}x{x.shape[-1]}, the model works at {image_size}x{image_size}")
    return x.to(device, torch.float32)
