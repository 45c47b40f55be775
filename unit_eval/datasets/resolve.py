"""Name or path -> dataset: :func:`resolve_dataset` and :func:`resolve_paired`.

An existing path always wins over a name: a folder whose ``MANIFEST.json`` says ``"kind":
"paired"`` is a :class:`~unit_eval.datasets.paired.PairedDataset`, any other folder a class folder
(:mod:`unit_eval.datasets.classes`). Otherwise a name is looked up in the registry
(:mod:`unit_eval.datasets.named`) under the data root, then among the embedded sets
(:mod:`unit_eval.embedded`), which are materialised on first use.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import UnitEvalError
from .classes import Dataset, _class_folder, _read_manifest
from .named import NAMED_DATASETS, canonical_name, data_root
from .paired import PairedDataset, _paired_folder


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
    from .. import embedded

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
    return _class_folder(path, manifest.get("name") or path.name, manifest.get("source"), classes, holdout)


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
