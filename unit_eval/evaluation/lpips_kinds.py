"""LPIPS protocol kinds: ``lpips-diversity`` (StarGAN v2 / GP-UNIT: mean pairwise LPIPS among the outputs of one
input, reference- or latent-guided: :mod:`.guided`) and ``lpips-content`` (TUNIT appendix: LPIPS between source and
output)."""
from __future__ import annotations

import numpy as np
import torch

from ..protocol_specs import LpipsContent, LpipsDiversity
from ..results import MEAN, ProtocolResult
from ..stagetimes import stage
from .batches import ImageCache
from .guided import LATENT_CODES, guided_inputs, guided_outputs, latent_codes, output_jobs
from .sampling import sample_class_fid


def diversity(runner, spec: LpipsDiversity, seed: int) -> ProtocolResult:
    from ..metrics.lpips import lpips_diversity

    net = runner.lpips(spec.net)
    split = runner.split(spec.input_split)
    classes = list(split)
    size = runner.image_size
    inputs = guided_inputs(split, spec.outputs_per_input, spec.targets, spec.guidance, seed)
    g = spec.outputs_per_input
    jobs = output_jobs(inputs, g, spec.guidance)
    codes = latent_codes(runner, spec, inputs, split, g, seed) if spec.guidance == "latent" else None
    images = ImageCache(size, spec.resize_filter)
    per_input: list[float] = []
    pending: list[torch.Tensor] = []
    for _, out in guided_outputs(runner, spec, jobs, images, codes, g, "diversity"):
        pending.append(out)
        stacked = torch.cat(pending)
        complete = stacked.shape[0] // g * g
        if complete:
            groups = stacked[:complete].reshape(complete // g, g, *stacked.shape[1:])
            with stage("extract"):
                per_input.extend(lpips_diversity(net, groups, runner.settings.batch_size).tolist())
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
                          runner.options(spec, size, n_inputs=len(inputs), n_tasks=len(task_means),
                                         **({"style_codes": LATENT_CODES} if codes is not None else {})))


def content(runner, spec: LpipsContent, seed: int) -> ProtocolResult:
    from ..metrics.lpips import lpips_pairs

    net = runner.lpips(spec.net)
    split = runner.split(spec.source_split)
    size = runner.image_size
    plan = sample_class_fid(split, spec.sources_per_class, spec.references_per_source, seed, purpose="class-fid",
                            label=spec.name)
    images = ImageCache(size, spec.resize_filter)
    values = {}
    for c, jobs in plan.items():
        d = [lpips_pairs(net, src, out, runner.settings.batch_size)
             for _, src, out in runner.translate(jobs, images, spec, f"content {c}")]
        values[c] = float(torch.cat(d).mean())
    values[MEAN] = float(np.mean([v for c, v in values.items()]))
    n_fake = {c: len(j) for c, j in plan.items()}
    n_fake[MEAN] = sum(n_fake.values())
    return ProtocolResult(spec.name, seed, {"lpips_content": values}, {}, n_fake, f"lpips-{spec.net}-v0.1",
                          runner.options(spec, size, pairs="as tunit-mfid (sampling purpose 'class-fid')"))
