"""Embedded datasets: materialised from scikit-learn / scikit-image, counts, real pixels, idempotence."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from unit_eval import embedded
from unit_eval.datasets import Dataset, PairedDataset, resolve_dataset
from unit_eval.errors import UnitEvalError


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("embedded")


@pytest.fixture(scope="module")
def digits(cache):
    return embedded.materialize("digits", cache / "digits", progress=False)


@pytest.fixture(scope="module")
def paired(cache):
    return embedded.materialize("photos-paired", cache / "photos-paired", progress=False)


def test_digits_counts_split_and_real_pixels(digits):
    from sklearn.datasets import load_digits

    ds = resolve_dataset(digits)
    assert isinstance(ds, Dataset) and ds.classes == [str(i) for i in range(10)]
    d = ds.describe()
    assert sum(d["counts"]["train"].values()) == 1297 and d["counts"]["test"] == {str(i): 50 for i in range(10)}
    data = load_digits()
    for cls in (0, 7):
        idx = np.flatnonzero(data.target == cls)
        assert [int(p.stem) for p in ds.split("test")[str(cls)]] == idx[-50:].tolist()
    path = ds.split("train")["3"][0]
    img = np.asarray(Image.open(path))
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert (img[..., 0] == img[..., 1]).all()
    # block-averaging the 64 px image back to 8 x 8 recovers the original digit's ink pattern
    ink = 255.0 - img[..., 0].reshape(8, 8, 8, 8).mean(axis=(1, 3))
    original = data.images[int(path.stem)]
    assert np.corrcoef(ink.ravel(), original.ravel())[0, 1] > 0.9
    manifest = json.loads((digits / "MANIFEST.json").read_text())
    assert manifest["name"] == "digits" and manifest["size"] == 64


def test_materialize_is_idempotent_and_refuses_foreign_folders(digits, tmp_path):
    marker = digits / "train" / "0" / sorted(p.name for p in (digits / "train" / "0").iterdir())[0]
    before = marker.stat().st_mtime_ns
    assert embedded.materialize("digits", digits, progress=False) == digits
    assert marker.stat().st_mtime_ns == before
    assert not [p for p in digits.parent.iterdir() if p.name.startswith(".digits.tmp")]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UnitEvalError, match="not the embedded dataset"):
        embedded.materialize("digits", foreign, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(UnitEvalError, match="unknown embedded dataset"):
        embedded.materialize("mnist")


def test_photos_paired_layout_and_flat_palette(paired):
    ds = resolve_dataset(paired)
    assert isinstance(ds, PairedDataset) and ds.domains == ("photo", "render")
    d = ds.describe()
    assert d["counts"]["test"]["photo"] == d["counts"]["test"]["render"] > 100
    assert d["counts"]["train"]["photo"] > 200 and "not the UNIT maps dataset" in d["source"]
    train = ds.split("train")
    assert not {p.name for p in train["photo"]} & {p.name for p in train["render"]}  # unpaired
    test = ds.split("test")
    assert [p.name for p in test["photo"]] == [p.name for p in test["render"]]
    photo, render = ds.load_pair(ds.pairs("test")[0])
    assert photo.shape == render.shape == (64, 64, 3)
    palette = {tuple(c) for c in embedded.FLAT_PALETTE.values()}
    assert {tuple(c) for c in render.reshape(-1, 3)} <= palette
    assert len({tuple(c) for c in photo.reshape(-1, 3)}) > 20  # a real photo tile, not a flat one


def test_photos_folder(cache):
    folder = embedded.materialize("photos", cache / "photos", progress=False)
    ds = resolve_dataset(folder)
    assert ds.classes == ["photos"]
    names = sorted(p.stem for p in ds.split("all")["photos"])
    assert names == sorted(embedded.PHOTO_NAMES)
    astronaut = np.asarray(Image.open(folder / "astronaut.png"))
    assert astronaut.shape == (512, 512, 3)


def test_flat_render_is_a_deterministic_palette_function():
    photos = embedded.photo_images()
    assert set(photos) == set(embedded.PHOTO_NAMES)
    assert all(a.ndim == 3 and a.shape[2] == 3 and max(a.shape[:2]) <= 512 for a in photos.values())
    flat = embedded.flat_render(photos["coffee"])
    assert np.array_equal(flat, embedded.flat_render(photos["coffee"]))
    used = {tuple(c) for c in flat.reshape(-1, 3)}
    assert used <= {tuple(c) for c in embedded.FLAT_PALETTE.values()} and len(used) >= 3


def test_resolve_by_name_materialises_into_cache(monkeypatch, tmp_path, digits):
    import shutil

    monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path))
    shutil.copytree(digits, tmp_path / "data" / "digits")  # a complete copy is reused, not rebuilt
    ds = resolve_dataset("digits")
    assert ds.root == tmp_path / "data" / "digits"
    listed = {r["name"]: r for r in embedded.list_embedded()}
    assert listed["digits"]["materialized"] and not listed["photos"]["materialized"]
