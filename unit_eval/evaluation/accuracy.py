"""``translation-accuracy`` (CLUIT Sec. 4): the fraction of outputs that an oracle classifier assigns to the
reference's class.

The paper: "each input image is translated using 10 reference images randomly sampled from the test set" and
"we report the translation accuracy measured by the pre-trained ResNet-50 classifier to determine whether the
translation output belongs to the reference image's domain"; A.2: the ResNet-50 "is trained using the training
images of each dataset" (99.7 accuracy on AFHQ). What it leaves open, and unit-eval's choice:

- **same-class references**: not excluded (the paper samples from the whole test set). An identity translator
  then scores about the share of same-class references (about 1/K), not 0: CLUIT's TUNIT-3, which "only allows
  local texture or color change", scores 40.5 on three-class AFHQ, consistent with this reading. The protocol key
  ``same_class_references = false`` draws references of other classes only (a copier then scores about 0).
- **pairs**: drawn by ``cluit-mfid``'s sampler with its random streams, so with the same seed the accuracy is
  measured on exactly the outputs whose mFID ``cluit-mfid`` reports ("the same set of random reference images
  for all the competing approaches"). An input is never its own reference.
- **aggregate**: the ``mean`` row is pooled over all outputs (the paper's single "Acc"); per-class rows group
  outputs by the reference's ground-truth class.
- **preprocessing**: outputs are quantised to uint8, as if saved to disk (a folder of generated images scores the
  same), then given to the classifier at the model's resolution; a checkpoint classifier resizes to the
  resolution it was trained at (bilinear, antialiased) and applies ImageNet normalisation (:mod:`unit_eval.classifier`).
- **classifier**: given per evaluation (``--classifier CLF.pt`` or ``module:factory``), recorded in every row
  (sha256, architecture, resolution, its held-out accuracy) and named in the rows' ``extractor``, so numbers from
  different classifiers never average or compare.

With ``--fake DIR`` the folder's class subfolders are the reference classes (the layout ``--save-images`` writes).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UnitEvalError
from ..images import float_to_uint8, list_class_folders, uint8_to_float
from ..protocol_specs import TranslationAccuracy
from ..results import MEAN, ProtocolResult
from ..stagetimes import stage
from .batches import ImageCache
from .sampling import sample_reference_class


def _classifier(runner, spec: TranslationAccuracy):
    """The classifier, its class names checked against the dataset's (same set; order may differ)."""
    clf = runner.networks.classifier(spec.name)
    classes = list(runner.split(spec.reference_split))
    names = list(clf.class_names)
    if set(names) != set(classes):
        raise UnitEvalError(f"{spec.name}: the classifier's classes do not match the dataset's: only in the classifier "
                            f"{sorted(set(names) - set(classes))}, only in the dataset {sorted(set(classes) - set(names))}")
    return clf, classes, {c: names.index(c) for c in classes}


def check(runner, spec: TranslationAccuracy) -> None:
    """Before any generation: a classifier is given, loads, and knows the dataset's classes."""
    _classifier(runner, spec)


def _extractor_name(clf, info: dict) -> str:
    sha = info.get("sha256")
    what = info.get("arch") or info.get("spec")
    return f"classifier {what}" + (f" sha256:{sha[:12]}" if sha else "")


def _classify(clf, images: torch.Tensor, device, batch_size: int) -> torch.Tensor:
    """Class indices of uint8 images (on any device), in batches."""
    from ..classifier import predict

    out = []
    for start in range(0, images.shape[0], batch_size):
        with stage("extract"):
            out.append(predict(clf, uint8_to_float(images[start:start + batch_size]).to(device)))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def _fake_folder(runner, clf, classes: list[str], index: dict[str, int]) -> tuple[dict, dict, int]:
    from ..images import load_image
    from .runner import image_size_of

    folders = list_class_folders(runner.fake_dir)
    if set(folders) != set(classes):
        raise UnitEvalError(f"class sets differ: only in the dataset {sorted(set(classes) - set(folders))}, "
                            f"only in {runner.fake_dir} {sorted(set(folders) - set(classes))}")
    size = image_size_of(folders[classes[0]][0])
    correct, n = {}, {}
    bs = runner.settings.batch_size
    for c in classes:
        hits = 0
        paths = folders[c]
        for start in range(0, len(paths), bs):
            arrays = [load_image(p) for p in paths[start:start + bs]]
            if {a.shape for a in arrays} != {(size, size, 3)}:
                raise UnitEvalError(f"generated images under {runner.fake_dir} differ in size; expected {size}x{size}")
            batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
            hits += int((_classify(clf, batch, runner.settings.device, bs) == index[c]).sum())
        correct[c], n[c] = hits, len(paths)
    return correct, n, size


def translation_accuracy(runner, spec: TranslationAccuracy, seed: int) -> ProtocolResult:
    clf, classes, index = _classifier(runner, spec)
    from ..classifier import describe

    info = describe(clf, runner.settings.classifier)
    bs = runner.settings.batch_size
    if runner.fake_dir is not None:
        correct, n, size = _fake_folder(runner, clf, classes, index)
        extra = {"fakes_from": "folder (uint8 files)"}
    else:
        size = runner.image_size
        plan = sample_reference_class(runner.split(spec.input_split), runner.split(spec.reference_split),
                                      spec.references_per_input, spec.exclude_self, seed,
                                      same_class=spec.same_class_references, label=spec.name)
        images = ImageCache(size, spec.resize_filter)
        correct, n = {}, {}
        for c in classes:
            hits = 0
            for _, _, out in runner.translate(plan[c], images, spec, f"translate {c}"):
                hits += int((_classify(clf, float_to_uint8(out), runner.settings.device, bs) == index[c]).sum())
            correct[c], n[c] = hits, len(plan[c])
        extra = {"fakes_from": "model (outputs quantised to uint8)"}
    total = sum(n.values())
    if total == 0:
        raise UnitEvalError(f"{spec.name}: no outputs to classify")
    values = {c: correct[c] / n[c] for c in classes if n[c]}
    values[MEAN] = sum(correct.values()) / total
    n_fake = {c: n[c] for c in values if c != MEAN}
    n_fake[MEAN] = total
    options = runner.options(spec, size, classifier=info, aggregate="pooled over all outputs",
                             correct={c: correct[c] for c in classes}, **extra)
    return ProtocolResult(spec.name, seed, {"translation_accuracy": values}, {}, n_fake, _extractor_name(clf, info),
                          options)
