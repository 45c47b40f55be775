"""The oracle classifier of translation accuracy (CLUIT Sec. 4 and A.2: "Resnet-50 as an oracle classifier ...
trained using the training images of each dataset"): the network, its weights-only checkpoint, and the one way a
protocol gets a classifier (a checkpoint path or a user's ``module:factory``).

**Interface** (what :mod:`unit_eval.evaluation.accuracy` needs; a user's ``module:factory`` returns an object with it):

```
class_names: sequence of str     # the dataset's class names, in the order of the classifier's outputs
classify(images) -> logits       # images: float B x 3 x H x W in [-1, 1] on the device, at the translator's
                                 # resolution; returns B x len(class_names) scores (argmax is the prediction)
                                 # or B integer class indices
sha256: str          (optional)  # recorded in the rows' options and extractor name
```

**Checkpoint** (``unit-eval train classifier`` writes it; ``torch.load(weights_only=True)`` reads it, through
:func:`unit_eval.weights.safe_load.load_weights_only`): a dict ``format`` ("unit-eval-classifier/1"), ``arch``
(a torchvision ResNet name), ``class_names``, ``image_size`` (the square resolution it was trained at),
``state_dict``, ``meta`` (held-out accuracy, dataset, epochs, seed, initial weights, version, time).

**Preprocessing** (the paper states none): images in [-1, 1] are resized to ``image_size`` when they differ
(bilinear, antialiased), mapped to [0, 1] and normalised with ImageNet's mean and std (the statistics the
torchvision ImageNet weights expect; applied from scratch too, so a checkpoint has one preprocessing).

**ImageNet initialisation**: the official torchvision ResNet-50 files only, given by path (unit-eval does not
download them): ``resnet50-0676ba61.pth`` (IMAGENET1K_V1) or ``resnet50-11ad3fa6.pth`` (IMAGENET1K_V2), each
pinned by its full sha256 whatever the file is called (digests as recorded by several independent projects,
consistent with the 8-hex prefixes torchvision publishes in the file names).
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import torch
from torch import nn

from . import __version__
from .cache import atomic_torch_save, sha256_file
from .errors import UnitEvalError
from .translator import call_factory
from .weights.safe_load import load_weights_only

FORMAT = "unit-eval-classifier/1"
ARCHS = ("resnet50", "resnet18")
DEFAULT_ARCH = "resnet50"  # the paper's
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's ImageNet ResNet-50 files: sha256 -> (weights enum name, published file name, size in bytes).
IMAGENET_WEIGHTS: dict[str, dict[str, tuple[str, str, int]]] = {
    "resnet50": {
        "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a":
            ("IMAGENET1K_V1", "resnet50-0676ba61.pth", 102_530_333),
        "11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca":
            ("IMAGENET1K_V2", "resnet50-11ad3fa6.pth", 102_540_417),
    },
}


def build_network(arch: str, num_classes: int) -> nn.Module:
    """A torchvision ResNet with a ``num_classes``-way head, randomly initialised (no download, ever)."""
    import torchvision

    if arch not in ARCHS:
        raise UnitEvalError(f"unknown classifier architecture {arch!r}; choose from {', '.join(ARCHS)}")
    if num_classes < 2:
        raise UnitEvalError(f"a classifier needs at least 2 classes, got {num_classes}")
    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)


class Classifier(nn.Module):
    """A ResNet with its preprocessing: ``classify(images in [-1, 1])`` -> logits over ``class_names``."""

    def __init__(self, arch: str, class_names, image_size: int):
        super().__init__()
        if not isinstance(image_size, int) or image_size < 8:
            raise UnitEvalError(f"classifier image_size must be an int of at least 8, got {image_size!r}")
        self.arch, self.class_names, self.image_size = arch, tuple(class_names), image_size
        if len(set(self.class_names)) != len(self.class_names):
            raise UnitEvalError(f"classifier class names repeat: {list(self.class_names)}")
        self.net = build_network(arch, len(self.class_names))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.sha256: str | None = None
        self.meta: dict = {}

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                                          align_corners=False, antialias=True)
        return ((x + 1) / 2 - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self.preprocess(images))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self(images)
        finally:
            self.train(was)

    def describe(self) -> dict:
        """What a result row records about the classifier (never a path of this machine)."""
        keep = ("held_out_accuracy", "dataset", "epochs", "seed", "initial_weights")
        return {"kind": "checkpoint", "arch": self.arch, "image_size": self.image_size, "sha256": self.sha256,
                "classes": list(self.class_names), **{k: self.meta[k] for k in keep if k in self.meta}}


def imagenet_state_dict(path: str | os.PathLike, arch: str) -> tuple[dict, str]:
    """The official torchvision ImageNet weights of ``arch`` at ``path`` (checked by sha256), without the 1000-way
    head: (state dict, weights enum name)."""
    pinned = IMAGENET_WEIGHTS.get(arch)
    if pinned is None:
        raise UnitEvalError(f"ImageNet initialisation is offered for {', '.join(IMAGENET_WEIGHTS)} only, not {arch}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise UnitEvalError(f"ImageNet weights not found: {path}")
    digest = sha256_file(path)
    if digest not in pinned:
        names = " or ".join(f"{f} ({e})" for e, f, _ in pinned.values())
        raise UnitEvalError(f"{path.name} (sha256 {digest[:12]}...) is not torchvision's {names}; "
                            "unit-eval initialises only from those official files")
    state = load_weights_only(path, "cannot read ImageNet weights {path}: {reason}")
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UnitEvalError(f"{path} is not a state dict of tensors")
    return {k: v for k, v in state.items() if not k.startswith("fc.")}, pinned[digest][0]


def save_classifier(classifier: Classifier, path: str | os.PathLike, meta: dict) -> str:
    """Write the weights-only checkpoint atomically; returns its sha256."""
    state = {k: v.detach().cpu().clone() for k, v in classifier.net.state_dict().items()}
    payload = {"format": FORMAT, "arch": classifier.arch, "class_names": list(classifier.class_names),
               "image_size": classifier.image_size, "state_dict": state,
               "meta": {**meta, "version": __version__,
                        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}}
    atomic_torch_save(payload, path)
    return sha256_file(path)


def load_classifier(path: str | os.PathLike, device: torch.device | str = "cpu") -> Classifier:
    """A checkpoint of ``unit-eval train classifier``, read weights-only, in eval mode on ``device``."""
    path = Path(path).expanduser()
    data = load_weights_only(path, "cannot load classifier {path}: {reason}")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise UnitEvalError(f"{path.name} is not a unit-eval classifier checkpoint (format {found!r}, expected "
                            f"{FORMAT!r}); train one with 'unit-eval train classifier'")
    names = data.get("class_names")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise UnitEvalError(f"{path.name}: class_names must be a list of strings")
    clf = Classifier(str(data.get("arch")), names, data.get("image_size"))
    try:
        clf.net.load_state_dict(data["state_dict"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise UnitEvalError(f"{path.name}: weights do not fit a {clf.arch} with {len(names)} classes "
                            f"({str(exc).strip().splitlines()[0]})") from None
    clf.sha256 = sha256_file(path)
    clf.meta = dict(data.get("meta") or {})
    return clf.to(device).eval()


def load_user_classifier(spec: str, device: torch.device | str = "cpu"):
    """``module:factory`` -> factory(device=...) or factory(): an object with ``class_names`` and ``classify``."""
    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise UnitEvalError(f"--classifier expects a checkpoint file or 'module:factory', got {spec!r}")
    clf = call_factory(module_name, factory_name, device, "classifier")
    missing = [a for a in ("class_names", "classify") if not hasattr(clf, a)]
    if missing:
        raise UnitEvalError(f"{spec} returned {type(clf).__name__}, which lacks {', '.join(missing)} "
                            "(classifier interface: class_names, classify(images) -> logits)")
    names = list(clf.class_names)
    if not names or not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise UnitEvalError(f"{spec}: class_names must be distinct strings, got {names!r}")
    return clf


def resolve_classifier(spec: str, device: torch.device | str = "cpu"):
    """``--classifier``: a checkpoint file (``unit-eval train classifier``) or ``module:factory``."""
    text = str(spec)
    path = Path(text).expanduser()
    if path.exists() or text.endswith((".pt", ".pth")) or ":" not in text or os.sep in text:
        return load_classifier(path, device)
    return load_user_classifier(text, device)


def describe(clf, spec: str) -> dict:
    """Row provenance of any classifier: a checkpoint's own description, or the factory and its ``sha256``."""
    if isinstance(clf, Classifier):
        return clf.describe()
    return {"kind": "module", "spec": spec, "sha256": getattr(clf, "sha256", None), "classes": list(clf.class_names)}


def predict(clf, images: torch.Tensor) -> torch.Tensor:
    """Class indices (into ``clf.class_names``) of float images in [-1, 1]; checks what ``classify`` returned."""
    with torch.no_grad():
        out = clf.classify(images)
    n, k = images.shape[0], len(clf.class_names)
    if torch.is_tensor(out) and out.ndim == 2 and tuple(out.shape) == (n, k) and out.is_floating_point():
        if not torch.isfinite(out).all():
            raise UnitEvalError("the classifier returned NaN or infinite scores")
        return out.argmax(dim=1).cpu()
    if torch.is_tensor(out) and out.ndim == 1 and out.shape[0] == n and not out.is_floating_point():
        ids = out.long().cpu()
        if ids.numel() and (ids.min() < 0 or ids.max() >= k):
            raise UnitEvalError(f"the classifier returned class indices outside 0..{k - 1}")
        return ids
    shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
    raise UnitEvalError(f"the classifier returned {shape} for {n} images; expected {n} x {k} scores or {n} indices")
