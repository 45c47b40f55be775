"""Training data from class folders: scanning, the training transform, deterministic infinite streams.

Layout: the immediate subfolders of ``--data`` are the classes (sorted by name = label index); their
images are found recursively. A flat folder of images is accepted as a single class when the model
allows one class (TUNIT). Images are decoded by :func:`unit_eval.images.load_image` (grayscale,
palette, RGBA, 16-bit -> RGB uint8).

Training transform (per sample): resize (PIL bilinear, torchvision ``Resize``'s default filter on PIL
images), random ``img_size x img_size`` crop, random horizontal flip. The resize follows ``resize_mode``:

* ``"square"`` (default; TUNIT, UNIT): to ``load_size x load_size``, aspect not kept, as TUNIT's
  ``Resize((s, s))``; cropped only when ``load_size > img_size``.
* ``"shorter_side"`` (FUNIT): the shorter side to ``load_size``, the longer one to
  ``int(load_size * long / short)`` (aspect kept; torchvision ``Resize(int)``, NVlabs/FUNIT
  ``utils.py:48`` with ``new_size: 140``), then a crop whose offsets are drawn in both axes of the
  resized image (``RandomCrop((128, 128))``, utils.py:46). A 200x100 image becomes 280x140, then 128x128.
  FUNIT flips before resizing (utils.py:51); flipping after the crop gives the same distribution.

Images whose shorter side is below ``load_size`` are refused with a one-line
error unless ``allow_upscale`` (then they are upscaled like any other resize): training a 128 px
model on silently upscaled thumbnails is almost never what anyone wants.

Evaluation transform (``eval_batches``, ``load_eval_images``; ``train=False``): a square resize to
``img_size``, no crop or flip, in both modes: TUNIT's validation ``Resize((s, s))`` and FUNIT's
``test_k_shot.py:50`` ``Resize((128, 128))`` (FUNIT's unused ``get_evaluation_loaders`` would resize
the shorter side and centre-crop instead).

Determinism: the order of stream ``name`` is the concatenation of per-epoch permutations drawn
from ``(seed, name, epoch)``; global batch ``j`` covers positions ``[j*B, (j+1)*B)`` of that order
and rank ``r`` of ``W`` takes the ``r``-th slice of ``B/W``. Each sample's crop/flip comes from a
generator seeded with ``(seed, name, position)``. So the data a step sees depends only on the step
number, the seed and the world size: resuming needs no saved sampler state, and worker count and
prefetching change nothing.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from unit_eval.errors import UnitEvalError
from unit_eval.images import list_images, load_image, resize_filter_of

from .seeding import derive_seed


@dataclass
class DatasetIndex:
    root: Path
    class_names: list[str]
    paths: list[Path]
    labels: np.ndarray  # int64, one per path
    flat: bool = False  # True when the folder had no class subfolders (one class)
    sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def counts(self) -> list[int]:
        return [int((self.labels == i).sum()) for i in range(len(self.class_names))]

    def __len__(self) -> int:
        return len(self.paths)


def scan(data: str | os.PathLike, *, model: str = "model", min_classes: int = 1,
         load_size: int | None = None, allow_upscale: bool = False) -> DatasetIndex:
    """Find classes and images; check there are enough classes and the images are large enough."""
    root = Path(data)
    if not root.exists():
        raise UnitEvalError(f"data folder not found: {root}")
    if not root.is_dir():
        raise UnitEvalError(f"--data must be a folder of class subfolders, got a file: {root}")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    flat = False
    if subdirs:
        class_names, paths, labels = [], [], []
        for d in subdirs:
            try:
                imgs = list_images(d)
            except UnitEvalError:
                raise UnitEvalError(f"class folder {d} holds no images; remove it or add images") from None
            class_names.append(d.name)
            paths.extend(imgs)
            labels.extend([len(class_names) - 1] * len(imgs))
    else:
        try:
            paths = list_images(root)
        except UnitEvalError:
            raise UnitEvalError(f"no images found in {root} (expected class subfolders of images)") from None
        if min_classes > 1:
            raise UnitEvalError(
                f"{model} needs at least {min_classes} classes but {root} has no class subfolders (only images)")
        class_names, labels, flat = [root.name or "images"], [0] * len(paths), True
    if len(class_names) < min_classes:
        raise UnitEvalError(
            f"{model} needs at least {min_classes} class folders, {root} has {len(class_names)} ({', '.join(class_names)})")
    index = DatasetIndex(root=root, class_names=class_names, paths=list(paths),
                         labels=np.asarray(labels, dtype=np.int64), flat=flat)
    if load_size is not None:
        check_sizes(index, load_size, allow_upscale)
    return index


def check_sizes(index: DatasetIndex, load_size: int, allow_upscale: bool) -> None:
    """Read image headers; refuse images smaller than ``load_size`` unless upscaling is allowed."""
    small, first = 0, None
    sizes = []
    for p in index.paths:
        try:
            with Image.open(p) as im:
                w, h = im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise UnitEvalError(f"cannot read image {p}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        sizes.append((w, h))
        if min(w, h) < load_size:
            small += 1
            if first is None:
                first = (p, w, h)
    index.sizes = sizes
    if small and not allow_upscale:
        p, w, h = first
        raise UnitEvalError(
            f"{small} of {len(index.paths)} images are smaller than the training resolution {load_size} px "
            f"(e.g. {p} is {w}x{h}); resize the data, lower --img-size, or pass --allow-upscale")


RESIZE_MODES = ("square", "shorter_side")


def check_resize_mode(mode) -> str:
    if mode not in RESIZE_MODES:
        raise UnitEvalError(f"unknown resize_mode {mode!r}; choose from {', '.join(RESIZE_MODES)}")
    return mode


def shorter_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) with the shorter side ``size`` and the aspect kept, as torchvision ``Resize(size)``:
    the longer side is ``int(size * long / short)`` (truncated)."""
    if width <= height:
        return size, int(size * height / width)
    return int(size * width / height), size


