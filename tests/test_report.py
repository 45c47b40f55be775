"""``unit-eval report``: the HTML page's leaderboard equals ``unit-eval table``'s Markdown cell by cell (bold
included), hostile names stay text, the file is whole or absent, and a real headless Chromium renders the page
without a console message, draws something, decodes every embedded image and shows the JSONL's numbers.

Chromium is looked up on PATH; where it is missing the browser tests skip, except where UNIT_EVAL_REQUIRE_CHROMIUM
is set (``.ci/run`` installs Debian's ``chromium`` and sets it, so CI never skips them)."""
from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unit_eval.aggregate import aggregate
from unit_eval.errors import UnitEvalError
from unit_eval.markup import markdown_escape
from unit_eval.report import render_report, write_report
from unit_eval.results import append_rows, make_row, read_rows
from unit_eval.selection import select_rows
from unit_eval.tables import build_table, make_table

from .conftest import write_digits

HOSTILE_RUN = "<script>alert(1)</script>"
HOSTILE_PROTOCOL = 'p&<b>"x"\'s'
REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------------- rows
def sweep_rows() -> list[dict]:
    """Three runs (one hostile), two or three seeds, eight iterations, per-class FID, two datasets."""
    rows = []
    rng = np.random.default_rng(7)
    runs = {"TUNIT": 60.0, "FUNIT_v2*": 75.0, HOSTILE_RUN: 90.0}
    for r_index, (run, base) in enumerate(runs.items()):
        sha = f"{r_index + 1:x}" * 64
        for it in range(100, 801, 100):
            for seed in range(3 if run == "TUNIT" else 2):
                decay = base * (1.0 + 2.0 * math.exp(-it / 250)) + rng.normal(0, 1.5)
                common = dict(run=run, dataset="afhq", seed=seed, n_real=1500, n_fake=810, iteration=it,
                              extractor="inception-v3-tf-2015-12-05/pool3/tf1-bilinear", ckpt_sha256=sha)
                rows.append(make_row(protocol="tunit-mfid", metric="mfid", value=decay, **common))
                for cls in ("cat", "dog", "wild"):
                    rows.append(make_row(protocol="tunit-mfid", metric="fid", cls=cls,
                                         value=decay + {"cat": -8, "dog": 3, "wild": 5}[cls], **common))
                rows.append(make_row(protocol="tunit-dc", metric="density", value=0.5 + it / 2000 + rng.normal(0, 0.01),
                                     **common))
                rows.append(make_row(protocol="tunit-dc", metric="coverage", value=0.4 + it / 3000 + r_index / 100,
                                     **common))
        # a second dataset, no iterations (a user model's rows), hostile protocol name
        for seed in (0, 1):
            rows.append(make_row(run=run, dataset="summer2winter", protocol=HOSTILE_PROTOCOL, metric="fid",
                                 value=40.0 + 5 * r_index + seed * 0.37, seed=seed, n_real=3000, n_fake=3000,
                                 extractor="inception-v3-tf-2015-12-05/pool3/tf1-bilinear"))
    # a re-evaluation: the last row of a seed wins, in the table and in the provenance
    rows.append(make_row(run="TUNIT", dataset="summer2winter", protocol=HOSTILE_PROTOCOL, metric="fid", value=41.25,
                         seed=0, n_real=3000, n_fake=3000, extractor="inception-v3-tf-2015-12-05/pool3/tf1-bilinear"))
    return rows


