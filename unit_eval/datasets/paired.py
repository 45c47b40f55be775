"""Paired (satellite -> map style) sets: :class:`ImageRef`, :class:`Pair`, :class:`PairedDataset`.

``PairedDataset`` (``resolve_paired`` insists on one): ``.domains`` (source, target),
``.pairs(split)`` -> ``[Pair]``, ``.load_pair(pair, size=None) -> (source uint8, target uint8)``,
``.unit_split(split)`` -> {domain: [ImageRef]} following the UNIT paper, ``.export(out)`` writing
``out/{train,test}/{source,target}/*.png`` plus ``MANIFEST.json`` (CLI: ``unit-eval data
export-pairs maps --out DIR``), and ``.split(name)`` -> {domain: [Path]} once every image is its
own file.

Pairs come from two folders whose files share names (``1_A.jpg`` <-> ``1_B.jpg`` counts as the
same name), or from side-by-side files (pix2pix: source left, target right). An exported or
``DIR/{train,test}/{A,B}`` folder resolves through :func:`_paired_folder`; the named ``maps`` set
and its UNIT split live in :mod:`unit_eval.datasets.named`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UnitEvalError
from ..images import list_images, load_image, resize_filter_of, save_image
from .classes import MANIFEST, _split_dir, _subdirs


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
    """Two domains with a paired test set (the UNIT map split: :mod:`unit_eval.datasets.named`)."""

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


# --------------------------------------------------------------------------------------------------
# Pairing: by file name across two folders, or the two halves of one side-by-side file


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
# A paired folder: DIR/{train,test}/{A,B} (exported, embedded or hand-made)


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
