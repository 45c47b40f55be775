"""The stage-I content encoder GP-UNIT's stage II starts from: the official pretrained file or a stage-I run.pt.

Official file: ``content_encoder.pt`` (GP-UNIT README "Pretrained Models" / "Train GP-UNIT": Google Drive
id ``1I7_IMMheihcIR57vInof5g6R0j8wEonx``, 37,924,191 bytes per the download log in the official
``notebooks/inference_playground.ipynb``). It is ``netAE.contentE.state_dict()`` (prior_distillation.py:130):
a plain state dict whose every conv is spectral-normed, keys ``layer{1..6}.{0,1}.conv.{weight_orig, weight_u,
weight_v, bias}`` (content_encoder.py:20-26, 67-94; the instance norms have no parameters). No sha256 of it
is published anywhere we could find, so it is not pinned: it is read weights-only, every key and shape is
checked, and its sha256 is recorded in the run's config (``content_encoder_sha256``).

Ours holds plain convs: ``weight = weight_orig / sigma`` with ``sigma = u . (W v)`` from the stored power-
iteration vectors, which is the official encoder in eval mode (inference.py:44). The official stage-II
training leaves it in train mode (train.py:243-247, never ``.eval()``), so there each forward runs one more
power iteration on ``u, v``; on a converged encoder the difference is negligible, and this way training and
inference use the same frozen weights.
"""
from __future__ import annotations

from pathlib import Path

import torch

from unit_eval.cache import sha256_file
from unit_eval.errors import UnitEvalError
from unit_eval.weights.safe_load import load_weights_only

from .networks import ContentEncoder

OFFICIAL_FILE = "content_encoder.pt"
OFFICIAL_SIZE = 37_924_191


def official_layout(nef: int = 64, n_down: int = 5) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a spectral-normed content encoder's state dict (the official file at nef=64, n_down=5)."""
    net = ContentEncoder(nef, n_down, sn=True)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def fold_spectral_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official-layout state (``*.weight_orig``, ``*.weight_u``, ``*.weight_v``) -> plain ``*.weight`` (eval-mode
    spectral norm: ``weight_orig / (u . W v)``, W the weight reshaped to out x rest); other keys kept."""
    out = {}
    for key, value in state.items():
        if key.endswith(".weight_orig"):
            base = key[: -len("_orig")]
            w = value.double()
            u, v = state[base + "_u"].double(), state[base + "_v"].double()
            sigma = torch.dot(u, torch.mv(w.reshape(w.shape[0], -1), v))
            out[base] = (w / sigma).to(value.dtype)
        elif not key.endswith((".weight_u", ".weight_v")):
            out[key] = value
    return out


def official_to_ours(state, nef: int, n_down: int, where: str) -> dict[str, torch.Tensor]:
    """Check an official-layout content-encoder state dict key by key and return our (folded) layout."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnitEvalError(f"{where} is not a state dict of tensors (expected GP-UNIT's content_encoder.pt layout)")
    want = official_layout(nef, n_down)
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        what = f"lacks {missing[0]}" if missing else f"has unexpected {extra[0]}"
        raise UnitEvalError(f"{where} is not a GP-UNIT content encoder at nef={nef}, n_down={n_down}: it {what} "
                            f"({len(missing)} missing, {len(extra)} unexpected keys)")
    for key, shape in want.items():
        if tuple(state[key].shape) != shape:
            raise UnitEvalError(f"{where}: {key} has shape {tuple(state[key].shape)}, expected {shape} (nef={nef}, n_down={n_down})")
    return fold_spectral_norm({k: v.float() for k, v in state.items()})


def load_content_encoder(path, nef: int, n_down: int) -> tuple[dict[str, torch.Tensor], str]:
    """Our content-encoder state from ``path`` (the official ``content_encoder.pt`` or a gpunit stage-I run.pt),
    and the file's sha256. Every problem is a one-line ``UnitEvalError``."""
    file = Path(str(path)).expanduser()
    if not file.is_file():
        raise UnitEvalError(f"content_encoder {file} is not a file (give GP-UNIT's {OFFICIAL_FILE} or a gpunit stage-I run.pt)")
    payload = load_weights_only(file, "{path} is not a loadable content encoder (weights_only=True: {reason})")
    if isinstance(payload, dict) and payload.get("format") == "unit-eval/1":
        config = payload.get("config") or {}
        if payload.get("model") != "gpunit" or int(config.get("stage", 2)) != 1:
            raise UnitEvalError(f"{file} is a {payload.get('model')} run.pt, not a gpunit stage-I run (--set stage=1)")
        prefix = "content_encoder."
        state = {k[len(prefix):]: v for k, v in payload["state_dict"].items() if k.startswith(prefix)}
    else:
        state = payload
    return official_to_ours(state, nef, n_down, str(file)), sha256_file(file)
