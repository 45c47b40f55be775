"""The ``run.pt`` checkpoint format ("unit-eval/1"), always loaded with ``weights_only=True``.

Layout: ``format`` = "unit-eval/1", ``model`` in {"tunit", "funit", "unit"}, ``config`` (plain constructor
arguments), ``state_dict`` (inference networks, EMA weights), ``meta`` (iterations, dataset, class names,
seed, unit-eval version, time). Only plain containers, numbers, strings and tensors: no pickled code.
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

from . import __version__
from .cache import atomic_torch_save, sha256_file
from .errors import UnitEvalError
from .weights.safe_load import load_weights_only  # the one weights-only loader; also imported from here

FORMAT = "unit-eval/1"
MODELS = ("tunit", "funit", "unit", "cluit", "gpunit")


def save_run(path: str | os.PathLike, *, model: str, config: dict, state_dict: dict, meta: dict) -> Path:
    if model not in MODELS:
        raise UnitEvalError(f"unknown model {model!r}; expected one of {', '.join(MODELS)}")
    meta = dict(meta)
    meta.setdefault("unit_eval_version", __version__)
    meta.setdefault("time", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    payload = {
        "format": FORMAT,
        "model": model,
        "config": dict(config),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
        "meta": meta,
    }
    atomic_torch_save(payload, path)
    return Path(path)


def load_checkpoint(path: str | os.PathLike):
    """``torch.load(weights_only=True)`` of a run.pt or an official TUNIT ``.ckpt`` (one read, no code runs)."""
    return load_weights_only(
        path, "{path} is not a loadable unit-eval checkpoint (refused or unreadable with weights_only=True: {reason})")


def is_official_tunit(payload) -> bool:
    """An official clovaai/tunit checkpoint: ``{C,C_EMA,D,G,G_EMA}_state_dict`` (+ optimisers, epoch)."""
    return isinstance(payload, dict) and "G_EMA_state_dict" in payload and "C_EMA_state_dict" in payload


def load_run(path: str | os.PathLike) -> dict:
    """Load and validate a run.pt; every failure is a one-line ``UnitEvalError``."""
    return validate_run(load_checkpoint(path), path)


def validate_run(payload, path: str | os.PathLike) -> dict:
    """Check a loaded run.pt's layout and add its ``sha256``; every failure is a one-line ``UnitEvalError``."""
    path = Path(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        hint = ""
        if isinstance(payload, dict) and any(k.endswith("_state_dict") for k in payload):
            hint = " (it has *_state_dict keys but not G_EMA_state_dict and C_EMA_state_dict, so it is no official TUNIT .ckpt either)"
        raise UnitEvalError(f"{path}: expected format {FORMAT!r}, found {found!r}{hint}")
    if payload.get("model") not in MODELS:
        raise UnitEvalError(f"{path}: unknown model {payload.get('model')!r}; expected one of {', '.join(MODELS)}")
    for key in ("config", "state_dict", "meta"):
        if not isinstance(payload.get(key), dict):
            raise UnitEvalError(f"{path}: checkpoint lacks the {key!r} dict")
    payload["sha256"] = sha256_file(path)
    return payload