# ----------------------------------------------------------------------------------------------------- parsing
class PageParser(HTMLParser):
    """Leaderboard cells (attributes, text, bold), run headers, provenance rows, images, scripts, body attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cells, self.runs, self.sources, self.images, self.tags = [], [], [], [], []
        self.body, self._cell, self._run, self._in_board = {}, None, None, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "body":
            self.body = a
        if tag == "table" and "board" in (a.get("class") or "").split():
            self._in_board += 1
        if tag == "img":
            self.images.append(a)
        if self._in_board and tag == "td" and "data-value" in a:
            self._cell = {**a, "text": "", "bold": False}
        elif self._in_board and tag == "th" and "data-run" in a:
            self._run = {**a, "text": ""}
        elif tag == "strong" and self._cell is not None:
            self._cell["bold"] = True
        elif tag == "tr" and "source" in (a.get("class") or "").split():
            self.sources.append(a)

    def handle_endtag(self, tag):
        if tag == "table" and self._in_board:
            self._in_board -= 1
        if tag == "td" and self._cell is not None:
            self._cell["text"] = self._cell["text"].strip()
            self.cells.append(self._cell)
            self._cell = None
        if tag == "th" and self._run is not None:
            self.runs.append(self._run)
            self._run = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        if self._run is not None:
            self._run["text"] += data


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser


def markdown_cells(rows, select=None) -> dict[tuple, tuple[str, bool]]:
    """(run, dataset, protocol, metric, class) -> (text without bold marks, bold) from ``make_table``'s Markdown."""
    text = make_table(rows, "markdown", select=select)
    lines = [line for line in text.splitlines() if line.startswith("|")]
    board = build_table(select_rows(rows, select).rows)
    out = {}
    split = re.compile(r"(?<!\\)\|")
    for run, line in zip(board.runs, lines[2:]):
        parts = [p.strip() for p in split.split(line)[1:-1]]
        assert parts[0] == markdown_escape(run)
        for col, cell in zip(board.columns, parts[1:]):
            bold = cell.startswith("**") and cell.endswith("**")
            out[(run, col.dataset, col.protocol, col.metric, col.cls)] = (cell[2:-2] if bold else cell, bold)
    assert len(lines) == 2 + len(board.runs)
    return out


def cell_key(cell: dict) -> tuple:
    return (cell["data-run"], cell["data-dataset"], cell["data-protocol"], cell["data-metric"], cell["data-class"])


def assert_page_equals_rows(page: PageParser, rows, select=None) -> int:
    """Every leaderboard cell: text and bold as the Markdown table's, data-value as aggregate's mean (exactly);
    every number has its provenance rows, whose values give the mean again. Returns the number of cells checked."""
    md = markdown_cells(rows, select)
    stats = aggregate(select_rows(rows, select).rows)
    means = {tuple(k): m for k, m in zip(stats[["run", "dataset", "protocol", "metric", "class"]].values.tolist(),
                                         stats["mean"])}
    seen = set()
    for cell in page.cells:
        key = cell_key(cell)
        assert key not in seen, f"cell {key} shown twice"
        seen.add(key)
        assert (cell["text"], cell["bold"]) == md[key], key
        if cell["data-value"] == "":
            assert md[key][0] == "–" and key not in means
            continue
        assert float(cell["data-value"]) == means[key], key  # repr round-trips: equal, not approximately
        behind = [s for s in page.sources if cell_key(s) == key]
        per_seed: dict[str, list[float]] = {}
        for s in behind:
            per_seed.setdefault(s["data-seed"], []).append(float(s["data-value"]))
        seed_means = [sum(v) / len(v) for v in per_seed.values()]
        assert sum(seed_means) / len(seed_means) == pytest.approx(means[key], rel=1e-12, abs=1e-12), key
    # every number of the Markdown table is in the page
    assert {k for k, (t, _) in md.items() if t != "–"} <= {k for k in seen if md[k][0] != "–"}
    return len(seen)


# ----------------------------------------------------------------------------------------------------- unit tests
@pytest.mark.parametrize("select", [None, "best", "best5", "iter=300"])
def test_leaderboard_cells_equal_the_markdown_table(select):
    rows = sweep_rows()
    text = render_report(rows, select=select)
    page = parse_page(text)
    checked = assert_page_equals_rows(page, rows, select)
    assert checked >= 9 and any(c["bold"] for c in page.cells) and not all(c["bold"] for c in page.cells)
    footnote = select_rows(rows, select).footnote()
    assert footnote and escape(footnote) in text  # the selection is named under the leaderboard
    if select == "best5":
        assert "Mean over the 5 iterations with the best mFID (best5)" in footnote


def test_several_seeds_show_mean_and_std_and_the_last_reevaluation_wins():
    rows = sweep_rows()
    page = parse_page(render_report(rows))
    tunit = next(c for c in page.cells if c["data-run"] == "TUNIT" and c["data-dataset"] == "summer2winter")
    assert tunit["text"] == "40.8 ± 0.6" and tunit["data-n"] == "2"  # seeds 41.25 (re-evaluated) and 40.37
    assert float(tunit["data-value"]) == (41.25 + 40.37) / 2
    values = sorted(float(s["data-value"]) for s in page.sources if cell_key(s) == cell_key(tunit))
    assert values == [40.37, 41.25]  # the superseded 40.0 is not listed


