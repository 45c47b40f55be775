"""Metrics over image folders: the I/O edge between files on disk and the pure metric functions.

FID, mFID and D&C shard their feature extraction automatically when launched with torchrun
(:mod:`unit_eval.sharding`): statistics are reduced exactly across ranks, D&C gathers the full sets.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from . import sharding
from .errors import UnitEvalError
from .evaluation.intervals import NONE, BootstrapPlan, class_fid_intervals, class_kid, kid_options, prdc_intervals
from .evaluation.realsets import RealSets
from .features import FeatureCache, InceptionFeatures
from .images import list_class_folders, list_images, load_image, to_tensor_uint8, uint8_to_float
from .metrics import cluster, fid, pixacc, prdc
from .metrics.lpips import lpips_diversity, lpips_pairs
from .results import MEAN, ProtocolResult


def summary(result: ProtocolResult) -> dict:
    """A folder command's result as its ``--json`` prints it: each metric's value, ``per_class`` FIDs and per-class
    counts for mFID (total counts otherwise), ``k`` for D&C, and the extractor."""
    out = {metric: per[MEAN] for metric, per in result.values.items() if MEAN in per}
    per_class = {c: v for c, v in result.values.get("fid", {}).items() if c != MEAN}
    if per_class:
        out["per_class"] = per_class
        out["n_real"] = {c: n for c, n in result.n_real.items() if c != MEAN}
        out["n_fake"] = {c: n for c, n in result.n_fake.items() if c != MEAN}
    else:
        if "k" in result.options:
            out["k"] = result.options["k"]
        out["n_real"], out["n_fake"] = result.n_real[MEAN], result.n_fake[MEAN]
    out["extractor"] = result.extractor
    out.update(result.interval_summary())
    return out


def _options(size, resize_filter, **extra) -> dict:
    return {"size": size, "resize_filter": resize_filter if size else None, **extra}


def _dataset_name(folder) -> str:
    return Path(folder).resolve().name


def folder_fid(real, fake, extractor: InceptionFeatures, size: int | None = None, resize_filter: str = "bicubic",
               cache: FeatureCache | None = None, plan: BootstrapPlan = NONE) -> ProtocolResult:
    """FID of the images in ``fake`` against ``real`` (both recursive folders); the real set through ``cache``.
    ``plan``: bootstrap intervals (:mod:`unit_eval.evaluation.intervals`)."""
    reals = RealSets(cache)
    real_paths = list_images(real)
    real_f = {MEAN: reals.features(real_paths, extractor, size, resize_filter, "real")} if plan.real else None
    real_g = reals.gaussian(real_paths, extractor, size, resize_filter, "real")  # from real_f when extracted
    if plan:
        fake_f = RealSets(None).features(list_images(fake), extractor, size, resize_filter, "fake")
        fake_g = fid.Gaussian(fake_f, extractor.device)
    else:
        fake_g = RealSets(None).gaussian(list_images(fake), extractor, size, resize_filter, "fake")
    value = real_g.fid(fake_g)
    intervals = sharding.on_main(class_fid_intervals, plan, 0, {MEAN: real_g}, {MEAN: fake_f}, real_f,
                                 {MEAN: value}) if plan else {}
    return ProtocolResult("fid", None, {"fid": {MEAN: value}}, {MEAN: real_g.n}, {MEAN: fake_g.n},
                          extractor.describe(), _options(size, resize_filter, **plan.options()), _dataset_name(real),
                          feature_dim=real_g.dim, intervals=intervals)


def folder_kid(real, fake, extractor: InceptionFeatures, size: int | None = None, resize_filter: str = "bicubic",
               cache: FeatureCache | None = None, plan: BootstrapPlan = NONE) -> ProtocolResult:
    """KID (torch-fidelity's estimator: 100 subsets of min(1000, set sizes), polynomial kernel) of ``fake``
    against ``real``; the reported ``kid_std`` is the spread over subsets, as torch-fidelity reports it."""
    real_f = RealSets(cache).features(list_images(real), extractor, size, resize_filter, "real")
    fake_f = RealSets(None).features(list_images(fake), extractor, size, resize_filter, "fake")
    result = sharding.on_main(class_kid, plan, 0, {MEAN: real_f}, {MEAN: fake_f})
    return ProtocolResult("kid", None, result.values, {MEAN: len(real_f)}, {MEAN: len(fake_f)}, extractor.describe(),
                          _options(size, resize_filter, **kid_options(result.subset_size), **plan.options()),
                          _dataset_name(real), feature_dim=real_f.shape[1], intervals=result.intervals)


def class_names(folder) -> list[str] | None:
    """The class subfolders' names as :func:`~unit_eval.images.list_class_folders` sees them (hidden ones such as
    ``.ipynb_checkpoints`` skipped), or None when ``folder`` is no folder (that error comes later, with the path)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def folder_mfid(real, fake, extractor: InceptionFeatures, size: int | None = None, resize_filter: str = "bicubic",
                cache: FeatureCache | None = None, plan: BootstrapPlan = NONE) -> ProtocolResult:
    """Class-wise FID: the immediate subfolders of ``real`` and ``fake`` are the classes (the same set)."""
    real_classes = class_names(real)
    fake_classes = class_names(fake)
    if real_classes is not None and fake_classes is not None and set(real_classes) != set(fake_classes):
        raise UnitEvalError(
            f"class sets differ: only in real {sorted(set(real_classes) - set(fake_classes))}, "
            f"only in fake {sorted(set(fake_classes) - set(real_classes))}"
        )
    reals, fakes = RealSets(cache), RealSets(None)
    real_paths, fake_paths = list_class_folders(real), list_class_folders(fake)
    real_f = {c: reals.features(p, extractor, size, resize_filter, f"real {c}") for c, p in real_paths.items()} \
        if plan.real else None
    real_g = {c: reals.gaussian(p, extractor, size, resize_filter, f"real {c}") for c, p in real_paths.items()}
    intervals = {}
    if plan:
        fake_f = {c: fakes.features(p, extractor, size, resize_filter, f"fake {c}") for c, p in fake_paths.items()}
        fake_g = {c: fid.Gaussian(f, extractor.device) for c, f in fake_f.items()}
    else:
        fake_g = {c: fakes.gaussian(p, extractor, size, resize_filter, f"fake {c}") for c, p in fake_paths.items()}
    mean, per_class = fid.class_wise_fid(real_g, fake_g, device=extractor.device)
    if plan:
        intervals = sharding.on_main(class_fid_intervals, plan, 0, {c: real_g[c] for c in per_class},
                                     fake_f, real_f, per_class)
    n_real, n_fake = {c: g.n for c, g in real_g.items()}, {c: g.n for c, g in fake_g.items()}
    n_real[MEAN], n_fake[MEAN] = sum(n_real.values()), sum(n_fake.values())
    return ProtocolResult("mfid", None, {"mfid": {MEAN: mean}, "fid": per_class}, n_real, n_fake, extractor.describe(),
                          _options(size, resize_filter, **plan.options()), _dataset_name(real),
                          feature_dim=next(iter(real_g.values())).dim, intervals=intervals)


