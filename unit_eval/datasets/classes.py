"""Class-folder datasets: :class:`Dataset`, the split rules, and what a plain folder resolves to.

``Dataset``: ``.name``, ``.root``, ``.classes``, ``.split("train" | "test" | "all") -> {class: [Path]}``
(``"val"`` is an alias of ``"test"``), ``.describe() -> dict`` (name, root, layout, split rule,
counts per class and split, where the data is published, assumptions) for result rows.

A plain folder: ``train``/``test`` (or ``val``) subfolders holding class folders use those splits;
CycleGAN-style ``trainA``... folders become classes ``A`` and ``B``; otherwise the immediate
subfolders are classes (a folder of images with none is one class named after it) and
``holdout=N`` moves the last N sorted images of each class to ``test``; without it train and test
are the same images (``describe()`` says so). Everything is sorted; nothing here is random.

The builders here (shipped folders, last-N holdout, CycleGAN ``trainA``...) also back the named
datasets of :mod:`unit_eval.datasets.named`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UnitEvalError
from ..images import list_images

MANIFEST = "MANIFEST.json"


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_dir(folder: Path, names: tuple[str, ...]) -> Path | None:
    for n in names:
        if (folder / n).is_dir():
            return folder / n
    return None


def _read_manifest(path: Path) -> dict:
    file = path / MANIFEST
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UnitEvalError(f"cannot read {file}: {exc}") from None
    return data if isinstance(data, dict) else {}


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
# Builders: shipped train/test folders, last-N holdout, CycleGAN trainA/trainB/testA/testB


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


# --------------------------------------------------------------------------------------------------
# A plain folder of classes


def _class_folder(path: Path, name: str, source: str | None, classes, holdout) -> Dataset:
    """The :class:`Dataset` a plain folder holds (module docstring), named ``name``."""
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
