"""The evaluation entry points: load a model, resolve the data, run every protocol for every seed, append the rows.

``unit-eval evaluate`` and ``unit-eval mfid --ckpt/--model`` call :func:`evaluate`; it checks every protocol
before generating anything, shares the networks between runners, and writes rows only after the last evaluation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch

from .. import sharding
from ..errors import UnitEvalError
from ..protocol_specs import ProtocolSpec, load_protocol
from ..results import ProtocolResult
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
    from ..device import check_precision, resolve_device
    from ..features import FeatureCache
    from ..results import append_rows, check_writable

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
    settings = Settings(device=dev, batch_size=batch_size, cache=None if no_cache else FeatureCache(),
                        save_images=Path(save_images) if save_images else None, progress=progress, precision=precision,
                        target_domain=target_domain)
    run = run_name or default_run_name(ckpt, model_spec, fake)
    networks = Networks(settings, extractor_factory, lpips_factory)  # shared by the class and the paired runner
    runners: dict[bool, ProtocolRunner] = {}
    for spec in specs:  # resolve data and check every protocol before generating anything
        if spec.paired not in runners:
            runners[spec.paired] = ProtocolRunner(resolve_data(spec, data, data_root), model=model, fake_dir=fake,
                                                  settings=settings, evaluated=evaluated, networks=networks)
        runners[spec.paired].check(spec)
    results, rows = [], []
    jobs = [(spec, seed) for spec in specs for seed in seeds]
    for i, (spec, seed) in enumerate(jobs):
        try:
            result = runners[spec.paired].run(spec, seed)
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