def test_hostile_names_are_text():
    rows = sweep_rows()
    text = render_report(rows, title="</title><script>alert(2)</script>")
    page = parse_page(text)
    assert "script" not in page.tags  # the page has no script element at all
    assert HOSTILE_RUN not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert HOSTILE_RUN in {r["text"] for r in page.runs} and HOSTILE_PROTOCOL in {c["data-protocol"] for c in page.cells}
    assert "<b>" not in text and "&lt;/title&gt;&lt;script&gt;alert(2)" in text


def test_selected_iterations_are_in_the_curves_and_provenance():
    rows = sweep_rows()
    text = render_report(rows, select="best5")
    page = parse_page(text)
    assert {"curves", "fid-bars"} <= set(re.findall(r'<h2 id="([a-z-]+)"', text))
    chosen = select_rows(rows, "best5").iterations
    for (run, dataset), its in chosen.items():
        listed = {int(s["data-iteration"]) for s in page.sources if s["data-run"] == run and s["data-dataset"] == dataset}
        assert listed == set(its)
    sha = "1" * 64  # full hash in the title, short one shown
    assert f'<code title="{sha}">{sha[:12]}</code>' in text
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images) and len(page.images) == 2


def test_no_external_resources():
    text = render_report(sweep_rows(), grids={"a grid": _png(40, 30)})
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", text, re.I)
    assert "@import" not in text and "url(" not in text
    assert "default-src 'none'; img-src data:" in text  # the browser itself refuses anything else


