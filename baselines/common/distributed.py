"""Distributed training helpers (torchrun environment variables; gloo on CPU, nccl on CUDA).

A run is distributed when ``WORLD_SIZE`` > 1 is set (``torchrun --nproc_per_node N ...``). Each
process uses ``cuda:LOCAL_RANK`` on GPU machines, the CPU otherwise. No DDP wrapper is used:
recipes average gradients explicitly (:func:`average_gradients`) right before an optimiser step,
which works for any number of forward passes per network and step.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from unit_eval.errors import UnitEvalError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK (defaults: a single process)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise UnitEvalError(f"bad torchrun environment variable: {exc}") from None
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def init(device: torch.device, timeout_s: float = 1800.0) -> DistInfo:
    """Initialise the default process group if the environment asks for one (idempotent)."""
    info = env_info()
    if not info.distributed:
        return info
    if not dist.is_available():
        raise UnitEvalError("WORLD_SIZE > 1 but torch.distributed is not available in this build")
    if not dist.is_initialized():
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            raise UnitEvalError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set; launch with torchrun")
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size,
                                timeout=datetime.timedelta(seconds=timeout_s))
    return info


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_active():
        dist.barrier()


def _params(modules_or_params):
    if isinstance(modules_or_params, torch.nn.Module):
        return list(modules_or_params.parameters())
    out = []
    for item in modules_or_params:
        if isinstance(item, torch.nn.Module):
            out.extend(item.parameters())
        else:
            out.append(item)
    return out


def average_gradients(modules_or_params) -> None:
    """All-reduce (mean) the gradients of a module / list of modules or parameters, in one flat buffer.

    Parameters whose ``grad`` is None are skipped (as in the single-process run, where the optimiser
    skips them too); which parameters have gradients is decided by the code path, the same on every
    rank. No-op outside a distributed run.
    """
    if not is_active():
        return
    params = [p for p in _params(modules_or_params) if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.reshape(-1).float() for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p.grad))
        offset += n


@torch.no_grad()
def average_buffers(module: torch.nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) across ranks so that every rank
    holds the same model (DDP instead broadcasts rank 0's buffers). No-op outside a distributed run."""
    if not is_active():
        return
    bufs = [b for b in module.buffers() if b is not None and b.is_floating_point()]
    if not bufs:
        return
    flat = torch.cat([b.reshape(-1).double() for b in bufs])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for b in bufs:
        n = b.numel()
        b.copy_(flat[offset:offset + n].view_as(b))
        offset += n


@torch.no_grad()
def broadcast_module(module: torch.nn.Module, src: int = 0) -> None:
    """Make parameters and buffers equal to rank ``src``'s (no-op outside a distributed run)."""
    if not is_active():
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src)


def all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a tensor (same shape on every rank) from all ranks along dim 0, in rank order."""
    if not is_active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, 0)


def all_reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of floats across ranks (keys sorted so every rank reduces the same layout)."""
    if not is_active() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


def gather_objects(obj):
    """Every rank's ``obj`` as a list (rank order) on every rank; ``[obj]`` outside a distributed run."""
    if not is_active():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    if not is_active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]