def folder_prdc(real, fake, extractor: InceptionFeatures, k: int = prdc.DEFAULT_K, size: int | None = None,
                resize_filter: str = "bicubic", cache: FeatureCache | None = None,
                plan: BootstrapPlan = NONE) -> ProtocolResult:
    """Density, coverage, precision and recall of ``fake`` against ``real`` (prdc semantics, real first)."""
    real_feats = RealSets(cache).features(list_images(real), extractor, size, resize_filter, "real")
    fake_feats = RealSets(None).features(list_images(fake), extractor, size, resize_filter, "fake")
    # Under torchrun every rank holds both full sets; rank 0 computes and shares the scores.
    scores = sharding.on_main(prdc.compute_prdc, real_feats, fake_feats, k=k, device=extractor.device)
    values = {m: {MEAN: scores[m]} for m in ("density", "coverage", "precision", "recall")}
    intervals = sharding.on_main(prdc_intervals, plan, 0, real_feats, fake_feats, k, scores) if plan else {}
    return ProtocolResult("dc", None, values, {MEAN: len(real_feats)}, {MEAN: len(fake_feats)}, extractor.describe(),
                          _options(size, resize_filter, k=k, **plan.options()), _dataset_name(real),
                          feature_dim=real_feats.shape[1], intervals=intervals)


