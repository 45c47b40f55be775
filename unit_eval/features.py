"""TF-Inception pool3 features (2048-d) of uint8 RGB images, through torch-fidelity's extractor.

Two preprocessing modes:
- ``tf1-bilinear`` (standard FID): uint8 -> TF1.x-exact bilinear resize to 299 -> (x - 128) / 128.
  This is torch-fidelity's own forward, unchanged.
- ``tunit-legacy`` (clovaai/tunit ``calcFIDBatch``): images in [0, 1] -> ImageNet mean/std normalisation
  -> ``F.interpolate`` to 299 with the default (nearest) mode -> the network's own 2x - 1. Needed only to
  compare with published TUNIT numbers like for like.
The network is built once per (weights, device) and reused; TF32 is disabled while extracting unless an
opt-in fast ``precision`` (tf32, bf16) is chosen, which is then named in every result row and cache key.
"""
from __future__ import annotations

import io
import os
import sys
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from . import sharding
from .cache import atomic_write_bytes, cache_dir, options_hash, remove_stale_temporaries, sha256_bytes, sha256_file
from .device import check_precision, feature_numerics, resolve_device
from .errors import UnitEvalError
from .images import list_images, load_image, note
from .stagetimes import stage, timed_iter

PREPROCESSING = ("tf1-bilinear", "tunit-legacy")
FEATURE_DIM = 2048
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_TRUNK = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
    "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool",
)


