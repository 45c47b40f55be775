"""Device choice and numerics settings, decided once at the edges."""
from __future__ import annotations

import contextlib

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    from .errors import UnitEvalError

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UnitEvalError(f"unknown device {str(device)!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UnitEvalError(f"device {str(device)!r} is not supported; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UnitEvalError(f"device {str(device)!r} requested but CUDA is not available; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UnitEvalError(f"device {str(device)!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UnitEvalError(f"device {str(device)!r} requested but MPS is not available; use --device cpu")
    return dev


@contextlib.contextmanager
def _tf32(enabled: bool):
    """Set TF32 for matmuls and cuDNN, restoring the previous flags after."""
    old_matmul = torch.backends.cuda.matmul.allow_tf32
    old_cudnn = torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_matmul
        torch.backends.cudnn.allow_tf32 = old_cudnn


def exact_numerics():
    """Disable TF32 (matmul and cuDNN) for metric computations, restoring the previous flags after."""
    return _tf32(False)


PRECISIONS = ("fp32", "tf32", "bf16")


@contextlib.contextmanager
def feature_numerics(precision: str, device: torch.device):
    """Numerics of a feature extractor's forward.

    ``fp32`` (the default, and the only mode that reproduces published numbers) is plain float32 with TF32
    off. ``tf32`` (CUDA only) lets matmuls and convolutions use TF32; ``bf16`` runs the convolutions under
    bfloat16 autocast (CUDA, or CPUs with bf16 support). Both are opt-in speed modes that move FID slightly;
    the measured effect is in benchmarks/README.md.
    """
    check_precision(precision, device)
    if precision == "tf32":
        with _tf32(True):
            yield
        return
    with exact_numerics():
        if precision == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
        else:
            yield


def check_precision(precision: str, device: torch.device) -> str:
    """Validates a precision for a device at construction time (one clear error, before any work)."""
    from .errors import UnitEvalError

    if precision not in PRECISIONS:
        raise UnitEvalError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "tf32" and device.type != "cuda":
        raise UnitEvalError("precision tf32 needs a CUDA device (TF32 is a GPU tensor-core format); use fp32 or bf16")
    return precision
