"""The evaluation entry points: load a model, resolve the data, run every protocol for every seed, append the rows.

``unit-eval evaluate`` and ``unit-eval mfid --ckpt/--model`` call :func:`evaluate`; it checks every protocol
before generating anything, shares the networks between runners, and writes rows only after the last evaluation.
:class:`Session` holds what several models evaluated in a row share (``unit-eval sweep``, ``train --eval-every``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from .. import sharding
from ..errors import UnitEvalError
from ..protocol_specs import ProtocolSpec, load_protocol
from ..results import ProtocolResult
from .intervals import NONE, BootstrapPlan
from .realsets import RealSets
from .runner import Networks, ProtocolRunner, Settings


def load_model(ckpt: str | None, model_spec: str | None, device: torch.device, official_tunit: dict | None = None):
    """(model, evaluated description, ckpt sha256 or None); ``official_tunit``: see ``load_checkpoint_translator``."""
    from ..translator import load_checkpoint_translator, load_user_model

    if ckpt:
        model = load_checkpoint_translator(ckpt, device, official_tunit)
        evaluated = {"kind": "checkpoint", "file": Path(ckpt).name}
        if getattr(model, "official_config", None) is not None:
            evaluated = {"kind": "official-tunit-ckpt", "file": Path(ckpt).name, **model.official_config}
        return model, evaluated, getattr(model, "ckpt_sha256", None)
    model = load_user_model(model_spec, device)
    return model, {"kind": "model", "spec": model_spec}, getattr(model, "ckpt_sha256", None)


def resolve_data(spec: ProtocolSpec, data: str, data_root: str | None):
    from ..datasets import resolve_dataset, resolve_paired

    if spec.paired:
        try:
            return resolve_paired(data, data_root)
        except UnitEvalError as exc:
            raise UnitEvalError(f"protocol {spec.name!r} needs a paired dataset: {exc}") from None
    return resolve_dataset(data, data_root)


def default_run_name(ckpt: str | None, model_spec: str | None, fake: str | None) -> str:
    """The checkpoint's run folder (``RUN/run.pt`` and ``RUN/snapshots/iter_N.pt`` are both run ``RUN``), else the
    file's stem, the model spec or the fake folder's name."""
    if ckpt:
        p = Path(ckpt).resolve()
        if p.name == "run.pt":
            return p.parent.name
        if p.parent.name == "snapshots":
            return p.parent.parent.name
        return p.stem
    if model_spec:
        return model_spec
    return Path(fake).resolve().name


class Session:
    """Protocols resolved against one dataset, with the settings, networks and real sets that every model evaluated
    in it shares: ``evaluate`` uses one for one model, a sweep one for all its checkpoints (the real sets are
    extracted once), training one for every ``--eval-every`` evaluation."""

    def __init__(self, protocols: Iterable[str | ProtocolSpec], *, data: str, data_root: str | None,
                 settings: Settings, extractor_factory=None, lpips_factory=None):
        self.specs = [p if isinstance(p, ProtocolSpec) else load_protocol(p) for p in protocols]
        if not self.specs:
            raise UnitEvalError("give at least one --protocol (see 'unit-eval protocols')")
        self.settings = settings
        self.networks = Networks(settings, extractor_factory, lpips_factory)
        self.real = RealSets(settings.cache, settings.batch_size)
        self.datasets = {}
        for spec in self.specs:
            if spec.paired not in self.datasets:
                self.datasets[spec.paired] = resolve_data(spec, data, data_root)

    def jobs(self, seeds: Iterable[int | None]) -> list[tuple[ProtocolSpec, int]]:
        """(protocol, seed) pairs in evaluation order; a seed of None is the protocol's own."""
        seeds = list(seeds) or [None]
        return [(spec, spec.seed if seed is None else int(seed)) for spec in self.specs for seed in seeds]

    def dataset_name(self, spec: ProtocolSpec) -> str:
        return self.datasets[spec.paired].name

    def runners(self, model=None, fake: str | None = None, evaluated: dict | None = None) -> dict[bool, ProtocolRunner]:
        """One runner per kind of dataset (classes, pairs), every protocol checked before anything is generated."""
        runners = {paired: ProtocolRunner(dataset, model=model, fake_dir=fake, settings=self.settings,
                                          evaluated=evaluated, networks=self.networks, real=self.real)
                   for paired, dataset in self.datasets.items()}
        for spec in self.specs:
            runners[spec.paired].check(spec)
        return runners

    def run(self, jobs: list[tuple[ProtocolSpec, int]], *, model=None, fake: str | None = None, evaluated: dict,
            run_name: str, out: str | None = None) -> tuple[list[ProtocolResult], list[dict]]:
        """Evaluate ``jobs`` for one model (or fake folder); rows carry the model's ``ckpt_sha256`` and
        ``iteration`` when it has them. A failure names the evaluation and what was finished (not saved to ``out``)."""
        runners = self.runners(model, fake, evaluated)
        sha, iteration = getattr(model, "ckpt_sha256", None), getattr(model, "iteration", None)
        results, rows = [], []
        for i, (spec, seed) in enumerate(jobs):
            try:
                result = runners[spec.paired].run(spec, seed)
            except UnitEvalError as exc:
                lost = (f"; nothing was appended to {out} ({len(results)} finished evaluation(s) not saved)"
                        if out and results else "")
                raise UnitEvalError(f"{exc} (evaluation {i + 1} of {len(jobs)}: {spec.name}, seed {seed}){lost}") from None
            results.append(result)
            rows.extend(result.rows(run_name, sha, iteration))
        return results, rows


