"""A stand-in for InceptionFeatures in sharding tests: deterministic 'features' from a file's name.

No decoding and no network: ``files`` looks only at the names (``007.png`` -> seed 7), and records which
paths each call was asked for, so tests can see how work was split between ranks.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unit_eval.errors import UnitEvalError


def stand_in_features(path, dim: int = 2048) -> np.ndarray:
    rng = np.random.default_rng(int(Path(path).stem))
    return np.abs(rng.normal(0.5, 0.5, size=dim))  # pool3-like: non-negative, mean ~ std


class StandInExtractor:
    device = torch.device("cpu")
    weights_sha256 = "0" * 64

    def __init__(self, dim: int = 2048, batch_size: int = 2):
        self.feature_dim = dim
        self.batch_size = batch_size  # the sharding block: ranks take whole batches
        self.calls: list[list[str]] = []

    def describe(self) -> str:
        return f"stand-in-{self.feature_dim}"

    def files(self, paths, size=None, resize_filter="bicubic", desc=""):
        self.calls.append([Path(p).name for p in paths])
        if not paths:
            raise UnitEvalError("no images to extract features from")
        return np.stack([stand_in_features(p, self.feature_dim) for p in paths])


def write_stand_in_folders(root: Path) -> tuple[Path, Path]:
    """Empty .png files in class folders (real: a 7, b 6; fake: a 6, b 7), named by their seeds."""
    counts = {"real": {"a": 7, "b": 6}, "fake": {"a": 6, "b": 7}}
    seed = 0
    for kind, classes in counts.items():
        for cls, n in classes.items():
            folder = root / kind / cls
            folder.mkdir(parents=True, exist_ok=True)
            for _ in range(n):
                (folder / f"{seed:03d}.png").write_bytes(b"")
                seed += 1
    return root / "real", root / "fake"


def folder_results(real: Path, fake: Path) -> dict:
    """folder_fid / folder_mfid / folder_prdc with a 4-d stand-in: more images than dimensions, so the
    statistics of the 13-image sets are all-reduced under torchrun, not gathered."""
    from unit_eval.folders import folder_fid, folder_mfid, folder_prdc, summary

    ext = StandInExtractor(dim=4, batch_size=2)
    return {
        "fid": summary(folder_fid(real, fake, ext)),
        "mfid": summary(folder_mfid(real, fake, ext)),
        "prdc": summary(folder_prdc(real, fake, ext, k=2)),
    }
