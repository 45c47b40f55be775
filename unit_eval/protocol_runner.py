"""Runs a protocol (see :mod:`unit_eval.protocol_specs`) against a model or a folder of generated images.

Flow: dataset splits -> seeded sampling plan (pure functions below, no model, no I/O) -> batches of
sources/references decoded at the model's resolution -> ``model.translate`` on the device -> features /
LPIPS / pixel counts, streamed (nothing is written unless ``save_images`` is set) -> metric -> result rows.

Reproducibility: every random choice is drawn from ``numpy.random.default_rng([seed, key...])`` with a key
per purpose and class, before any model call, so the generated set never depends on batch size, device or
which other protocols ran; a rerun is bitwise identical, another batch size equal up to float32 round-off
inside the model and Inception (a convolution's result moves by ~1e-7 with the batch it runs in). Real-set features go through :class:`~unit_eval.features.FeatureCache`; the
legacy real set (random flips) is cached under a key that also covers the flips.
"""
from __future__ import annotations

import os
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from . import sharding
from .errors import UnitEvalError
from .images import float_to_uint8, list_class_folders, list_images, load_image, save_image, uint8_to_float
from .protocol_specs import (PACKAGE, ClassFID, ClusterEval, DensityCoverage, LegacyTunitMFID, LpipsContent,
                             LpipsDiversity, MapsPixelAccuracy, ProtocolSpec, ReferenceClassFID, load_protocol)

MEAN = "mean"


# ----------------------------------------------------------------------------------------------------
# Sampling plans (pure)


@dataclass(frozen=True)
class Job:
    """One image to generate: ``source`` translated with ``reference``; ``group`` is the set it joins."""

    source: Path
    reference: Path | None
    group: str
    name: str  # relative file name (no extension) under --save-images
    source_flip: bool = False
    reference_flip: bool = False


def _key(k) -> int:
    return zlib.crc32(k.encode()) if isinstance(k, str) else int(k)


def rng_for(seed: int, *keys) -> np.random.Generator:
    """An independent stream per (seed, purpose, class...): adding a class or protocol never shifts another's draws."""
    return np.random.default_rng([int(seed), *(_key(k) for k in keys)])


def _need(n_have: int, n_want: int, what: str) -> None:
    if n_have < n_want:
        raise UnitEvalError(f"{what}: needs {n_want} images, the split has {n_have}")


def _check_classes(split: dict[str, list[Path]], what: str) -> list[str]:
    classes = list(split)
    if not classes:
        raise UnitEvalError(f"{what}: the dataset has no classes")
    for c, paths in split.items():
        if not paths:
            raise UnitEvalError(f"{what}: class {c!r} has no images in this split")
    return classes


def sample_class_fid(split: dict[str, list[Path]], sources_per_class: int, references_per_source: int, seed: int,
                     purpose: str = "class-fid", label: str | None = None) -> dict[str, list[Job]]:
    """TUNIT Appendix C: per target class t, ``sources_per_class`` random images of each other class, each
    with ``references_per_source`` random references of t (both without replacement). K = 1: the class
    itself is the source class. Returns {target: jobs} with exactly S x max(K-1, 1) x R jobs per target.
    ``purpose`` keys the random streams (protocols sharing it draw the same pairs); ``label`` names errors."""
    label = label or purpose
    classes = _check_classes(split, label)
    plan: dict[str, list[Job]] = {}
    for ti, target in enumerate(classes):
        refs = split[target]
        _need(len(refs), references_per_source, f"{label}: references of class {target!r}")
        others = [c for c in classes if c != target] or [target]
        jobs = []
        for source_cls in others:
            pool = split[source_cls]
            _need(len(pool), sources_per_class, f"{label}: sources of class {source_cls!r}")
            rng = rng_for(seed, purpose, "sources", ti, classes.index(source_cls))
            for si in rng.choice(len(pool), size=sources_per_class, replace=False):
                ref_rng = rng_for(seed, purpose, "references", ti, classes.index(source_cls), int(si))
                for ri in ref_rng.choice(len(refs), size=references_per_source, replace=False):
                    src, ref = pool[int(si)], refs[int(ri)]
                    jobs.append(Job(src, ref, target, f"{target}/{len(jobs):06d}_{src.stem}_{ref.stem}"))
        plan[target] = jobs
    return plan


@dataclass(frozen=True)
class LegacyPlan:
    jobs: dict[str, list[Job]]
    target_count: int  # (min + max) // 2 of the train counts
    multiples: int
    num_each: int
    branch: str


