"""``unit-eval sweep``: every checkpoint of one or more runs through the same protocols, once, resumably.

What a sweep evaluates: for a RUN_DIR, its ``snapshots/iter_*.pt`` in iteration order and then its ``run.pt``; a
file is taken as it is. Files with the same bytes (the last snapshot is a copy of ``run.pt``) are evaluated once.

What it skips: a (checkpoint sha256, protocol, protocol settings, seed, numerics, dataset) whose rows are already
in ``--out``. Each checkpoint's rows are appended in one atomic write (:func:`unit_eval.results.append_rows`), so a
sweep killed at any point and run again evaluates exactly the rest and never duplicates a row.

What it shares: one :class:`~unit_eval.evaluation.api.Session`: the networks and the real sets' features (memoised,
and cached on disk) are built once for all checkpoints.

Under torchrun the checkpoints are dealt to the ranks in rounds (checkpoint i to rank i mod N); each rank evaluates
its checkpoint alone (:func:`unit_eval.distributed.solo`, exactly as one process would, so the rows equal a
one-process sweep's), and after every round rank 0 gathers the rows and appends them, in checkpoint order.
"""
from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .. import distributed as D
from ..errors import UnitEvalError
from ..results import append_rows, check_writable, read_rows
from .api import Session, default_run_name, make_settings

SNAPSHOT = re.compile(r"iter_(\d+)\.pt$")


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    sha256: str
    run: str  # run name for its rows


def find_checkpoints(inputs: Iterable[str]) -> list[Path]:
    """Snapshots (by iteration) then ``run.pt`` of each RUN_DIR given; files as given; each file once."""
    found: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            snapshots = sorted((p for p in (path / "snapshots").glob("iter_*.pt") if SNAPSHOT.search(p.name)),
                               key=lambda p: int(SNAPSHOT.search(p.name).group(1)))
            final = [path / "run.pt"] if (path / "run.pt").is_file() else []
            if not snapshots and not final:
                raise UnitEvalError(f"{path} holds no checkpoint (expected run.pt or snapshots/iter_*.pt)")
            found.extend(snapshots + final)
        elif path.is_file():
            found.append(path)
        else:
            raise UnitEvalError(f"checkpoint or run folder not found: {path}")
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


def _numerics(row: dict) -> str:
    options = row.get("options") if isinstance(row.get("options"), dict) else {}
    if options.get("numerics"):
        return str(options["numerics"])
    extractor = str(row.get("extractor") or "")
    return next((p for p in ("bf16", "tf32") if extractor.endswith(f"/{p}")), "fp32")


def _settings_key(options) -> str:
    return json.dumps(options, sort_keys=True, default=str)


def _oracle(described) -> str | None:
    """The classifier a translation-accuracy row was measured with (its sha256, else its factory), else None: rows
    of two classifiers are different evaluations."""
    if not isinstance(described, dict):
        return None
    return described.get("sha256") or described.get("spec")


def done_keys(rows: Iterable[dict]) -> set[tuple]:
    """What an existing results file already holds, as sweep job keys."""
    keys = set()
    for row in rows:
        options = row.get("options") if isinstance(row.get("options"), dict) else {}
        if row.get("ckpt_sha256"):
            keys.add((row["ckpt_sha256"], row["protocol"], _settings_key(options.get("protocol")), row.get("seed"),
                      _numerics(row), row.get("dataset"), _oracle(options.get("classifier"))))
    return keys


def job_key(session: Session, sha256: str, spec, seed: int) -> tuple:
    settings = json.loads(json.dumps(spec.options(), default=str))  # as a row stores it
    oracle = None
    if spec.kind == "translation-accuracy":
        from ..classifier import describe

        oracle = _oracle(describe(session.networks.classifier(spec.name), session.settings.classifier))
    return (sha256, spec.name, _settings_key(settings), seed, session.settings.precision, session.dataset_name(spec),
            oracle)


