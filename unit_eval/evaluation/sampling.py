"""Seeded sampling plans: which source goes with which reference, for every protocol kind (pure functions: no model,
no I/O beyond the listings the caller passes).

Every random choice is drawn from ``numpy.random.default_rng([seed, key...])`` with a key per purpose and class,
before any model call, so the generated set never depends on batch size, device or which other protocols ran.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UnitEvalError


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


def check_classes(split: dict[str, list[Path]], what: str) -> list[str]:
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
    classes = check_classes(split, label)
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
    classes = check_classes(val, "tunit-mfid-legacy")
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


def pooled(split: dict[str, list[Path]]) -> list[tuple[str, Path]]:
    return [(c, p) for c, paths in split.items() for p in paths]


def sample_pairs_uniform(split: dict[str, list[Path]], n: int, seed: int, purpose: str = "dc") -> list[Job]:
    """``n`` (source, reference) pairs, each drawn independently and uniformly from the pooled split."""
    check_classes(split, purpose)
    pool = pooled(split)
    rng = rng_for(seed, purpose, "pairs")
    src = rng.integers(0, len(pool), size=n)
    ref = rng.integers(0, len(pool), size=n)
    return [Job(pool[int(a)][1], pool[int(b)][1], "all", f"{i:06d}_{pool[int(a)][1].stem}_{pool[int(b)][1].stem}")
            for i, (a, b) in enumerate(zip(src, ref))]


def sample_reference_class(inputs: dict[str, list[Path]], references: dict[str, list[Path]], per_input: int,
                           exclude_self: bool, seed: int, same_class: bool = True, label: str = "cluit-mfid"
                           ) -> dict[str, list[Job]]:
    """CLUIT: each input with ``per_input`` distinct random references from the pooled reference split;
    fakes grouped by the reference's class (every class of ``references`` gets a group, maybe empty).
    ``same_class=False``: references of the input's own class are not candidates (translation accuracy's
    option); with the default the draws are exactly ``cluit-mfid``'s. ``label`` names errors."""
    check_classes(inputs, f"{label} inputs")
    check_classes(references, f"{label} references")
    ref_pool = pooled(references)
    plan: dict[str, list[Job]] = {c: [] for c in references}
    for ii, (src_cls, src) in enumerate(pooled(inputs)):
        candidates = [i for i, (c, p) in enumerate(ref_pool)
                      if not (exclude_self and p == src) and (same_class or c != src_cls)]
        _need(len(candidates), per_input, f"{label}: references for {src.name}")
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
    classes = check_classes(split, "lpips-diversity")
    for c in classes:
        _need(len(split[c]), per_input, f"lpips-diversity: references of class {c!r}")
    out = []
    for si, (src_cls, src) in enumerate(pooled(split)):
        others = [c for c in classes if c != src_cls] or [src_cls]
        if targets == "one-random":
            others = [others[int(rng_for(seed, "diversity", "target", si).integers(len(others)))]]
        for t in others:
            ti = classes.index(t)
            refs = rng_for(seed, "diversity", "references", si, ti).choice(len(split[t]), size=per_input, replace=False)
            out.append(DiversityInput(src, src_cls, t, tuple(split[t][int(r)] for r in refs)))
    return out
