"""SYNTHETIC datasets with the shape of the published benchmarks, for dry runs at paper scale.

``unit-eval data synth NAME --out DIR`` (``write_synth``). The images are real photographs
(scikit-image's, :func:`unit_eval.embedded.photo_images`) cut and recoloured, so Inception sees natural
image statistics; the classes are made, not found. Every manifest says ``"synthetic": true``, the
dataset names start with ``synthetic-``, and that name is what result rows record: a number computed on
these sets can never pass for an AnimalFaces or maps result.

``animalfaces10-shape``: 10 classes x (740 train + 50 test) images at 128 px, as
    ``DIR/{train,test}/class<i>/NNNNN.png``. AnimalFaces-10 is 10 ImageNet synsets of FUNIT's
    animal faces; FUNIT's ``datasets/animals_list_test.txt`` lists 793 and 795 crops for two of them and
    the whole set averages 117,574 / 149 = 789 per class, hence 790 per class, of which TUNIT holds out
    the last 50 for validation. Image: a random crop (a quarter to three fifths of the photo's shorter
    side), a random horizontal flip, resized to 128 px (Lanczos), then the class's colour transform (a
    channel permutation, a per-channel gain and offset, a gamma), so the classes differ in colour and
    contrast while sharing content.
``maps-shape``: the UNIT map split's shape at 256 px, as an exported paired folder
    ``DIR/{train,test}/{satellite,map}/NNNN.png``: 1096 train "satellites", 1098 test pairs, and
    ``train/map`` = the 1098 test maps (the paper trains on pix2pix's validation maps and tests on the
    same split's satellites). "Satellite": a random crop of a photo resized to 256 px; "map":
    :func:`unit_eval.embedded.flat_render` of it (deterministic, flat palette colours).

``scale`` multiplies every count (at least one image per class and split remains), for the tests'
smallest sizes; ``size`` overrides the resolution. Writing is atomic (a temporary folder renamed into
place, manifest last) and idempotent for the same name, scale, size and seed.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .embedded import EmbeddedSet, _progress, _save_png, flat_render, photo_images, read_manifest, write_set
from .errors import UnitEvalError

AF_CLASSES = 10
AF_TRAIN_PER_CLASS = 740
AF_TEST_PER_CLASS = 50
AF_SIZE = 128
MAPS_TRAIN = 1096
MAPS_TEST = 1098
MAPS_SIZE = 256
SYNTH_VERSION = 1

_PERMUTATIONS = ((0, 1, 2), (2, 1, 0), (1, 0, 2), (0, 2, 1), (1, 2, 0), (2, 0, 1))


def _count(n: int, scale: float) -> int:
    return max(1, math.ceil(n * scale))


def _crop(rng: np.random.Generator, photo: np.ndarray, lo: float, hi: float, size: int, flip: bool) -> np.ndarray:
    from PIL import Image

    h, w = photo.shape[:2]
    side = max(8, int(round(min(h, w) * rng.uniform(lo, hi))))
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    patch = photo[top:top + side, left:left + side]
    if flip and rng.random() < 0.5:
        patch = patch[:, ::-1]
    return np.asarray(Image.fromarray(np.ascontiguousarray(patch)).resize((size, size), resample=Image.LANCZOS))


def class_colour(cls: int, seed: int) -> dict:
    """Class ``cls``'s colour transform: channel permutation, per-channel gain and offset, gamma."""
    rng = np.random.default_rng([seed, 7919, cls])
    return {
        "permutation": _PERMUTATIONS[cls % len(_PERMUTATIONS)],
        "gain": rng.uniform(0.6, 1.2, 3).round(3).tolist(),
        "offset": rng.uniform(-30.0, 50.0, 3).round(1).tolist(),
        "gamma": round(float(rng.uniform(0.6, 1.6)), 3),
    }


