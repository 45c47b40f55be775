"""Dataset layouts, splits and missing-dataset errors on tiny fabricated folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unit_eval.datasets import (
    ANIMALFACES10,
    Dataset,
    PairedDataset,
    canonical_name,
    data_root,
    list_named,
    resolve_dataset,
    resolve_paired,
)
from unit_eval.errors import UnitEvalError


def touch_images(folder: Path, n: int, ext: str = ".jpg", start: int = 0) -> list[Path]:
    """Listing and splitting never decode images, so empty files with image names suffice."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"img_{i:03d}{ext}" for i in range(start, start + n)]
    for p in paths:
        p.touch()
    return paths


def side_by_side(path: Path, left: tuple, right: tuple, w: int = 12, h: int = 6) -> None:
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:, : w // 2] = left
    arr[:, w // 2:] = right
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_afhq_accepts_stargan_val_folder(tmp_path):
    for cls in ("cat", "dog", "wild"):
        touch_images(tmp_path / "afhq" / "train" / cls, 4)
        touch_images(tmp_path / "afhq" / "val" / cls, 2, start=100)
    ds = resolve_dataset("afhq", root=tmp_path)
    assert isinstance(ds, Dataset) and ds.classes == ["cat", "dog", "wild"]
    assert [p.name for p in ds.split("test")["dog"]] == ["img_100.jpg", "img_101.jpg"]
    assert len(ds.split("train")["wild"]) == 4
    d = ds.describe()
    assert d["counts"] == {"train": {"cat": 4, "dog": 4, "wild": 4}, "test": {"cat": 2, "dog": 2, "wild": 2}}
    assert "val/" in d["split_rule"]
    json.dumps(d)
    assert resolve_dataset("afhq-cat", root=tmp_path).classes == ["cat"]


def test_afhq_test_folder_and_env_root(tmp_path, monkeypatch):
    for cls in ("cat", "dog"):
        touch_images(tmp_path / "afhq" / "train" / cls, 3)
        touch_images(tmp_path / "afhq" / "test" / cls, 1)
    monkeypatch.setenv("UNIT_EVAL_DATA", str(tmp_path))
    assert data_root() == tmp_path
    ds = resolve_dataset("AFHQ")
    assert ds.classes == ["cat", "dog"] and ds.describe()["counts"]["test"] == {"cat": 1, "dog": 1}


def test_animalfaces10_last_50_sorted_are_validation(tmp_path):
    root = tmp_path / "animal_faces"
    for i, syn in enumerate(ANIMALFACES10):
        touch_images(root / syn, 53 + i)
    touch_images(root / "n01234567", 60)  # an 11th class that AnimalFaces-10 must ignore
    ds = resolve_dataset("animalfaces10", root=tmp_path)
    assert ds.classes == list(ANIMALFACES10)
    train, test = ds.split("train"), ds.split("val")
    for i, syn in enumerate(ANIMALFACES10):
        names = sorted(p.name for p in (root / syn).iterdir())
        assert [p.name for p in test[syn]] == names[-50:]
        assert [p.name for p in train[syn]] == names[:-50]
    assert sum(ds.describe()["counts"]["test"].values()) == 500
    assert resolve_dataset("animalfaces149", root=tmp_path).classes[0] == "n01234567"


def test_animalfaces10_missing_synsets_and_small_classes(tmp_path):
    touch_images(tmp_path / "animal_faces" / ANIMALFACES10[0], 60)
    with pytest.raises(UnitEvalError, match="class folders missing"):
        resolve_dataset("animalfaces10", root=tmp_path)
    small = tmp_path / "small"
    for syn in ANIMALFACES10:
        touch_images(small / "animal_faces" / syn, 50)
    with pytest.raises(UnitEvalError, match="needs more than 50"):
        resolve_dataset("animalfaces10", root=small).split("train")


@pytest.mark.parametrize("name", ["afhq", "animalfaces10", "food10", "maps", "summer2winter"])
def test_missing_dataset_error_is_one_line_with_where_layout_and_source(tmp_path, name):
    with pytest.raises(UnitEvalError) as err:
        resolve_dataset(name, root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(tmp_path) in msg and "expected layout" in msg and "get it from" in msg
    assert "UNIT_EVAL_DATA" in msg


def test_food10_layouts(tmp_path):
    classes = [f"dish{i}" for i in range(3)]
    for c in classes + ["other"]:
        touch_images(tmp_path / "food-101" / "images" / c, 55)
    with pytest.raises(UnitEvalError, match="--classes"):
        resolve_dataset("food10", root=tmp_path)
    ds = resolve_dataset("food-10", root=tmp_path, classes=classes)
    assert ds.classes == classes and len(ds.split("test")["dish1"]) == 50 and len(ds.split("train")["dish1"]) == 5
    assert "never published" in ds.describe()["assumptions"]
    for c in classes:
        touch_images(tmp_path / "food10" / c, 52)
    assert resolve_dataset("food10", root=tmp_path).describe()["counts"]["train"] == {c: 2 for c in classes}


def test_summer2winter_cyclegan_and_tunit_layouts(tmp_path):
    base = tmp_path / "cg" / "summer2winter_yosemite"
    for d, n in (("trainA", 5), ("trainB", 4), ("testA", 2), ("testB", 3)):
        touch_images(base / d, n)
    ds = resolve_dataset("summer2winter", root=tmp_path / "cg")
    assert ds.classes == ["summer", "winter"]
    assert ds.describe()["counts"] == {"train": {"summer": 5, "winter": 4}, "test": {"summer": 2, "winter": 3}}
    tunit = tmp_path / "tu" / "summer2winter"
    for s, n in (("train", 3), ("test", 1)):
        for c in ("summer", "winter"):
            touch_images(tunit / s / c, n)
    assert resolve_dataset("s2w", root=tmp_path / "tu").describe()["counts"]["test"] == {"summer": 1, "winter": 1}


def test_maps_pix2pix_side_by_side_unit_split(tmp_path):
    for i in (1, 2, 10):
        side_by_side(tmp_path / "maps" / "train" / f"{i}.jpg", (200, 0, 0), (0, 0, 200))
    for i in (1, 2):
        side_by_side(tmp_path / "maps" / "val" / f"{i}.png", (0, 200, 0), (250, 250, 250))
    ds = resolve_dataset("maps", root=tmp_path)
    assert isinstance(ds, PairedDataset) and ds.domains == ("satellite", "map")
    assert [p.stem for p in ds.pairs("train")] == ["1", "2", "10"]  # natural order
    sat, mp = ds.load_pair(ds.pairs("test")[0])
    assert sat.shape == (6, 6, 3) and mp.shape == (6, 6, 3)
    assert tuple(sat[0, 0]) == (0, 200, 0) and tuple(mp[0, 0]) == (250, 250, 250)
    train = ds.unit_split("train")
    assert len(train["satellite"]) == 3 and len(train["map"]) == 2
    assert all(r.half == "right" and r.path.parent.name == "val" for r in train["map"])
    d = ds.describe()
    assert d["counts"] == {"train": {"satellite": 3, "map": 2}, "test": {"satellite": 2, "map": 2}}
    assert "1096" in d["assumptions"] and "ground truth" in d["assumptions"]
    with pytest.raises(UnitEvalError, match="export-pairs"):
        ds.split("test")
    out = ds.export(tmp_path / "exported", size=8, progress=False)
    again = resolve_dataset(out)
    assert isinstance(again, PairedDataset) and again.domains == ("satellite", "map")
    split = again.split("test")
    assert [p.name for p in split["satellite"]] == [p.name for p in split["map"]] == ["1.png", "2.png"]
    assert np.asarray(Image.open(split["map"][0])).shape == (8, 8, 3)
    assert len(again.split("train")["map"]) == 2


def test_maps_cyclegan_layout_pairs_by_name(tmp_path):
    base = tmp_path / "maps"
    for split, n in (("train", 3), ("test", 2)):
        for i in range(1, n + 1):
            for d in ("A", "B"):
                (base / f"{split}{d}").mkdir(parents=True, exist_ok=True)
                (base / f"{split}{d}" / f"{i}_{d}.jpg").touch()
    ds = resolve_dataset("maps", root=tmp_path)
    pairs = ds.pairs("test")
    assert [(p.source.path.name, p.target.path.name) for p in pairs] == [("1_A.jpg", "1_B.jpg"), ("2_A.jpg", "2_B.jpg")]
    (base / "testB" / "2_B.jpg").unlink()
    with pytest.raises(UnitEvalError, match="do not pair"):
        resolve_dataset("maps", root=tmp_path)


def test_plain_folders(tmp_path):
    plain = tmp_path / "plain"
    touch_images(plain / "b", 4, ".png")
    touch_images(plain / "a", 3, ".png")
    ds = resolve_dataset(plain)
    assert ds.classes == ["a", "b"]
    assert ds.split("train") == ds.split("test")
    assert "no split" in ds.describe()["split_rule"]
    held = resolve_dataset(plain, holdout=1)
    assert [p.name for p in held.split("test")["b"]] == ["img_003.png"]
    assert len(held.split("all")["b"]) == 4
    flat = tmp_path / "flat"
    touch_images(flat, 3, ".png")
    assert resolve_dataset(flat).classes == ["flat"]
    assert resolve_dataset(plain, classes=["b"]).classes == ["b"]
    with pytest.raises(UnitEvalError, match="class folders missing"):
        resolve_dataset(plain, classes=["zebra"])
    with pytest.raises(UnitEvalError, match="no split"):
        ds.split("dev")


def test_split_folders_and_cyclegan_plain_path(tmp_path):
    for s, n in (("train", 3), ("val", 1)):
        for c in ("x", "y"):
            touch_images(tmp_path / "ds" / s / c, n)
    assert resolve_dataset(tmp_path / "ds").describe()["counts"]["test"] == {"x": 1, "y": 1}
    for d in ("trainA", "trainB", "testA", "testB"):
        touch_images(tmp_path / "cg" / d, 2)
    assert resolve_dataset(tmp_path / "cg").classes == ["A", "B"]


def test_paired_folder_without_manifest(tmp_path):
    for d in ("src", "tgt"):
        touch_images(tmp_path / "p" / "test" / d, 3, ".png")
        touch_images(tmp_path / "p" / "train" / d, 2, ".png")
    ds = resolve_paired(tmp_path / "p")
    assert ds.domains == ("src", "tgt") and len(ds.pairs()) == 3
    with pytest.raises(UnitEvalError, match="unpaired"):
        ds.pairs("train")


def test_names_and_unknown(tmp_path):
    assert canonical_name("AnimalFaces-10") == "animalfaces10"
    assert canonical_name("cifar") is None
    with pytest.raises(UnitEvalError, match="neither an existing folder nor a dataset name"):
        resolve_dataset("cifar", root=tmp_path)
    rows = list_named(tmp_path)
    assert {r["name"] for r in rows} >= {"afhq", "animalfaces10", "food10", "maps", "summer2winter"}
    assert all(r["found"] is None for r in rows)
