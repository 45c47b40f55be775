"""Cache location, the one atomic writer, stale temporaries, checksums.

Every file unit-eval writes for later runs to trust (converted weights, cached features, tables, baselines)
goes through :func:`atomic_write_bytes`: the bytes go to a hidden temporary named after the writing process
(``.NAME.ue<pid>-<host>.XXXX.tmp``) in the target's folder, are flushed to disk, and the temporary is renamed
over the target, so a reader sees the old file or the new one, never a part. A process killed before the
rename leaves only its temporary, which nothing reads and :func:`remove_stale_temporaries` removes later.
Files get the permissions the umask allows (a group-shared cache stays readable), not ``mkstemp``'s 0600.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable

# A temporary whose owner cannot be checked (another host sharing the cache, or no owner in its name) is stale
# after this long without a write; one whose owner is a live process on this host, after a day (its pid may
# have been reused).
STALE_TMP_S = 1800
STALE_OWNED_TMP_S = 86400

# ".<target>.ue<pid>-<host>.<random>.tmp" (files) or ".pip-ue<pid>-<host>.<random>" (folders)
_TMP_OWNER = re.compile(r"^\.pip-ue(\d+)-([A-Za-z0-9_]*)\.[^.]+$|\.ue(\d+)-([A-Za-z0-9_]*)\.[^.]+\.tmp$")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def cache_dir() -> Path:
    """``$UNIT_EVAL_CACHE`` or ``~/.cache/unit-eval`` (created on demand)."""
    root = os.environ.get("UNIT_EVAL_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "unit-eval"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def options_hash(options: dict) -> str:
    """Stable short hash of a JSON-serialisable dict of options (cache keys)."""
    text = json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _host_token() -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40]


def tmp_owner() -> str:
    """``ue<pid>-<host>``: lets a later run tell a temporary of a dead process from one still being written."""
    return f"ue{os.getpid()}-{_host_token()}"


def temporary_prefix(target: Path) -> str:
    return f".{target.name}.{tmp_owner()}."


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and (path.name.endswith(".tmp") or path.name.startswith(".pip-"))


def _publish(tmp: str, path: Path) -> None:
    os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary named after this process next to ``path``, flush it to disk, rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 text with ``\\n`` line ends."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy a file into place the same way (temporary named after this process, then rename)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=temporary_prefix(target), suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        _publish(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _owner_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _last_write(path: Path) -> float:
    """The newest mtime in ``path`` (a file, or a folder and everything under it)."""
    newest = path.lstat().st_mtime
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for entry in dirs + files:
                try:
                    newest = max(newest, os.lstat(os.path.join(root, entry)).st_mtime)
                except OSError:
                    pass
    return newest


def remove_stale_temporaries(folders: Iterable[Path], what: str = "an interrupted run") -> list[Path]:
    """Remove the ``.*.tmp`` files and ``.pip-*`` folders that killed processes left in ``folders``.

    One is stale when its name records a process on this host that no longer runs, or (when its owner cannot
    be checked: another host sharing the cache, or a name without owner) after :data:`STALE_TMP_S` seconds
    without a write; one whose recorded owner still runs is left alone for :data:`STALE_OWNED_TMP_S` (its pid
    may have been reused). Processes writing at the same time therefore never lose a temporary they are
    writing. Says on stderr what it removed; returns it.
    """
    host = _host_token()
    now = time.time()
    removed = []
    for folder in folders:
        try:
            entries = [Path(folder) / entry for entry in os.listdir(folder)]
        except OSError:
            continue
        for path in entries:
            if not is_temporary(path):
                continue
            try:
                age = now - _last_write(path)
            except OSError:
                continue
            owner = _TMP_OWNER.search(path.name)
            pid, owner_host = (owner.group(1, 2) if owner.group(1) else owner.group(3, 4)) if owner else (None, None)
            if pid is not None and owner_host == host:
                stale = not _owner_alive(int(pid)) or age > STALE_OWNED_TMP_S
            else:
                stale = age > STALE_TMP_S
            if not stale:
                continue
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                print(f"unit-eval: could not remove the stale temporary {path}: {exc}", file=sys.stderr, flush=True)
                continue
            removed.append(path)
    if removed:
        print(f"unit-eval: removed {len(removed)} temporary file(s) left by {what}", file=sys.stderr, flush=True)
    return removed