def recolour(img: np.ndarray, colour: dict) -> np.ndarray:
    x = img[..., list(colour["permutation"])].astype(np.float32) / 255.0
    x = np.power(x, colour["gamma"]) * 255.0
    x = x * np.asarray(colour["gain"], np.float32) + np.asarray(colour["offset"], np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _builder_animalfaces(scale: float, size: int | None, seed: int):
    size = size or AF_SIZE
    n_train, n_test = _count(AF_TRAIN_PER_CLASS, scale), _count(AF_TEST_PER_CLASS, scale)

    def build(folder: Path, progress: bool) -> dict:
        photos = photo_images()
        names = sorted(photos)
        colours = {}
        jobs = [(c, i) for c in range(AF_CLASSES) for i in range(n_train + n_test)]
        for c, i in _progress(jobs, "synthetic animalfaces10-shape", len(jobs), progress):
            colours.setdefault(c, class_colour(c, seed))
            rng = np.random.default_rng([seed, c, i])
            photo = photos[names[int(rng.integers(len(names)))]]
            img = recolour(_crop(rng, photo, 0.25, 0.6, size, flip=True), colours[c])
            split = "train" if i < n_train else "test"
            _save_png(img, folder / split / f"class{c}" / f"{i:05d}.png")
        classes = [f"class{c}" for c in range(AF_CLASSES)]
        return {
            "kind": "classes",
            "synthetic": True,
            "counts": {"train": {k: n_train for k in classes}, "test": {k: n_test for k in classes}},
            "size": size,
            "scale": scale,
            "seed": seed,
            "class_colours": {f"class{c}": colours[c] for c in range(AF_CLASSES)},
            "split_rule": f"shipped folders: train = {n_train}, test = {n_test} per class (TUNIT's last-50 validation rule)",
            "source": "SYNTHETIC, the shape of AnimalFaces-10 (not AnimalFaces): crops of scikit-image photographs, "
                      "recoloured per class",
        }

    return build


def _builder_maps(scale: float, size: int | None, seed: int):
    size = size or MAPS_SIZE
    n_train, n_test = _count(MAPS_TRAIN, scale), _count(MAPS_TEST, scale)

    def build(folder: Path, progress: bool) -> dict:
        photos = photo_images()
        names = sorted(photos)
        jobs = [("train", i) for i in range(n_train)] + [("test", i) for i in range(n_test)]
        for split, i in _progress(jobs, "synthetic maps-shape", len(jobs), progress):
            rng = np.random.default_rng([seed, 0 if split == "train" else 1, i])
            photo = photos[names[int(rng.integers(len(names)))]]
            satellite = _crop(rng, photo, 0.3, 1.0, size, flip=True)
            if split == "train":
                _save_png(satellite, folder / "train" / "satellite" / f"{i:04d}.png")
                continue
            rendered = flat_render(satellite)
            _save_png(satellite, folder / "test" / "satellite" / f"{i:04d}.png")
            _save_png(rendered, folder / "test" / "map" / f"{i:04d}.png")
            _save_png(rendered, folder / "train" / "map" / f"{i:04d}.png")
        return {
            "kind": "paired",
            "synthetic": True,
            "domains": ["satellite", "map"],
            "counts": {"train": {"satellite": n_train, "map": n_test}, "test": {"satellite": n_test, "map": n_test}},
            "size": size,
            "scale": scale,
            "seed": seed,
            "split_rule": "UNIT's map split: train = satellites of the train split + maps of the test split; "
                          "test = the test split's satellite/map pairs (same file names)",
            "source": "SYNTHETIC, the shape of the UNIT maps split (not maps): crops of scikit-image photographs "
                      "and their flat-colour renderings",
            "assumptions": "map = unit_eval.embedded.flat_render(satellite), a deterministic stand-in for a map",
        }

    return build


SYNTH_BUILDERS = {
    "animalfaces10-shape": ("AnimalFaces-10's shape: 10 classes x (740 train + 50 test), 128 px", _builder_animalfaces),
    "maps-shape": ("the UNIT maps split's shape: 1096 train satellites, 1098 test pairs, 256 px", _builder_maps),
}


def write_synth(
    name: str, out: str | os.PathLike, scale: float = 1.0, size: int | None = None, seed: int = 0,
    force: bool = False, progress: bool = True,
) -> Path:
    """Write synthetic set ``name`` to ``out`` (see the module docstring); return the folder."""
    if name not in SYNTH_BUILDERS:
        raise UnitEvalError(f"unknown synthetic dataset {name!r}; choose from {', '.join(SYNTH_BUILDERS)}")
    if not 0 < scale <= 1:
        raise UnitEvalError(f"--scale must be in (0, 1], got {scale}")
    if size is not None and size < 16:
        raise UnitEvalError(f"--size must be at least 16 pixels, got {size}")
    title, make = SYNTH_BUILDERS[name]
    full = f"synthetic-{name}"
    # the version encodes every option, so a folder written with other options is rebuilt, not reused
    version = f"{SYNTH_VERSION}:scale={scale}:size={size}:seed={seed}"
    spec = EmbeddedSet(full, f"SYNTHETIC {title}", version, make(scale, size, seed))
    target = Path(out).expanduser()
    existing = read_manifest(target) if target.is_dir() else None
    if existing and existing.get("name") == full and existing.get("version") != version:
        force = True
    return write_set(spec, target, force=force, progress=progress, what="synthetic dataset")
