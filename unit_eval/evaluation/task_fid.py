"""``stargan-v2-fid``: StarGAN v2's FID (GP-UNIT Table 1 runs the same code), one FID per translation task.

The reference, read from clovaai/stargan-v2 (commit 875b70a; no code copied):

- ``metrics/eval.py:37-93`` ``calculate_metrics``: for each target domain t (sorted) and each other domain s, every
  validation image of s is translated ``num_outs_per_domain`` (10) times into t, with a fresh latent code per output
  (``mode='latent'``) or a reference image of t's validation set (``mode='reference'``), and every output is saved as
  a PNG in ``eval_dir/s2t`` (line 93).
- ``core/utils.py:52-59``: ``save_image`` = ``(x + 1) / 2`` clamped to [0, 1], then torchvision's
  ``utils.save_image`` (``mul(255).add_(0.5).clamp_(0, 255)``, cast to uint8: :func:`~unit_eval.images.float_to_uint8_saved`); PNG is lossless,
  so the uint8 values are what the FID reads back.
- ``metrics/eval.py:122-143`` ``calculate_fid_for_all_tasks``: FID of each task's folder against ``train_img_dir/t``
  (every training image of t), then the arithmetic mean over tasks.
- ``metrics/fid.py:62-79``: features of both folders (:mod:`unit_eval.extractors.torchvision_inception` documents
  the network and ``get_eval_loader``'s preprocessing); ``mu = np.mean``, ``cov = np.cov(rowvar=False)`` (ddof 1),
  ``frechet_distance`` (lines 56-59) = ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2))`` with scipy's ``sqrtm`` and
  no eps. unit-eval computes the same quantity in float64 with the trace term from eigenvalues
  (:mod:`unit_eval.metrics.fid`); the test pins the difference against a NumPy/SciPy transcription.

Randomness (StarGAN v2 sets no seed for evaluation): references are drawn as ``lpips-diversity`` draws them, codes
as :mod:`.guided` seeds them, so one seed scores FID and LPIPS diversity on the same outputs.
"""
from __future__ import annotations

from ..errors import UnitEvalError
from ..images import float_to_uint8_saved
from ..protocol_specs import TaskFID
from ..results import MEAN, ProtocolResult
from .batches import ImageCache
from .guided import LATENT_CODES, guided_inputs, guided_outputs, latent_codes, output_jobs

QUANTISATION = "StarGAN v2 save_image: ((x + 1) / 2).clamp(0, 1).mul(255).add(0.5).clamp(0, 255) -> uint8 (PNG)"


def task_name(source: str, target: str) -> str:
    return f"{source}->{target}"  # StarGAN v2 writes "s2t" (eval.py:55), ambiguous with digit-named classes


def task_fid(runner, spec: TaskFID, seed: int) -> ProtocolResult:
    split = runner.split(spec.input_split)
    train = runner.split(spec.real_split)
    classes = list(split)
    if len(classes) < 2:
        raise UnitEvalError(f"{spec.name}: translation tasks need at least two classes, the dataset has {classes}")
    if set(train) != set(classes):
        raise UnitEvalError(f"{spec.name}: the {spec.input_split} and {spec.real_split} splits have different classes")
    extractor = runner.extractor(spec.preprocessing)
    size = runner.image_size
    g = spec.outputs_per_input
    inputs = guided_inputs(split, g, "all-other", spec.guidance, seed)
    tasks = [(s, t) for t in classes for s in classes if s != t]  # eval.py:37-48: targets sorted, then sources
    names = [task_name(s, t) for s, t in tasks]
    if len(set(names)) != len(names):
        raise UnitEvalError(f"{spec.name}: class names make ambiguous task names {names}")
    by_task = {task: [inp for inp in inputs if (inp.source_class, inp.target_class) == task] for task in tasks}
    codes = latent_codes(runner, spec, inputs, split, g, seed) if spec.guidance == "latent" else None
    position = {id(inp): i for i, inp in enumerate(inputs)}
    images = ImageCache(size, spec.resize_filter)
    fake = {}
    for (s, t), name in zip(tasks, names):
        mine = by_task[(s, t)]
        jobs = output_jobs(mine, g, spec.guidance)
        task_codes = None if codes is None else [codes[position[id(inp)]] for inp in mine]
        batches = (float_to_uint8_saved(out) for _, out in guided_outputs(runner, spec, jobs, images, task_codes, g, name))
        fake[name] = extractor.stream(batches, total=len(jobs), desc=f"{name} features")
    real_features = lambda: {name: runner.real.features(train[t], extractor, size, spec.resize_filter,  # noqa: E731
                                                        f"real {t}") for (s, t), name in zip(tasks, names)}
    if runner.needs_real_features(spec):
        real_features()  # extracted once: the Gaussians below are then built from them
    real = {name: runner.real.gaussian(train[t], extractor, size, spec.resize_filter, f"real {t}")
            for (s, t), name in zip(tasks, names)}
    extra = {"tasks": [[s, t] for s, t in tasks], "n_inputs": len(inputs), "quantisation": QUANTISATION,
             **({"style_codes": LATENT_CODES} if codes is not None else {})}
    result = runner.fid_result(spec, seed, real, fake, extractor, runner.options(spec, size, **extra), real_features)
    # rows: "fid" per task and its mean over tasks (StarGAN v2's FID_<mode>/mean), not a class-wise "mfid"
    result.values = {"fid": {**result.values.pop("fid"), MEAN: result.values.pop("mfid")[MEAN]}, **result.values}
    if "mfid" in result.intervals:
        result.intervals["fid"] = {**result.intervals.get("fid", {}), MEAN: result.intervals.pop("mfid")[MEAN]}
    result.n_real[MEAN] = sum(len(train[c]) for c in classes)  # each class's train set once, not once per task
    return result