@lru_cache(maxsize=4)
def _build_inception(weights_path: str, device_str: str, resolved: bool):
    """The extractor and whether it has logits. ``resolved``: ``weights_path`` is the file ``unit_eval.weights``
    resolved, and the tensors used are those ``inception_state_dict()`` checked (official sha256 or the
    conversion's content pin); otherwise a user's file, read with ``load_weights_only``. ``resolved`` is part of
    the cache key, so a model built from a user's file never stands in for the checked one."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from .weights import has_classifier_head, inception_state_dict
    from .weights.convert import with_nan_head
    from .weights.safe_load import load_weights_only

    if resolved:
        state = inception_state_dict()
    else:
        state = load_weights_only(
            weights_path, "{path} is not a loadable Inception weights file (refused or unreadable with "
            "weights_only=True: {reason})")
    has_logits = has_classifier_head(state)  # a converted file's NaN head is no head
    # torch-fidelity's constructor loads strictly: a missing head is filled with NaN, so that any logits
    # computed by mistake are poisoned, never plausible zeros
    with_nan_head(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=buffer)
    device = torch.device(device_str)
    model = model.to(device).eval()
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)  # oneDNN's fastest layout (benchmarks/README.md)
    return model, has_logits


def _forward_chunk(device: torch.device, batch_size: int) -> int:
    """Images per network forward. On CPU the activations of more than a few 299 x 299 images fall out of
    cache, so 8 at a time beats whole batches of 64 (benchmarks/README.md); on CUDA the whole batch."""
    return min(batch_size, 8) if device.type == "cpu" else batch_size


class InceptionFeatures:
    """Builds the extractor once; call ``batch()`` on uint8 B x 3 x H x W tensors, or ``folder()``.

    The extractor interface the rest of unit-eval relies on (stand-ins in tests provide the same):
    ``feature_dim``, ``batch_size``, ``device``, ``preprocessing``, ``weights_sha256``, ``describe()``,
    ``batch(images)``, ``stream(batches)``, ``files(paths, size, resize_filter)``.
    """

    name = "inception"  # the extractor interface's name (``unit_eval.extractors``)
    feature_dim = FEATURE_DIM

    def __init__(
        self,
        device: str | torch.device = "auto",
        batch_size: int = 64,
        preprocessing: str = "tf1-bilinear",
        weights_path: str | os.PathLike | None = None,
        num_workers: int | None = None,
        progress: bool = True,
        precision: str = "fp32",
    ):
        if preprocessing not in PREPROCESSING:
            raise UnitEvalError(f"unknown preprocessing {preprocessing!r}; choose from {', '.join(PREPROCESSING)}")
        if batch_size < 1:
            raise UnitEvalError(f"batch size must be positive, got {batch_size}")
        resolved = weights_path is None  # the checked default, not a user's file
        if resolved:
            from .weights import inception_weights_path

            weights_path = inception_weights_path()
        self.weights_path = Path(weights_path)
        self.device = sharding.local_device(resolve_device(device))  # cuda:LOCAL_RANK under torchrun
        self.batch_size = batch_size
        self.preprocessing = preprocessing
        self.precision = check_precision(precision, self.device)
        self.num_workers = min(4, os.cpu_count() or 1) if num_workers is None else num_workers
        self.progress = progress
        self.model, self.has_logits = _build_inception(str(self.weights_path), str(self.device), resolved)

    @property
    def weights_sha256(self) -> str:
        return _sha256_cached(str(self.weights_path), self.weights_path.stat().st_mtime_ns)

    def describe(self) -> str:
        """Names the network, layer, preprocessing and any fast precision; goes into every result row and cache key."""
        name = f"inception-v3-tf-2015-12-05/pool3/{self.preprocessing}"
        return name if self.precision == "fp32" else f"{name}/{self.precision}"

    def require_logits(self) -> None:
        """Logit-based scores (Inception Score) need the classifier head the offline weights lack."""
        if not self.has_logits:
            raise UnitEvalError(
                "Inception logits are unavailable: the offline FID weights have no classifier head; place "
                "torch-fidelity's weights-inception-2015-12-05-6726825d.pth in the weights cache to get them"
            )

    @torch.no_grad()
    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """Features (float64, CPU, B x 2048) of a uint8 batch, or of a float batch in [-1, 1] (legacy mode only)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise UnitEvalError(f"expected B x 3 x H x W images, got {tuple(images.shape)}")
        if self.preprocessing == "tf1-bilinear" and images.dtype != torch.uint8:
            raise UnitEvalError("standard FID features take uint8 images; convert with unit_eval.images.float_to_uint8")
        step = _forward_chunk(self.device, self.batch_size)
        out = []
        with feature_numerics(self.precision, self.device), stage("extract"):
            for start in range(0, images.shape[0], step):
                x = images[start: start + step].to(self.device, non_blocking=True)
                out.append((self.model(x)[0] if self.preprocessing == "tf1-bilinear" else self._legacy(x)).double().cpu())
        feats = torch.cat(out) if out else torch.zeros(0, FEATURE_DIM, dtype=torch.float64)
        if not torch.isfinite(feats).all():
            raise UnitEvalError("Inception features contain NaN or infinite values (corrupt weights or inputs)")
        return feats

    def _legacy(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype == torch.uint8:
            x = images.float() / 255.0
        else:
            if not torch.isfinite(images).all():
                raise UnitEvalError("images contain NaN or infinite values")
            x = (images.float().clamp(-1, 1) + 1) / 2
        mean = torch.tensor(_IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        x = F.interpolate((x - mean) / std, size=(299, 299))
        return self.trunk(2 * x - 1)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The network from its first convolution to pool3, on an already preprocessed float 299 x 299 batch."""
        for name in _TRUNK:
            x = getattr(self.model, name)(x)
        return torch.flatten(x, 1).float()

    def stream(self, batches: Iterable[torch.Tensor], total: int | None = None, desc: str = "features") -> np.ndarray:
        """Features of a stream of batches (e.g. generated on the fly), concatenated as N x 2048 float64."""
        from tqdm import tqdm

        out = []
        with tqdm(total=total, desc=desc, unit="img", disable=not self.progress, leave=False) as bar:
            for images in batches:
                for start in range(0, images.shape[0], self.batch_size):
                    chunk = images[start : start + self.batch_size]
                    out.append(self.batch(chunk).numpy())
                    bar.update(chunk.shape[0])
        if not out:
            raise UnitEvalError("no images to extract features from")
        return np.concatenate(out)

    def files(self, paths: list[Path], size: int | None = None, resize_filter: str = "bicubic", desc: str = "features") -> np.ndarray:
        """Features of image files, decoded in worker processes and batched by image size."""
        if not paths:
            raise UnitEvalError("no images to extract features from")
        return self.stream(_decoded_batches(paths, size, resize_filter, self.batch_size, self.num_workers, self.device.type == "cuda"),
                           total=len(paths), desc=desc)

    def folder(self, folder: str | os.PathLike, size: int | None = None, resize_filter: str = "bicubic") -> np.ndarray:
        return self.files(list_images(folder), size=size, resize_filter=resize_filter, desc=Path(folder).name or "features")


@lru_cache(maxsize=8)
def _sha256_cached(path: str, mtime_ns: int) -> str:
    return sha256_file(path)


class _ImageFiles(torch.utils.data.Dataset):
    """Items: (uint8 3 x H x W tensor or None, error message or None, notes). Decoding errors and notes travel
    back as values, so a worker process never re-raises (a multi-line DataLoader traceback) and the main process
    says each once."""

    def __init__(self, paths, size, resize_filter):
        self.paths, self.size, self.resize_filter = paths, size, resize_filter

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        notes: dict[str, str] = {}
        try:
            image = load_image(self.paths[i], self.size, self.resize_filter, notes=notes)
        except UnitEvalError as exc:
            return None, str(exc), notes
        return torch.from_numpy(image).permute(2, 0, 1).contiguous(), None, notes


def _decoded(items) -> list[torch.Tensor]:
    images = []
    for image, error, notes in items:
        for kind, message in notes.items():
            note(kind, message)
        if error is not None:
            raise UnitEvalError(error)
        images.append(image)
    return images


def _group_by_shape(items: list[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Stack consecutive same-sized images; a change of size starts a new batch (order is kept)."""
    run: list[torch.Tensor] = []
    for item in items:
        if run and item.shape != run[0].shape:
            yield torch.stack(run)
            run = []
        run.append(item)
    if run:
        yield torch.stack(run)


def _decoded_batches(paths, size, resize_filter, batch_size, num_workers, pin_memory) -> Iterator[torch.Tensor]:
    dataset = _ImageFiles(list(paths), size, resize_filter)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers if len(dataset) > batch_size else 0,
        collate_fn=list, pin_memory=pin_memory,
    )
    for items in timed_iter("decode", loader):
        with stage("decode"):
            batches = list(_group_by_shape(_decoded(items)))
        yield from batches


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and C-order bytes (a cache entry's checksum)."""
    array = np.ascontiguousarray(array)
    header = f"{array.dtype.str}{list(array.shape)}\n".encode()
    return sha256_bytes(header + array.tobytes())


class FeatureCache:
    """Features of real image sets on disk, keyed by a hash of everything that moves them.

    The key covers the image list (relative paths, sizes and mtimes), the extractor and its weights'
    checksum, the preprocessing and any resize. An entry is one ``.npz`` holding the features and the
    :func:`array_sha256` of them, written atomically; on read the checksum is verified, and an entry that
    fails it (altered, truncated, unreadable) is a cache miss: one line on stderr, then it is rebuilt.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else cache_dir() / "features"

    def key(self, paths: list[Path], extractor: InceptionFeatures, size: int | None, resize_filter: str,
            extra: dict | None = None) -> str:
        """``extra`` carries anything else that changes the features (e.g. a per-image flip pattern)."""
        listing = []
        for p in paths:
            st = p.stat()
            listing.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
        return options_hash({
            "images": listing,
            "extractor": extractor.describe(),
            "weights_sha256": extractor.weights_sha256,
            "size": size,
            "resize_filter": resize_filter if size is not None else None,
            **({"extra": extra} if extra else {}),
        })

    def features(self, paths: list[Path], extractor: InceptionFeatures, size: int | None = None,
                 resize_filter: str = "bicubic", desc: str = "real features", extra: dict | None = None,
                 compute: Callable[[], np.ndarray] | None = None) -> np.ndarray:
        """Cached features of ``paths``; ``compute`` replaces plain extraction when ``extra`` alters the images.

        Under torchrun (see :mod:`unit_eval.sharding`) plain extraction is sharded over the ranks and gathered
        in order; the cache is used only when every rank can read the entry, and only rank 0 writes it.
        """
        if compute is None:
            def compute():
                return sharding.extract_features(extractor, paths, size, resize_filter, desc=desc)
        sharding.start(extractor.device)
        path = self.root / f"{self.key(paths, extractor, size, resize_filter, extra)}.npz"
        cached = self._read(path, (len(paths), extractor.feature_dim)) if path.is_file() else None
        if sharding.all_true(cached is not None):
            return cached
        feats = compute()
        if sharding.is_main():
            remove_stale_temporaries([self.root], "an interrupted feature extraction")
            buffer = io.BytesIO()
            np.savez(buffer, features=feats, sha256=np.array(array_sha256(feats)))
            atomic_write_bytes(path, buffer.getvalue())
        return feats

    @staticmethod
    def _read(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
        """The entry's features when its checksum, shape and values hold; else None (one line on stderr)."""
        problem = None
        try:
            with np.load(path, allow_pickle=False) as entry:
                feats, stored = entry["features"], str(entry["sha256"])
        except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            problem = f"is unreadable ({type(exc).__name__})"
        else:
            if feats.shape != shape or feats.dtype != np.float64:
                problem = f"holds {feats.shape} {feats.dtype}, not {shape} float64"
            elif array_sha256(feats) != stored:
                problem = "fails its checksum (altered or corrupt)"
            elif not np.isfinite(feats).all():
                problem = "holds non-finite values"
        if problem is None:
            return feats
        if sharding.is_main():
            print(f"unit-eval: feature cache entry {path.name} {problem}; recomputing it", file=sys.stderr, flush=True)
        return None