class TrainImages(torch.utils.data.Dataset):
    """Items are ``(dataset_index, sample_seed)`` pairs -> ``(uint8 3xSxS, label, index)``."""

    def __init__(self, index: DatasetIndex, img_size: int, load_size: int | None = None, hflip: bool = True,
                 train: bool = True, resize_mode: str = "square"):
        self.index = index
        self.img_size = int(img_size)
        self.load_size = int(load_size or img_size)
        self.hflip = bool(hflip)
        self.train = bool(train)
        self.resize_mode = check_resize_mode(resize_mode)
        if self.load_size < self.img_size:
            raise UnitEvalError(f"load_size {self.load_size} is smaller than img_size {self.img_size}")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item):
        if isinstance(item, tuple):
            i, sample_seed = item
        else:
            i, sample_seed = item, 0
        i = int(i)
        path = self.index.paths[i]
        if not self.train:
            arr = load_image(path, size=self.img_size, resize_filter="bilinear")
        else:
            if self.resize_mode == "square":
                arr = load_image(path, size=self.load_size, resize_filter="bilinear")
            else:
                arr = load_image(path)
                h, w = arr.shape[:2]
                size = shorter_side_size(w, h, self.load_size)
                if size != (w, h):
                    arr = np.array(Image.fromarray(arr).resize(size, resample=resize_filter_of("bilinear")))
            rng = np.random.default_rng(sample_seed)
            h, w = arr.shape[:2]
            if (h, w) != (self.img_size, self.img_size):
                top = int(rng.integers(0, h - self.img_size + 1))
                left = int(rng.integers(0, w - self.img_size + 1))
                arr = arr[top:top + self.img_size, left:left + self.img_size]
            if self.hflip and rng.random() < 0.5:
                arr = arr[:, ::-1]
        t = torch.from_numpy(np.require(arr, requirements=["C", "W"])).permute(2, 0, 1).contiguous()
        return t, int(self.index.labels[i]), i


