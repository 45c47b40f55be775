"""Exponential moving average of network weights (the copies evaluated by every baseline)."""
from __future__ import annotations

import copy

import torch


def make_ema(module: torch.nn.Module) -> torch.nn.Module:
    """A frozen deep copy of ``module`` (no gradients) to be updated with :func:`ema_update`."""
    ema = copy.deepcopy(module)
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: torch.nn.Module, module: torch.nn.Module, beta: float = 0.999, copy_buffers: bool = True) -> None:
    """``ema = beta * ema + (1 - beta) * module`` for parameters; buffers (BN statistics) are copied."""
    src = dict(module.named_parameters())
    for name, p in ema.named_parameters():
        p.lerp_(src[name].detach().to(p.dtype), 1.0 - beta)
    if copy_buffers:
        copy_buffers_(ema, module)


@torch.no_grad()
def copy_buffers_(dst: torch.nn.Module, src: torch.nn.Module) -> None:
    src_buffers = dict(src.named_buffers())
    for name, b in dst.named_buffers():
        if name in src_buffers and src_buffers[name] is not None and b is not None:
            b.copy_(src_buffers[name])


@torch.no_grad()
def copy_weights_(dst: torch.nn.Module, src: torch.nn.Module) -> None:
    dst.load_state_dict(src.state_dict())
