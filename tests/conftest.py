"""Shared fixtures: real images (scikit-learn digits, scikit-image photos) written as folders."""
from __future__ import annotations

import math
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_REFERENCE = SHARED / "reference"


def shared_reference() -> Path:
    """../shared/reference next to the checkout; tests that need it skip where it is absent."""
    if not SHARED_REFERENCE.is_dir():
        pytest.skip("../shared/reference is absent (only present in the project's workspace)")
    return SHARED_REFERENCE


def write_digits(root: Path, classes=(0, 1, 2), per_class: int = 12, offset: int = 0, size: int = 32) -> Path:
    """scikit-learn's handwritten digits as class folders of RGB PNGs upscaled to size x size."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for c in classes:
        folder = root / str(c)
        folder.mkdir(parents=True, exist_ok=True)
        idx = np.flatnonzero(digits.target == c)[offset : offset + per_class]
        for j, i in enumerate(idx):
            img = (digits.images[i] * (255.0 / 16.0)).round().astype(np.uint8)
            Image.fromarray(img, mode="L").resize((size, size), Image.BICUBIC).convert("RGB").save(folder / f"{j:03d}.png")
    return root


def photo_arrays(size: int = 96) -> list[np.ndarray]:
    import skimage.data

    names = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "camera", "retina"]
    out = []
    for name in names:
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out.append(np.asarray(Image.fromarray(img[..., :3]).resize((size, size), Image.BICUBIC)))
    return out


@pytest.fixture(scope="session")
def digits_real(tmp_path_factory) -> Path:
    return write_digits(tmp_path_factory.mktemp("digits_real"), per_class=12, offset=0)


@pytest.fixture(scope="session")
def digits_fake(tmp_path_factory) -> Path:
    return write_digits(tmp_path_factory.mktemp("digits_fake"), per_class=10, offset=40)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a whole trainer test module, its module fixtures included: tiny convolutions run
    fastest on one thread, and it is immune to busy shared cores. Request with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def det_uniform(tag: str, shape) -> torch.Tensor:
    """Uniform [-1, 1) float64 values: splitmix64 of (crc32(tag), element index); integer arithmetic only, so the
    same tensors on any machine (inputs and weights of the parity tests pinned from the authors' code)."""
    n = math.prod(shape)
    golden = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = np.uint64(zlib.crc32(tag.encode())) * golden + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * golden
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    return torch.from_numpy(2.0 * u - 1.0).reshape(shape)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def flat_state(state, prefix: str = "") -> dict:
    """A nested training state (dicts, lists of tensors and plain values) as ``{"a.0.b.": leaf}``."""
    if isinstance(state, dict):
        return {k2: v2 for k, v in state.items() for k2, v2 in flat_state(v, f"{prefix}{k}.").items()}
    if isinstance(state, (list, tuple)):
        return {k2: v2 for i, v in enumerate(state) for k2, v2 in flat_state(v, f"{prefix}{i}.").items()}
    return {prefix: state}


def assert_same_state(a, b) -> None:
    """Two training states (resume.pt's ``recipe``) equal bit for bit, naming the first leaf that differs."""
    fa, fb = flat_state(a), flat_state(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if isinstance(fa[k], torch.Tensor):
            assert torch.equal(fa[k], fb[k]), k
        else:
            assert fa[k] == fb[k], k


def assert_no_absolute_paths(rows: list[dict]) -> None:
    """Rows are shared and committed: no string anywhere in them is an absolute path of this machine."""
    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")
        elif isinstance(node, str):
            assert not os.path.isabs(node) and "/tmp/" not in node, f"{where} carries a path: {node}"

    for row in rows:
        walk(row, row["metric"])
