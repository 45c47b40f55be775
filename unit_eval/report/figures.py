"""The report's figures: :mod:`unit_eval.plots` draws them into a temporary folder and the page embeds each PNG as
a ``data:image/png;base64`` URI (the page never loads anything)."""
from __future__ import annotations

import base64
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..aggregate import aggregate, dataset_of
from ..errors import UnitEvalError
from ..results import MEAN, row_iteration
from ..selection import Selected

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Figure:
    caption: str  # plain text (escaped when written into the page)
    png: bytes

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) from the PNG header."""
        return struct.unpack(">II", self.png[16:24])

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


def checked_png(caption: str, data: bytes) -> Figure:
    """A figure from PNG bytes given by a caller (a sample grid); anything else is one clear error."""
    if not isinstance(data, (bytes, bytearray)) or not bytes(data).startswith(PNG_SIGNATURE) or len(data) < 24 \
            or bytes(data[12:16]) != b"IHDR":
        raise UnitEvalError(f"sample grid {caption!r} is not PNG data")
    return Figure(str(caption), bytes(data))


def _datasets(rows) -> list[str]:
    return list(dict.fromkeys(dataset_of(r) for r in rows))


def _named(title: str, dataset: str, several: bool) -> str:
    return f"{title} ({dataset or 'no dataset'})" if several else title


def curve_figures(rows: list[dict], selected: Selected, *, metrics: Sequence[str] | None, protocols: Sequence[str] | None,
                  selection_label: str) -> list[Figure]:
    """Class-"mean" metrics over training iterations, one figure per dataset, the selected iterations ringed.

    Only metrics with at least two evaluated iterations in some run are drawn (a single point is no curve)."""
    from ..plots import metric_curves

    out = []
    datasets = _datasets(rows)
    for dataset in datasets:
        mine = [r for r in rows if dataset_of(r) == dataset and row_iteration(r) is not None and r["class"] == MEAN
                and (not protocols or r["protocol"] in protocols)]
        spans: dict[str, dict[tuple, set]] = {}
        for r in mine:
            spans.setdefault(r["metric"], {}).setdefault((r["run"], r["protocol"]), set()).add(row_iteration(r))
        names = [m for m in spans if any(len(its) > 1 for its in spans[m].values())]
        if metrics:
            names = [m for m in metrics if m in names]
        if not names:
            continue
        chosen = {run: its for (run, d), its in selected.iterations.items() if d == dataset}
        title = _named("Metrics during training", dataset, len(datasets) > 1)
        with tempfile.TemporaryDirectory(prefix="unit-eval-report-") as tmp:
            path = Path(tmp) / "curves.png"
            metric_curves(mine, path, metrics=names, title=title, selected=chosen, selection_label=selection_label)
            out.append(Figure(f"{title}: {', '.join(names)} against the training iteration; rings mark the "
                              f"iterations the leaderboard uses ({selection_label}).", path.read_bytes()))
    return out


def fid_bar_figures(selected: Selected, *, protocols: Sequence[str] | None) -> list[Figure]:
    """Per-class FID of the leaderboard's rows (mean over seeds of the selected iterations), one figure per dataset."""
    from ..plots import fid_bars

    stats = aggregate(selected.rows)
    stats = stats[(stats["metric"] == "fid") & (stats["class"] != MEAN)]
    if protocols:
        stats = stats[stats["protocol"].isin(list(protocols))]
    out = []
    datasets = list(dict.fromkeys(stats["dataset"]))
    for dataset in datasets:
        part = stats[stats["dataset"] == dataset]
        rows = [{"run": r["run"], "protocol": r["protocol"], "metric": "fid", "class": r["class"], "value": float(r["mean"])}
                for r in part.to_dict("records")]
        several_seeds = bool((part["n"] > 1).any())
        title = _named("Per-class FID", dataset, len(datasets) > 1)
        with tempfile.TemporaryDirectory(prefix="unit-eval-report-") as tmp:
            path = Path(tmp) / "fid_bars.png"
            fid_bars(rows, path, title=title)
            out.append(Figure(f"{title}: one bar per class{' (mean over seeds)' if several_seeds else ''}, the dashed "
                              "line the mean over classes.", path.read_bytes()))
    return out


def grid_figures(grids: Mapping[str, bytes] | None) -> list[Figure]:
    return [checked_png(caption, data) for caption, data in (grids or {}).items()]
