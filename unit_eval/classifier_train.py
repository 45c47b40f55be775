"""``unit-eval train classifier``: the oracle classifier of translation accuracy, trained on a dataset's ``train``
split and scored on its ``test`` split (CLUIT A.2: "the classifier is trained using the training images of each
dataset"; accuracy 99.7 on AFHQ). The paper gives no recipe; unit-eval's, every choice recorded in the checkpoint:

- images decoded at ``img_size`` with the ``bilinear`` filter (as the protocols decode dataset images), optional
  random horizontal flips (on by default: faces; off for digits), nothing else;
- Adam (weight decay 1e-4), cosine learning-rate decay to zero over ``epochs``; learning rate 1e-3 from scratch,
  1e-4 from ImageNet weights unless given;
- seeded (``seed``): initialisation, shuffling and flips; a rerun on the same device is identical;
- the checkpoint is the last epoch's weights (no selection on the test split, which reports the accuracy).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from .classifier import DEFAULT_ARCH, Classifier, imagenet_state_dict, predict, save_classifier
from .errors import UnitEvalError
from .images import load_image, uint8_to_float

RESIZE_FILTER = "bilinear"


def _decode(split: dict[str, list[Path]], classes: list[str], size: int, progress: bool, what: str
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of ``split`` as N x 3 x S x S uint8 and its class indices (in ``classes`` order)."""
    from tqdm import tqdm

    pairs = [(p, i) for i, c in enumerate(classes) for p in split[c]]
    if not pairs:
        raise UnitEvalError(f"the {what} split has no images")
    images = np.stack([load_image(p, size, RESIZE_FILTER) for p, _ in
                       tqdm(pairs, desc=f"decode {what}", unit="img", disable=not progress, leave=False)])
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.tensor([i for _, i in pairs])


def evaluate_accuracy(clf, images: torch.Tensor, labels: torch.Tensor, device, batch_size: int = 64
                      ) -> tuple[float, dict[str, float]]:
    """(accuracy, per-class accuracy) of ``clf`` on uint8 images."""
    preds = torch.cat([predict(clf, uint8_to_float(images[i:i + batch_size]).to(device))
                       for i in range(0, len(images), batch_size)])
    correct = preds == labels
    per_class = {c: int(correct[labels == i].sum()) / int((labels == i).sum()) for i, c in enumerate(clf.class_names)
                 if (labels == i).any()}
    return int(correct.sum()) / len(labels), per_class


def train_classifier(data: str, out: str, *, data_root: str | None = None, arch: str = DEFAULT_ARCH,
                     img_size: int = 128, epochs: int = 30, batch_size: int = 64, lr: float | None = None,
                     weight_decay: float = 1e-4, hflip: bool = True, pretrained: str | None = None, seed: int = 0,
                     device: str = "auto", progress: bool = True) -> dict:
    """Train on ``data``'s train split, report held-out accuracy on its test split, write ``out``; the summary."""
    from tqdm import tqdm

    from .datasets import resolve_dataset
    from .device import resolve_device

    if epochs < 1 or batch_size < 2 or img_size < 8:
        raise UnitEvalError("epochs must be positive, the batch size at least 2 (batch norm) and img_size at least 8")
    dataset = resolve_dataset(data, data_root)
    if not hasattr(dataset, "split"):
        raise UnitEvalError(f"{data}: a classifier needs a dataset of image classes (train/test class folders)")
    train, test = dataset.split("train"), dataset.split("test")
    classes = list(train)
    if len(classes) < 2:
        raise UnitEvalError(f"{data}: a classifier needs at least 2 classes, found {len(classes)}")
    if set(test) != set(classes):
        raise UnitEvalError(f"{data}: train and test splits have different classes")
    if any(set(train[c]) & set(test[c]) for c in classes):
        raise UnitEvalError(f"{data}: train and test splits share images; held-out accuracy needs a real test split")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    clf = Classifier(arch, classes, img_size)
    initial = "scratch"
    if pretrained:
        state, initial = imagenet_state_dict(pretrained, arch)
        missing, unexpected = clf.net.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith("fc.") for k in missing):
            raise UnitEvalError(f"{Path(pretrained).name} does not fit torchvision's {arch}")
    lr = lr if lr is not None else (1e-4 if pretrained else 1e-3)
    clf = clf.to(dev)
    x_train, y_train = _decode(train, classes, img_size, progress, "train")
    x_test, y_test = _decode(test, classes, img_size, progress, "test")
    steps_per_epoch = math.ceil(len(x_train) / batch_size)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    start, losses = time.perf_counter(), []
    for epoch in tqdm(range(epochs), desc=f"train {arch}", unit="epoch", disable=not progress, leave=False):
        clf.train()
        order = torch.randperm(len(x_train), generator=gen)
        flips = torch.rand(len(x_train), generator=gen) < 0.5 if hflip else torch.zeros(len(x_train), dtype=torch.bool)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2:  # batch norm cannot train on one image (a 1 x 1 map at small sizes)
                continue
            x = uint8_to_float(x_train[idx])
            x = torch.where(flips[idx].view(-1, 1, 1, 1), x.flip(-1), x).to(dev)
            loss = torch.nn.functional.cross_entropy(clf(x), y_train[idx].to(dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x_train))
    seconds = time.perf_counter() - start
    clf.eval()
    accuracy, per_class = evaluate_accuracy(clf, x_test, y_test, dev, batch_size)
    train_accuracy, _ = evaluate_accuracy(clf, x_train, y_train, dev, batch_size)
    if not all(math.isfinite(v) for v in losses):
        raise UnitEvalError("classifier training diverged (non-finite loss); lower --lr")
    meta = {"held_out_accuracy": accuracy, "held_out_per_class": per_class, "train_accuracy": train_accuracy,
            "dataset": dataset.name, "n_train": len(x_train), "n_test": len(x_test), "epochs": epochs,
            "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "hflip": hflip, "seed": seed,
            "resize_filter": RESIZE_FILTER, "initial_weights": initial, "losses": losses,
            "train_seconds": round(seconds, 2)}
    sha = save_classifier(clf, out, meta)
    return {"classifier": str(out), "sha256": sha, "arch": arch, "image_size": img_size, "classes": classes,
            "held_out_accuracy": accuracy, "held_out_per_class": per_class, "train_accuracy": train_accuracy,
            "n_train": len(x_train), "n_test": len(x_test), "epochs": epochs, "initial_weights": initial,
            "final_loss": losses[-1], "train_seconds": round(seconds, 2)}