def _png(w, h, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_write_report_is_whole_or_absent(tmp_path, monkeypatch):
    rows = sweep_rows()
    out = tmp_path / "r.html"
    with pytest.raises(UnitEvalError, match="not PNG data"):
        write_report(rows, out, grids={"broken": b"GIF89a..."})
    with pytest.raises(UnitEvalError, match="--select"):
        write_report(rows, out, select="worst")
    assert list(tmp_path.iterdir()) == []
    out.write_text("previous report")
    real_replace = os.replace

    def full_disk(src, dst):  # the report's own rename fails (the figures' temporaries are renamed as usual)
        if Path(dst) == out:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(UnitEvalError, match="cannot write the report .*No space left"):
        write_report(rows, out)
    assert out.read_text() == "previous report" and [p.name for p in tmp_path.iterdir()] == ["r.html"]
    monkeypatch.undo()
    assert write_report(rows, out, title="ok") == out and "<title>ok</title>" in out.read_text()


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "unit_eval.cli", "report", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_cli_errors_are_one_line_and_leave_no_file(tmp_path):
    results = tmp_path / "rows.jsonl"
    append_rows(results, sweep_rows())
    (tmp_path / "afile").write_text("x")
    bad_out = tmp_path / "afile" / "r.html"
    proc = _cli(str(results), "--out", str(bad_out))
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: --out {bad_out} cannot be created: {tmp_path / 'afile'} is a file")
    out = tmp_path / "r.html"
    proc = _cli(str(results), "--out", str(out), "--select", "best99")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "needs 99 evaluated iterations" in proc.stderr and not out.exists()
    proc = _cli(str(tmp_path / "missing.jsonl"), "--out", str(out))
    assert proc.returncode == 1 and proc.stderr == f"error: results file not found: {tmp_path / 'missing.jsonl'}\n"
    proc = _cli(str(results), "--out", str(out), "--ckpt", str(results))
    assert proc.returncode == 2 and "--ckpt needs --data" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_cli_report_with_a_checkpoint_grid(tmp_path, capsys):
    """A real (untrained, toy-sized) TUNIT run.pt through --ckpt: its sample grid is embedded and captioned with the
    checkpoint's hash."""
    import torch

    from unit_eval.baselines.tunit.recipe import TunitRecipe
    from unit_eval.cache import sha256_file
    from unit_eval.checkpoint import save_run
    from unit_eval.cli import main

    torch.manual_seed(0)
    cfg = TunitRecipe.default_config(iters=1, toy=True, k=3)
    recipe = TunitRecipe(cfg, 3, torch.device("cpu"))
    ckpt = save_run(tmp_path / "tunit" / "run.pt", model="tunit", config=recipe.run_config(),
                    state_dict=recipe.inference_state_dict(), meta={"class_names": ["0", "1", "2"], "iterations": 1})
    data = write_digits(tmp_path / "digits", classes=(0, 1, 2), per_class=8)
    sha = sha256_file(ckpt)
    rows = sweep_rows()
    for row in rows:  # TUNIT's last snapshot is this checkpoint
        if row["run"] == "TUNIT" and row["iteration"] == 800:
            row["ckpt_sha256"] = sha
    results = tmp_path / "rows.jsonl"
    append_rows(results, rows)
    out = tmp_path / "report.html"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(results), "--out", str(out), "--ckpt", str(ckpt), "--data", str(data), "--device", "cpu",
              "--title", "With grid", "--select", "best", "--json"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 0, captured.err
    assert json.loads(captured.out) == {"out": str(out), "rows": len(rows), "grids": 1}
    text = out.read_text(encoding="utf-8")
    page = parse_page(text)
    assert f"tunit/run.pt (run TUNIT, iteration 800; checkpoint sha256 {sha[:12]})" in text and '<h2 id="samples">' in text
    assert len(page.images) == 3  # fid bars, curves, the grid
    assert_page_equals_rows(page, read_rows(results), "best")


# ----------------------------------------------------------------------------------------------------- browser
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chromium-headless-shell")
CONSOLE = re.compile(r":CONSOLE[(:]")


@pytest.fixture(scope="module")
def chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("UNIT_EVAL_REQUIRE_CHROMIUM"):
        pytest.fail("UNIT_EVAL_REQUIRE_CHROMIUM is set but no headless Chromium is on PATH "
                    f"({', '.join(CHROMIUM_NAMES)})")
    pytest.skip("headless Chromium not installed (apt-get install chromium); .ci/run installs it")


def browse(chromium: str, page: Path, tmp: Path, *mode: str) -> subprocess.CompletedProcess:
    """Headless Chromium on ``page`` (root-safe flags, its own profile folder), console messages on stderr."""
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={profile}", "--window-size=1280,2000", "--enable-logging=stderr", "--v=0", *mode,
           page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def console_lines(stderr: str) -> list[str]:
    """Every message the page wrote to the console (errors, CSP refusals, uncaught exceptions, logs): the report has
    no script, so any line is a fault."""
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


# Appended to a copy of the page (its CSP widened for inline script only): after load, records what the browser
# made of each leaderboard cell and image into an attribute of <body>, which --dump-dom then shows.
PROBE = """<script>addEventListener("load", () => {
  const cells = [...document.querySelectorAll("table.board td[data-value]")].map(td => ({
    key: [td.dataset.run, td.dataset.dataset, td.dataset.protocol, td.dataset.metric, td.dataset.class],
    text: td.innerText.trim(), weight: parseInt(getComputedStyle(td.querySelector("strong") || td).fontWeight)}));
  const images = [...document.images].map(i => [i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width]);
  document.body.setAttribute("data-probe", JSON.stringify({cells, images, title: document.title}));
});</script>"""


def probed_copy(report: Path, target: Path) -> Path:
    text = report.read_text(encoding="utf-8")
    csp = "default-src 'none';"
    assert text.count(csp) == 1
    text = text.replace(csp, "default-src 'none'; script-src 'unsafe-inline';").replace("</body>", PROBE + "</body>")
    target.write_text(text, encoding="utf-8")
    return target


def _report_for_browser(tmp_path: Path) -> tuple[Path, list[dict]]:
    results = tmp_path / "rows.jsonl"
    append_rows(results, sweep_rows())
    rows = read_rows(results)
    out = write_report(rows, tmp_path / "report.html", grids={"a <grid> & \"caption\"": _png(120, 80)},
                       title="Report of <b>hostile</b> & plain runs", select="best5")
    return out, rows


def assert_not_blank(shot: Path) -> None:
    with Image.open(shot) as img:
        arr = np.asarray(img.convert("RGB"))
    assert arr.shape[:2] == (2000, 1280)
    nonwhite = (arr.min(axis=2) < 235).mean()
    colours = len(np.unique(arr.reshape(-1, 3), axis=0))
    assert nonwhite > 0.03 and colours > 50, (nonwhite, colours)


def test_browser_renders_the_report(tmp_path, chromium):
    report, rows = _report_for_browser(tmp_path)
    shot = tmp_path / "shot.png"
    proc = browse(chromium, report, tmp_path, f"--screenshot={shot}")
    assert console_lines(proc.stderr) == []
    assert_not_blank(shot)

    # the page as the browser built it: numbers equal the JSONL's, text and bold equal the Markdown table's
    dom = browse(chromium, report, tmp_path, "--dump-dom")
    assert console_lines(dom.stderr) == []
    page = parse_page(dom.stdout)
    assert assert_page_equals_rows(page, rows, "best5") >= 9
    assert HOSTILE_RUN in {r["text"] for r in page.runs}

    # what the browser rendered: every image decoded and laid out, bold cells drawn bold, the title as text
    probe = browse(chromium, probed_copy(report, tmp_path / "probe.html"), tmp_path, "--dump-dom")
    assert console_lines(probe.stderr) == []
    seen = json.loads(parse_page(probe.stdout).body["data-probe"])
    assert seen["title"] == "Report of <b>hostile</b> & plain runs"
    assert len(seen["images"]) == 3 and all(w > 0 and h > 0 and shown > 0 for w, h, shown in seen["images"])
    md = markdown_cells(rows, "best5")
    assert len(seen["cells"]) == len(page.cells)
    for cell in seen["cells"]:
        text, bold = md[tuple(cell["key"])]
        assert cell["text"] == text and (cell["weight"] >= 600) == bold, cell


def test_browser_console_check_can_fail(tmp_path, chromium):
    """The console check is not vacuous: an external image and an inline script in a copy of the report are refused by
    its CSP and said in the console; without the CSP, a throwing script is reported as an uncaught error."""
    report, _ = _report_for_browser(tmp_path)
    text = report.read_text(encoding="utf-8")
    bad = tmp_path / "bad.html"
    bad.write_text(text.replace("</body>", '<img src="https://example.invalid/x.png">'
                                           '<script>throw new Error("x")</script></body>'), encoding="utf-8")
    lines = console_lines(browse(chromium, bad, tmp_path, "--dump-dom").stderr)
    assert any("Content Security Policy" in line and "example.invalid" in line for line in lines), lines
    assert any("Content Security Policy" in line and "inline" in line for line in lines), lines
    no_csp = tmp_path / "no_csp.html"
    no_csp.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", bad.read_text()), encoding="utf-8")
    lines = console_lines(browse(chromium, no_csp, tmp_path, "--dump-dom").stderr)
    assert any("Uncaught Error: x" in line for line in lines), lines


@pytest.mark.integration
def test_browser_on_rows_of_real_commands(tmp_path, chromium):
    """Rows written by ``unit-eval mfid`` (real Inception weights) on scikit-learn digits: a model's fakes, and the
    real set against itself (the real side comes from the feature cache the second time)."""
    digits_real = write_digits(tmp_path / "real", classes=(0, 1), per_class=8)
    digits_fake = write_digits(tmp_path / "fake", classes=(0, 1), per_class=6, offset=40)
    results = tmp_path / "results.jsonl"
    for fake, run in ((digits_fake, "model-a"), (digits_real, "real-vs-real")):
        proc = subprocess.run([sys.executable, "-m", "unit_eval.cli", "mfid", "--real", str(digits_real), "--fake",
                               str(fake), "--run", run, "--device", "cpu", "--out", str(results)],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
    rows = read_rows(results)
    out = tmp_path / "report.html"
    proc = _cli(str(results), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    shot = tmp_path / "shot.png"
    assert console_lines(browse(chromium, out, tmp_path, f"--screenshot={shot}").stderr) == []
    assert_not_blank(shot)
    dom = browse(chromium, out, tmp_path, "--dump-dom")
    assert console_lines(dom.stderr) == []
    page = parse_page(dom.stdout)
    assert assert_page_equals_rows(page, rows) == 2
    real = next(c for c in page.cells if c["data-run"] == "real-vs-real")
    assert real["bold"] and real["text"] == "0.0" and abs(float(real["data-value"])) < 1e-3  # a set against itself
    assert len(page.images) == 1  # the per-class FID bars of mfid's rows
    assert "Small samples" in dom.stdout and len(page.sources) == 2
