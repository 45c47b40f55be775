"""The named datasets (published benchmarks) and the data root they live under.

Names resolve under the data root: the ``root`` argument, else ``$UNIT_EVAL_DATA``, else ``./data``
(:func:`data_root`); :func:`canonical_name` accepts case variants and aliases; :func:`list_named`
says which are present.

Named datasets and their splits
-------------------------------
- ``afhq`` (and ``afhq_cat``, ``afhq_dog``, ``afhq_wild``, one class each as TUNIT trains them):
  ``afhq/{train,test}/<class>``; StarGAN v2 ships ``val`` instead of ``test``, both are accepted.
  Split rule: the shipped folders.
- ``animalfaces10``: TUNIT's layout ``animal_faces/<synset>`` (FUNIT's extraction script writes the
  same folders as ``animals/``) restricted to the 10 synsets of :data:`ANIMALFACES10`; validation =
  the last 50 images of each class in sorted order, train = the rest (TUNIT's ``tmp_idx[-50:]``).
  ``animalfaces149`` keeps every class folder with the same rule.
- ``food10``: TUNIT's public code has no Food-10 loader and its ten Food-101 classes were never
  published. Assumed: ``food10/<class>`` (ten class folders you chose) or Food-101's
  ``food-101/images/<class>`` with ``classes=`` naming ten, split by the same last-50 rule TUNIT uses
  for its other labelled set (AnimalFaces). ``describe()`` records this assumption.
- ``maps``: pix2pix's ``maps/{train,val}/*.jpg`` (1200 x 600, satellite left, map right; 1096 train,
  1098 val), or CycleGAN's ``maps/{trainA,trainB,testA,testB}`` (pairs by name, ``1_A.jpg`` <->
  ``1_B.jpg``). UNIT split (paper, Sec. 4.1): domain 1 = the 1096 training satellites, domain 2 =
  the 1098 maps of the validation split, test = the 1098 satellites the paper calls "the test set",
  which can only be pix2pix's val split (maps has no other held-out split) against their own maps.
  So the domain-2 training maps are the test ground truth, seen unpaired during training; this is
  what the paper's counts imply and is recorded in ``describe()``.
- ``summer2winter``: CycleGAN's ``summer2winter_yosemite/{trainA,trainB,testA,testB}`` (A = summer,
  B = winter) or TUNIT's ``summer2winter/{train,test}/{summer,winter}``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import UnitEvalError
from .classes import (
    Dataset,
    _cyclegan_dataset,
    _holdout_dataset,
    _official_split_dataset,
    _split_dir,
    _subdirs,
)
from .paired import PairedDataset, _pair_by_stem, _side_by_side_pairs

DATA_ENV = "UNIT_EVAL_DATA"

ANIMALFACES10 = (
    "n02088364", "n02096437", "n02099601", "n02105162", "n02107908",
    "n02120079", "n02123045", "n02128757", "n02129165", "n02129604",
)
TUNIT_HOLDOUT = 50


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder named datasets live under: ``root``, else ``$UNIT_EVAL_DATA``, else ``./data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path("data")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    folders: tuple[str, ...]  # candidate folders under the data root, first match wins
    layout: str
    source: str
    build: Callable[..., Dataset | PairedDataset]


def _missing(spec: DatasetSpec, root: Path, detail: str = "") -> UnitEvalError:
    looked = ", ".join(str((root / f).absolute()) for f in spec.folders)
    extra = f" ({detail})" if detail else ""
    return UnitEvalError(
        f"dataset {spec.name!r} not found{extra}: looked in {looked} (data root from --data-root, ${DATA_ENV} or ./data); "
        f"expected layout {spec.layout}; get it from {spec.source}"
    )


def _find(spec: DatasetSpec, root: Path, check: Callable[[Path], bool]) -> Path:
    for sub in spec.folders:
        folder = root / sub
        if folder.is_dir() and check(folder):
            return folder
    raise _missing(spec, root)


def _build_afhq(spec, root, classes=None, holdout=None):
    folder = _find(spec, root, lambda f: (f / "train").is_dir() and _split_dir(f, ("test", "val")) is not None)
    test_dir = _split_dir(folder, ("test", "val"))
    return _official_split_dataset(spec.name, folder, folder / "train", test_dir, classes, spec.layout, spec.source)


def _afhq_one(cls):
    def build(spec, root, classes=None, holdout=None):
        return _build_afhq(spec, root, classes=classes or [cls])

    return build


def _build_animalfaces(default_classes):
    def build(spec, root, classes=None, holdout=None):
        folder = _find(spec, root, lambda f: any(f.iterdir()))
        chosen = classes if classes is not None else default_classes
        return _holdout_dataset(
            spec.name, folder, chosen, holdout or TUNIT_HOLDOUT, spec.layout, spec.source,
            "validation = last 50 images per class in sorted file order, as TUNIT's datasetgetter.py",
        )

    return build


def _build_food10(spec, root, classes=None, holdout=None):
    assumption = (
        "TUNIT never published Food-10's ten Food-101 classes nor a Food-10 loader; classes are the ones "
        "given, split by TUNIT's AnimalFaces rule (last 50 per class = validation)"
    )
    for sub in ("food10", "food-10"):
        folder = root / sub
        if folder.is_dir() and _subdirs(folder):
            return _holdout_dataset(spec.name, folder, classes, holdout or TUNIT_HOLDOUT, spec.layout, spec.source, assumption)
    food101 = root / "food-101" / "images"
    if food101.is_dir():
        if not classes:
            raise _missing(spec, root, f"found {food101} but Food-10's classes are unpublished: pass ten class names with --classes")
        return _holdout_dataset(spec.name, food101, classes, holdout or TUNIT_HOLDOUT, spec.layout, spec.source, assumption)
    raise _missing(spec, root)


def _build_summer2winter(spec, root, classes=None, holdout=None):
    cyclegan = root / "summer2winter_yosemite"
    if all((cyclegan / d).is_dir() for d in ("trainA", "trainB", "testA", "testB")):
        return _cyclegan_dataset(spec.name, cyclegan, ("summer", "winter"), spec.layout, spec.source)
    tunit = root / "summer2winter"
    if (tunit / "train").is_dir() and _split_dir(tunit, ("test", "val")) is not None:
        return _official_split_dataset(
            spec.name, tunit, tunit / "train", _split_dir(tunit, ("test", "val")),
            classes or ["summer", "winter"], spec.layout, spec.source,
        )
    raise _missing(spec, root)


MAPS_ASSUMPTION = (
    "UNIT paper split: domain 1 = training-split satellites (1096), domain 2 = validation-split maps (1098), "
    "test = validation-split satellites vs their maps (the paper's 'test set'; pix2pix maps ships only train and val), "
    "so domain-2 training maps are the test ground truth seen unpaired"
)


def _build_maps(spec, root, classes=None, holdout=None):
    folder = root / "maps"
    domains = ("satellite", "map")
    if (folder / "train").is_dir() and (folder / "val").is_dir():
        train_pairs = _side_by_side_pairs(folder / "train")
        test_pairs = _side_by_side_pairs(folder / "val")
        layout = "maps/{train,val}/N.jpg side by side (satellite left, map right)"
    elif all((folder / d).is_dir() for d in ("trainA", "trainB", "testA", "testB")):
        train_pairs = _pair_by_stem(folder / "trainA", folder / "trainB")
        test_pairs = _pair_by_stem(folder / "testA", folder / "testB")
        layout = "maps/{trainA,trainB,testA,testB} (CycleGAN; A = satellite, B = map, paired by name)"
    else:
        raise _missing(spec, root)
    return PairedDataset(
        name=spec.name, root=folder, domains=domains, layout=layout,
        split_rule="UNIT: train = train satellites + val maps (unpaired); test = val satellites paired with val maps",
        train_source=[p.source for p in train_pairs], train_target=[p.target for p in test_pairs],
        test_pairs=test_pairs, train_pairs=train_pairs, source=spec.source, assumptions=MAPS_ASSUMPTION,
    )


_AFHQ_SOURCE = "StarGAN v2 (github.com/clovaai/stargan-v2: bash download.sh afhq-dataset)"
_AFHQ_LAYOUT = "afhq/{train,test or val}/{cat,dog,wild}/*.jpg"
_AF_SOURCE = (
    "FUNIT (github.com/NVlabs/FUNIT: crop ImageNet ILSVRC2012 train with tools/extract_animalfaces.py "
    "and datasets/animalface_coordinates.txt)"
)

NAMED_DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("afhq", "AFHQ (cat, dog, wild)", ("afhq",), _AFHQ_LAYOUT, _AFHQ_SOURCE, _build_afhq),
        DatasetSpec("afhq_cat", "AFHQ cat (one class, TUNIT afhq_cat)", ("afhq",), _AFHQ_LAYOUT, _AFHQ_SOURCE, _afhq_one("cat")),
        DatasetSpec("afhq_dog", "AFHQ dog (one class, TUNIT afhq_dog)", ("afhq",), _AFHQ_LAYOUT, _AFHQ_SOURCE, _afhq_one("dog")),
        DatasetSpec("afhq_wild", "AFHQ wild (one class, TUNIT afhq_wild)", ("afhq",), _AFHQ_LAYOUT, _AFHQ_SOURCE, _afhq_one("wild")),
        DatasetSpec(
            "animalfaces10", "AnimalFaces-10 (TUNIT's 10 of FUNIT's 149 classes)",
            ("animal_faces", "animals", "animalfaces"), "animal_faces/<synset>/*.jpg (the 10 synsets of TUNIT)",
            _AF_SOURCE, _build_animalfaces(list(ANIMALFACES10)),
        ),
        DatasetSpec(
            "animalfaces149", "AnimalFaces (all 149 classes)", ("animal_faces", "animals", "animalfaces"),
            "animal_faces/<synset>/*.jpg (149 folders)", _AF_SOURCE, _build_animalfaces(None),
        ),
        DatasetSpec(
            "food10", "Food-10 (ten Food-101 classes; which ten is unpublished)", ("food10", "food-10", "food-101/images"),
            "food10/<class>/*.jpg (ten class folders) or food-101/images/<class>/*.jpg with --classes",
            "Food-101 (data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/)", _build_food10,
        ),
        DatasetSpec(
            "maps", "Maps (pix2pix satellite <-> map, UNIT paper split)", ("maps",),
            "maps/{train,val}/N.jpg, 1200x600, satellite left, map right (or CycleGAN maps/{trainA,trainB,testA,testB})",
            "pix2pix (github.com/junyanz/pytorch-CycleGAN-and-pix2pix: bash datasets/download_pix2pix_dataset.sh maps)",
            _build_maps,
        ),
        DatasetSpec(
            "summer2winter", "Summer2Winter Yosemite (CycleGAN)", ("summer2winter_yosemite", "summer2winter"),
            "summer2winter_yosemite/{trainA,trainB,testA,testB} (or TUNIT's summer2winter/{train,test}/{summer,winter})",
            "CycleGAN (github.com/junyanz/pytorch-CycleGAN-and-pix2pix: bash datasets/download_cyclegan_dataset.sh summer2winter_yosemite)",
            _build_summer2winter,
        ),
    ]
}

_ALIASES = {
    "animal_faces": "animalfaces10", "animalfaces": "animalfaces10", "animalfaces-10": "animalfaces10",
    "animalfaces_10": "animalfaces10", "animalfaces-149": "animalfaces149", "food-10": "food10",
    "food_10": "food10", "afhq-cat": "afhq_cat", "afhq-dog": "afhq_dog", "afhq-wild": "afhq_wild",
    "summer2winter_yosemite": "summer2winter", "s2w": "summer2winter",
}


def canonical_name(name: str) -> str | None:
    """The registry name for ``name`` (case and alias tolerant), or None when it is no named dataset."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in NAMED_DATASETS else None


def list_named(root: str | os.PathLike | None = None) -> list[dict]:
    """Every named dataset with whether (and where) it is present under the data root."""
    base = data_root(root)
    rows = []
    for spec in NAMED_DATASETS.values():
        found = next((str(base / f) for f in spec.folders if (base / f).is_dir()), None)
        rows.append({"name": spec.name, "title": spec.title, "layout": spec.layout, "source": spec.source, "found": found})
    return rows
