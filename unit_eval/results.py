"""Result rows (one JSON object per line) shared by evaluation, tables and regression checks.

A row: ``run``, ``dataset`` (its name: a named dataset's, else the data folder's name), ``protocol``,
``metric``, ``class`` ("mean" for the aggregate), ``value``, and what makes it reproducible: ``seed``,
``n_real``, ``n_fake``, ``extractor``, ``version``, ``ckpt_sha256`` (when a checkpoint was evaluated),
``time`` (UTC ISO), plus free-form ``options``. Rows never carry absolute paths of the machine that wrote
them (they are shared and committed): inputs are identified by names, hashes and counts.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Iterable

from . import __version__
from .errors import UnitEvalError

REQUIRED_KEYS = ("run", "protocol", "metric", "class", "value")


def make_row(
    *,
    run: str,
    protocol: str,
    metric: str,
    value: float,
    cls: str = "mean",
    dataset: str | None = None,
    seed: int | None = None,
    n_real: int | None = None,
    n_fake: int | None = None,
    extractor: str | None = None,
    ckpt_sha256: str | None = None,
    options: dict | None = None,
) -> dict:
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
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "options": options or {},
    }


def append_rows(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Append rows to a JSONL file (created with its folder if needed); returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row, sort_keys=False) + "\n" for row in rows]
    with open(path, "a", encoding="utf-8") as fh:
        fh.writelines(lines)
    return len(lines)


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL results file; each line must be a JSON object with the required keys."""
    path = Path(path)
    if not path.is_file():
        raise UnitEvalError(f"results file not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UnitEvalError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            missing = [k for k in REQUIRED_KEYS if k not in row]
            if not isinstance(row, dict) or missing:
                raise UnitEvalError(f"{path}:{lineno}: result row lacks keys {missing}")
            if not isinstance(row["value"], (int, float)) or not math.isfinite(row["value"]):
                raise UnitEvalError(f"{path}:{lineno}: value is not a finite number: {row['value']!r}")
            rows.append(row)
    if not rows:
        raise UnitEvalError(f"results file is empty: {path}")
    return rows
