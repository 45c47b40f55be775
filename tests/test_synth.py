"""Synthetic paper-shaped datasets (``unit-eval data synth``): the published counts, labelled synthetic, classes
that differ, maps whose targets are the deterministic rendering of their sources, written atomically."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unit_eval.datasets import resolve_dataset, resolve_paired
from unit_eval.embedded import flat_render
from unit_eval.errors import UnitEvalError
from unit_eval.synth import AF_TEST_PER_CLASS, AF_TRAIN_PER_CLASS, MAPS_TEST, MAPS_TRAIN, write_synth


def cli(*args):
    proc = subprocess.run([sys.executable, "-m", "unit_eval.cli", *map(str, args)], capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*.png")):
        h.update(p.relative_to(folder).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def af(tmp_path_factory):
    return write_synth("animalfaces10-shape", tmp_path_factory.mktemp("synth") / "af", scale=0.02, size=32, progress=False)


def test_published_counts_are_the_defaults():
    # AnimalFaces-10: 790 per class (FUNIT's lists, see the module), TUNIT's last 50 held out; UNIT maps split
    assert (AF_TRAIN_PER_CLASS, AF_TEST_PER_CLASS, MAPS_TRAIN, MAPS_TEST) == (740, 50, 1096, 1098)


def test_animalfaces_shape_is_labelled_synthetic_with_scaled_counts(af):
    ds = resolve_dataset(af)
    assert ds.name == "synthetic-animalfaces10-shape"  # the name result rows record
    manifest = json.loads((af / "MANIFEST.json").read_text())
    assert manifest["synthetic"] is True and "SYNTHETIC" in manifest["source"]
    assert ds.classes == [f"class{c}" for c in range(10)]
    train, test = ds.split("train"), ds.split("test")
    assert {len(v) for v in train.values()} == {15} and {len(v) for v in test.values()} == {1}  # ceil(740*.02), ceil(50*.02)
    img = np.asarray(Image.open(train["class0"][0]))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8


def test_classes_differ_in_colour_more_than_images_within_a_class(af):
    """Each class has its own colour transform, and every written image is its crop under its class's transform."""
    from unit_eval.embedded import photo_images
    from unit_eval.synth import _crop, class_colour, recolour

    colours = [class_colour(c, 0) for c in range(10)]
    manifest = json.loads((af / "MANIFEST.json").read_text())
    assert [manifest["class_colours"][f"class{c}"] for c in range(10)] == [json.loads(json.dumps(x)) for x in colours]
    same = np.asarray(Image.open(next((af / "train" / "class0").iterdir())))
    shifted = [recolour(same, col).astype(float) for col in colours]
    gaps = [np.abs(shifted[a] - shifted[b]).mean() for a in range(10) for b in range(a + 1, 10)]
    assert min(gaps) > 10.0, "two classes recolour the same content alike"
    photos, names = photo_images(), sorted(photo_images())
    for c, i in ((0, 0), (3, 7), (9, 14)):
        rng = np.random.default_rng([0, c, i])
        crop = _crop(rng, photos[names[int(rng.integers(len(names)))]], 0.25, 0.6, 32, flip=True)
        written = np.asarray(Image.open(af / "train" / f"class{c}" / f"{i:05d}.png"))
        assert np.array_equal(written, recolour(crop, colours[c]))


def test_deterministic_and_idempotent(af, tmp_path):
    again = write_synth("animalfaces10-shape", tmp_path / "again", scale=0.02, size=32, progress=False)
    assert _digest(again) == _digest(af)
    stamp = (again / "MANIFEST.json").stat().st_mtime_ns
    write_synth("animalfaces10-shape", again, scale=0.02, size=32, progress=False)
    assert (again / "MANIFEST.json").stat().st_mtime_ns == stamp  # complete copy reused
    write_synth("animalfaces10-shape", again, scale=0.02, size=32, seed=1, progress=False)
    assert _digest(again) != _digest(af)  # other options rebuild it


def test_maps_shape_pairs_sources_with_their_rendering(tmp_path):
    out = write_synth("maps-shape", tmp_path / "maps", scale=0.005, size=64, progress=False)
    ds = resolve_paired(out)
    assert ds.name == "synthetic-maps-shape" and ds.domains == ("satellite", "map")
    counts = ds.describe()["counts"]
    assert counts["train"] == {"satellite": 6, "map": 6} and counts["test"]["satellite"] == 6
    for pair in ds.pairs("test"):
        source, target = ds.load_pair(pair)
        assert np.array_equal(target, flat_render(source))
    train_maps = sorted(p.name for p in (out / "train" / "map").iterdir())
    assert train_maps == sorted(p.stem + ".png" for p in (out / "test" / "map").iterdir())


def test_cli_writes_and_describes(tmp_path):
    rc, out, err = cli("data", "synth", "animalfaces10-shape", "--out", tmp_path / "af", "--scale", "0.01", "--size", "24", "--json")
    assert rc == 0, err
    assert json.loads(out)["dataset"]["name"] == "synthetic-animalfaces10-shape"


@pytest.mark.parametrize("args, code, words", [
    (["--scale", "0"], 2, "--scale"),
    (["--scale", "1.5"], 2, "--scale"),
    (["--size", "4"], 2, "--size"),
])
def test_cli_bad_options_are_usage_errors(tmp_path, args, code, words):
    rc, _, err = cli("data", "synth", "maps-shape", "--out", tmp_path / "m", *args)
    assert rc == code and words in err and "Traceback" not in err


def test_foreign_folder_is_refused_in_one_line(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.txt").write_text("keep me")
    with pytest.raises(UnitEvalError, match="not the synthetic dataset"):
        write_synth("maps-shape", tmp_path / "mine", scale=0.005, size=32, progress=False)
    rc, _, err = cli("data", "synth", "maps-shape", "--out", tmp_path / "mine", "--scale", "0.005")
    assert rc == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (tmp_path / "mine" / "thesis.txt").read_text() == "keep me"


@pytest.mark.parametrize("command", [["data", "synth", "maps-shape", "--scale", "0.005", "--size", "16"],
                                     ["data", "materialize", "digits"]])
def test_out_that_cannot_be_created_is_one_line(tmp_path, command):
    """Found in review: an --out under a file (or any place mkdir refuses) gave a traceback, for both commands
    that share embedded.write_set."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    rc, _, err = cli(*command, "--out", blocker / "inside")
    assert rc == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"{blocker} is a file, not a folder" in err and blocker.read_text() == "x"