def paired_files(dir_a, dir_b) -> list[tuple[Path, Path]]:
    """Pair images of two folders by relative path (extension ignored); both sides must have the same set."""
    dir_a, dir_b = Path(dir_a), Path(dir_b)

    def index(folder):
        found = {}
        for p in list_images(folder):
            key = p.relative_to(folder).with_suffix("").as_posix()
            if key in found:
                raise UnitEvalError(f"two images share the name {key!r} in {folder} (different extensions)")
            found[key] = p
        return found

    a, b = index(dir_a), index(dir_b)
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise UnitEvalError(
            f"unpaired images: {len(only_a)} only in {dir_a} (e.g. {only_a[:3]}), {len(only_b)} only in {dir_b} (e.g. {only_b[:3]})"
        )
    return [(a[k], b[k]) for k in sorted(a)]


def _load_float(paths, size, resize_filter) -> torch.Tensor:
    return uint8_to_float(to_tensor_uint8([load_image(p, size, resize_filter) for p in paths]))


def folder_lpips(dir_a, dir_b, net, size: int | None = None, resize_filter: str = "bicubic", batch_size: int = 32) -> dict:
    pairs = paired_files(dir_a, dir_b)
    distances = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        first = [load_image(p, size, resize_filter) for p, _ in chunk]
        second = [load_image(q, size, resize_filter) for _, q in chunk]
        for (pa, pb), ia, ib in zip(chunk, first, second):
            if ia.shape != ib.shape:
                raise UnitEvalError(f"{pa} {ia.shape[:2]} and {pb} {ib.shape[:2]} differ in size; pass --size")
        a = uint8_to_float(to_tensor_uint8(first))
        b = uint8_to_float(to_tensor_uint8(second))
        distances.append(lpips_pairs(net, a, b, batch_size))
    d = torch.cat(distances)
    return {"lpips": float(d.mean()), "n_pairs": len(pairs), "per_pair": {p.relative_to(dir_a).as_posix(): float(v) for (p, _), v in zip(pairs, d)}}


def folder_diversity(folder, net, size: int | None = None, resize_filter: str = "bicubic", batch_size: int = 32) -> dict:
    """Each immediate subfolder holds the several outputs of one input; score = mean over inputs."""
    groups = list_class_folders(folder)
    per_input = {}
    for name, paths in groups.items():
        if len(paths) < 2:
            raise UnitEvalError(f"diversity needs at least 2 outputs per input; {Path(folder) / name} has {len(paths)}")
        outputs = _load_float(paths, size, resize_filter).unsqueeze(0)
        per_input[name] = float(lpips_diversity(net, outputs, batch_size)[0])
    return {"lpips_diversity": float(np.mean(list(per_input.values()))), "n_inputs": len(per_input), "per_input": per_input}


def folder_pixacc(pred_dir, gt_dir, threshold: int = pixacc.DEFAULT_THRESHOLD, size: int | None = None,
                  resize_filter: str = "nearest") -> dict:
    pairs = paired_files(pred_dir, gt_dir)
    value = pixacc.pixel_accuracy(((load_image(p, size, resize_filter), load_image(g, size, resize_filter)) for p, g in pairs),
                                  threshold=threshold)
    return {"pixel_accuracy": value, "n_images": len(pairs), "threshold": threshold}


