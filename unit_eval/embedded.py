"""Real data that installs with the dependencies, written out as image folders on demand.

Sets (``materialize(name, out=None) -> Path``; default location ``<cache>/data/<name>``, where
``<cache>`` is ``$UNIT_EVAL_CACHE`` or ``~/.cache/unit-eval``):

``digits``: scikit-learn's handwritten digits (UCI optical recognition of handwritten digits, 1797
    8 x 8 images with 17 grey levels) as ``digits/{train,test}/{0..9}/NNNN.png``, RGB, 64 x 64, dark
    ink on white. Upscaled 8x with bicubic interpolation: nearest would give 8 x 8 blocks whose
    hard edges no handwriting has; bicubic gives smooth strokes. At 64 px the three stride-2 stages
    of the bundled content encoders still leave an 8 x 8 map, and CPU training stays fast (models
    that want another size resize on load). ``NNNN`` is the index in
    ``sklearn.datasets.load_digits``. Split: the last 50 images of each class (in that order) are
    ``test``, the rest ``train`` (1297 / 500), the same last-50 rule TUNIT applies to AnimalFaces-10.
``photos``: the natural photographs bundled with scikit-image (``skimage.data``): astronaut, brick,
    camera, chelsea, coffee, coins, grass, gravel, hubble_deep_field, immunohistochemistry, moon,
    motorcycle (left view of ``stereo_motorcycle``), retina, rocket; as ``photos/<name>.png``, RGB
    (grey ones replicated), longest side capped at 512 (Lanczos). One class; no split.
``photos-paired``: a SYNTHETIC paired two-domain set for the map-style pixel-accuracy path, not
    the UNIT maps dataset. Domain ``photo``: 64 x 64 tiles cut from ``photos`` on a grid; domain
    ``render``: the same tile rendered map-like, a deterministic function of the photo (5 x 5 box
    blur, then each pixel painted one of nine flat map colours by brightness and dominant
    channel, see :data:`FLAT_PALETTE`), so the translation is unimodal and pixel accuracy is
    meaningful. Layout ``photos-paired/{train,test}/{photo,render}/<image>_rRR_cCC.png``: every fifth
    tile (in sorted order) is ``test``, kept paired (same file name in both folders); the other
    tiles alternate between ``train/photo`` and ``train/render``, so the two training domains show
    different scenes (unpaired, as UNIT trains). ``photos-paired/train`` is the two-subfolder layout
    ``unit-eval train unit --data`` takes (the domain names sort in source -> target order, so
    class index 0 is ``photo`` and 1 is ``render``); ``test/render`` is the ground truth for
    ``unit-eval pixacc``.

Materialisation is idempotent: each set is written into a temporary sibling folder, a
``MANIFEST.json`` (name, version, counts) is written last, and the folder is renamed into place; an
existing folder with a matching manifest is returned as is.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import UnitEvalError

MANIFEST = "MANIFEST.json"
DIGITS_SIZE = 64
DIGITS_TEST_PER_CLASS = 50
PHOTO_MAX_SIDE = 512
TILE = 64

PHOTO_NAMES = (
    "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "motorcycle", "retina", "rocket",
)

# Map-like flat colours (RGB), chosen by the rule in flat_render.
FLAT_PALETTE = {
    "shadow": (96, 96, 104),
    "building": (214, 201, 190),
    "water": (170, 211, 238),
    "park": (197, 232, 197),
    "forest": (132, 186, 128),
    "highway": (252, 214, 164),
    "land": (242, 239, 233),
    "road": (255, 255, 255),
    "urban": (218, 218, 218),
}


@dataclass(frozen=True)
class EmbeddedSet:
    name: str
    title: str
    version: int
    build: Callable[[Path, bool], dict]  # writes into a folder, returns manifest extras (counts)


def default_location(name: str) -> Path:
    from .cache import cache_dir

    return cache_dir() / "data" / name


def _progress(iterable, desc: str, total: int | None, enabled: bool):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="img", disable=not enabled, leave=False)


def _save_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(path, optimize=False)


# --------------------------------------------------------------------------------------------------
# digits


def digit_images(size: int = DIGITS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as N x size x size x 3 uint8 (dark ink on white) and their labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    # 0..16 ink intensity -> 255..0 grey (white paper, black ink)
    grey = np.round(255.0 - data.images * (255.0 / 16.0)).astype(np.uint8)
    out = np.empty((len(grey), size, size, 3), dtype=np.uint8)
    for i, g in enumerate(grey):
        up = np.asarray(Image.fromarray(g, mode="L").resize((size, size), resample=Image.BICUBIC))
        out[i] = up[:, :, None]
    return out, data.target.astype(np.int64)


def _build_digits(folder: Path, progress: bool) -> dict:
    images, labels = digit_images()
    counts = {"train": {}, "test": {}}
    test = set()
    for cls in range(10):
        idx = np.flatnonzero(labels == cls)
        test.update(int(i) for i in idx[-DIGITS_TEST_PER_CLASS:])
        counts["train"][str(cls)] = len(idx) - DIGITS_TEST_PER_CLASS
        counts["test"][str(cls)] = DIGITS_TEST_PER_CLASS
    for i in _progress(range(len(images)), "digits", len(images), progress):
        split = "test" if i in test else "train"
        _save_png(images[i], folder / split / str(int(labels[i])) / f"{i:04d}.png")
    return {
        "kind": "classes",
        "counts": counts,
        "size": DIGITS_SIZE,
        "resize": "bicubic",
        "split_rule": f"per class in load_digits order: test = last {DIGITS_TEST_PER_CLASS}, train = the rest",
        "source": "scikit-learn sklearn.datasets.load_digits (UCI optical recognition of handwritten digits)",
    }


# --------------------------------------------------------------------------------------------------
# photos


def photo_images() -> dict[str, np.ndarray]:
    """The scikit-image photographs as RGB uint8, longest side capped at 512 (Lanczos)."""
    return {name: arr.copy() for name, arr in _photo_images().items()}


@functools.lru_cache(maxsize=1)
def _photo_images() -> dict[str, np.ndarray]:
    import skimage.data as skd
    from PIL import Image

    out = {}
    for name in PHOTO_NAMES:
        arr = skd.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skd, name)()
        arr = np.asarray(arr)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        arr = arr[:, :, :3].astype(np.uint8)
        h, w = arr.shape[:2]
        if max(h, w) > PHOTO_MAX_SIDE:
            scale = PHOTO_MAX_SIDE / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            arr = np.asarray(Image.fromarray(arr).resize(size, resample=Image.LANCZOS))
        out[name] = arr
    return out


def _build_photos(folder: Path, progress: bool) -> dict:
    photos = photo_images()
    for name, arr in _progress(photos.items(), "photos", len(photos), progress):
        _save_png(arr, folder / f"{name}.png")
    return {
        "kind": "images",
        "counts": {"all": {"photos": len(photos)}},
        "sizes": {n: list(a.shape[:2]) for n, a in photos.items()},
        "source": "scikit-image skimage.data",
    }


# --------------------------------------------------------------------------------------------------
# photos-paired


def flat_render(photo: np.ndarray) -> np.ndarray:
    """A map-like rendering: 5 x 5 box-blurred, then one flat palette colour per pixel.

    Rule on the filtered RGB (integer arithmetic, so every platform gets the same bytes):
    brightness < 70 -> shadow; blue channel dominant -> water; green dominant -> forest when
    brightness < 140 else park; red dominant -> building when brightness < 150 else highway;
    otherwise urban below 140, land below 200, road from 200. Any two palette colours differ by
    more than 16 in some channel, so the pixel-accuracy threshold separates them.
    """
    from PIL import Image, ImageFilter

    smooth = np.asarray(Image.fromarray(photo).filter(ImageFilter.BoxBlur(2))).astype(np.int32)
    r, g, b = smooth[..., 0], smooth[..., 1], smooth[..., 2]
    lum = (299 * r + 587 * g + 114 * b) // 1000
    margin = 12
    blue = (b > r + margin) & (b > g + margin)
    green = (g > r + margin) & (g > b + margin) & ~blue
    red = (r > g + margin) & (r > b + margin) & ~blue & ~green
    neutral = ~(blue | green | red)
    names = np.select(
        [lum < 70, blue, green & (lum < 140), green, red & (lum < 150), red, neutral & (lum < 140), neutral & (lum >= 200)],
        [0, 2, 4, 3, 1, 5, 8, 7],
        default=6,
    )
    palette = np.array(list(FLAT_PALETTE.values()), dtype=np.uint8)
    return palette[names]


def _tiles(arr: np.ndarray, tile: int = TILE):
    h, w = arr.shape[:2]
    for r in range(h // tile):
        for c in range(w // tile):
            yield r, c, arr[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile]


def _build_photos_paired(folder: Path, progress: bool) -> dict:
    photos = photo_images()
    jobs = []
    for name in sorted(photos):
        photo = photos[name]
        flat = flat_render(photo)
        flat_tiles = {(r, c): t for r, c, t in _tiles(flat)}
        for r, c, t in _tiles(photo):
            jobs.append((f"{name}_r{r:02d}_c{c:02d}", t, flat_tiles[(r, c)]))
    counts = {"train": {"photo": 0, "render": 0}, "test": {"photo": 0, "render": 0}}
    k = 0
    for i, (stem, photo_tile, flat_tile) in enumerate(_progress(jobs, "photos-paired", len(jobs), progress)):
        if i % 5 == 4:
            _save_png(photo_tile, folder / "test" / "photo" / f"{stem}.png")
            _save_png(flat_tile, folder / "test" / "render" / f"{stem}.png")
            counts["test"]["photo"] += 1
            counts["test"]["render"] += 1
        else:
            domain, tile = ("photo", photo_tile) if k % 2 == 0 else ("render", flat_tile)
            _save_png(tile, folder / "train" / domain / f"{stem}.png")
            counts["train"][domain] += 1
            k += 1
    return {
        "kind": "paired",
        "domains": ["photo", "render"],
        "counts": counts,
        "tile": TILE,
        "source": "synthetic: tiles of scikit-image photographs and their flat-colour renderings (not the UNIT maps dataset)",
        "assumptions": "render = deterministic map-like rendering of photo (5x5 box blur + 9-colour rule); a stand-in for satellite -> map",
        "split_rule": "tiles in sorted order: every 5th is test (paired by name); the rest alternate train/photo, train/render (unpaired)",
    }


EMBEDDED: dict[str, EmbeddedSet] = {
    s.name: s
    for s in [
        EmbeddedSet("digits", "scikit-learn handwritten digits, 10 classes, 64 px RGB, train/test", 1, _build_digits),
        EmbeddedSet("photos", "scikit-image natural photographs (14 images)", 1, _build_photos),
        EmbeddedSet(
            "photos-paired", "photos-paired (synthetic paired set): photo tiles <-> flat-colour map-like renderings, 64 px",
            1, _build_photos_paired,
        ),
    ]
}


def read_manifest(folder: str | os.PathLike) -> dict | None:
    file = Path(folder) / MANIFEST
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _is_current(folder: Path, spec: EmbeddedSet) -> bool:
    manifest = read_manifest(folder)
    return bool(manifest) and manifest.get("name") == spec.name and manifest.get("version") == spec.version


def materialize(name: str, out: str | os.PathLike | None = None, force: bool = False, progress: bool = True) -> Path:
    """Write embedded set ``name`` to ``out`` (default ``<cache>/data/<name>``) unless already there; return it."""
    spec = EMBEDDED.get(name)
    if spec is None:
        raise UnitEvalError(f"unknown embedded dataset {name!r}; choose from {', '.join(EMBEDDED)}")
    target = Path(out).expanduser() if out is not None else default_location(name)
    return write_set(spec, target, force, progress)


def write_set(spec: EmbeddedSet, target: Path, force: bool = False, progress: bool = True, what: str = "embedded dataset"
              ) -> Path:
    """Build ``spec`` into a temporary sibling of ``target`` and rename it into place (manifest last).

    A folder already holding the current version of the same set is returned as is; a folder holding
    anything else is refused.
    """
    name = spec.name
    if target.exists() and not force and _is_current(target, spec):
        return target
    if target.exists():
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        elif read_manifest(target) and read_manifest(target).get("name") == spec.name:
            shutil.rmtree(target)  # an older version of the same embedded set, or force
        else:
            raise UnitEvalError(f"{target} exists and is not the {what} {name!r}; choose another --out")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    except OSError as exc:
        blocker = next((a for a in target.parents if a.exists()), None)
        why = f"{blocker} is a file, not a folder" if blocker is not None and not blocker.is_dir() else exc.strerror or exc
        raise UnitEvalError(f"cannot write {target}: {why}; choose another --out") from None
    try:
        extras = spec.build(tmp, progress)
        from . import __version__

        manifest = {"name": spec.name, "title": spec.title, "version": spec.version, "unit_eval_version": __version__}
        manifest.update(extras)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, target)
        except OSError:
            # another process finished first; keep its copy when it is complete
            if _is_current(target, spec):
                shutil.rmtree(tmp, ignore_errors=True)
                return target
            raise
    except OSError as exc:  # disk full, permissions changed mid-way: nothing half written stays
        shutil.rmtree(tmp, ignore_errors=True)
        raise UnitEvalError(f"writing {target} failed: {exc.strerror or exc}; nothing was kept") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def list_embedded() -> list[dict]:
    """Name, title and where each embedded set is (or would be) materialised."""
    rows = []
    for spec in EMBEDDED.values():
        loc = default_location(spec.name)
        rows.append({"name": spec.name, "title": spec.title, "path": str(loc), "materialized": _is_current(loc, spec)})
    return rows
