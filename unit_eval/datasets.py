"""Datasets: class folders, the published benchmarks by name, and the paired map-style sets.

API
---
``resolve_dataset(name_or_path, root=None, classes=None, holdout=None)`` returns a :class:`Dataset`
(classes of images) or, for paired sets (``maps``, an exported or embedded paired folder), a
:class:`PairedDataset`. An existing path always wins over a name; otherwise names resolve under the
data root: the ``root`` argument, else ``$UNIT_EVAL_DATA``, else ``./data``. The embedded sets
(``digits``, ``photos``, ``photos-paired``, see :mod:`unit_eval.embedded`) resolve by name too and
are materialised on first use.

``Dataset``: ``.name``, ``.root``, ``.classes``, ``.split("train" | "test" | "all") -> {class: [Path]}``
(``"val"`` is an alias of ``"test"``), ``.describe() -> dict`` (name, root, layout, split rule,
counts per class and split, where the data is published, assumptions) for result rows.

``PairedDataset`` (satellite -> map style; ``resolve_paired`` insists on one): ``.domains`` (source,
target), ``.pairs(split)`` -> ``[Pair]``, ``.load_pair(pair, size=None) -> (source uint8, target
uint8)``, ``.unit_split(split)`` -> {domain: [ImageRef]} following the UNIT paper, ``.export(out)``
writing ``out/{train,test}/{source,target}/*.png`` (CLI: ``unit-eval data export-pairs maps --out
DIR``), and ``.split(name)`` -> {domain: [Path]} once every image is its own file. Note that the
bundled trainers order classes by folder name, so an exported ``maps`` folder gives domain 0 =
``map``, 1 = ``satellite``: look domains up by name.

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

A plain folder: ``train``/``test`` (or ``val``) subfolders holding class folders use those splits;
CycleGAN-style ``trainA``... folders become classes ``A`` and ``B``; otherwise the immediate
subfolders are classes (a folder of images with none is one class named after it) and
``holdout=N`` moves the last N sorted images of each class to ``test``; without it train and test
are the same images (``describe()`` says so). Everything is sorted; nothing here is random.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import UnitEvalError
from .images import list_images, load_image, resize_filter_of, save_image

DATA_ENV = "UNIT_EVAL_DATA"
MANIFEST = "MANIFEST.json"

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


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _pick_classes(folder: Path, classes) -> list[str]:
    available = [p.name for p in _subdirs(folder)]
    if classes is None:
        if not available:
            raise UnitEvalError(f"{folder} has no class subfolders")
        return available
    classes = list(classes)
    missing = [c for c in classes if c not in available]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UnitEvalError(f"class folders missing in {folder}: {shown} ({len(available)} class folders present)")
    return classes


def _holdout(per_class: dict[str, list[Path]], n: int, folder: Path) -> tuple[dict, dict]:
    train, test = {}, {}
    for cls, paths in per_class.items():
        if len(paths) <= n:
            raise UnitEvalError(
                f"class {cls!r} in {folder} has {len(paths)} images; holding out the last {n} needs more than {n}"
            )
        train[cls], test[cls] = paths[:-n], paths[-n:]
    return train, test


@dataclass
class Dataset:
    """Images grouped by class with deterministic train/test splits (see module docstring)."""

    name: str
    root: Path
    classes: list[str]
    layout: str
    split_rule: str
    source: str | None = None
    assumptions: str | None = None
    _loader: Callable[[], dict[str, dict[str, list[Path]]]] | None = field(default=None, repr=False)
    _splits: dict[str, dict[str, list[Path]]] | None = field(default=None, repr=False)

    def _all_splits(self) -> dict[str, dict[str, list[Path]]]:
        if self._splits is None:
            self._splits = self._loader()
        return self._splits

    def split(self, name: str) -> dict[str, list[Path]]:
        """``"train"``, ``"test"`` (alias ``"val"``) or ``"all"`` -> {class: sorted image paths}."""
        key = {"val": "test", "validation": "test"}.get(name, name)
        splits = self._all_splits()
        if key == "all":
            return {c: sorted(set(splits["train"][c]) | set(splits["test"][c])) for c in self.classes}
        if key not in splits:
            raise UnitEvalError(f"dataset {self.name!r} has no split {name!r}; choose train, test or all")
        return {c: list(splits[key][c]) for c in self.classes}

    def describe(self) -> dict:
        splits = self._all_splits()
        return {
            "name": self.name,
            "kind": "classes",
            "root": str(self.root),
            "layout": self.layout,
            "split_rule": self.split_rule,
            "classes": list(self.classes),
            "counts": {s: {c: len(splits[s][c]) for c in self.classes} for s in ("train", "test")},
            "source": self.source,
            "assumptions": self.assumptions,
        }


# --------------------------------------------------------------------------------------------------
# Paired (satellite -> map style) sets


@dataclass(frozen=True)
class ImageRef:
    """One image: a whole file, or the left/right half of a side-by-side file (pix2pix)."""

    path: Path
    half: str | None = None  # None, "left" or "right"

    def load(self, size: int | None = None, resize_filter: str = "bicubic") -> np.ndarray:
        arr = load_image(self.path)
        if self.half is not None:
            w = arr.shape[1] // 2
            arr = arr[:, :w] if self.half == "left" else arr[:, w: 2 * w]
        if size is not None and arr.shape[:2] != (size, size):
            from PIL import Image

            arr = np.asarray(Image.fromarray(arr).resize((size, size), resample=resize_filter_of(resize_filter)))
        return np.ascontiguousarray(arr)


@dataclass(frozen=True)
class Pair:
    """A source image and its ground-truth target (``stem`` names the pair in exported files)."""

    stem: str
    source: ImageRef
    target: ImageRef


@dataclass
class PairedDataset:
    """Two domains with a paired test set (see module docstring for the UNIT map split)."""

    name: str
    root: Path
    domains: tuple[str, str]
    layout: str
    split_rule: str
    train_source: list[ImageRef]
    train_target: list[ImageRef]
    test_pairs: list[Pair]
    train_pairs: list[Pair] | None = None
    source: str | None = None
    assumptions: str | None = None

    @property
    def classes(self) -> list[str]:
        return list(self.domains)

    def pairs(self, split: str = "test") -> list[Pair]:
        """Aligned (source, target) pairs: ``"test"`` (alias ``"val"``) or ``"train"`` where the layout pairs it."""
        if split in ("test", "val"):
            return list(self.test_pairs)
        if split == "train":
            if self.train_pairs is None:
                raise UnitEvalError(f"{self.name}: the training split is unpaired in this layout; only 'test' has pairs")
            return list(self.train_pairs)
        raise UnitEvalError(f"{self.name}: no split {split!r}; choose train or test")

    def unit_split(self, split: str) -> dict[str, list[ImageRef]]:
        """``"train"``: the two unpaired training domains; ``"test"``: sources and targets, aligned."""
        if split == "train":
            return {self.domains[0]: list(self.train_source), self.domains[1]: list(self.train_target)}
        if split in ("test", "val"):
            return {self.domains[0]: [p.source for p in self.test_pairs], self.domains[1]: [p.target for p in self.test_pairs]}
        raise UnitEvalError(f"{self.name}: no split {split!r}; choose train or test")

    def split(self, name: str) -> dict[str, list[Path]]:
        """Like :meth:`unit_split` as file paths; needs one file per image (export side-by-side sets first)."""
        refs = self.unit_split(name)
        if any(r.half is not None for rs in refs.values() for r in rs):
            raise UnitEvalError(
                f"{self.name} stores each pair side by side in one file; run "
                f"'unit-eval data export-pairs {self.name} --out DIR' and use DIR"
            )
        return {d: [r.path for r in rs] for d, rs in refs.items()}

    @staticmethod
    def load_pair(pair: Pair, size: int | None = None, resize_filter: str = "bicubic") -> tuple[np.ndarray, np.ndarray]:
        """(source, target) as H x W x 3 uint8 arrays (satellite, map for ``maps``)."""
        return pair.source.load(size, resize_filter), pair.target.load(size, resize_filter)

    def describe(self) -> dict:
        return {
            "name": self.name,
            "kind": "paired",
            "root": str(self.root),
            "layout": self.layout,
            "split_rule": self.split_rule,
            "classes": list(self.domains),
            "counts": {
                "train": {self.domains[0]: len(self.train_source), self.domains[1]: len(self.train_target)},
                "test": {self.domains[0]: len(self.test_pairs), self.domains[1]: len(self.test_pairs)},
            },
            "source": self.source,
            "assumptions": self.assumptions,
        }

    def export(self, out: str | os.PathLike, size: int | None = None, progress: bool = True) -> Path:
        """Write ``out/{train,test}/{source,target}/*.png`` (test pairs share file names) plus a manifest.

        The result resolves again as a PairedDataset; ``out/train`` is the two-subfolder layout the
        UNIT trainer takes, ``out/test/<target>`` is the ground truth for ``unit-eval pixacc``.
        """
        from tqdm import tqdm

        out = Path(out)
        if out.exists() and any(out.iterdir()):
            raise UnitEvalError(f"export folder {out} is not empty; choose a new --out")
        a, b = self.domains
        jobs = [(r, out / "train" / a / f"{n}.png") for r, n in zip(self.train_source, _unique_stems(self.train_source))]
        jobs += [(r, out / "train" / b / f"{n}.png") for r, n in zip(self.train_target, _unique_stems(self.train_target))]
        for p in self.test_pairs:
            jobs += [(p.source, out / "test" / a / f"{p.stem}.png"), (p.target, out / "test" / b / f"{p.stem}.png")]
        for ref, dest in tqdm(jobs, desc=f"export {self.name}", unit="img", disable=not progress):
            save_image(ref.load(size), dest)
        manifest = {
            "kind": "paired",
            "name": self.name,
            "domains": [a, b],
            "exported_from": self.describe(),
            "size": size,
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return out


def _unique_stems(refs: list[ImageRef]) -> list[str]:
    """File stems, suffixed with a counter where two images share one (same name in two subfolders)."""
    seen: dict[str, int] = {}
    names = []
    for ref in refs:
        stem = ref.path.stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}_{seen[stem]}")
    return names


def _pair_stem(name: str) -> str:
    stem = Path(name).stem
    return stem[:-2] if stem.endswith(("_A", "_B")) else stem


def _pair_by_stem(folder_a: Path, folder_b: Path) -> list[Pair]:
    a = {_pair_stem(p.relative_to(folder_a).as_posix()): p for p in list_images(folder_a)}
    b = {_pair_stem(p.relative_to(folder_b).as_posix()): p for p in list_images(folder_b)}
    common = sorted(set(a) & set(b), key=_natural_key)
    if not common or len(common) != len(a) or len(common) != len(b):
        only_a, only_b = sorted(set(a) - set(b))[:3], sorted(set(b) - set(a))[:3]
        raise UnitEvalError(
            f"{folder_a} and {folder_b} do not pair by file name ({len(a)} vs {len(b)} images; "
            f"unmatched e.g. {only_a or only_b})"
        )
    return [Pair(s, ImageRef(a[s]), ImageRef(b[s])) for s in common]


def _natural_key(text: str):
    """'2' before '10' (pix2pix names its files 1.jpg ... 1098.jpg)."""
    import re

    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def _sorted_natural(paths: list[Path], base: Path) -> list[Path]:
    return sorted(paths, key=lambda p: _natural_key(p.relative_to(base).as_posix()))


def _side_by_side_pairs(folder: Path) -> list[Pair]:
    return [
        Pair(p.stem, ImageRef(p, "left"), ImageRef(p, "right"))
        for p in _sorted_natural(list_images(folder), folder)
    ]


# --------------------------------------------------------------------------------------------------
# Named datasets


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


def _split_dir(folder: Path, names: tuple[str, ...]) -> Path | None:
    for n in names:
        if (folder / n).is_dir():
            return folder / n
    return None


def _official_split_dataset(name, folder, train_dir, test_dir, classes, layout, source=None, assumptions=None) -> Dataset:
    chosen = _pick_classes(train_dir, classes)
    _pick_classes(test_dir, chosen)

    def load():
        return {
            "train": {c: list_images(train_dir / c) for c in chosen},
            "test": {c: list_images(test_dir / c) for c in chosen},
        }

    return Dataset(
        name=name, root=folder, classes=chosen, layout=layout,
        split_rule=f"shipped folders: train = {train_dir.name}/, test = {test_dir.name}/",
        source=source, assumptions=assumptions, _loader=load,
    )


def _holdout_dataset(name, folder, classes, n, layout, source=None, assumptions=None) -> Dataset:
    chosen = _pick_classes(folder, classes)

    def load():
        per_class = {c: list_images(folder / c) for c in chosen}
        train, test = _holdout(per_class, n, folder)
        return {"train": train, "test": test}

    return Dataset(
        name=name, root=folder, classes=chosen, layout=layout,
        split_rule=f"per class, sorted by path: test = last {n} images, train = the rest",
        source=source, assumptions=assumptions, _loader=load,
    )


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


def _cyclegan_dataset(name, folder, class_names, layout, source=None) -> Dataset:
    dirs = {"A": class_names[0], "B": class_names[1]}

    def load():
        return {
            s: {dirs[d]: list_images(folder / f"{s}{d}") for d in ("A", "B")}
            for s in ("train", "test")
        }

    return Dataset(
        name=name, root=folder, classes=list(class_names), layout=layout,
        split_rule=f"shipped folders: train = trainA/trainB, test = testA/testB ({class_names[0]} = A, {class_names[1]} = B)",
        source=source, _loader=load,
    )


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


def resolve_dataset(
    name_or_path: str | os.PathLike,
    root: str | os.PathLike | None = None,
    classes: list[str] | None = None,
    holdout: int | None = None,
) -> Dataset | PairedDataset:
    """A dataset from a path, a named benchmark under the data root, or an embedded set name.

    ``classes`` restricts (and orders) the classes; ``holdout`` overrides the per-class held-out
    count where the split is a last-N rule (plain folders, AnimalFaces, Food-10).
    """
    if holdout is not None and holdout < 1:
        raise UnitEvalError(f"holdout must be a positive number of images per class, got {holdout}")
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return _resolve_path(path, classes, holdout)
    key = canonical_name(text)
    if key is not None:
        spec = NAMED_DATASETS[key]
        return spec.build(spec, data_root(root), classes=classes, holdout=holdout)
    from . import embedded

    if text in embedded.EMBEDDED:
        return _resolve_path(embedded.materialize(text), classes, holdout)
    names = ", ".join(list(NAMED_DATASETS) + list(embedded.EMBEDDED))
    raise UnitEvalError(f"{text!r} is neither an existing folder nor a dataset name ({names})")


def _resolve_path(path: Path, classes, holdout) -> Dataset | PairedDataset:
    if not path.is_dir():
        raise UnitEvalError(f"not a folder: {path}")
    manifest = _read_manifest(path)
    if manifest.get("kind") == "paired":
        return _paired_folder(path, manifest)
    name = manifest.get("name") or path.name
    source = manifest.get("source")
    test_dir = _split_dir(path, ("test", "val"))
    if (path / "train").is_dir() and test_dir is not None and _subdirs(path / "train"):
        return _official_split_dataset(
            name, path, path / "train", test_dir, classes,
            f"{path.name}/{{train,{test_dir.name}}}/<class>/*", source,
        )
    if all((path / d).is_dir() for d in ("trainA", "trainB", "testA", "testB")):
        return _cyclegan_dataset(name, path, ("A", "B"), f"{path.name}/{{trainA,trainB,testA,testB}}", source)
    if not _subdirs(path):
        images = list_images(path)

        def load_flat():
            train, test = _holdout({path.name: images}, holdout, path) if holdout else ({path.name: images}, {path.name: images})
            return {"train": train, "test": test}

        return Dataset(
            name=name, root=path, classes=[path.name], layout=f"{path.name}/*.png (one class)",
            split_rule=_plain_rule(holdout), source=source, _loader=load_flat,
        )
    if holdout:
        return _holdout_dataset(name, path, classes, holdout, f"{path.name}/<class>/*", source)
    chosen = _pick_classes(path, classes)

    def load_plain():
        per_class = {c: list_images(path / c) for c in chosen}
        return {"train": per_class, "test": per_class}

    return Dataset(
        name=name, root=path, classes=chosen, layout=f"{path.name}/<class>/*",
        split_rule=_plain_rule(None), source=source, _loader=load_plain,
    )


def _plain_rule(holdout):
    if holdout:
        return f"per class, sorted by path: test = last {holdout} images, train = the rest"
    return "no split: train and test are the same images (pass holdout=N to hold out the last N per class)"


def _read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UnitEvalError(f"cannot read {file}: {exc}") from None
    return data if isinstance(data, dict) else {}


def resolve_paired(name_or_path: str | os.PathLike, root: str | os.PathLike | None = None) -> PairedDataset:
    """Like :func:`resolve_dataset`, but the result must be paired (``maps``, an exported folder,
    ``photos-paired``, or any ``DIR/{train,test}/{A,B}`` whose test files pair by name)."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir() and not _read_manifest(path):
        return _paired_folder(path, {})
    ds = resolve_dataset(name_or_path, root)
    if not isinstance(ds, PairedDataset):
        raise UnitEvalError(f"{text} is not a paired dataset (need test pairs of source and target images)")
    return ds


def _paired_folder(path: Path, manifest: dict) -> PairedDataset:
    test_dir = _split_dir(path, ("test", "val"))
    if test_dir is None:
        raise UnitEvalError(f"paired folder {path} needs test/<source>/ and test/<target>/ subfolders")
    domains = manifest.get("domains") or [p.name for p in _subdirs(test_dir)]
    if len(domains) != 2:
        raise UnitEvalError(f"paired folder {test_dir} must hold exactly two domain subfolders, found {domains}")
    a, b = domains
    test_pairs = _pair_by_stem(test_dir / a, test_dir / b)
    train_a = train_b = []
    if (path / "train" / a).is_dir() and (path / "train" / b).is_dir():
        train_a = [ImageRef(p) for p in _sorted_natural(list_images(path / "train" / a), path / "train" / a)]
        train_b = [ImageRef(p) for p in _sorted_natural(list_images(path / "train" / b), path / "train" / b)]
    return PairedDataset(
        name=manifest.get("name") or path.name, root=path, domains=(a, b),
        layout=f"{path.name}/{{train,{test_dir.name}}}/{{{a},{b}}}/* (test pairs share file names)",
        split_rule=f"train = train/{a} + train/{b} (unpaired); test = {test_dir.name}/{a} paired with {test_dir.name}/{b} by name",
        train_source=train_a, train_target=train_b, test_pairs=test_pairs,
        source=manifest.get("source"), assumptions=manifest.get("assumptions"),
    )


def list_named(root: str | os.PathLike | None = None) -> list[dict]:
    """Every named dataset with whether (and where) it is present under the data root."""
    base = data_root(root)
    rows = []
    for spec in NAMED_DATASETS.values():
        found = next((str(base / f) for f in spec.folders if (base / f).is_dir()), None)
        rows.append({"name": spec.name, "title": spec.title, "layout": spec.layout, "source": spec.source, "found": found})
    return rows