class StreamBatches(torch.utils.data.Sampler):
    """Infinite batch sampler: yields lists of ``(dataset_index, sample_seed)`` from batch ``start`` on."""

    def __init__(self, indices: np.ndarray, global_batch: int, seed: int, name: str,
                 rank: int = 0, world_size: int = 1, start: int = 0):
        if len(indices) == 0:
            raise UnitEvalError(f"stream {name!r} has no images")
        if global_batch % world_size:
            raise UnitEvalError(f"batch size {global_batch} is not divisible by the {world_size} processes")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.global_batch = int(global_batch)
        self.local_batch = self.global_batch // world_size
        self.seed, self.name, self.rank, self.start = int(seed), str(name), int(rank), int(start)
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        perm = self._perms.get(epoch)
        if perm is None:
            rng = np.random.default_rng(derive_seed("epoch", self.seed, self.name, epoch))
            perm = self.indices[rng.permutation(len(self.indices))]
            self._perms = {k: v for k, v in self._perms.items() if k >= epoch - 1}
            self._perms[epoch] = perm
        return perm

    def batch(self, j: int) -> list[tuple[int, int]]:
        n = len(self.indices)
        first = j * self.global_batch + self.rank * self.local_batch
        out = []
        for pos in range(first, first + self.local_batch):
            epoch, off = divmod(pos, n)
            out.append((int(self._perm(epoch)[off]), derive_seed("sample", self.seed, self.name, pos)))
        return out

    def __iter__(self):
        j = self.start
        while True:
            yield self.batch(j)
            j += 1


def _collate(items):
    imgs, labels, idx = zip(*items)
    return torch.stack(imgs), torch.tensor(labels, dtype=torch.long), torch.tensor(idx, dtype=torch.long)


def to_device_batch(raw, device: torch.device) -> dict[str, torch.Tensor]:
    imgs, labels, idx = raw
    non_blocking = device.type == "cuda"
    x = imgs.to(device, non_blocking=non_blocking).float().div_(127.5).sub_(1.0)
    return {"image": x, "label": labels.to(device, non_blocking=non_blocking),
            "index": idx.to(device, non_blocking=non_blocking)}


class Streams:
    """One DataLoader per recipe stream; ``next()`` gives the recipe's batch dict for the next step."""

    def __init__(self, index: DatasetIndex, streams: dict[str, int | None], *, img_size: int, load_size: int,
                 hflip: bool, global_batch: int, seed: int, rank: int, world_size: int, start: int,
                 device: torch.device, workers: int = 0, resize_mode: str = "square"):
        self.device = device
        dataset = TrainImages(index, img_size, load_size, hflip, train=True, resize_mode=resize_mode)
        self.loaders = {}
        self._iters = {}
        for name, cls in streams.items():
            if cls is None:
                ids = np.arange(len(index))
            else:
                if cls >= len(index.class_names):
                    raise UnitEvalError(f"stream {name!r} wants class #{cls} but the data has {len(index.class_names)} classes")
                ids = np.nonzero(index.labels == cls)[0]
            sampler = StreamBatches(ids, global_batch, seed, name, rank, world_size, start)
            kwargs = {}
            if workers > 0:
                kwargs = {"num_workers": workers, "persistent_workers": False, "prefetch_factor": 4}
            # A private generator: creating a DataLoader iterator draws a worker base seed, which would
            # otherwise advance torch's global RNG and break exact resume.
            gen = torch.Generator().manual_seed(derive_seed("loader", seed, name, rank, start) % (2**63))
            self.loaders[name] = torch.utils.data.DataLoader(
                dataset, batch_sampler=sampler, collate_fn=_collate, pin_memory=device.type == "cuda",
                generator=gen, **kwargs)

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, dict[str, torch.Tensor]]:
        if not self._iters:
            self._iters = {k: iter(v) for k, v in self.loaders.items()}
        return {k: to_device_batch(next(it), self.device) for k, it in self._iters.items()}

    def close(self) -> None:
        self._iters = {}


def eval_batches(index: DatasetIndex, img_size: int, device: torch.device, batch_size: int = 64, workers: int = 0):
    """A callable returning a fresh iterator over the whole dataset in the eval transform (finalize)."""
    dataset = TrainImages(index, img_size, img_size, hflip=False, train=False)

    def make():
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=_collate,
                                             num_workers=workers, generator=torch.Generator().manual_seed(0))
        for raw in loader:
            yield to_device_batch(raw, device)

    return make


def load_eval_images(index: DatasetIndex, ids, img_size: int) -> torch.Tensor:
    """Selected images in the eval transform as a float B x 3 x S x S tensor in [-1, 1] (CPU)."""
    dataset = TrainImages(index, img_size, img_size, hflip=False, train=False)
    return torch.stack([dataset[int(i)][0] for i in ids]).float() / 127.5 - 1.0