def sample_legacy(val: dict[str, list[Path]], train_counts: dict[str, int], fid_batch: int, seed: int,
                  branch: str) -> LegacyPlan:
    """clovaai/tunit calcFIDBatch's fakes, seeded (see :class:`~unit_eval.protocol_specs.LegacyTunitMFID`)."""
    classes = _check_classes(val, "tunit-mfid-legacy")
    k = len(classes)
    counts = [train_counts[c] for c in classes]
    target = (min(counts) + max(counts)) // 2
    multiples = max(1, fid_batch // k)
    num_each = target // multiples if k == 1 else (target // multiples) // (k - 1)
    if num_each < 1:
        raise UnitEvalError(
            f"tunit-mfid-legacy: (min+max)//2 = {target} train images per class with {multiples} reference draws "
            f"and {k} classes leaves 0 sources per class (calcFIDBatch would compute FID on no fakes)")
    for c in classes:
        if len(val[c]) < num_each:
            raise UnitEvalError(
                f"tunit-mfid-legacy: class {c!r} has {len(val[c])} validation images but calcFIDBatch takes "
                f"num_each = {num_each} per class (the official code would read uninitialised feature rows)")
    flips = {}
    if branch == "animal_faces":  # validation images loaded once through the training transform
        for ci, c in enumerate(classes):
            coins = rng_for(seed, "legacy", "val-flip", ci).random(len(val[c])) < 0.5
            flips.update({p: bool(f) for p, f in zip(val[c], coins)})
    plan: dict[str, list[Job]] = {}
    for ti, t in enumerate(classes):
        rng = rng_for(seed, "legacy", "references", ti)
        draws = [rng.permutation(len(val[t]))[:num_each] for _ in range(multiples)]
        # calcFIDBatch's content loop: with one inner iteration (K = 1 or K = 2) it takes x_val_list[j] with j = 0,
        # so for K = 2 both targets get class 0's contents (target 0 is a self-translation), as in the official code.
        contents = [classes[0]] if k <= 2 else [classes[(ti + j + 1) % k] for j in range(k - 1)]
        jobs = []
        for c in contents:
            for draw in draws:
                for n in range(num_each):
                    src, ref = val[c][n], val[t][int(draw[n])]
                    jobs.append(Job(src, ref, t, f"{t}/{len(jobs):06d}_{src.stem}_{ref.stem}",
                                    flips.get(src, False), flips.get(ref, False)))
        plan[t] = jobs[:target]
    return LegacyPlan(plan, target, multiples, num_each, branch)


def legacy_real_paths(train: dict[str, list[Path]], plan: LegacyPlan) -> dict[str, list[Path]]:
    """animal_faces branch: every train image; other branch: the first (min+max)//2 of each class."""
    if plan.branch == "animal_faces":
        return {c: list(p) for c, p in train.items()}
    return {c: list(p[: plan.target_count]) for c, p in train.items()}


def legacy_real_flips(paths: dict[str, list[Path]], classes: list[str], seed: int) -> dict[str, np.ndarray]:
    return {c: rng_for(seed, "legacy", "real-flip", classes.index(c)).random(len(p)) < 0.5 for c, p in paths.items()}


def _pool(split: dict[str, list[Path]]) -> list[tuple[str, Path]]:
    return [(c, p) for c, paths in split.items() for p in paths]


def sample_pairs_uniform(split: dict[str, list[Path]], n: int, seed: int, purpose: str = "dc") -> list[Job]:
    """``n`` (source, reference) pairs, each drawn independently and uniformly from the pooled split."""
    _check_classes(split, purpose)
    pool = _pool(split)
    rng = rng_for(seed, purpose, "pairs")
    src = rng.integers(0, len(pool), size=n)
    ref = rng.integers(0, len(pool), size=n)
    return [Job(pool[int(a)][1], pool[int(b)][1], "all", f"{i:06d}_{pool[int(a)][1].stem}_{pool[int(b)][1].stem}")
            for i, (a, b) in enumerate(zip(src, ref))]


def sample_reference_class(inputs: dict[str, list[Path]], references: dict[str, list[Path]], per_input: int,
                           exclude_self: bool, seed: int) -> dict[str, list[Job]]:
    """CLUIT: each input with ``per_input`` distinct random references from the pooled reference split;
    fakes grouped by the reference's class (every class of ``references`` gets a group, maybe empty)."""
    _check_classes(inputs, "cluit-mfid inputs")
    _check_classes(references, "cluit-mfid references")
    ref_pool = _pool(references)
    plan: dict[str, list[Job]] = {c: [] for c in references}
    for ii, (_, src) in enumerate(_pool(inputs)):
        candidates = [i for i, (_, p) in enumerate(ref_pool) if not (exclude_self and p == src)]
        _need(len(candidates), per_input, f"cluit-mfid: references for {src.name}")
        for ri in rng_for(seed, "cluit", "references", ii).choice(len(candidates), size=per_input, replace=False):
            cls, ref = ref_pool[candidates[int(ri)]]
            plan[cls].append(Job(src, ref, cls, f"{cls}/{len(plan[cls]):06d}_{src.stem}_{ref.stem}"))
    return plan


@dataclass(frozen=True)
class DiversityInput:
    source: Path
    source_class: str
    target_class: str
    references: tuple[Path, ...]


def sample_diversity(split: dict[str, list[Path]], per_input: int, targets: str, seed: int) -> list[DiversityInput]:
    """StarGAN v2 tasks: inputs of every other class (``all-other``) or one random other class per input."""
    classes = _check_classes(split, "lpips-diversity")
    for c in classes:
        _need(len(split[c]), per_input, f"lpips-diversity: references of class {c!r}")
    out = []
    for si, (src_cls, src) in enumerate(_pool(split)):
        others = [c for c in classes if c != src_cls] or [src_cls]
        if targets == "one-random":
            others = [others[int(rng_for(seed, "diversity", "target", si).integers(len(others)))]]
        for t in others:
            ti = classes.index(t)
            refs = rng_for(seed, "diversity", "references", si, ti).choice(len(split[t]), size=per_input, replace=False)
            out.append(DiversityInput(src, src_cls, t, tuple(split[t][int(r)] for r in refs)))
    return out


# ----------------------------------------------------------------------------------------------------
# Results


@dataclass
class ProtocolResult:
    """Values per metric and class ("mean" for the aggregate), with counts and everything for result rows."""

    protocol: str
    seed: int
    values: dict[str, dict[str, float]]
    n_real: dict[str, int] = field(default_factory=dict)  # class -> count; "mean" -> total
    n_fake: dict[str, int] = field(default_factory=dict)
    extractor: str | None = None
    options: dict = field(default_factory=dict)
    dataset: str | None = None

    def rows(self, run: str, ckpt_sha256: str | None = None) -> list[dict]:
        from .results import make_row

        rows = []
        for metric, per in self.values.items():
            for cls, value in per.items():
                rows.append(make_row(run=run, protocol=self.protocol, metric=metric, value=value, cls=cls,
                                     dataset=self.dataset, seed=self.seed,
                                     n_real=self.n_real.get(cls, self.n_real.get(MEAN)),
                                     n_fake=self.n_fake.get(cls, self.n_fake.get(MEAN)),
                                     extractor=self.extractor, ckpt_sha256=ckpt_sha256, options=self.options))
        return rows

    def summary(self) -> dict:
        out: dict = {"protocol": self.protocol, "seed": self.seed}
        for metric, per in self.values.items():
            if MEAN in per:
                out[metric] = per[MEAN]
        if "mfid" in self.values:
            out["per_class"] = dict(self.values["fid"])
        else:
            for metric, per in self.values.items():
                classes = {c: v for c, v in per.items() if c != MEAN}
                if classes:
                    out["per_class"] = classes
                    break
        out["n_real"] = self.n_real.get(MEAN)
        out["n_fake"] = self.n_fake.get(MEAN)
        out["extractor"] = self.extractor
        out["dataset"] = self.dataset
        return out


# ----------------------------------------------------------------------------------------------------
# Images


class _Images:
    """Decodes dataset images at one resolution (LRU-memoised: a reference is used many times)."""

    def __init__(self, size: int | None, resize_filter: str, capacity: int = 2048):
        self.size, self.resize_filter, self.capacity = size, resize_filter, capacity
        self._memo: OrderedDict[Path, np.ndarray] = OrderedDict()

    def array(self, path: Path, flip: bool = False) -> np.ndarray:
        arr = self._memo.get(path)
        if arr is None:
            arr = load_image(path, self.size, self.resize_filter)
            self._memo[path] = arr
            if len(self._memo) > self.capacity:
                self._memo.popitem(last=False)
        else:
            self._memo.move_to_end(path)
        return arr[:, ::-1] if flip else arr

    def uint8(self, paths: list[Path], flips: list[bool] | None = None) -> torch.Tensor:
        flips = flips or [False] * len(paths)
        arrays = [np.ascontiguousarray(self.array(p, f)) for p, f in zip(paths, flips)]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise UnitEvalError(f"images differ in size {sorted(shapes)}; they must be resized to one resolution")
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _memo_key(paths: list[Path], extractor, size, resize_filter, flips) -> tuple:
    """In-process memo key of a real set: like FeatureCache's, a touched file makes a new key."""
    listing = tuple((str(p), *(lambda st: (st.st_size, st.st_mtime_ns))(p.stat())) for p in paths)
    return (extractor.describe(), size, resize_filter, listing, None if flips is None else flips.tobytes())


def _image_size(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        w, h = img.size
    if w != h:
        raise UnitEvalError(f"generated image {path} is {w}x{h}; protocols score square images")
    return w


# ----------------------------------------------------------------------------------------------------
# Runner


@dataclass
class Settings:
    device: torch.device
    batch_size: int = 32
    cache: object | None = None  # FeatureCache (enabled or not); None = no cache at all
    save_images: Path | None = None
    progress: bool = True
    precision: str = "fp32"  # Inception numerics; tf32/bf16 are opt-in fast modes named in every row
    target_domain: int | None = None  # pixel accuracy: explicit index for a model without domain_names


class ProtocolRunner:
    """Evaluates protocols for one model (or fake folder) and one dataset; extractors and LPIPS nets are
    built once and shared across protocols and seeds.

    ``extractor_factory(preprocessing)`` and ``lpips_factory(net)`` replace the real networks (tests).
    """

    def __init__(self, dataset, *, model=None, fake_dir: str | os.PathLike | None = None, settings: Settings,
                 extractor_factory: Callable[[str], object] | None = None,
                 lpips_factory: Callable[[str], torch.nn.Module] | None = None, evaluated: dict | None = None):
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
        self._extractor_factory = extractor_factory
        self._lpips_factory = lpips_factory
        self._extractors: dict[str, object] = {}
        self._lpips: dict[str, torch.nn.Module] = {}
        self.evaluated = evaluated or {}
        self._seed: int | None = None
        self._real_memo: dict[tuple, np.ndarray] = {}
        self._stats_memo: dict[tuple, tuple] = {}

    # -- shared pieces ------------------------------------------------------------------------------

    def extractor(self, preprocessing: str):
        if preprocessing not in self._extractors:
            if self._extractor_factory is not None:
                self._extractors[preprocessing] = self._extractor_factory(preprocessing)
            else:
                from .features import InceptionFeatures

                self._extractors[preprocessing] = InceptionFeatures(
                    device=self.settings.device, batch_size=self.settings.batch_size, preprocessing=preprocessing,
                    progress=self.settings.progress, precision=self.settings.precision)
        return self._extractors[preprocessing]

    def lpips(self, net: str) -> torch.nn.Module:
        if net not in self._lpips:
            if self._lpips_factory is not None:
                self._lpips[net] = self._lpips_factory(net)
            else:
                from .weights import load_lpips

                self._lpips[net] = load_lpips(net, self.settings.device)
        return self._lpips[net]

    @property
    def image_size(self) -> int:
        size = getattr(self.model, "image_size", None)
        if not isinstance(size, int) or size < 1:
            raise UnitEvalError(f"the model's image_size must be a positive int, got {size!r}")
        return size

    def _split(self, name: str) -> dict[str, list[Path]]:
        if not hasattr(self.dataset, "split"):
            raise UnitEvalError("this protocol needs a dataset of image classes")
        return self.dataset.split(name)

    def _options(self, spec: ProtocolSpec, size: int | None, **extra) -> dict:
        """What a row records besides its value: every number-moving setting, and the inputs by name, hash and
        count, never by the absolute paths of this machine."""
        dataset = {k: v for k, v in self.dataset.describe().items() if k != "root"}
        return {"protocol": spec.options(), "protocol_file": protocol_file_name(spec.file), "image_size": size,
                "evaluated": self.evaluated, "dataset": dataset, **extra}

    def _require_model(self, spec: ProtocolSpec) -> None:
        from .translator import require

        if self.model is None:
            raise UnitEvalError(f"protocol {spec.name!r} needs a model (--ckpt or --model); a fake folder cannot stand in")
        for method in spec.needs:
            require(self.model, method, spec.name)

    def _translate(self, jobs: list[Job], images: _Images, spec: ProtocolSpec, desc: str
                   ) -> Iterator[tuple[list[Job], torch.Tensor, torch.Tensor]]:
        """(jobs, sources float, outputs float) per batch of at most ``batch_size`` jobs, in job order."""
        from tqdm import tqdm

        device, bs = self.settings.device, self.settings.batch_size
        with tqdm(total=len(jobs), desc=desc, unit="img", disable=not self.settings.progress, leave=False) as bar:
            for start in range(0, len(jobs), bs):
                chunk = jobs[start: start + bs]
                src = uint8_to_float(images.uint8([j.source for j in chunk], [j.source_flip for j in chunk])).to(device)
                ref = uint8_to_float(images.uint8([j.reference for j in chunk], [j.reference_flip for j in chunk])).to(device)
                with torch.no_grad():
                    out = self.model.translate(src, ref)
                out = self._check_output(out, len(chunk), spec.name)
                self._save(spec, chunk, out)
                bar.update(len(chunk))
                yield chunk, src, out

    @staticmethod
    def _check_output(out, n: int, protocol: str) -> torch.Tensor:
        if not torch.is_tensor(out) or out.ndim != 4 or out.shape[0] != n or out.shape[1] != 3:
            shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise UnitEvalError(f"{protocol}: the model returned {shape} for {n} inputs; expected {n} x 3 x H x W")
        if not torch.isfinite(out).all():
            raise UnitEvalError(f"{protocol}: model output contains NaN or infinite values")
        return out.float()

    def _save(self, spec: ProtocolSpec, jobs: list[Job], out: torch.Tensor) -> None:
        if self.settings.save_images is None:
            return
        root = Path(self.settings.save_images) / spec.name / f"seed{self._seed}"
        images = float_to_uint8(out).cpu()
        for job, img in zip(jobs, images):
            save_image(img, root / f"{job.name}.png")

    def _real_features(self, paths: list[Path], extractor, size: int | None, resize_filter: str, desc: str,
                       flips: np.ndarray | None = None) -> np.ndarray:
        """Features of a real set: memoised in this runner (seeds, protocols) and cached on disk."""
        key = _memo_key(paths, extractor, size, resize_filter, flips)
        if key not in self._real_memo:
            if flips is not None:
                self._real_memo[key] = self._flipped_real(paths, flips, extractor, size, resize_filter, desc)
            elif self.settings.cache is not None:
                self._real_memo[key] = self.settings.cache.features(paths, extractor, size, resize_filter, desc=desc)
            else:
                self._real_memo[key] = extractor.files(paths, size, resize_filter, desc=desc)
        return self._real_memo[key]

    def _real_stats(self, paths: list[Path], extractor, size: int | None, resize_filter: str, desc: str,
                    flips: np.ndarray | None = None):
        """The real set's ``fid.GaussianReference``, memoised: seeds and checkpoints share its factorisation."""
        from .metrics import fid

        key = _memo_key(paths, extractor, size, resize_filter, flips)
        if key not in self._stats_memo:
            feats = self._real_features(paths, extractor, size, resize_filter, desc, flips)
            self._stats_memo[key] = fid.GaussianReference(feats, getattr(extractor, "device", "cpu"))
        return self._stats_memo[key]

    def _fake_features(self, jobs: list[Job], images: _Images, spec: ProtocolSpec, extractor, desc: str) -> np.ndarray:
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

    def _generated_features(self, jobs: list[Job], images: _Images, spec: ProtocolSpec, extractor, desc: str) -> np.ndarray:
        legacy = extractor.preprocessing == "tunit-legacy"
        batches = (out if legacy else float_to_uint8(out) for _, _, out in self._translate(jobs, images, spec, desc))
        return extractor.stream(batches, total=len(jobs), desc=f"{desc} features")

    def _fid_result(self, spec, seed, real: dict, fake: dict[str, np.ndarray], extractor, options):
        """Class-wise FID (the arithmetic mean over classes, as ``fid.class_wise_fid``) from memoised references."""
        if set(real) != set(fake):
            raise UnitEvalError(f"class sets differ: only in real {sorted(set(real) - set(fake))}, "
                                f"only in fake {sorted(set(fake) - set(real))}")
        for c, f in fake.items():
            if len(f) < 2:
                raise UnitEvalError(f"{spec.name}: class {c!r} has {len(f)} fake images; FID needs at least 2")
        per_class = {c: real[c].fid(fake[c]) for c in sorted(real)}
        mean = float(np.mean(list(per_class.values())))
        n_real = {c: real[c].n for c in real}
        n_fake = {c: len(f) for c, f in fake.items()}
        n_real[MEAN], n_fake[MEAN] = sum(n_real.values()), sum(n_fake.values())
        ordered = {c: per_class[c] for c in real}  # dataset order in rows
        return ProtocolResult(spec.name, seed, {"mfid": {MEAN: mean}, "fid": ordered}, n_real, n_fake,
                              extractor.describe(), options)

    def _fake_folder_classes(self, classes: list[str]) -> tuple[dict[str, list[Path]], int]:
        fakes = list_class_folders(self.fake_dir)
        if set(fakes) != set(classes):
            raise UnitEvalError(f"class sets differ: only in the dataset {sorted(set(classes) - set(fakes))}, "
                                f"only in {self.fake_dir} {sorted(set(fakes) - set(classes))}")
        return {c: fakes[c] for c in classes}, _image_size(next(iter(fakes.values()))[0])

    # -- protocols ----------------------------------------------------------------------------------

    def check(self, spec: ProtocolSpec) -> None:
        """Fail early (before any generation) when the model or fake folder cannot serve this protocol."""
        if self.fake_dir is not None and not spec.fake_folder:
            raise UnitEvalError(f"protocol {spec.name!r} needs a model (--ckpt or --model); a fake folder cannot stand in")
        if self.model is not None:
            self._require_model(spec)
        if isinstance(spec, MapsPixelAccuracy) and not hasattr(self.dataset, "pairs"):
            raise UnitEvalError(f"protocol {spec.name!r} needs a paired dataset (maps, or DIR/test/<source>,<target> "
                                "with files paired by name)")
        if isinstance(spec, MapsPixelAccuracy):
            self._oriented_pairs(spec)
            if self.model is not None:
                self._target_index(spec)
        if not isinstance(spec, MapsPixelAccuracy) and not hasattr(self.dataset, "split"):
            raise UnitEvalError(f"protocol {spec.name!r} needs a dataset of image classes")

    def run(self, spec: ProtocolSpec | str, seed: int | None = None) -> ProtocolResult:
        spec = load_protocol(spec) if isinstance(spec, (str, os.PathLike)) else spec
        seed = spec.seed if seed is None else int(seed)
        if seed < 0:
            raise UnitEvalError(f"seed must be non-negative, got {seed}")
        self.check(spec)
        self._seed = seed
        handlers = {
            ClassFID: self._class_fid, LegacyTunitMFID: self._legacy, DensityCoverage: self._dc,
            ClusterEval: self._cluster, ReferenceClassFID: self._reference_class_fid,
            LpipsDiversity: self._diversity, LpipsContent: self._lpips_content, MapsPixelAccuracy: self._pixacc,
        }
        result = handlers[type(spec)](spec, seed)
        result.dataset = self.dataset.name
        return result

    def _class_fid(self, spec: ClassFID, seed: int) -> ProtocolResult:
        return self._planned_class_fid(spec, seed, lambda: sample_class_fid(
            self._split(spec.source_split), spec.sources_per_class, spec.references_per_source, seed,
            purpose="class-fid", label=spec.name))

    def _planned_class_fid(self, spec, seed: int, make_plan) -> ProtocolResult:
        """Class-wise FID of generated images grouped by ``make_plan()`` ({class: jobs}), or of a fake folder."""
        extractor = self.extractor(spec.preprocessing)
        train = self._split(spec.real_split)
        classes = list(train)
        if self.fake_dir is not None:
            fakes, size = self._fake_folder_classes(classes)
            fake = {c: extractor.files(fakes[c], None, "bicubic", desc=f"fake {c}") for c in classes}
            extra = {}
        else:
            size = self.image_size
            plan = make_plan()
            for c in classes:
                if len(plan.get(c, [])) < 2:
                    raise UnitEvalError(f"{spec.name}: only {len(plan.get(c, []))} fakes fall in class {c!r}; FID needs at least 2")
            images = _Images(size, spec.resize_filter)
            fake = {c: self._fake_features(plan[c], images, spec, extractor, f"fake {c}") for c in classes}
            extra = {"fakes_per_class": {c: len(plan[c]) for c in classes}}
        real = {c: self._real_stats(train[c], extractor, size, spec.resize_filter, f"real {c}") for c in classes}
        return self._fid_result(spec, seed, real, fake, extractor, self._options(spec, size, **extra))

    def _legacy_branch(self, spec: LegacyTunitMFID) -> str:
        if spec.branch != "auto":
            return spec.branch
        name = str(self.dataset.describe().get("name", "")).lower().replace("_", "").replace("-", "")
        return "animal_faces" if name.startswith("animalfaces") else "other"

    def _legacy(self, spec: LegacyTunitMFID, seed: int) -> ProtocolResult:
        extractor = self.extractor(spec.preprocessing)
        train, val = self._split("train"), self._split("test")
        classes = list(train)
        branch = self._legacy_branch(spec)
        plan = sample_legacy(val, {c: len(p) for c, p in train.items()}, spec.fid_batch, seed, branch)
        if self.fake_dir is not None:
            fakes, size = self._fake_folder_classes(classes)
            fake = {c: extractor.files(fakes[c], None, "bicubic", desc=f"fake {c}") for c in classes}
        else:
            size = self.image_size
            images = _Images(size, spec.resize_filter)
            fake = {c: self._fake_features(plan.jobs[c], images, spec, extractor, f"fake {c}") for c in classes}
        real_paths = legacy_real_paths(train, plan)
        flips = legacy_real_flips(real_paths, classes, seed) if spec.real_flip else {c: None for c in classes}
        real = {c: self._real_stats(real_paths[c], extractor, size, spec.resize_filter, f"real {c}", flips[c])
                for c in classes}
        options = self._options(spec, size, branch=branch, target_count=plan.target_count, multiples=plan.multiples,
                                num_each=plan.num_each, fakes_from="folder (uint8 files)" if self.fake_dir else "model (float outputs)")
        return self._fid_result(spec, seed, real, fake, extractor, options)

    def _flipped_real(self, paths: list[Path], flips: np.ndarray, extractor, size: int | None, resize_filter: str,
                      desc: str) -> np.ndarray:
        """Real images through a horizontal flip per image (TUNIT's training transform), cached under a key that
        extends FeatureCache's (image list, extractor, weights, size, filter) with the flip pattern."""
        def compute() -> np.ndarray:
            images = _Images(size, resize_filter, capacity=0)
            bs = self.settings.batch_size
            batches = (images.uint8(paths[i: i + bs], [bool(f) for f in flips[i: i + bs]]) for i in range(0, len(paths), bs))
            return extractor.stream(batches, total=len(paths), desc=desc)

        cache = self.settings.cache
        if cache is None:
            return compute()
        return cache.features(paths, extractor, size, resize_filter, desc=desc,
                              extra={"hflip": "".join("1" if f else "0" for f in flips)}, compute=compute)

    def _dc(self, spec: DensityCoverage, seed: int) -> ProtocolResult:
        from .metrics.prdc import compute_prdc

        extractor = self.extractor(spec.preprocessing)
        train = self._split(spec.real_split)
        n_train = sum(len(p) for p in train.values())
        if self.fake_dir is not None:
            fake_paths = list_images(self.fake_dir)
            size = _image_size(fake_paths[0])
            fake = extractor.files(fake_paths, None, "bicubic", desc="fake")
            extra = {}
        else:
            size = self.image_size
            n = min(n_train, spec.max_fake)
            jobs = sample_pairs_uniform(self._split(spec.source_split), n, seed, purpose="dc")
            fake = self._fake_features(jobs, _Images(size, spec.resize_filter), spec, extractor, "fake")
            extra = {"n_fake_rule": f"min({n_train} {spec.real_split} images, max_fake {spec.max_fake})"}
        real = np.concatenate([self._real_features(p, extractor, size, spec.resize_filter, f"real {c}")
                               for c, p in train.items()])
        scores = compute_prdc(real, fake, k=spec.k, device=getattr(extractor, "device", "cpu"))
        values = {m: {MEAN: scores[m]} for m in ("density", "coverage", "precision", "recall")}
        return ProtocolResult(spec.name, seed, values, {MEAN: len(real)}, {MEAN: len(fake)}, extractor.describe(),
                              self._options(spec, size, **extra))

    def _cluster(self, spec: ClusterEval, seed: int) -> ProtocolResult:
        from .metrics import cluster as cm

        split = self._split(spec.split)
        classes = _check_classes(split, spec.name)
        size = self.image_size
        images = _Images(size, spec.resize_filter, capacity=0)
        pool = _pool(split)
        bs, device = self.settings.batch_size, self.settings.device
        ema = spec.guiding_network == "ema"
        cluster_fn, cluster_net = _with_ema(self.model.cluster, ema)
        style_fn, style_net = _with_ema(self.model.style, ema)
        preds, codes = [], []
        for start in range(0, len(pool), bs):
            x = uint8_to_float(images.uint8([p for _, p in pool[start: start + bs]])).to(device)
            with torch.no_grad():
                ids = cluster_fn(x)
                style = style_fn(x)
            ids = torch.as_tensor(ids).detach().cpu()
            style = torch.as_tensor(style).detach().cpu()
            if ids.ndim != 1 or ids.shape[0] != x.shape[0] or ids.is_floating_point():
                raise UnitEvalError(f"{spec.name}: model.cluster must return {x.shape[0]} integer ids, got "
                                    f"{tuple(ids.shape)} {ids.dtype}")
            if style.ndim != 2 or style.shape[0] != x.shape[0]:
                raise UnitEvalError(f"{spec.name}: model.style must return {x.shape[0]} x D codes, got {tuple(style.shape)}")
            preds.append(ids.numpy())
            codes.append(style.double().numpy())
        pred = np.concatenate(preds)
        label = np.array([classes.index(c) for c, _ in pool])
        code = np.concatenate(codes)
        n_domains = getattr(self.model, "num_domains", None)
        k_hat = int(n_domains) if isinstance(n_domains, int) else int(pred.max()) + 1
        values = {}
        if k_hat == len(classes):  # clovaai/tunit validation.py: cluster_eval only when output_k == len(att_to_use)
            values["cluster_acc"] = {MEAN: cm.hungarian_accuracy(pred, label)}
        values["cluster_acc_majority"] = {MEAN: cm.majority_accuracy(pred, label)}
        values["nmi"] = {MEAN: cm.nmi(pred, label)}
        groups = pred if spec.ioi_groups == "predicted" else label
        if len(np.unique(groups)) >= 2:
            values["ioi"] = {MEAN: cm.ioi(code, groups)}
            ioi_note = "reported"
        else:  # a collapsed clustering: the accuracies say so; IOI (a ratio between clusters) does not exist
            ioi_note = "not reported: every image fell in one cluster, so there is no inter-cluster variance"
        options = self._options(
            spec, size, n_clusters_found=int(len(np.unique(pred))), num_domains=n_domains, k_hat=k_hat,
            n_classes=len(classes), cluster_network=cluster_net, style_network=style_net,
            hungarian="reported (K-hat = K)" if k_hat == len(classes) else
            f"not reported: K-hat {k_hat} != K {len(classes)} (as the official code)", ioi=ioi_note)
        return ProtocolResult(spec.name, seed, values, {MEAN: len(pool)}, {}, None, options)

    def _reference_class_fid(self, spec: ReferenceClassFID, seed: int) -> ProtocolResult:
        return self._planned_class_fid(spec, seed, lambda: sample_reference_class(
            self._split(spec.input_split), self._split(spec.reference_split), spec.references_per_input,
            spec.exclude_self, seed))

    def _diversity(self, spec: LpipsDiversity, seed: int) -> ProtocolResult:
        from .metrics.lpips import lpips_diversity

        net = self.lpips(spec.net)
        split = self._split(spec.input_split)
        classes = list(split)
        size = self.image_size
        inputs = sample_diversity(split, spec.outputs_per_input, spec.targets, seed)
        g = spec.outputs_per_input
        jobs = [Job(inp.source, ref, inp.target_class, f"{inp.target_class}/{inp.source_class}_{inp.source.stem}/{j:02d}_{ref.stem}")
                for inp in inputs for j, ref in enumerate(inp.references)]
        images = _Images(size, spec.resize_filter)
        per_input: list[float] = []
        pending: list[torch.Tensor] = []
        for _, _, out in self._translate(jobs, images, spec, "diversity"):
            pending.append(out)
            stacked = torch.cat(pending)
            complete = stacked.shape[0] // g * g
            if complete:
                groups = stacked[:complete].reshape(complete // g, g, *stacked.shape[1:])
                per_input.extend(lpips_diversity(net, groups, self.settings.batch_size).tolist())
            pending = [stacked[complete:]] if complete < stacked.shape[0] else []
        tasks: dict[tuple[str, str], list[float]] = {}
        for inp, score in zip(inputs, per_input):
            tasks.setdefault((inp.source_class, inp.target_class), []).append(score)
        task_means = {k: float(np.mean(v)) for k, v in tasks.items()}
        values = {c: float(np.mean([v for (s, t), v in task_means.items() if t == c]))
                  for c in classes if any(t == c for _, t in task_means)}
        values[MEAN] = float(np.mean(list(task_means.values())))
        n_fake = {c: sum(g * len(v) for (s, t), v in tasks.items() if t == c) for c in values if c != MEAN}
        n_fake[MEAN] = len(jobs)
        return ProtocolResult(spec.name, seed, {"lpips_diversity": values}, {}, n_fake, f"lpips-{spec.net}-v0.1",
                              self._options(spec, size, n_inputs=len(inputs), n_tasks=len(task_means)))

    def _lpips_content(self, spec: LpipsContent, seed: int) -> ProtocolResult:
        from .metrics.lpips import lpips_pairs

        net = self.lpips(spec.net)
        split = self._split(spec.source_split)
        size = self.image_size
        plan = sample_class_fid(split, spec.sources_per_class, spec.references_per_source, seed, purpose="class-fid",
                                label=spec.name)
        images = _Images(size, spec.resize_filter)
        values = {}
        for c, jobs in plan.items():
            d = [lpips_pairs(net, src, out, self.settings.batch_size)
                 for _, src, out in self._translate(jobs, images, spec, f"content {c}")]
            values[c] = float(torch.cat(d).mean())
        values[MEAN] = float(np.mean([v for c, v in values.items()]))
        n_fake = {c: len(j) for c, j in plan.items()}
        n_fake[MEAN] = sum(n_fake.values())
        return ProtocolResult(spec.name, seed, {"lpips_content": values}, {}, n_fake, f"lpips-{spec.net}-v0.1",
                              self._options(spec, size, pairs="as tunit-mfid (sampling purpose 'class-fid')"))

    def _oriented_pairs(self, spec: MapsPixelAccuracy) -> list:
        """The dataset's ``spec.split`` pairs with the domain named ``spec.target_domain`` as their target side."""
        from .datasets import Pair

        source, target = self.dataset.domains
        if spec.target_domain not in (source, target):
            raise UnitEvalError(f"{spec.name}: translates into the domain named {spec.target_domain!r}, but the paired "
                                f"dataset {self.dataset.name!r} has domains {source!r} and {target!r}")
        pairs = self.dataset.pairs(spec.split)
        if not pairs:
            raise UnitEvalError(f"{spec.name}: the dataset has no {spec.split} pairs")
        if spec.target_domain == source:
            pairs = [Pair(p.stem, p.target, p.source) for p in pairs]
        return pairs

    def _target_index(self, spec: MapsPixelAccuracy) -> tuple[int, str]:
        """(index passed to ``translate_to_domain``, how it was found): the position of ``spec.target_domain`` in
        the model's ``domain_names``, or the explicit ``Settings.target_domain``."""
        if self.settings.target_domain is not None:
            index = int(self.settings.target_domain)
            if index < 0:
                raise UnitEvalError(f"--target-domain must be a non-negative index, got {index}")
            return index, f"--target-domain {index} (given explicitly)"
        names = getattr(self.model, "domain_names", None)
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

    def _pixacc(self, spec: MapsPixelAccuracy, seed: int) -> ProtocolResult:
        from .metrics.pixacc import correct_pixels

        pairs = self._oriented_pairs(spec)
        correct = total = 0
        extra = {}
        if self.fake_dir is not None:
            found = {p.relative_to(self.fake_dir).with_suffix("").as_posix(): p for p in list_images(self.fake_dir)}
            missing = [p.stem for p in pairs if p.stem not in found]
            if missing:
                raise UnitEvalError(f"{len(missing)} of {len(pairs)} test pairs have no prediction in {self.fake_dir} "
                                    f"(expected files named by pair, e.g. {missing[0]}.png)")
            size = None
            for pair in pairs:
                pred = load_image(found[pair.stem])
                gt = pair.target.load()
                if gt.shape != pred.shape:
                    from PIL import Image

                    gt = np.asarray(Image.fromarray(gt).resize((pred.shape[1], pred.shape[0]),
                                                               resample=_pil_filter(spec.target_resize_filter)))
                c, t = correct_pixels(pred, gt, spec.threshold)
                correct, total = correct + c, total + t
        else:
            size = self.image_size
            index, found_by = self._target_index(spec)
            extra = {"target_domain_index": index, "target_domain_from": found_by}
            bs, device = self.settings.batch_size, self.settings.device
            for start in range(0, len(pairs), bs):
                chunk = pairs[start: start + bs]
                src = torch.from_numpy(np.stack([p.source.load(size, spec.resize_filter) for p in chunk])).permute(0, 3, 1, 2)
                with torch.no_grad():
                    out = self.model.translate_to_domain(uint8_to_float(src).to(device), index)
                out = self._check_output(out, len(chunk), spec.name)
                jobs = [Job(p.source.path, None, "pred", p.stem) for p in chunk]
                self._save(spec, jobs, out)
                preds = float_to_uint8(out).permute(0, 2, 3, 1).cpu().numpy()
                for pair, pred in zip(chunk, preds):
                    gt = pair.target.load(pred.shape[0], spec.target_resize_filter)
                    c, t = correct_pixels(pred, gt, spec.threshold)
                    correct, total = correct + c, total + t
        return ProtocolResult(spec.name, seed, {"pixel_accuracy": {MEAN: correct / total}}, {MEAN: len(pairs)},
                              {MEAN: len(pairs)}, None, self._options(spec, size, n_pixels=total, **extra))


def _with_ema(method: Callable, ema: bool) -> tuple[Callable, str]:
    """``method`` bound to the guiding network a protocol asks for, and which network that is.

    A model whose method takes ``ema`` (the bundled TUNIT) is called with it; any other model has one network,
    which is what gets scored (and named so in the row's options)."""
    import inspect

    try:
        takes_ema = "ema" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        takes_ema = False
    if takes_ema:
        return (lambda x: method(x, ema=ema)), ("ema" if ema else "non-ema")
    return method, "the model's only network (its method takes no ema argument)"


def _pil_filter(name: str):
    from .images import resize_filter_of

    return resize_filter_of(name)


# ----------------------------------------------------------------------------------------------------
# Entry points used by the CLI


def protocol_file_name(file: str) -> str:
    """A protocol's file as rows record it: shipped ones by package path, a user's by file name only."""
    return file if file.startswith(f"{PACKAGE}/") else Path(file).name


def load_model(ckpt: str | None, model_spec: str | None, device: torch.device, official_tunit: dict | None = None):
    """(model, evaluated description, ckpt sha256 or None); ``official_tunit``: see ``load_checkpoint_translator``."""
    from .translator import load_checkpoint_translator, load_user_model

    if ckpt:
        model = load_checkpoint_translator(ckpt, device, official_tunit)
        evaluated = {"kind": "checkpoint", "file": Path(ckpt).name}
        if getattr(model, "official_config", None) is not None:
            evaluated = {"kind": "official-tunit-ckpt", "file": Path(ckpt).name, **model.official_config}
        return model, evaluated, getattr(model, "ckpt_sha256", None)
    model = load_user_model(model_spec, device)
    return model, {"kind": "model", "spec": model_spec}, getattr(model, "ckpt_sha256", None)


def resolve_data(spec: ProtocolSpec, data: str, data_root: str | None):
    from .datasets import resolve_dataset, resolve_paired

    if isinstance(spec, MapsPixelAccuracy):
        try:
            return resolve_paired(data, data_root)
        except UnitEvalError as exc:
            raise UnitEvalError(f"protocol {spec.name!r} needs a paired dataset: {exc}") from None
    return resolve_dataset(data, data_root)


def default_run_name(ckpt: str | None, model_spec: str | None, fake: str | None) -> str:
    if ckpt:
        p = Path(ckpt).resolve()
        return p.parent.name if p.name == "run.pt" else p.stem
    if model_spec:
        return model_spec
    return Path(fake).resolve().name


def evaluate(protocols: Iterable[str], *, ckpt: str | None = None, model_spec: str | None = None,
             fake: str | None = None, data: str, data_root: str | None = None, seeds: Iterable[int | None] = (None,),
             device: str = "auto", batch_size: int = 32, no_cache: bool = False, out: str | None = None,
             run_name: str | None = None, save_images: str | None = None, progress: bool = True,
             precision: str = "fp32", target_domain: int | None = None, official_tunit: dict | None = None,
             save: bool = True, extractor_factory=None, lpips_factory=None) -> tuple[list[ProtocolResult], list[dict]]:
    """Evaluate every protocol for every seed; append the rows to ``out`` (JSONL) when given, all at once after
    the last evaluation (a failure appends nothing and says which evaluations it had finished). ``out`` is
    checked before any work; ``save=False`` leaves the appending to the caller (the CLI prints first).
    ``official_tunit``: ``img_size``/``output_k``/``sty_dim`` of an official TUNIT ``.ckpt`` given as ``ckpt``."""
    from .device import check_precision, resolve_device
    from .features import FeatureCache
    from .results import append_rows, check_writable

    if out:
        check_writable(out)
    given = [x for x in (ckpt, model_spec, fake) if x]
    if len(given) != 1:
        raise UnitEvalError("give exactly one of --ckpt run.pt, --model module:factory, --fake DIR")
    specs = [load_protocol(p) for p in protocols]
    if not specs:
        raise UnitEvalError("give at least one --protocol (see 'unit-eval protocols')")
    seeds = list(seeds) or [None]
    dev = sharding.local_device(resolve_device(device))  # cuda:LOCAL_RANK under torchrun
    check_precision(precision, dev)
    model, evaluated, sha = (None, {"kind": "fake-folder", "folder": Path(fake).resolve().name}, None) if fake else \
        load_model(ckpt, model_spec, dev, official_tunit)
    settings = Settings(device=dev, batch_size=batch_size, cache=FeatureCache(enabled=not no_cache),
                        save_images=Path(save_images) if save_images else None, progress=progress, precision=precision,
                        target_domain=target_domain)
    run = run_name or default_run_name(ckpt, model_spec, fake)
    runners: dict[bool, ProtocolRunner] = {}
    for spec in specs:  # resolve data and check every protocol before generating anything
        paired = isinstance(spec, MapsPixelAccuracy)
        if paired not in runners:
            runners[paired] = ProtocolRunner(resolve_data(spec, data, data_root), model=model, fake_dir=fake,
                                             settings=settings, extractor_factory=extractor_factory,
                                             lpips_factory=lpips_factory, evaluated=evaluated)
            other = runners.get(not paired)
            if other is not None:  # share networks and memoised real sets
                runners[paired]._extractors, runners[paired]._lpips = other._extractors, other._lpips
        runners[paired].check(spec)
    results, rows = [], []
    jobs = [(spec, seed) for spec in specs for seed in seeds]
    for i, (spec, seed) in enumerate(jobs):
        try:
            result = runners[isinstance(spec, MapsPixelAccuracy)].run(spec, seed)
        except UnitEvalError as exc:
            where = f"{spec.name}, seed {spec.seed if seed is None else seed}"
            lost = (f"; nothing was appended to {out} ({len(results)} finished evaluation(s) not saved)"
                    if out and results else "")
            raise UnitEvalError(f"{exc} (evaluation {i + 1} of {len(jobs)}: {where}){lost}") from None
        results.append(result)
        rows.extend(result.rows(run, sha))
    if out and save and sharding.is_main():  # under torchrun every rank holds the results; rank 0 writes them
        append_rows(out, rows)
    return results, rows


def run_protocol_cli(*, protocol: str, ckpt: str | None = None, model_spec: str | None = None, data: str,
                     data_root: str | None = None, seed: int | None = None, device: str = "auto", batch_size: int = 32,
                     no_cache: bool = False, out: str | None = None, run_name: str | None = None,
                     precision: str = "fp32", official_tunit: dict | None = None) -> dict:
    """One protocol, one seed, for ``unit-eval mfid --ckpt/--model``: the result summary (``mfid``,
    ``per_class`` for mFID protocols) plus ``rows`` written."""
    results, rows = evaluate([protocol], ckpt=ckpt, model_spec=model_spec, data=data, data_root=data_root,
                             seeds=[seed], device=device, batch_size=batch_size, no_cache=no_cache, out=out,
                             run_name=run_name, precision=precision, progress=sharding.is_main(),
                             official_tunit=official_tunit)
    return protocol_summary(results, rows, run_name)


def protocol_summary(results: list[ProtocolResult], rows: list[dict], run_name: str | None) -> dict:
    """The first result's summary with the run name and the number of rows (``unit-eval mfid --ckpt``)."""
    summary = results[0].summary()
    summary["run"] = rows[0]["run"] if rows else run_name
    summary["rows"] = len(rows)
    return summary


__all__ = [
    "Job", "LegacyPlan", "DiversityInput", "ProtocolResult", "ProtocolRunner", "Settings", "evaluate", "run_protocol_cli",
    "sample_class_fid", "sample_legacy", "sample_pairs_uniform", "sample_reference_class", "sample_diversity",
    "legacy_real_paths", "legacy_real_flips", "rng_for",
]
