"""Several outputs per input into one target class, reference-guided or latent-guided (StarGAN v2 ``metrics/eval.py``
``calculate_metrics`` modes ``reference`` and ``latent``): the generation ``lpips-diversity`` and ``stargan-v2-fid``
share, so that with the same seed both score the same outputs.

- ``reference``: input i with the references its :class:`~.sampling.DiversityInput` drew (``model.translate``).
- ``latent``: input i with ``n`` codes of ``model.sample_style(n, domain=d, generator=g)``, through
  ``model.translate_with_style`` (StarGAN v2 eval.py:71-73: ``z_trg = torch.randn(N, latent_dim)`` per output,
  mapped with the target domain ``y_trg``). ``d`` is the target class's position in the model's ``domain_names``
  (asked by name, never guessed); ``g`` is a CPU ``torch.Generator`` seeded from (seed, the input's position in the
  pooled split, the target's position in the dataset), so a code never depends on batch size, on which other
  inputs are evaluated, or on the protocol asking.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from ..errors import UnitEvalError
from .batches import ImageCache
from .sampling import DiversityInput, Job, pooled, rng_for, sample_diversity

# What result rows record about latent-guided codes.
LATENT_CODES = ("model.sample_style(n, domain=<the target's index in domain_names>, generator=<CPU torch.Generator "
                "seeded from (seed, 'latent', input position, target position)>)")


def check(runner, spec) -> None:
    """Before any generation: a latent-guided protocol's model names every target class (the runner has checked
    ``sample_style`` and ``translate_with_style``: ``spec.model_methods()``)."""
    if runner.model is not None and spec.guidance == "latent":
        domain_indices(runner, spec, list(runner.split(spec.input_split)))


def domain_indices(runner, spec, classes: list[str]) -> dict[str, int]:
    """Each class's index among the model's ``domain_names``."""
    names = getattr(runner.model, "domain_names", None)
    if names is None:
        raise UnitEvalError(f"{spec.name}: latent-guided translation asks the model for style codes of each target "
                            "class by name, but the model does not name its domains (no domain_names)")
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise UnitEvalError(f"{spec.name}: the model's domain_names must be a sequence of strings, got {names!r}")
    names = list(names)
    missing = [c for c in classes if c not in names]
    if missing:
        raise UnitEvalError(f"{spec.name}: the dataset's classes {missing} are not among the model's domain_names {names}")
    return {c: names.index(c) for c in classes}


def guided_inputs(split: dict[str, list[Path]], per_input: int, targets: str, guidance: str, seed: int
                  ) -> list[DiversityInput]:
    """The inputs and their targets (:func:`~.sampling.sample_diversity`); latent-guided inputs draw no references,
    so a class with fewer images than ``per_input`` can still be a target."""
    return sample_diversity(split, per_input if guidance == "reference" else 0, targets, seed)


def output_jobs(inputs: list[DiversityInput], per_input: int, guidance: str) -> list[Job]:
    """``per_input`` jobs per input, in input order; reference-guided jobs carry their reference."""
    jobs = []
    for inp in inputs:
        for j in range(per_input):
            ref = inp.references[j] if guidance == "reference" else None
            tail = f"{j:02d}_{ref.stem}" if ref is not None else f"{j:02d}_z"
            jobs.append(Job(inp.source, ref, inp.target_class, f"{inp.target_class}/{inp.source_class}_{inp.source.stem}/{tail}"))
    return jobs


def latent_codes(runner, spec, inputs: list[DiversityInput], split: dict[str, list[Path]], per_input: int,
                 seed: int) -> list[torch.Tensor]:
    """One ``per_input`` x D block of style codes per input (see the module docstring)."""
    classes = list(split)
    index = domain_indices(runner, spec, classes)
    position = {p: i for i, (_, p) in enumerate(pooled(split))}
    codes = []
    for inp in inputs:
        key = int(rng_for(seed, "latent", position[inp.source], classes.index(inp.target_class)).integers(2 ** 62))
        with torch.no_grad():
            block = runner.model.sample_style(per_input, domain=index[inp.target_class],
                                              generator=torch.Generator().manual_seed(key))
        if not torch.is_tensor(block) or block.ndim < 2 or block.shape[0] != per_input:
            shape = tuple(block.shape) if torch.is_tensor(block) else type(block).__name__
            raise UnitEvalError(f"{spec.name}: sample_style({per_input}) returned {shape}; expected {per_input} x D codes")
        if block.is_floating_point() and not torch.isfinite(block).all():
            raise UnitEvalError(f"{spec.name}: sample_style returned NaN or infinite codes")
        codes.append(block)
    return codes


def guided_outputs(runner, spec, jobs: list[Job], images: ImageCache, codes: list[torch.Tensor] | None,
                   per_input: int, desc: str) -> Iterator[tuple[list[Job], torch.Tensor]]:
    """(jobs, float outputs) per batch of at most ``batch_size`` jobs, in job order. ``codes`` (latent-guided): one
    block per input, job ``k`` taking row ``k % per_input`` of block ``k // per_input``; None: reference-guided."""
    if codes is None:
        for chunk, _, out in runner.translate(jobs, images, spec, desc):
            yield chunk, out
        return
    bs = runner.settings.batch_size

    def batches():
        for start in range(0, len(jobs), bs):
            chunk = jobs[start: start + bs]
            styles = torch.stack([codes[k // per_input][k % per_input] for k in range(start, start + len(chunk))])
            yield chunk, (images.uint8([j.source for j in chunk]), styles)

    for chunk, _, out in runner.model_outputs(runner.model.translate_with_style, batches(), len(jobs), spec, desc):
        yield chunk, out
