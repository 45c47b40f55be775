"""``unit-eval report``: one self-contained HTML page of result rows.

The page holds the leaderboard (the numbers and bold cells of ``unit-eval table``, one table per dataset, the
iteration selection named under it), per-class FID bars, curves over training iterations with the selected
iterations ringed, sample grids, and the provenance of every number (protocol, seed, iteration, image counts,
extractor, dataset, unit-eval version, checkpoint sha256). It needs nothing at view time: inline CSS, figures as
``data:`` URIs, no script, and a Content-Security-Policy that forbids loading anything else.

- :mod:`.leaderboard`: the HTML table and the rows behind each cell;
- :mod:`.figures`: the figures of :mod:`unit_eval.plots` as embedded PNGs;
- :mod:`.page`: the page, :func:`write_report` (atomic: the file is whole or absent).
"""
from __future__ import annotations

from .page import render_report, write_report

__all__ = ["render_report", "write_report"]