def make_settings(*, device: str | torch.device = "auto", batch_size: int = 32, no_cache: bool = False,
                  save_images: str | None = None, progress: bool = True, precision: str = "fp32",
                  target_domain: int | None = None, bootstrap: BootstrapPlan = NONE,
                  classifier: str | None = None) -> Settings:
    """Settings on this process's device (``cuda:LOCAL_RANK`` under torchrun), the numerics checked for it."""
    from ..device import check_precision, resolve_device
    from ..features import FeatureCache

    dev = sharding.local_device(resolve_device(device))
    check_precision(precision, dev)
    return Settings(device=dev, batch_size=batch_size, cache=None if no_cache else FeatureCache(),
                    save_images=Path(save_images) if save_images else None, progress=progress, precision=precision,
                    target_domain=target_domain, bootstrap=bootstrap, classifier=classifier)


def evaluate(protocols: Iterable[str], *, ckpt: str | None = None, model_spec: str | None = None,
             fake: str | None = None, data: str, data_root: str | None = None, seeds: Iterable[int | None] = (None,),
             device: str = "auto", batch_size: int = 32, no_cache: bool = False, out: str | None = None,
             run_name: str | None = None, save_images: str | None = None, progress: bool = True,
             precision: str = "fp32", target_domain: int | None = None, official_tunit: dict | None = None,
             save: bool = True, extractor_factory=None, lpips_factory=None,
             bootstrap: BootstrapPlan = NONE, classifier: str | None = None) -> tuple[list[ProtocolResult], list[dict]]:
    """Evaluate every protocol for every seed; append the rows to ``out`` (JSONL) when given, all at once after
    the last evaluation (a failure appends nothing and says which evaluations it had finished). ``out`` is
    checked before any work; ``save=False`` leaves the appending to the caller (the CLI prints first).
    ``official_tunit``: ``img_size``/``output_k``/``sty_dim`` of an official TUNIT ``.ckpt`` given as ``ckpt``;
    ``classifier``: translation accuracy's oracle (a checkpoint file or ``module:factory``)."""
    from ..results import append_rows, check_writable

    if out:
        check_writable(out)
    given = [x for x in (ckpt, model_spec, fake) if x]
    if len(given) != 1:
        raise UnitEvalError("give exactly one of --ckpt run.pt, --model module:factory, --fake DIR")
    protocols = list(protocols)
    if not protocols:
        raise UnitEvalError("give at least one --protocol (see 'unit-eval protocols')")
    settings = make_settings(device=device, batch_size=batch_size, no_cache=no_cache, save_images=save_images,
                             progress=progress, precision=precision, target_domain=target_domain,
                             bootstrap=bootstrap, classifier=classifier)
    specs = [load_protocol(p) for p in protocols]  # a bad protocol name is said before a model is loaded
    model, evaluated = (None, {"kind": "fake-folder", "folder": Path(fake).resolve().name}) if fake else \
        load_model(ckpt, model_spec, settings.device, official_tunit)[:2]
    session = Session(specs, data=data, data_root=data_root, settings=settings, extractor_factory=extractor_factory,
                      lpips_factory=lpips_factory)
    run = run_name or default_run_name(ckpt, model_spec, fake)
    results, rows = session.run(session.jobs(seeds), model=model, fake=fake, evaluated=evaluated, run_name=run, out=out)
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
