"""Image folders: recursive scanning, robust decoding to RGB uint8, optional resizing.

Every supported file (png, jpg, jpeg, bmp, webp, tif, tiff, pgm, ppm: pytorch-fid's set; grayscale,
palette, RGBA, 16-bit) becomes an H x W x 3 uint8 array. Unreadable files, decompression bombs and empty
or missing folders raise one-line ``UnitEvalError``s. What is decoded but worth knowing (an animated
image's first frame is used; a tiny image; a very large one) is said once per kind on stderr
(:func:`note`), by the process that shows the user's output (decoding workers hand their notes back).
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import UnitEvalError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm")
# An image whose shorter side is below this is far below any extractor's input (Inception: 299 px).
TINY_SIDE = 16

_NOTED: set[str] = set()


def note(kind: str, message: str) -> None:
    """Say ``message`` on stderr, once per ``kind`` in this process."""
    if kind not in _NOTED:
        _NOTED.add(kind)
        print(f"unit-eval: {message}", file=sys.stderr, flush=True)

# Name -> PIL filter. Recorded in results so a number says how its images were resized.
RESIZE_FILTERS = {
    "bicubic": Image.BICUBIC,
    "bilinear": Image.BILINEAR,
    "lanczos": Image.LANCZOS,
    "nearest": Image.NEAREST,
    "box": Image.BOX,
}


def _check_folder(folder: str | os.PathLike) -> Path:
    folder = Path(folder)
    if not folder.exists():
        raise UnitEvalError(f"folder not found: {folder}")
    if not folder.is_dir():
        raise UnitEvalError(f"not a folder: {folder}")
    return folder


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files below ``folder`` (recursive, hidden entries skipped), sorted by relative path."""
    folder = _check_folder(folder)
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(root) / name)
    if not found:
        raise UnitEvalError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {folder}")
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def list_class_folders(folder: str | os.PathLike) -> dict[str, list[Path]]:
    """Immediate subfolders are classes; each maps to its images (recursive). Empty classes are errors."""
    folder = _check_folder(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UnitEvalError(f"{folder} has no class subfolders")
    return {c.name: list_images(c) for c in classes}


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 or img.mode.startswith("I;16") else 255.0
        arr = np.clip(np.round(arr * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(np.round(arr * (255.0 if arr.max() <= 1.0 else 1.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on black: the same colour a model sees for transparent pixels after dropping alpha.
        return img.convert("RGBA").convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def load_image(path: str | os.PathLike, size: int | None = None, resize_filter: str = "bicubic",
               notes: dict[str, str] | None = None) -> np.ndarray:
    """Decode one image to H x W x 3 uint8 (optionally resized to size x size).

    Notes (animated, tiny or very large image) go into ``notes`` ({kind: message}) when given, else to
    :func:`note`."""
    path = Path(path)
    found: dict[str, str] = {}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if getattr(img, "n_frames", 1) > 1:
                    found["animated"] = (f"{path} is animated ({img.n_frames} frames); its first frame is used "
                                         "(said once; other animated images are read the same way)")
                img.load()
                rgb = _to_rgb(img)
        if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
            found["large"] = (f"{path} is {rgb.size[0]}x{rgb.size[1]} px, above PIL's decompression-bomb warning "
                              "limit; decoded anyway (said once)")
    except Image.DecompressionBombError:
        raise UnitEvalError(f"cannot read image {path}: it is larger than PIL's decompression-bomb limit "
                            f"({Image.MAX_IMAGE_PIXELS * 2} pixels); refusing to decode it") from None
    except UnidentifiedImageError:
        raise UnitEvalError(f"cannot read image {path}: not an image format PIL can decode (corrupt or mislabelled)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnitEvalError(f"cannot read image {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if min(rgb.size) < TINY_SIDE:
        found["tiny"] = (f"{path} is only {rgb.size[0]}x{rgb.size[1]} px; metrics resize it far up (Inception to 299 px), "
                         "so its score says little (said once)")
    for kind, message in found.items():
        if notes is not None:
            notes.setdefault(kind, message)
        else:
            note(kind, message)
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), resample=resize_filter_of(resize_filter))
    arr = np.array(rgb, dtype=np.uint8)  # writable copy: torch.from_numpy needs one
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise UnitEvalError(f"cannot convert image {path} to RGB (shape {arr.shape})")
    return arr


def resize_filter_of(name: str):
    try:
        return RESIZE_FILTERS[name]
    except KeyError:
        raise UnitEvalError(f"unknown resize filter {name!r}; choose from {', '.join(RESIZE_FILTERS)}") from None


def to_tensor_uint8(images: list[np.ndarray]):
    """Stack H x W x 3 uint8 arrays (same size) into a B x 3 x H x W uint8 tensor."""
    import torch

    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise UnitEvalError(f"images in one batch differ in size {sorted(shapes)}; pass --size to resize them to one resolution")
    return torch.from_numpy(np.ascontiguousarray(np.stack(images))).permute(0, 3, 1, 2).contiguous()


def uint8_to_float(x):
    """uint8 B x 3 x H x W -> float in [-1, 1] (x / 127.5 - 1), the range models and LPIPS take."""
    return x.float() / 127.5 - 1.0


def float_to_uint8(x):
    """Float in [-1, 1] -> uint8 with round-to-nearest; NaN outputs are an error, not silently zero."""
    import torch

    if not torch.isfinite(x).all():
        raise UnitEvalError("model output contains NaN or infinite values")
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def float_to_uint8_saved(x):
    """Float in [-1, 1] -> the uint8 that StarGAN v2 writes to PNG (core/utils.py:52-59: ``(x + 1) / 2`` clamped to
    [0, 1], then torchvision's ``save_image``: ``mul(255).add_(0.5).clamp_(0, 255)`` cast to uint8), in float32 step
    by step: the cast truncates, so halves round up where :func:`float_to_uint8` rounds them to even."""
    import torch

    if not torch.isfinite(x).all():
        raise UnitEvalError("model output contains NaN or infinite values")
    y = ((x.float() + 1) / 2).clamp_(0, 1)
    return y.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


def save_image(array_or_tensor, path: str | os.PathLike) -> None:
    """Save an H x W x 3 uint8 array or 3 x H x W uint8 tensor as PNG (folders created)."""
    arr = array_or_tensor
    if hasattr(arr, "detach"):
        arr = arr.detach().cpu().permute(1, 2, 0).numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(path)
