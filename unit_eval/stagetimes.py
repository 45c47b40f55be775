"""Wall time per pipeline stage, for benchmarks: ``decode`` (image files to uint8), ``generate`` (the model),
``extract`` (Inception, LPIPS), ``statistics`` (Gaussians, FID, D&C, pixel counts).

Off unless a caller records (``with recording() as totals:``), so evaluation pays one ``None`` test per batch.
Stages never nest, so their times add up; whatever is outside them (sampling, Python glue) is the remainder of
the caller's wall time. On CUDA each stage synchronises the device at its ends, so asynchronous kernels are
charged to the stage that launched them (recording therefore slows a GPU run slightly).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

STAGES = ("decode", "generate", "extract", "statistics")

_totals: dict[str, float] | None = None


def _sync() -> None:
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@contextmanager
def recording() -> Iterator[dict[str, float]]:
    """Seconds per stage, filled while the block runs (one recording at a time)."""
    global _totals
    if _totals is not None:
        raise RuntimeError("stage times are already being recorded")
    _totals = {s: 0.0 for s in STAGES}
    try:
        yield _totals
    finally:
        _totals = None


@contextmanager
def stage(name: str) -> Iterator[None]:
    if _totals is None:
        yield
        return
    _sync()
    start = time.perf_counter()
    try:
        yield
    finally:
        _sync()
        if _totals is not None:
            _totals[name] += time.perf_counter() - start


def timed_iter(name: str, iterable) -> Iterator:
    """``iterable``'s items, the time spent producing each charged to ``name`` (a DataLoader's decoding)."""
    it = iter(iterable)
    while True:
        with stage(name):
            try:
                item = next(it)
            except StopIteration:
                return
        yield item