def sweep(inputs: Iterable[str], protocols: Iterable[str], *, data: str, out: str, data_root: str | None = None,
          seeds: Iterable[int | None] = (None,), device: str = "auto", batch_size: int = 32, no_cache: bool = False,
          run_name: str | None = None, precision: str = "fp32", progress: bool = True, classifier: str | None = None,
          extractor_factory=None, lpips_factory=None) -> dict:
    """Evaluate every checkpoint found in ``inputs`` that ``out`` lacks; returns a summary (evaluated, skipped,
    rows appended, seconds per checkpoint)."""
    from ..cache import sha256_file
    from ..translator import load_checkpoint_translator

    check_writable(out)
    main = D.is_main()
    paths = find_checkpoints(inputs)
    settings = make_settings(device=device, batch_size=batch_size, no_cache=no_cache, progress=progress and main,
                             precision=precision, classifier=classifier)
    D.start(settings.device)  # the process group (under torchrun) is up before any rank works alone
    session = Session(protocols, data=data, data_root=data_root, settings=settings,
                      extractor_factory=extractor_factory, lpips_factory=lpips_factory)
    seeds = list(seeds) or [None]

    def plan():
        done = done_keys(read_rows(out)) if Path(out).is_file() and Path(out).stat().st_size else set()
        seen: dict[str, Path] = {}
        todo, skipped, same = [], [], []
        for path in paths:
            sha = sha256_file(path)
            if sha in seen:
                same.append((str(path), str(seen[sha])))
                continue
            seen[sha] = path
            ckpt = Checkpoint(path, sha, run_name or default_run_name(str(path), None, None))
            jobs = [i for i, (spec, seed) in enumerate(session.jobs(seeds))
                    if job_key(session, sha, spec, seed) not in done]
            (todo if jobs else skipped).append((ckpt, jobs))
        return todo, [str(c.path) for c, _ in skipped], same

    todo, skipped, same = D.on_main(plan)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if main and progress else (lambda text: None)
    for path, first in same:
        say(f"sweep: {path} has the same bytes as {first}; evaluated once")
    if skipped:
        say(f"sweep: {len(skipped)} checkpoint(s) already in {out}, skipped")
    world, rank = D.info().world_size, D.info().rank
    all_jobs = session.jobs(seeds)
    summary = {"out": str(out), "checkpoints": len(paths), "skipped": skipped, "evaluated": [], "rows": 0,
               "seconds": []}
    started = time.perf_counter()
    for first in range(0, len(todo), world):
        mine = todo[first + rank] if first + rank < len(todo) else None
        rows, seconds, error = [], 0.0, None
        if mine is not None:
            ckpt, jobs = mine
            t0 = time.perf_counter()
            try:
                with D.solo():
                    model = load_checkpoint_translator(ckpt.path, settings.device)
                    _, rows = session.run([all_jobs[i] for i in jobs], model=model,
                                          evaluated={"kind": "checkpoint", "file": ckpt.path.name}, run_name=ckpt.run)
                    del model
            except UnitEvalError as exc:
                error = f"{ckpt.path}: {exc}"
            seconds = time.perf_counter() - t0
        gathered = D.gather_objects((rows, seconds, error))
        for offset, (part, secs, failed) in enumerate(gathered):
            if first + offset >= len(todo) or failed:
                continue
            ckpt, _ = todo[first + offset]
            if main:
                append_rows(out, part)
            summary["evaluated"].append(str(ckpt.path))
            summary["rows"] += len(part)
            summary["seconds"].append(round(secs, 3))
            done = len(summary["evaluated"])
            left = len(todo) - done
            eta = f", about {(time.perf_counter() - started) / done * left:.0f} s to go" if left else ""
            iteration = part[0].get("iteration") if part else None
            at = f" (iteration {iteration})" if iteration is not None else ""
            say(f"sweep [{done}/{len(todo)}] {ckpt.path}{at}: {secs:.1f} s, {len(part)} rows; {left} left{eta}")
        errors = [failed for _, _, failed in gathered if failed]
        if errors:
            saved = len(summary["evaluated"])
            raise UnitEvalError(f"{errors[0]} ({saved} checkpoint(s) evaluated and saved to {out}; "
                                f"run the sweep again to evaluate the rest)")
    return summary
