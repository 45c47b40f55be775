"""Runs a protocol (see :mod:`unit_eval.protocol_specs`) against a model or a folder of generated images.

Flow: dataset splits -> seeded sampling plan (:mod:`.sampling`) -> batches of sources/references decoded at the
model's resolution -> the model on the device (:mod:`.batches`) -> features / LPIPS / pixel counts, streamed
(nothing is written unless ``save_images`` is set) -> metric -> :class:`~unit_eval.results.ProtocolResult`.

:class:`ProtocolRunner` holds what the protocol kinds share (networks, the real sets, the translate loop, the
row options); each kind's evaluation is a function ``(runner, spec, seed) -> ProtocolResult`` in its own
module, named by the spec class's ``evaluator`` (:mod:`unit_eval.protocol_specs` is the one registry of kinds).

Reproducibility: a rerun is bitwise identical, another batch size equal up to float32 round-off inside the model
and Inception (a convolution's result moves by ~1e-7 with the batch it runs in).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .. import sharding
from ..errors import UnitEvalError
from ..extractors.registry import EXTRACTORS
from ..features import FeatureCache
from ..images import float_to_uint8, float_to_uint8_saved, list_class_folders, save_image
from ..protocol_specs import PACKAGE, ProtocolSpec, load_protocol
from ..results import MEAN, ProtocolResult
from ..stagetimes import stage
from .batches import ImageCache, model_batches
from .intervals import NONE, BootstrapPlan
from .realsets import RealSets
from .sampling import Job

TORCHVISION_INCEPTION = EXTRACTORS["torchvision-inception"][1]  # preprocessing modes of torchvision's Inception


@dataclass
class Settings:
    device: torch.device
    batch_size: int = 32
    cache: FeatureCache | None = None  # real-set features on disk; None = no cache
    save_images: Path | None = None
    progress: bool = True
    precision: str = "fp32"  # Inception numerics; tf32/bf16 are opt-in fast modes named in every row
    target_domain: int | None = None  # pixel accuracy: explicit index for a model without domain_names
    bootstrap: BootstrapPlan = NONE  # --bootstrap: percentile intervals of FID-type metrics
    classifier: str | None = None  # --classifier: translation accuracy's oracle (a checkpoint file or module:factory)


@dataclass
class Networks:
    """Feature extractors and LPIPS nets, built once and shared by every runner, protocol and seed of an evaluation.

    ``extractor_factory(preprocessing)`` and ``lpips_factory(net)`` replace the real networks (tests).
    """

    settings: Settings
    extractor_factory: Callable[[str], object] | None = None
    lpips_factory: Callable[[str], torch.nn.Module] | None = None
    extractors: dict[str, object] = field(default_factory=dict)
    lpips_nets: dict[str, torch.nn.Module] = field(default_factory=dict)
    classifiers: dict[str, object] = field(default_factory=dict)

    def extractor(self, preprocessing: str):
        if preprocessing not in self.extractors:
            if self.extractor_factory is not None:
                self.extractors[preprocessing] = self.extractor_factory(preprocessing)
            elif preprocessing in TORCHVISION_INCEPTION:  # StarGAN v2 / GP-UNIT FID: torchvision's ImageNet network
                from ..extractors import get_extractor

                s = self.settings
                if s.precision != "fp32":
                    raise UnitEvalError(f"--numerics {s.precision} applies to the TF-Inception extractor only; "
                                        f"'{preprocessing}' features are computed in fp32")
                self.extractors[preprocessing] = get_extractor(
                    "torchvision-inception", device=s.device, preprocessing=preprocessing, batch_size=s.batch_size,
                    progress=s.progress)
            else:
                from ..features import InceptionFeatures

                s = self.settings
                self.extractors[preprocessing] = InceptionFeatures(
                    device=s.device, batch_size=s.batch_size, preprocessing=preprocessing, progress=s.progress,
                    precision=s.precision)
        return self.extractors[preprocessing]

    def lpips(self, net: str) -> torch.nn.Module:
        if net not in self.lpips_nets:
            if self.lpips_factory is not None:
                self.lpips_nets[net] = self.lpips_factory(net)
            else:
                from ..weights import load_lpips

                self.lpips_nets[net] = load_lpips(net, self.settings.device)
        return self.lpips_nets[net]

    def classifier(self, protocol: str):
        """The ``--classifier`` of translation accuracy, loaded once (a checkpoint or ``module:factory``)."""
        spec = self.settings.classifier
        if not spec:
            raise UnitEvalError(f"protocol {protocol!r} needs a classifier: --classifier CLF.pt (from 'unit-eval train "
                                "classifier --data DATASET --out CLF.pt') or --classifier module:factory")
        if spec not in self.classifiers:
            from ..classifier import resolve_classifier

            self.classifiers[spec] = resolve_classifier(spec, self.settings.device)
        return self.classifiers[spec]


def protocol_file_name(file: str) -> str:
    """A protocol's file as rows record it: shipped ones by package path, a user's by file name only."""
    return file if file.startswith(f"{PACKAGE}/") else Path(file).name


def image_size_of(path: Path) -> int:
    """The side of a square generated image (protocols score square images)."""
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
    if w != h:
        raise UnitEvalError(f"generated image {path} is {w}x{h}; protocols score square images")
    return w


def resolve(name: str) -> Callable:
    """``"module:function"`` of a protocol kind's evaluator or check."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


