"""Figures: the pure plotting functions and the ``unit-eval plot`` commands with a tiny fake Translator."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from PIL import Image

from .conftest import write_digits
from unit_eval import plots
from unit_eval.cli import main
from unit_eval.errors import UnitEvalError
from unit_eval.results import append_rows, make_row

FAKE_MODEL = textwrap.dedent(
    """
    import torch

    class FakeTranslator:
        image_size = 32
        num_domains = 3

        def translate(self, source, reference):
            tint = reference.mean(dim=(2, 3), keepdim=True)
            return (0.6 * source + 0.4 * tint).clamp(-1, 1)

        def style(self, images):
            return torch.cat([images.mean(dim=(2, 3)), images[:, :, ::4, ::4].flatten(1)], 1)

        def cluster(self, images):
            bright = (images > 0).float().mean(dim=(1, 2, 3))
            return (bright * 30).long() % 3

    def factory():
        return FakeTranslator()
    """
)


def check_png(path, min_w=200, min_h=100):
    assert path.is_file() and path.stat().st_size > 5000
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] >= min_w and img.size[1] >= min_h
        return img.size


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    (tmp_path / "fake_translator_mod.py").write_text(FAKE_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fake_translator_mod:factory"


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("plot_digits"), classes=(0, 1, 7), per_class=12, size=32)


def result_rows():
    rows = []
    for run, offset in (("tunit-a", 0.0), ("funit-b", 8.0)):
        for it in range(0, 5001, 1000):
            rows.append(make_row(run=run, protocol="tunit", metric="mfid", value=150 * 0.7 ** (it / 1000) + offset,
                                 options={"iteration": it}))
            rows.append(make_row(run=run, protocol="tunit", metric="cluster_acc", value=0.1 + it / 6000,
                                 options={"iteration": it}))
        for k, cls in enumerate(["n02088364", "n02096437", "n02099601", "n02105162"]):
            rows.append(make_row(run=run, protocol="tunit", metric="fid", cls=cls, value=40 + 7 * k + offset))
    rows.append(make_row(run="tunit-a", protocol="tunit", metric="fid", value=50.5))
    return rows


def test_translation_grid_png_and_pdf(tmp_path):
    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (3, 24, 24, 3), dtype=np.uint8)
    ref = rng.integers(0, 256, (4, 24, 24, 3), dtype=np.uint8)
    out = rng.integers(0, 256, (3, 4, 24, 24, 3), dtype=np.uint8)
    files = plots.translation_grid(src, ref, out, tmp_path / "grid", source_labels=["a", "b", "c"],
                                   reference_labels=["w", "x", "y", "z"], title="Grid", pdf=True)
    assert [f.suffix for f in files] == [".png", ".pdf"]
    w, h = check_png(files[0])
    assert w > h  # five columns, four rows
    assert files[1].read_bytes()[:4] == b"%PDF"
    with pytest.raises(UnitEvalError, match="sources x references"):
        plots.translation_grid(src, ref, out[:, :2], tmp_path / "bad.png")


def test_domain_samples_and_codes(tmp_path):
    rng = np.random.default_rng(1)
    samples = {0: rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8), 3: rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)}
    check_png(plots.domain_samples(samples, tmp_path / "domains.png", counts={0: 40, 3: 2}, title="Domains")[0])
    codes = np.concatenate([rng.normal(0, 1, (20, 16)), rng.normal(4, 1, (20, 16))])
    labels = np.repeat([0, 1], 20)
    files = plots.style_codes(codes, labels, 1 - labels, tmp_path / "codes.png", class_names=["cat", "dog"], pdf=True)
    check_png(files[0], min_w=500)
    xy, method = plots.embed_2d(codes[:6])
    assert method == "PCA" and xy.shape == (6, 2)
    check_png(plots.style_codes(codes[:6], None, labels[:6], tmp_path / "one.png", method="pca")[0])
    with pytest.raises(UnitEvalError, match="NaN"):
        plots.embed_2d(np.full((5, 3), np.nan))


def test_curves_and_fid_bars_from_rows(tmp_path):
    rows = result_rows()
    check_png(plots.metric_curves(rows, tmp_path / "curves.png")[0], min_w=600)
    check_png(plots.metric_curves(rows, tmp_path / "mfid.png", metrics=["mfid"], runs=["tunit-a"])[0])
    with pytest.raises(UnitEvalError, match="with an iteration"):
        plots.metric_curves([r for r in rows if r["metric"] == "fid"], tmp_path / "none.png")
    check_png(plots.fid_bars(rows, tmp_path / "bars.png", pdf=True)[0])
    with pytest.raises(UnitEvalError, match="per-class"):
        plots.fid_bars([r for r in rows if r["class"] == "mean"], tmp_path / "none.png")


def test_fid_bars_keep_latest_iteration(monkeypatch):
    rows = [make_row(run="r", protocol="p", metric="fid", cls="a", value=v, options={"iteration": it})
            for it, v in ((1000, 90.0), (2000, 30.0))]
    captured = {}

    def fake_save(fig, path, pdf, dpi=150):
        captured["heights"] = [p.get_height() for p in fig.axes[0].patches]
        return []

    monkeypatch.setattr(plots, "_save", fake_save)
    plots.fid_bars(rows, "unused.png")
    assert captured["heights"] == [30.0]


def test_cli_curves_and_fid_bars(tmp_path, capsys):
    results = tmp_path / "results.jsonl"
    append_rows(results, result_rows())
    code, out, _ = run_cli(["plot", "curves", str(results), "--out", str(tmp_path / "c.png"), "--json"], capsys)
    assert code == 0 and json.loads(out)["files"] == [str(tmp_path / "c.png")]
    code, out, _ = run_cli(["plot", "fid-bars", str(results), "--out", str(tmp_path / "b.png"), "--pdf",
                            "--run", "tunit-a", "--json"], capsys)
    assert code == 0 and len(json.loads(out)["files"]) == 2
    check_png(tmp_path / "b.png")
    code, _, err = run_cli(["plot", "fid-bars", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x.png")], capsys)
    assert code == 1 and err.startswith("error: results file not found")


def test_cli_model_figures(tmp_path, capsys, fake_model, digits_dir):
    common = ["--model", fake_model, "--data", str(digits_dir), "--device", "cpu", "--json"]
    code, out, err = run_cli(["plot", "grid", *common, "--out", str(tmp_path / "grid.png"), "--sources", "3",
                              "--references", "4"], capsys)
    assert code == 0, err
    check_png(tmp_path / "grid.png")
    code, out, err = run_cli(["plot", "domains", *common, "--out", str(tmp_path / "domains.png")], capsys)
    assert code == 0, err
    assert sum(json.loads(out)["counts"].values()) == 36
    check_png(tmp_path / "domains.png")
    code, out, err = run_cli(["plot", "codes", *common, "--out", str(tmp_path / "codes.png")], capsys)
    assert code == 0, err
    assert json.loads(out)["n_codes"] == 36
    check_png(tmp_path / "codes.png", min_w=500)
    code, _, err = run_cli(["plot", "grid", "--data", str(digits_dir), "--out", str(tmp_path / "g.png")], capsys)
    assert code == 1 and "exactly one of --ckpt" in err


def test_grid_from_model_shapes(fake_model, digits_dir):
    from unit_eval.datasets import resolve_dataset
    from unit_eval.evaluation.figures import grid_from_model
    from unit_eval.translator import load_user_model

    model = load_user_model(fake_model, "cpu")
    g = grid_from_model(model, resolve_dataset(digits_dir).split("test"), "cpu", n_sources=4, n_references=2, seed=3)
    assert g["outputs"].shape == (4, 2, 32, 32, 3) and g["outputs"].dtype == np.uint8
    assert g["source_labels"] == ["0", "1", "7", "0"]
    again = grid_from_model(model, resolve_dataset(digits_dir).split("test"), "cpu", n_sources=4, n_references=2, seed=3)
    assert np.array_equal(g["outputs"], again["outputs"])
