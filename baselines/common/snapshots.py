"""Snapshots and evaluation during training: ``--snapshot-every N [--keep K]`` and ``--eval-every N --eval-protocol P``.

Both need the run.pt a run would write at that iteration: :func:`unit_eval.baselines.common.loop.run_payload`
builds it in memory (``recipe.finalized_state_dict``: finalize, then the training state put back), with every
RNG stream saved and restored around it, so a run with snapshots and evaluations trains exactly as one without.

- ``RUN_DIR/snapshots/iter_XXXXXXX.pt``: that payload, the same weights-only format as ``run.pt``, the iteration
  in ``meta["iterations"]``. The last iteration's snapshot is a byte copy of ``run.pt`` (one sha256, so a sweep
  evaluates it once). ``keep`` > 0 keeps only the newest K snapshots.
- ``RUN_DIR/results.jsonl``: each evaluation appends its rows at once, run name = the RUN_DIR's name, ``iteration``
  and (when a snapshot file was written at that iteration) its sha256 in every row, so a later
  ``unit-eval sweep RUN_DIR --out RUN_DIR/results.jsonl`` skips what was already evaluated. Protocols, data and
  the model's abilities are checked before the first iteration; an evaluation that fails later (a diverged model
  with NaN outputs) is said on stderr and training goes on.
- Resuming from iteration S removes snapshots and result rows past S (an abandoned future, like log.jsonl's rows).

Rank 0 does all of it, alone (:func:`unit_eval.distributed.solo`); the other ranks wait at their next collective.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import torch

from unit_eval import distributed as D
from unit_eval.errors import UnitEvalError

from .seeding import get_rng_state, set_rng_state

SNAPSHOT = re.compile(r"iter_(\d+)\.pt$")


def snapshot_path(out: Path, iteration: int) -> Path:
    return out / "snapshots" / f"iter_{iteration:07d}.pt"


def existing(out: Path) -> dict[int, Path]:
    folder = out / "snapshots"
    found = {}
    if folder.is_dir():
        for p in folder.iterdir():
            m = SNAPSHOT.fullmatch(p.name)
            if m:
                found[int(m.group(1))] = p
    return dict(sorted(found.items()))


class LiveEval:
    """The protocols evaluated during training: one Session (networks, real sets) for the whole run."""

    def __init__(self, protocols: list[str], data: str, data_root: str | None, device: torch.device,
                 numerics: str, batch_size: int, run_name: str, results: Path, classifier: str | None = None):
        from unit_eval.evaluation.api import Session, make_settings

        with D.solo():
            settings = make_settings(device=device, batch_size=batch_size, progress=False, precision=numerics,
                                     classifier=classifier)
            self.session = Session(protocols, data=data, data_root=data_root, settings=settings)
        self.run_name, self.results = run_name, results

    def check(self, model) -> None:
        """Before training: every protocol can serve this model and reads this dataset."""
        with D.solo():
            self.session.runners(model, evaluated={"kind": "training"})

    def rows(self, model, iteration: int, ckpt_name: str | None) -> list[dict]:
        evaluated = {"kind": "training", "iteration": iteration, **({"file": ckpt_name} if ckpt_name else {})}
        with D.solo():
            _, rows = self.session.run(self.session.jobs([None]), model=model, evaluated=evaluated,
                                       run_name=self.run_name)
        return rows


class Snapshots:
    """Rank 0's snapshot files and evaluations; built by the loop, called after every iteration."""

    def __init__(self, out: Path, *, every: int, keep: int, eval_every: int, live: LiveEval | None, payload,
                 device: torch.device, is_main: bool):
        self.out, self.every, self.keep, self.eval_every = out, every, keep, eval_every
        self.live, self.payload, self.device, self.is_main = live, payload, device, is_main
        if eval_every and live is None:
            raise UnitEvalError("--eval-every needs --eval-protocol and --eval-data")

    def due(self, iteration: int) -> bool:
        return bool((self.every and iteration % self.every == 0) or (self.eval_every and iteration % self.eval_every == 0))

    def prune_future(self, start: int) -> None:
        """Resuming at ``start``: snapshots and result rows of later iterations belong to an abandoned future."""
        if not self.is_main:
            return
        gone = [p for it, p in existing(self.out).items() if it > start]
        for p in gone:
            p.unlink()
        dropped = _truncate_results(self.out / "results.jsonl", start)
        if gone or dropped:
            print(f"resume at iteration {start}: removed {len(gone)} later snapshot(s) and {dropped} later result "
                  f"row(s)", file=sys.stderr)

    def at(self, iteration: int, elapsed: float) -> None:
        """During training (not the last iteration): write the snapshot and/or evaluate, on rank 0."""
        if not self.is_main or not self.due(iteration):
            return
        rng = get_rng_state(self.device)
        try:
            run = self.payload(iteration, elapsed)
            path = None
            if self.every and iteration % self.every == 0:
                path = self._save(run, iteration)
            if self.eval_every and iteration % self.eval_every == 0:
                self._evaluate(run, iteration, path)
        finally:
            set_rng_state(rng, self.device)

    def final(self, iteration: int, run_file: Path) -> None:
        """After run.pt: the last snapshot (a byte copy of it) and the last evaluation (always, with --eval-every)."""
        if not self.is_main:
            return
        path = None
        if self.every and iteration % self.every == 0:
            path = snapshot_path(self.out, iteration)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            shutil.copyfile(run_file, tmp)
            os.replace(tmp, path)
            self._prune()
        if self.live is not None:
            from unit_eval.checkpoint import load_run

            rng = get_rng_state(self.device)
            try:
                self._evaluate(load_run(run_file), iteration, run_file if path is None else path)
            finally:
                set_rng_state(rng, self.device)

    def _save(self, run: dict, iteration: int) -> Path:
        from unit_eval.checkpoint import save_run

        path = snapshot_path(self.out, iteration)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_run(path, model=run["model"], config=run["config"], state_dict=run["state_dict"], meta=run["meta"])
        self._prune()
        return path

    def _prune(self) -> None:
        if self.keep > 0:
            for p in list(existing(self.out).values())[: -self.keep]:
                p.unlink()

    def _evaluate(self, run: dict, iteration: int, path: Path | None) -> None:
        from unit_eval.cache import sha256_file
        from unit_eval.results import append_rows
        from unit_eval.translator import translator_from_run

        run = {**run, "sha256": sha256_file(path) if path is not None else None}
        try:
            model = translator_from_run(run, self.device)
            rows = self.live.rows(model, iteration, path.name if path is not None else None)
            append_rows(self.live.results, rows)
        except UnitEvalError as exc:
            print(f"evaluation at iteration {iteration} failed, training goes on: {exc}", file=sys.stderr)
            return
        shown = ", ".join(f"{r['protocol']} {r['metric']} {r['value']:.4g}" for r in rows if r["class"] == "mean")
        print(f"iteration {iteration}: {shown}", file=sys.stderr)


def _truncate_results(path: Path, upto: int) -> int:
    """Drop rows evaluated past iteration ``upto`` from RUN_DIR/results.jsonl (atomically); how many."""
    if not path.is_file():
        return 0
    from unit_eval.cache import atomic_write_text

    keep, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            keep.append(line)
            continue
        it = row.get("iteration") if isinstance(row, dict) else None
        if isinstance(it, int) and it > upto:
            dropped += 1
        else:
            keep.append(line)
    if dropped:
        atomic_write_text(path, "".join(line + "\n" for line in keep))
    return dropped