class ProtocolRunner:
    """Evaluates protocols for one model (or fake folder) and one dataset.

    ``networks`` (a :class:`Networks`) and ``real`` (a :class:`RealSets`) may be shared with other runners (a sweep
    shares them over its checkpoints); by default the runner builds its own from ``settings`` and the factories.
    """

    def __init__(self, dataset, *, model=None, fake_dir: str | os.PathLike | None = None, settings: Settings,
                 extractor_factory: Callable[[str], object] | None = None,
                 lpips_factory: Callable[[str], torch.nn.Module] | None = None, evaluated: dict | None = None,
                 networks: Networks | None = None, real: RealSets | None = None):
        if (model is None) == (fake_dir is None):
            raise UnitEvalError("evaluate either a model or a folder of generated images, not both or neither")
        if settings.batch_size < 1:
            raise UnitEvalError(f"batch size must be positive, got {settings.batch_size}")
        self.dataset = dataset
        self.model = model
        self.fake_dir = Path(fake_dir) if fake_dir is not None else None
        if self.fake_dir is not None and not self.fake_dir.is_dir():
            raise UnitEvalError(f"fake folder not found: {self.fake_dir}")
        self.settings = settings
        self.networks = networks or Networks(settings, extractor_factory, lpips_factory)
        self.real = real or RealSets(settings.cache, settings.batch_size)
        self.evaluated = evaluated or {}
        self.seed: int | None = None

    # -- shared pieces ------------------------------------------------------------------------------

    def extractor(self, preprocessing: str):
        return self.networks.extractor(preprocessing)

    def lpips(self, net: str) -> torch.nn.Module:
        return self.networks.lpips(net)

    @property
    def image_size(self) -> int:
        size = getattr(self.model, "image_size", None)
        if not isinstance(size, int) or size < 1:
            raise UnitEvalError(f"the model's image_size must be a positive int, got {size!r}")
        return size

    def split(self, name: str) -> dict[str, list[Path]]:
        if not hasattr(self.dataset, "split"):
            raise UnitEvalError("this protocol needs a dataset of image classes")
        return self.dataset.split(name)

    def options(self, spec: ProtocolSpec, size: int | None, **extra) -> dict:
        """What a row records besides its value: every number-moving setting, and the inputs by name, hash and
        count, never by the absolute paths of this machine."""
        dataset = {k: v for k, v in self.dataset.describe().items() if k != "root"}
        return {"protocol": spec.options(), "protocol_file": protocol_file_name(spec.file), "image_size": size,
                "numerics": self.settings.precision, "evaluated": self.evaluated, "dataset": dataset, **extra}

    def model_outputs(self, fn: Callable, batches: Iterator[tuple[list[Job], tuple[torch.Tensor, ...]]], n: int,
                      spec: ProtocolSpec, desc: str) -> Iterator[tuple[list[Job], list[torch.Tensor], torch.Tensor]]:
        """(jobs, float inputs on the device, checked float outputs) per batch of ``(jobs, uint8 inputs)``, in order;
        outputs are saved as PNGs when ``save_images`` is set. ``n``: the number of jobs, for the progress bar."""
        from tqdm import tqdm

        chunks: list[list[Job]] = []

        def inputs():
            for jobs, uint8s in batches:
                chunks.append(jobs)
                yield uint8s

        with tqdm(total=n, desc=desc, unit="img", disable=not self.settings.progress, leave=False) as bar:
            for floats, out in model_batches(fn, inputs(), self.settings.device):
                jobs = chunks.pop(0)
                out = self.check_output(out, len(jobs), spec.name)
                self.save(spec, jobs, out)
                bar.update(len(jobs))
                yield jobs, floats, out

    def translate(self, jobs: list[Job], images: ImageCache, spec: ProtocolSpec, desc: str
                  ) -> Iterator[tuple[list[Job], torch.Tensor, torch.Tensor]]:
        """(jobs, sources float, outputs float) of ``model.translate`` per batch of at most ``batch_size`` jobs."""
        bs = self.settings.batch_size

        def batches():
            for start in range(0, len(jobs), bs):
                chunk = jobs[start: start + bs]
                yield chunk, (images.uint8([j.source for j in chunk], [j.source_flip for j in chunk]),
                              images.uint8([j.reference for j in chunk], [j.reference_flip for j in chunk]))

        for chunk, (src, _), out in self.model_outputs(self.model.translate, batches(), len(jobs), spec, desc):
            yield chunk, src, out

    @staticmethod
    def check_output(out, n: int, protocol: str) -> torch.Tensor:
        if not torch.is_tensor(out) or out.ndim != 4 or out.shape[0] != n or out.shape[1] != 3:
            shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise UnitEvalError(f"{protocol}: the model returned {shape} for {n} inputs; expected {n} x 3 x H x W")
        if not torch.isfinite(out).all():
            raise UnitEvalError(f"{protocol}: model output contains NaN or infinite values")
        return out.float()

    def save(self, spec: ProtocolSpec, jobs: list[Job], out: torch.Tensor) -> None:
        if self.settings.save_images is None:
            return
        root = Path(self.settings.save_images) / spec.name / f"seed{self.seed}"
        images = (float_to_uint8_saved if spec.quantisation == "stargan-v2" else float_to_uint8)(out).cpu()
        for job, img in zip(jobs, images):
            save_image(img, root / f"{job.name}.png")

    def fake_features(self, jobs: list[Job], images: ImageCache, spec: ProtocolSpec, extractor, desc: str) -> np.ndarray:
        """Features of the model's outputs for ``jobs``, generated and extracted batch by batch (no files).

        Under torchrun each rank generates and extracts whole batches, dealt round robin, and every rank gets
        every row in job order: the batches are the single process's, so the features are bit-identical.
        """
        if not sharding.start(getattr(extractor, "device", self.settings.device)):
            return self._generated_features(jobs, images, spec, extractor, desc)
        block = self.settings.batch_size
        mine = sharding.shard(jobs, block=block)
        local = self._generated_features(mine, images, spec, extractor, desc) if mine else \
            np.empty((0, sharding.feature_dim_of(extractor)), dtype=np.float64)
        return sharding.gather_ordered(local, len(jobs), block=block)

    def _generated_features(self, jobs: list[Job], images: ImageCache, spec: ProtocolSpec, extractor, desc: str) -> np.ndarray:
        legacy = extractor.preprocessing == "tunit-legacy"
        batches = (out if legacy else float_to_uint8(out) for _, _, out in self.translate(jobs, images, spec, desc))
        return extractor.stream(batches, total=len(jobs), desc=f"{desc} features")

    def needs_real_features(self, spec) -> bool:
        """Whether an FID result needs the real sets' features, not only their Gaussians (KID, --bootstrap-real)."""
        return bool(getattr(spec, "kid", False) or self.settings.bootstrap.real)

    def fid_result(self, spec, seed, real: dict, fake: dict[str, np.ndarray], extractor, options,
                   real_features: Callable[[], dict] | None = None) -> ProtocolResult:
        """Class-wise FID (``fid.class_wise_fid``) of fake features against the real sets' Gaussians; with the
        spec's ``kid`` also class-wise KID (``mkid``), and with ``--bootstrap`` intervals for both.
        ``real_features()``: class -> real features (KID and ``--bootstrap-real`` need them, not the Gaussians)."""
        from ..metrics.fid import class_wise_fid
        from .intervals import class_fid_intervals, class_kid, kid_options

        for c, f in fake.items():
            if len(f) < 2:
                raise UnitEvalError(f"{spec.name}: class {c!r} has {len(f)} fake images; FID needs at least 2")
        with stage("statistics"):
            mean, per_class = class_wise_fid(real, fake, getattr(extractor, "device", "cpu"))
        n_real = {c: real[c].n for c in real}
        n_fake = {c: len(f) for c, f in fake.items()}
        n_real[MEAN], n_fake[MEAN] = sum(n_real.values()), sum(n_fake.values())
        ordered = {c: per_class[c] for c in real}  # dataset order in rows
        values = {"mfid": {MEAN: mean}, "fid": ordered}
        plan = self.settings.bootstrap
        with_kid = getattr(spec, "kid", False)
        reals = real_features() if self.needs_real_features(spec) and real_features is not None else None
        intervals = class_fid_intervals(plan, seed, real, fake, reals, per_class) if plan else {}
        extra = dict(plan.options())
        if with_kid:
            kids = class_kid(plan, seed, reals, fake)
            values.update(kids.values)
            intervals.update(kids.intervals)
            extra.update(kid_options(kids.subset_size))
        dim = next(iter(real.values())).dim
        return ProtocolResult(spec.name, seed, values, n_real, n_fake, extractor.describe(), {**options, **extra},
                              feature_dim=dim, intervals=intervals)

    def fake_folder_classes(self, classes: list[str]) -> tuple[dict[str, list[Path]], int]:
        fakes = list_class_folders(self.fake_dir)
        if set(fakes) != set(classes):
            raise UnitEvalError(f"class sets differ: only in the dataset {sorted(set(classes) - set(fakes))}, "
                                f"only in {self.fake_dir} {sorted(set(fakes) - set(classes))}")
        return {c: fakes[c] for c in classes}, image_size_of(next(iter(fakes.values()))[0])

    # -- protocols ----------------------------------------------------------------------------------

    def check(self, spec: ProtocolSpec) -> None:
        """Fail early (before any generation) when the model, fake folder or dataset cannot serve this protocol."""
        from ..translator import require

        if self.fake_dir is not None and not spec.fake_folder:
            raise UnitEvalError(f"protocol {spec.name!r} needs a model (--ckpt or --model); a fake folder cannot stand in")
        if self.model is not None:
            for method in spec.model_methods():
                require(self.model, method, spec.name)
        if spec.paired and not hasattr(self.dataset, "pairs"):
            raise UnitEvalError(f"protocol {spec.name!r} needs a paired dataset (maps, or DIR/test/<source>,<target> "
                                "with files paired by name)")
        if not spec.paired and not hasattr(self.dataset, "split"):
            raise UnitEvalError(f"protocol {spec.name!r} needs a dataset of image classes")
        if spec.check is not None:
            resolve(spec.check)(self, spec)

    def run(self, spec: ProtocolSpec | str, seed: int | None = None) -> ProtocolResult:
        spec = load_protocol(spec) if isinstance(spec, (str, os.PathLike)) else spec
        seed = spec.seed if seed is None else int(seed)
        if seed < 0:
            raise UnitEvalError(f"seed must be non-negative, got {seed}")
        self.check(spec)
        self.seed = seed
        result = resolve(spec.evaluator)(self, spec, seed)
        result.dataset = self.dataset.name
        return result
