"""What a model shows in figures: translation grids, pseudo-domain samples, style codes (``unit-eval plot``, the demo).

Each helper runs a Translator (see :mod:`unit_eval.translator`) on a dataset split ({class: [paths]}) on the device it
is given, through :mod:`.batches`, and returns the arrays :mod:`unit_eval.plots` draws.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import UnitEvalError
from ..images import to_tensor_uint8
from .batches import apply_in_batches, model_batches


def _load(paths: Sequence[Path], size: int) -> np.ndarray:
    from ..images import load_image

    return np.stack([load_image(p, size=size) for p in paths])


def _to_uint8_images(tensor) -> np.ndarray:
    from ..images import float_to_uint8

    return float_to_uint8(tensor).permute(0, 2, 3, 1).numpy()


def _pick_per_class(split: dict[str, list[Path]], n: int, rng: np.random.Generator, skip=()) -> list[tuple[str, Path]]:
    """``n`` images cycling through the classes in order, each drawn at random (seeded) within its class."""
    classes = [c for c in split if split[c]]
    if not classes:
        raise UnitEvalError("the data split has no images")
    order = {c: [p for p in rng.permutation(len(split[c]))] for c in classes}
    used = {c: 0 for c in classes}
    chosen = []
    k = 0
    while len(chosen) < n and k < n * len(classes) * 4:
        c = classes[k % len(classes)]
        k += 1
        while used[c] < len(order[c]) and split[c][order[c][used[c]]] in skip:
            used[c] += 1
        if used[c] < len(order[c]):
            chosen.append((c, split[c][order[c][used[c]]]))
            used[c] += 1
    return chosen


def _subsample(split: dict[str, list[Path]], max_images: int, rng: np.random.Generator) -> list[tuple[str, Path]]:
    """Up to ``max_images`` (class, path) items, as even across classes as the classes allow."""
    items = []
    per_class = {c: list(ps) for c, ps in split.items() if ps}
    quota = max(1, max_images // max(1, len(per_class)))
    for c, ps in per_class.items():
        idx = sorted(rng.permutation(len(ps))[:quota])
        items += [(c, ps[i]) for i in idx]
    return items[:max_images]


def grid_from_model(model, split: dict[str, list[Path]], device, *, n_sources: int = 5, n_references: int = 5,
                    seed: int = 0) -> dict:
    """Sources and references (one per class in turn, seeded) and the model's reference-guided outputs."""
    rng = np.random.default_rng(seed)
    srcs = _pick_per_class(split, n_sources, rng)
    refs = _pick_per_class(split, n_references, rng, skip={p for _, p in srcs})
    size = int(model.image_size)
    src_img, ref_img = _load([p for _, p in srcs], size), _load([p for _, p in refs], size)
    ref_u8 = to_tensor_uint8(list(ref_img))
    batches = ((to_tensor_uint8([img] * len(ref_img)), ref_u8) for img in src_img)  # one row per source
    rows = [_to_uint8_images(torch.as_tensor(out).detach().cpu()) for _, out in model_batches(model.translate, batches, device)]
    return {
        "sources": src_img,
        "references": ref_img,
        "outputs": np.stack(rows),
        "source_labels": [c for c, _ in srcs],
        "reference_labels": [c for c, _ in refs],
    }


def clusters_from_model(model, split: dict[str, list[Path]], device, *, max_images: int = 500, per_cluster: int = 8,
                        seed: int = 0) -> dict:
    """Assign up to ``max_images`` images to pseudo-domains with ``model.cluster``; sample each domain."""
    from ..translator import require

    cluster = require(model, "cluster", "plot domains")
    rng = np.random.default_rng(seed)
    items = _subsample(split, max_images, rng)
    images = _load([p for _, p in items], int(model.image_size))
    ids = apply_in_batches(cluster, images, device).numpy().astype(np.int64).reshape(-1)
    if len(ids) != len(images):
        raise UnitEvalError(f"model.cluster returned {len(ids)} ids for {len(images)} images")
    samples, counts = {}, {}
    for k in sorted(set(ids.tolist())):
        members = np.flatnonzero(ids == k)
        counts[k] = len(members)
        take = members if len(members) <= per_cluster else np.sort(rng.choice(members, per_cluster, replace=False))
        samples[k] = images[take]
    k_hat = getattr(model, "num_domains", None)
    return {"samples": samples, "counts": counts, "num_domains": k_hat, "n_images": len(images)}


def codes_from_model(model, split: dict[str, list[Path]], device, *, max_images: int = 1000, seed: int = 0) -> dict:
    """Style codes (``model.style``), pseudo-labels (``model.cluster`` when present) and true labels."""
    from ..translator import require

    style = require(model, "style", "plot codes")
    rng = np.random.default_rng(seed)
    items = _subsample(split, max_images, rng)
    images = _load([p for _, p in items], int(model.image_size))
    codes = apply_in_batches(style, images, device).reshape(len(images), -1).numpy()
    cluster = getattr(model, "cluster", None)
    pseudo = apply_in_batches(cluster, images, device).numpy().astype(np.int64).reshape(-1) if callable(cluster) else None
    class_names = list(split)
    index = {c: i for i, c in enumerate(class_names)}
    return {
        "codes": codes,
        "pseudo_labels": pseudo,
        "true_labels": np.array([index[c] for c, _ in items]),
        "class_names": class_names,
    }
