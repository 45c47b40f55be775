"""The ``pixel-accuracy`` protocol kind: UNIT's map accuracy. Sources go through ``translate_to_domain`` with the
index of the domain the protocol names (looked up in the model's ``domain_names``, never guessed), and predictions
are compared pixel-wise with the paired ground truth (UNIT Sec. 4.1; GcGAN ``evaluation/evaluate_maps.py``)."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import UnitEvalError
from ..images import float_to_uint8, list_images, load_image, resize_filter_of
from ..protocol_specs import MapsPixelAccuracy
from ..results import MEAN, ProtocolResult
from ..stagetimes import stage
from .sampling import Job


def oriented_pairs(runner, spec: MapsPixelAccuracy) -> list:
    """The dataset's ``spec.split`` pairs with the domain named ``spec.target_domain`` as their target side."""
    from ..datasets import Pair

    source, target = runner.dataset.domains
    if spec.target_domain not in (source, target):
        raise UnitEvalError(f"{spec.name}: translates into the domain named {spec.target_domain!r}, but the paired "
                            f"dataset {runner.dataset.name!r} has domains {source!r} and {target!r}")
    pairs = runner.dataset.pairs(spec.split)
    if not pairs:
        raise UnitEvalError(f"{spec.name}: the dataset has no {spec.split} pairs")
    if spec.target_domain == source:
        pairs = [Pair(p.stem, p.target, p.source) for p in pairs]
    return pairs


def target_index(runner, spec: MapsPixelAccuracy) -> tuple[int, str]:
    """(index passed to ``translate_to_domain``, how it was found): the position of ``spec.target_domain`` in the
    model's ``domain_names``, or the explicit ``Settings.target_domain``."""
    if runner.settings.target_domain is not None:
        index = int(runner.settings.target_domain)
        if index < 0:
            raise UnitEvalError(f"--target-domain must be a non-negative index, got {index}")
        return index, f"--target-domain {index} (given explicitly)"
    names = getattr(runner.model, "domain_names", None)
    if names is None:
        raise UnitEvalError(
            f"{spec.name}: the model does not name its domains (no domain_names), so the domain "
            f"{spec.target_domain!r} cannot be found; give the model domain_names or pass --target-domain INDEX")
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise UnitEvalError(f"{spec.name}: the model's domain_names must be a sequence of strings, got {names!r}")
    names = list(names)
    if spec.target_domain not in names:
        raise UnitEvalError(f"{spec.name}: the model's domains are {names}, none is named {spec.target_domain!r}; "
                            "pass --target-domain INDEX to choose one explicitly")
    return names.index(spec.target_domain), f"domain_names {names}"


def check(runner, spec: MapsPixelAccuracy) -> None:
    """Before any generation: the named domain is one of the dataset's and the model's."""
    oriented_pairs(runner, spec)
    if runner.model is not None:
        target_index(runner, spec)


def pixel_accuracy(runner, spec: MapsPixelAccuracy, seed: int) -> ProtocolResult:
    from ..metrics.pixacc import correct_pixels

    pairs = oriented_pairs(runner, spec)
    correct = total = 0
    extra = {}
    if runner.fake_dir is not None:
        found = {p.relative_to(runner.fake_dir).with_suffix("").as_posix(): p for p in list_images(runner.fake_dir)}
        missing = [p.stem for p in pairs if p.stem not in found]
        if missing:
            raise UnitEvalError(f"{len(missing)} of {len(pairs)} test pairs have no prediction in {runner.fake_dir} "
                                f"(expected files named by pair, e.g. {missing[0]}.png)")
        size = None
        for pair in pairs:
            pred = load_image(found[pair.stem])
            gt = pair.target.load()
            if gt.shape != pred.shape:
                from PIL import Image

                gt = np.asarray(Image.fromarray(gt).resize((pred.shape[1], pred.shape[0]),
                                                           resample=resize_filter_of(spec.target_resize_filter)))
            c, t = correct_pixels(pred, gt, spec.threshold)
            correct, total = correct + c, total + t
    else:
        size = runner.image_size
        index, found_by = target_index(runner, spec)
        extra = {"target_domain_index": index, "target_domain_from": found_by}
        bs = runner.settings.batch_size

        def batches():
            for start in range(0, len(pairs), bs):
                chunk = pairs[start: start + bs]
                with stage("decode"):
                    src = torch.from_numpy(np.stack([p.source.load(size, spec.resize_filter) for p in chunk])).permute(0, 3, 1, 2)
                yield [Job(p.source.path, None, "pred", p.stem) for p in chunk], (src,)

        outputs = runner.model_outputs(lambda x: runner.model.translate_to_domain(x, index), batches(), len(pairs),
                                       spec, "maps")
        for start, (_, _, out) in zip(range(0, len(pairs), bs), outputs):
            preds = float_to_uint8(out).permute(0, 2, 3, 1).cpu().numpy()
            for pair, pred in zip(pairs[start: start + bs], preds):
                with stage("decode"):
                    gt = pair.target.load(pred.shape[0], spec.target_resize_filter)
                with stage("statistics"):
                    c, t = correct_pixels(pred, gt, spec.threshold)
                correct, total = correct + c, total + t
    return ProtocolResult(spec.name, seed, {"pixel_accuracy": {MEAN: correct / total}}, {MEAN: len(pairs)},
                          {MEAN: len(pairs)}, None, runner.options(spec, size, n_pixels=total, **extra))
