"""Result rows (one JSON object per line) shared by evaluation, tables and regression checks.

The row schema lives here alone: :func:`make_row` builds every row (protocols through :class:`ProtocolResult`,
folder commands too), :func:`read_rows` checks every row read back. A row: ``run``, ``dataset`` (its name: a named dataset's, else the data folder's name), ``protocol``,
``metric``, ``class`` ("mean" for the aggregate), ``value``, and what makes it reproducible: ``seed``,
``n_real``, ``n_fake``, ``extractor``, ``version``, ``ckpt_sha256`` (when a checkpoint was evaluated),
``iteration`` (the training iteration of that checkpoint, when it records one), ``time`` (UTC ISO), plus
free-form ``options``. FID-type rows (FID, KID, D&C) also record ``feature_dim``, the dimension of the features their
``n_real`` and ``n_fake`` samples live in (fewer samples than dimensions: exact, but biased). With ``--bootstrap B``
a row carries its percentile interval: ``ci_low``, ``ci_high``, ``ci_level``, ``bootstrap`` (B) and
``bootstrap_std`` (the replicates' standard deviation); these keys are always present, null without a bootstrap. Rows never carry absolute paths of the machine that wrote
them (they are shared and committed): inputs are identified by names, hashes and counts.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, TypedDict

from . import __version__
from .errors import UnitEvalError

REQUIRED_KEYS = ("run", "protocol", "metric", "class", "value")
MEAN = "mean"  # the class of an aggregate row (the mean over classes, or a set without classes)

# The schema of a row as JSON (``class`` is a Python keyword, hence the functional form).
Row = TypedDict("Row", {
    "run": str, "dataset": "str | None", "protocol": str, "metric": str, "class": str, "value": float,
    "seed": "int | None", "n_real": "int | None", "n_fake": "int | None", "extractor": "str | None", "version": str,
    "ckpt_sha256": "str | None", "iteration": "int | None", "time": str, "options": dict,
    "feature_dim": "int | None", "ci_low": "float | None", "ci_high": "float | None", "ci_level": "float | None",
    "bootstrap": "int | None", "bootstrap_std": "float | None",
})
GAUSSIAN_METRICS = ("fid", "mfid", "fd_dinov2", "fd_dinov2_vitb14", "fd_clip", "fid_torchvision")  # metrics of Gaussians fitted to features: biased when samples < dimensions
INTERVAL_KEYS = ("ci_low", "ci_high", "ci_level", "bootstrap", "bootstrap_std")


def make_row(
    *,
    run: str,
    protocol: str,
    metric: str,
    value: float,
    cls: str = MEAN,
    dataset: str | None = None,
    seed: int | None = None,
    n_real: int | None = None,
    n_fake: int | None = None,
    extractor: str | None = None,
    ckpt_sha256: str | None = None,
    iteration: int | None = None,
    options: dict | None = None,
    feature_dim: int | None = None,
    interval=None,
) -> Row:
    """``interval``: a :class:`unit_eval.metrics.bootstrap.Interval` (or None)."""
    ci = interval.fields() if interval is not None else dict.fromkeys(INTERVAL_KEYS)
    return {
        "run": run,
        "dataset": dataset,
        "protocol": protocol,
        "metric": metric,
        "class": cls,
        "value": float(value),
        "seed": seed,
        "n_real": n_real,
        "n_fake": n_fake,
        "extractor": extractor,
        "version": __version__,
        "ckpt_sha256": ckpt_sha256,
        "iteration": None if iteration is None else int(iteration),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "options": options or {},
        "feature_dim": None if feature_dim is None else int(feature_dim),
        **ci,
    }


@dataclass
class ProtocolResult:
    """Values per metric and class ("mean" for the aggregate), with counts and everything for result rows."""

    protocol: str
    seed: int
    values: dict[str, dict[str, float]]
    n_real: dict[str, int] = field(default_factory=dict)  # class -> count; "mean" -> total
    n_fake: dict[str, int] = field(default_factory=dict)
    extractor: str | None = None
    options: dict = field(default_factory=dict)
    dataset: str | None = None
    feature_dim: int | None = None  # FID-type results: the features' dimension
    intervals: dict = field(default_factory=dict)  # metric -> class -> bootstrap Interval

    def rows(self, run: str, ckpt_sha256: str | None = None, iteration: int | None = None) -> list[Row]:
        """One row per (metric, class), built by :func:`make_row`, the only row builder."""
        rows = []
        for metric, per in self.values.items():
            for cls, value in per.items():
                rows.append(make_row(run=run, protocol=self.protocol, metric=metric, value=value, cls=cls,
                                     dataset=self.dataset, seed=self.seed,
                                     n_real=self.n_real.get(cls, self.n_real.get(MEAN)),
                                     n_fake=self.n_fake.get(cls, self.n_fake.get(MEAN)),
                                     extractor=self.extractor, ckpt_sha256=ckpt_sha256, iteration=iteration,
                                     options=self.options, feature_dim=self.feature_dim,
                                     interval=self.intervals.get(metric, {}).get(cls)))
        return rows

    def summary(self) -> dict:
        out: dict = {"protocol": self.protocol, "seed": self.seed}
        for metric, per in self.values.items():
            if MEAN in per:
                out[metric] = per[MEAN]
        if "mfid" in self.values:
            out["per_class"] = dict(self.values["fid"])
        else:
            for metric, per in self.values.items():
                classes = {c: v for c, v in per.items() if c != MEAN}
                if classes:
                    out["per_class"] = classes
                    break
        out["n_real"] = self.n_real.get(MEAN)
        out["n_fake"] = self.n_fake.get(MEAN)
        out["extractor"] = self.extractor
        out["dataset"] = self.dataset
        out.update(self.interval_summary())
        return out

    def interval_summary(self) -> dict:
        """``feature_dim`` and, with a bootstrap, ``ci`` (metric -> [low, high] of the aggregate), ``ci_level``
        and ``bootstrap`` (B): constant keys for a given kind of result."""
        out: dict = {}
        if self.feature_dim is not None:
            out["feature_dim"] = self.feature_dim
        means = {m: per[MEAN] for m, per in self.intervals.items() if MEAN in per}
        if means:
            first = next(iter(means.values()))
            out["ci"] = {m: [iv.low, iv.high] for m, iv in means.items()}
            out["ci_level"], out["bootstrap"] = first.level, first.resamples
        return out


def row_iteration(row: dict) -> int | None:
    """The training iteration a row was evaluated at: its ``iteration`` (earlier demo rows kept it in
    ``options.iteration``), or None."""
    value = row.get("iteration")
    if value is None and isinstance(row.get("options"), dict):
        value = row["options"].get("iteration")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value)


def append_rows(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Append rows to a JSONL file (created with its folder if needed), whole or not at all; returns how many.

    All lines go out in one locked append; if the write fails part way (disk full), the file is cut back to its
    previous length, so a reader never sees half a row set. A last line without its newline (a file edited by
    hand) is ended first, so the new rows never merge into it."""
    import fcntl

    path = Path(path)
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lines = [json.dumps(row, sort_keys=False, allow_nan=False) + "\n" for row in rows]
    except ValueError:
        raise UnitEvalError(f"a result row holds NaN or infinity; nothing was appended to {path}") from None
    if not lines:
        return 0
    data = "".join(lines).encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as exc:
        raise UnitEvalError(f"cannot append to {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    except OSError as exc:
        raise UnitEvalError(f"cannot append to {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return len(lines)


def check_writable(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse, before any work, an output path that cannot be written: a folder, a file inside a file, a
    read-only place."""
    path = Path(path)
    if path.is_dir():
        raise UnitEvalError(f"{what} {path} is a folder; give a file path")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UnitEvalError(f"{what} {path} cannot be created: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UnitEvalError(f"{what} {path} is not writable")
    return path


def read_rows(path: str | os.PathLike) -> list[Row]:
    """Read a JSONL results file; each line must be a JSON object with the required keys."""
    path = Path(path)
    if not path.is_file():
        raise UnitEvalError(f"results file not found: {path}" if not path.exists() else f"{path} is not a file")
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                rows.append(_parse_row(line, f"{path}:{lineno}"))
    except UnicodeDecodeError:
        raise UnitEvalError(f"{path} is not a UTF-8 text file of result rows (JSONL)") from None
    except OSError as exc:
        raise UnitEvalError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not rows:
        raise UnitEvalError(f"results file is empty: {path}")
    return rows


def _parse_row(line: str, where: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UnitEvalError(f"{where}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise UnitEvalError(f"{where}: nested too deeply to be a result row") from None
    if not isinstance(row, dict):
        kind = {type(None): "null", bool: "a boolean", int: "a number", float: "a number", str: "a string",
                list: "an array"}.get(type(row), type(row).__name__)
        raise UnitEvalError(f"{where}: a result row must be a JSON object, got {kind}")
    missing = [k for k in REQUIRED_KEYS if k not in row]
    if missing:
        raise UnitEvalError(f"{where}: result row lacks keys {missing}")
    value = row["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UnitEvalError(f"{where}: value is not a finite number: {value!r}")
    iteration = row.get("iteration")
    if iteration is not None and (isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0):
        raise UnitEvalError(f"{where}: iteration must be a non-negative integer or null, got {iteration!r}")
    low, high = row.get("ci_low"), row.get("ci_high")
    if (low is None) != (high is None):
        raise UnitEvalError(f"{where}: ci_low and ci_high must both be numbers or both null")
    if low is not None:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)) \
                or low > high:
            raise UnitEvalError(f"{where}: ci_low and ci_high must be finite numbers with ci_low <= ci_high, "
                                f"got {low!r}, {high!r}")
    return row


def undersampled(rows: Iterable[Mapping]) -> str | None:
    """One sentence when any FID row's real or fake set has fewer samples than its features have dimensions (the
    value is exact, but biased: a covariance of rank below D; KID's estimator is unbiased, D&C is no Gaussian),
    else None."""
    worst: dict[str, tuple[int, int]] = {}
    for r in rows:
        dim = r.get("feature_dim")
        if r.get("metric") not in GAUSSIAN_METRICS:
            continue
        if not isinstance(dim, int) or isinstance(dim, bool):
            continue
        counts = [n for n in (r.get("n_real"), r.get("n_fake")) if isinstance(n, int) and not isinstance(n, bool)]
        if counts and min(counts) < dim:
            metric = str(r.get("metric"))
            if metric not in worst or min(counts) < worst[metric][0]:
                worst[metric] = (min(counts), dim)
    if not worst:
        return None
    parts = ", ".join(f"{m} (down to {n} samples in {d} dimensions)" for m, (n, d) in sorted(worst.items()))
    return (f"fewer samples than feature dimensions for {parts}: the values are exact but biased (FID grows as "
            "sets shrink); compare only numbers computed with the same sample counts, or use KID")
