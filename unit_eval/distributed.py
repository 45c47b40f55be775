"""Processes under torchrun: rank, world size, the process group and the collectives unit-eval uses.

A run is distributed when ``WORLD_SIZE`` > 1 is set (``torchrun --nproc_per_node N ...``). The group uses
gloo on the CPU and nccl on CUDA, with every rank on ``cuda:LOCAL_RANK``. Outside torchrun every function here
is the single-process path (no-ops, identity collectives). Evaluation (``unit_eval.sharding``) and the bundled
trainers (``unit_eval.baselines``) both import it from here. No DDP wrapper is used for training: recipes
average gradients explicitly (:func:`average_gradients`) right before an optimiser step, which works for any
number of forward passes per network and step.

:func:`solo` makes one rank work alone for a while (a sweep's checkpoint, an evaluation during training): inside
it every function here answers as in a single process, while the process group stays up for afterwards.
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import threading
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import UnitEvalError

_SHUTDOWN_REGISTERED = False
_SOLO = threading.local()  # depth of solo() on this thread


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


@contextlib.contextmanager
def solo():
    """This rank works alone inside the block: rank 0 of a world of 1 for :func:`env_info`, no collectives
    (:func:`is_active` is False), files written as a single process would. Collectives resume after the block.
    ``LOCAL_RANK`` is kept, so an unindexed CUDA device still means this rank's GPU."""
    _SOLO.depth = getattr(_SOLO, "depth", 0) + 1
    try:
        yield
    finally:
        _SOLO.depth -= 1


def in_solo() -> bool:
    return getattr(_SOLO, "depth", 0) > 0


def env_info() -> DistInfo:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK (defaults: a single process; inside :func:`solo`, a single
    process on this rank's local device)."""
    if in_solo():
        return DistInfo(rank=0, world_size=1, local_rank=_local_rank())
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


def _local_rank() -> int:
    try:
        return int(os.environ.get("LOCAL_RANK", os.environ.get("RANK", "0")))
    except ValueError:
        return 0


def is_active() -> bool:
    return not in_solo() and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


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


# --------------------------------------------------------------------------- the evaluator's view

def info() -> DistInfo:
    """Rank, world size and local rank from torchrun's environment (a single process by default)."""
    return env_info()


def is_main() -> bool:
    """True on rank 0 and outside torchrun; the rank that prints results and writes files."""
    env = env_info()
    return not env.distributed or env.is_main


def local_device(device: str | torch.device) -> torch.device:
    """Under torchrun an unindexed CUDA device becomes ``cuda:LOCAL_RANK``; anything else is unchanged."""
    device = torch.device(device)
    env = env_info()
    if env.distributed and device.type == "cuda" and device.index is None:
        return torch.device("cuda", env.local_rank)
    return device


def start(device: str | torch.device) -> bool:
    """Join torchrun's process group if the environment asks for one (idempotent); True when distributed.

    The backend follows ``device``: nccl for CUDA (each rank on ``cuda:LOCAL_RANK``), gloo otherwise; the group
    is destroyed at exit.
    """
    global _SHUTDOWN_REGISTERED
    env = env_info()
    if not env.distributed:
        return False
    if not (dist.is_available() and dist.is_initialized()):
        init(local_device(device))
        if not _SHUTDOWN_REGISTERED:
            atexit.register(shutdown)
            _SHUTDOWN_REGISTERED = True
    if dist.get_world_size() != env.world_size:
        raise UnitEvalError(f"process group has {dist.get_world_size()} ranks but WORLD_SIZE is {env.world_size}")
    return True


def comm_device() -> torch.device:
    """Where collective buffers live: the rank's GPU for nccl, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_true(flag: bool) -> bool:
    """True when ``flag`` holds on every rank (a MIN all-reduce); ``flag`` itself outside a process group."""
    if not is_active():
        return bool(flag)
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over the ranks (on the communication device); itself outside a group."""
    if not is_active():
        return tensor
    buf = tensor.to(comm_device())
    dist.all_reduce(buf, op=dist.ReduceOp.SUM)
    return buf


def on_main(fn, *args, **kwargs):
    """Run ``fn`` on rank 0 only and hand its (picklable, small) result to every rank."""
    if not is_active():
        return fn(*args, **kwargs)
    result = fn(*args, **kwargs) if is_main() else None
    return broadcast_object(result, src=0)
