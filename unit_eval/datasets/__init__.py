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

Modules
-------
- :mod:`~unit_eval.datasets.classes`: :class:`Dataset`, the split rules (shipped folders, last-N
  holdout, CycleGAN ``trainA``...) and what a plain folder resolves to;
- :mod:`~unit_eval.datasets.paired`: :class:`ImageRef`, :class:`Pair`, :class:`PairedDataset`,
  pairing by file name or side by side, export;
- :mod:`~unit_eval.datasets.named`: the registry of named datasets (``afhq``, ``animalfaces10``,
  ``food10``, ``maps``, ``summer2winter`` ...) with their layouts, splits and assumptions, and the
  data root;
- :mod:`~unit_eval.datasets.resolve`: :func:`resolve_dataset` and :func:`resolve_paired`.

Everything is sorted; nothing here is random.
"""
from __future__ import annotations

from .classes import MANIFEST, Dataset
from .named import (
    ANIMALFACES10,
    DATA_ENV,
    MAPS_ASSUMPTION,
    NAMED_DATASETS,
    TUNIT_HOLDOUT,
    DatasetSpec,
    canonical_name,
    data_root,
    list_named,
)
from .paired import ImageRef, Pair, PairedDataset
from .resolve import resolve_dataset, resolve_paired

__all__ = [
    "ANIMALFACES10",
    "DATA_ENV",
    "MANIFEST",
    "MAPS_ASSUMPTION",
    "NAMED_DATASETS",
    "TUNIT_HOLDOUT",
    "Dataset",
    "DatasetSpec",
    "ImageRef",
    "Pair",
    "PairedDataset",
    "canonical_name",
    "data_root",
    "list_named",
    "resolve_dataset",
    "resolve_paired",
]
