"""The one extractor interface, and the shared machinery of the networks beyond Inception.

:class:`FeatureExtractor` is what FID, FD, CMMD, D&C, the feature cache and sharding rely on; the TF-Inception
extractor (:class:`unit_eval.features.InceptionFeatures`) satisfies it unchanged. Everything that moves features
is named by ``describe()`` (network, output, preprocessing) and ``weights_sha256``, both part of every cache key,
and by ``provenance()`` in every result row.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Protocol, runtime_checkable

import numpy as np
import torch

from .. import sharding
from ..device import feature_numerics, resolve_device
from ..errors import UnitEvalError
from ..images import list_images
from ..stagetimes import stage


@runtime_checkable
class FeatureExtractor(Protocol):
    name: str
    feature_dim: int
    preprocessing: str
    batch_size: int
    device: torch.device

    @property
    def weights_sha256(self) -> str: ...

    def describe(self) -> str: ...

    def batch(self, images: torch.Tensor) -> torch.Tensor: ...

    def stream(self, batches: Iterable[torch.Tensor], total: int | None = None, desc: str = "features") -> np.ndarray: ...

    def files(self, paths: list[Path], size: int | None = None, resize_filter: str = "bicubic",
              desc: str = "features") -> np.ndarray: ...


def provenance(extractor) -> dict:
    """What a result row says about the features: name, dimension, preprocessing, weights sha256."""
    return {"feature_extractor": getattr(extractor, "name", None), "feature_dim": int(extractor.feature_dim),
            "preprocessing": getattr(extractor, "preprocessing", None), "weights_sha256": extractor.weights_sha256}


class NetworkFeatures:
    """A torch network on preprocessed float batches; subclasses set ``name``, ``feature_dim``, ``PREPROCESSING``
    and implement ``_preprocess`` (uint8 B x 3 x H x W -> network input) and ``_forward`` (input -> B x D)."""

    name: str = ""
    feature_dim: int = 0
    PREPROCESSING: tuple[str, ...] = ()
    layer: str = ""

    def __init__(self, model: torch.nn.Module, weights_sha256: str, preprocessing: str | None = None,
                 device: str | torch.device = "auto", batch_size: int = 64, num_workers: int | None = None,
                 progress: bool = True):
        preprocessing = preprocessing or self.PREPROCESSING[0]
        if preprocessing not in self.PREPROCESSING:
            raise UnitEvalError(f"unknown preprocessing {preprocessing!r} for {self.name}; "
                                f"choose from {', '.join(self.PREPROCESSING)}")
        if batch_size < 1:
            raise UnitEvalError(f"batch size must be positive, got {batch_size}")
        self.device = sharding.local_device(resolve_device(device))
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.num_workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
        self.progress = progress
        self.precision = "fp32"
        self._weights_sha256 = weights_sha256

    @property
    def weights_sha256(self) -> str:
        return self._weights_sha256

    def describe(self) -> str:
        return f"{self.name}/{self.layer}/{self.preprocessing}"

    def provenance(self) -> dict:
        return provenance(self)

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """Features (float64, CPU, B x feature_dim) of a uint8 B x 3 x H x W batch."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise UnitEvalError(f"expected B x 3 x H x W images, got {tuple(images.shape)}")
        if images.dtype != torch.uint8:
            raise UnitEvalError(f"{self.name} features take uint8 images; convert with unit_eval.images.float_to_uint8")
        out = []
        with feature_numerics("fp32", self.device), stage("extract"):
            for start in range(0, images.shape[0], self.batch_size):
                x = self._preprocess(images[start: start + self.batch_size].cpu()).to(self.device)
                out.append(self._forward(x).double().cpu())
        feats = torch.cat(out) if out else torch.zeros(0, self.feature_dim, dtype=torch.float64)
        if not torch.isfinite(feats).all():
            raise UnitEvalError(f"{self.name} features contain NaN or infinite values (corrupt weights or inputs)")
        return feats

    def stream(self, batches: Iterable[torch.Tensor], total: int | None = None, desc: str = "features") -> np.ndarray:
        from tqdm import tqdm

        out = []
        with tqdm(total=total, desc=desc, unit="img", disable=not self.progress, leave=False) as bar:
            for images in batches:
                for start in range(0, images.shape[0], self.batch_size):
                    chunk = images[start: start + self.batch_size]
                    out.append(self.batch(chunk).numpy())
                    bar.update(chunk.shape[0])
        if not out:
            raise UnitEvalError("no images to extract features from")
        return np.concatenate(out)

    def files(self, paths: list[Path], size: int | None = None, resize_filter: str = "bicubic",
              desc: str = "features") -> np.ndarray:
        from ..features import _decoded_batches

        if not paths:
            raise UnitEvalError("no images to extract features from")
        return self.stream(_decoded_batches(paths, size, resize_filter, self.batch_size, self.num_workers,
                                            self.device.type == "cuda"), total=len(paths), desc=desc)

    def folder(self, folder: str | os.PathLike, size: int | None = None, resize_filter: str = "bicubic") -> np.ndarray:
        return self.files(list_images(folder), size=size, resize_filter=resize_filter, desc=Path(folder).name or "features")


def pil_resized(images: torch.Tensor, size: int, crop_square: bool = False) -> torch.Tensor:
    """uint8 B x 3 x H x W -> uint8 B x 3 x size x size through PIL's bicubic resize (PIL widens its kernel when
    downscaling: antialiased), optionally after a centre crop to a square (``(h - l) // 2`` from the top,
    ``(w - l) // 2`` from the left, ``l = min(h, w)``)."""
    from PIL import Image

    out = []
    for image in images.permute(0, 2, 3, 1).numpy():
        pil = Image.fromarray(np.ascontiguousarray(image), "RGB")
        if crop_square:
            w, h = pil.size
            side = min(w, h)
            top, left = (h - side) // 2, (w - side) // 2
            pil = pil.crop((left, top, left + side, top + side))
        out.append(np.asarray(pil.resize((size, size), resample=Image.BICUBIC)))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2)


def normalized(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """float32 (x - mean) / std per channel, the order and dtype torchvision's ``Normalize`` uses."""
    m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def check_state_layout(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], where: str,
                       layout: str, shape_note: str = "") -> None:
    """``state`` has exactly the keys and shapes of ``expected``, or one line saying what differs. ``layout``
    finishes "is not ...", ``shape_note`` follows "expected <shape>"."""
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise UnitEvalError(f"{where} is not {layout}: {len(missing)} missing keys (e.g. {missing[:2]}), "
                            f"{len(extra)} unexpected (e.g. {extra[:2]})")
    for key, shape in expected.items():
        if tuple(state[key].shape) != shape:
            raise UnitEvalError(f"{where}: {key} has shape {tuple(state[key].shape)}, expected {shape}{shape_note}")