def _read_csv(path: Path):
    import pandas as pd

    if not path.is_file():
        raise UnitEvalError(f"file not found: {path}")
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise UnitEvalError(f"{path} is empty; expected a CSV with a header row") from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnitEvalError(f"cannot read CSV {path}: {first}") from None
    if table.empty:
        raise UnitEvalError(f"{path} has a header but no rows")
    return table


def _integer_ids(column, path: Path, name: str) -> np.ndarray:
    """Cluster ids or labels: integers, or names (strings); anything else (floats, mixed) is refused."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy()
    if (pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column)) and all(isinstance(v, str) for v in column):
        return column.to_numpy().astype(str)
    example = column.iloc[0]
    example = example.item() if hasattr(example, "item") else example
    raise UnitEvalError(f"{path}: column {name!r} must hold integer ids or names, got {column.dtype} (e.g. {example!r})")


def read_cluster_csv(path) -> tuple[np.ndarray, np.ndarray]:
    path = Path(path)
    table = _read_csv(path)
    missing = [c for c in ("pred", "label") if c not in table.columns]
    if missing:
        raise UnitEvalError(f"{path} lacks column(s) {missing}; expected columns 'pred' and 'label'")
    if table[["pred", "label"]].isna().any().any():
        raise UnitEvalError(f"{path} has empty pred/label cells")
    return _integer_ids(table["pred"], path, "pred"), _integer_ids(table["label"], path, "label")


def cluster_scores(pred, label) -> dict:
    return {
        "accuracy": cluster.hungarian_accuracy(pred, label),
        "accuracy_majority": cluster.majority_accuracy(pred, label),
        "nmi": cluster.nmi(pred, label),
        "n": int(len(pred)),
        "n_clusters": int(len(np.unique(pred))),
        "n_classes": int(len(np.unique(label))),
    }


def read_codes(path) -> tuple[np.ndarray, np.ndarray]:
    """Style codes and cluster ids from .npz (arrays ``codes``, ``clusters``) or .csv (column ``cluster``)."""
    path = Path(path)
    if not path.is_file():
        raise UnitEvalError(f"file not found: {path}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                if "codes" not in data or "clusters" not in data:
                    raise UnitEvalError(f"{path} must hold arrays 'codes' (N x D) and 'clusters' (N)")
                codes, clusters = data["codes"], data["clusters"]
        except ValueError as exc:  # object arrays (they need pickle, which is never allowed) and malformed members
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnitEvalError(f"cannot read {path}: {first}") from None
        except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise UnitEvalError(f"cannot read {path}: not a valid .npz ({type(exc).__name__})") from None
        if codes.dtype.kind not in "biuf" or codes.ndim != 2:
            raise UnitEvalError(f"{path}: 'codes' must be an N x D numeric array, got {codes.dtype} {codes.shape}")
        if clusters.dtype.kind not in "biuU" or clusters.ndim != 1:
            raise UnitEvalError(f"{path}: 'clusters' must be N integer ids or names, got {clusters.dtype} {clusters.shape}")
        return codes.astype(np.float64), clusters
    table = _read_csv(path)
    if "cluster" not in table.columns:
        raise UnitEvalError(f"{path} lacks a 'cluster' column (the other columns are the code)")
    codes = table.drop(columns=["cluster"])
    if codes.shape[1] == 0:
        raise UnitEvalError(f"{path} has no code columns besides 'cluster'")
    import pandas as pd

    bad = [c for c in codes.columns if not pd.api.types.is_numeric_dtype(codes[c]) or pd.api.types.is_bool_dtype(codes[c])]
    if bad or codes.isna().any().any():
        raise UnitEvalError(f"{path}: code columns must be numbers without gaps; {bad[0] if bad else 'a cell'!r} is not")
    return codes.to_numpy(dtype=np.float64), _integer_ids(table["cluster"], path, "cluster")
