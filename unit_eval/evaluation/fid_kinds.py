"""Class-wise FID protocol kinds: ``class-fid`` (TUNIT as the paper states it), ``tunit-legacy-mfid`` (the authors'
``calcFIDBatch``), ``reference-class-fid`` (CLUIT). Each is ``(runner, spec, seed) -> ProtocolResult``."""
from __future__ import annotations

from ..errors import UnitEvalError
from ..protocol_specs import ClassFID, LegacyTunitMFID, ReferenceClassFID
from ..results import ProtocolResult
from .batches import ImageCache
from .sampling import legacy_real_flips, legacy_real_paths, sample_class_fid, sample_legacy, sample_reference_class


def class_fid(runner, spec: ClassFID, seed: int) -> ProtocolResult:
    return planned_class_fid(runner, spec, seed, lambda: sample_class_fid(
        runner.split(spec.source_split), spec.sources_per_class, spec.references_per_source, seed,
        purpose="class-fid", label=spec.name))


def reference_class_fid(runner, spec: ReferenceClassFID, seed: int) -> ProtocolResult:
    return planned_class_fid(runner, spec, seed, lambda: sample_reference_class(
        runner.split(spec.input_split), runner.split(spec.reference_split), spec.references_per_input,
        spec.exclude_self, seed))


def planned_class_fid(runner, spec, seed: int, make_plan) -> ProtocolResult:
    """Class-wise FID of generated images grouped by ``make_plan()`` ({class: jobs}), or of a fake folder."""
    extractor = runner.extractor(spec.preprocessing)
    train = runner.split(spec.real_split)
    classes = list(train)
    if runner.fake_dir is not None:
        fakes, size = runner.fake_folder_classes(classes)
        fake = {c: extractor.files(fakes[c], None, "bicubic", desc=f"fake {c}") for c in classes}
        extra = {}
    else:
        size = runner.image_size
        plan = make_plan()
        for c in classes:
            if len(plan.get(c, [])) < 2:
                raise UnitEvalError(f"{spec.name}: only {len(plan.get(c, []))} fakes fall in class {c!r}; FID needs at least 2")
        images = ImageCache(size, spec.resize_filter)
        fake = {c: runner.fake_features(plan[c], images, spec, extractor, f"fake {c}") for c in classes}
        extra = {"fakes_per_class": {c: len(plan[c]) for c in classes}}
    real_features = lambda: {c: runner.real.features(train[c], extractor, size, spec.resize_filter,  # noqa: E731
                                                     f"real {c}") for c in classes}
    if runner.needs_real_features(spec):
        real_features()  # extracted once: the Gaussians below are then built from them
    real = {c: runner.real.gaussian(train[c], extractor, size, spec.resize_filter, f"real {c}") for c in classes}
    return runner.fid_result(spec, seed, real, fake, extractor, runner.options(spec, size, **extra), real_features)


def _legacy_branch(runner, spec: LegacyTunitMFID) -> str:
    if spec.branch != "auto":
        return spec.branch
    name = str(runner.dataset.describe().get("name", "")).lower().replace("_", "").replace("-", "")
    return "animal_faces" if name.startswith("animalfaces") else "other"


def legacy_mfid(runner, spec: LegacyTunitMFID, seed: int) -> ProtocolResult:
    extractor = runner.extractor(spec.preprocessing)
    train, val = runner.split("train"), runner.split("test")
    classes = list(train)
    branch = _legacy_branch(runner, spec)
    plan = sample_legacy(val, {c: len(p) for c, p in train.items()}, spec.fid_batch, seed, branch)
    if runner.fake_dir is not None:
        fakes, size = runner.fake_folder_classes(classes)
        fake = {c: extractor.files(fakes[c], None, "bicubic", desc=f"fake {c}") for c in classes}
    else:
        size = runner.image_size
        images = ImageCache(size, spec.resize_filter)
        fake = {c: runner.fake_features(plan.jobs[c], images, spec, extractor, f"fake {c}") for c in classes}
    real_paths = legacy_real_paths(train, plan)
    flips = legacy_real_flips(real_paths, classes, seed) if spec.real_flip else {c: None for c in classes}
    real = {c: runner.real.gaussian(real_paths[c], extractor, size, spec.resize_filter, f"real {c}", flips[c])
            for c in classes}
    options = runner.options(spec, size, branch=branch, target_count=plan.target_count, multiples=plan.multiples,
                             num_each=plan.num_each,
                             fakes_from="folder (uint8 files)" if runner.fake_dir else "model (float outputs)")
    real_features = lambda: {c: runner.real.features(real_paths[c], extractor, size, spec.resize_filter,  # noqa: E731
                                                     f"real {c}", flips[c]) for c in classes}
    return runner.fid_result(spec, seed, real, fake, extractor, options, real_features)
