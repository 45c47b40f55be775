"""One training run's iterations: steps, logs, sample grids, resume files, and stopping cleanly on a signal.

:func:`unit_eval.baselines.common.loop.train` plans the run (config, data, recipe, streams) and hands it to
:class:`Loop` here; the files written are described in the loop module's docstring.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unit_eval import distributed as D
from unit_eval.errors import UnitEvalError

from . import data as data_mod
from .recipe import Recipe
from .seeding import derive_seed, get_rng_state

RESUME_FORMAT = "unit-eval-resume/1"


@dataclass(frozen=True)
class RunFiles:
    """RUN_DIR and the files the loop writes into it."""

    out: Path
    resume: Path
    run: Path
    log: Path

    @classmethod
    def at(cls, out: str | os.PathLike) -> "RunFiles":
        out = Path(out)
        return cls(out, out / "resume.pt", out / "run.pt", out / "log.jsonl")


@dataclass
class Plan:
    """What this call trains: the config, seed and iteration range, and the resume state (if any)."""

    config: dict
    seed: int
    start: int
    total: int
    state: dict | None
    img: int
    load_size: int
    resize_mode: str
    gbatch: int


class _StopFlag:
    def __init__(self):
        self.flag = False
        self._old = {}

    def install(self):
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except (ValueError, OSError):
                pass

    def _handler(self, signum, frame):
        if self.flag:  # second signal: give up immediately
            raise KeyboardInterrupt
        self.flag = True

    def restore(self):
        for sig, old in self._old.items():
            try:
                signal.signal(sig, old)
            except (ValueError, OSError):
                pass


def _sample_ids(index: data_mod.DatasetIndex, n: int, seed: int, what: str) -> list[int]:
    """``n`` fixed images spread round-robin over the classes (seeded)."""
    rng = np.random.default_rng(derive_seed("samples", what, seed))
    per_class = [rng.permutation(np.nonzero(index.labels == c)[0]) for c in range(len(index.class_names))]
    out, pos = [], [0] * len(per_class)
    c = 0 if what == "sources" else len(per_class) // 2
    while len(out) < min(n, len(index)):
        cls = c % len(per_class)
        if pos[cls] < len(per_class[cls]):
            out.append(int(per_class[cls][pos[cls]]))
            pos[cls] += 1
        c += 1
    return out


def sample_grid(translator, sources: torch.Tensor, references: torch.Tensor, device: torch.device) -> np.ndarray:
    """H x W x 3 uint8 grid: row 0 references, column 0 sources, cell (i, j) translate(src i, ref j)."""
    from unit_eval.evaluation.batches import model_batches

    n_s, n_r, S = sources.shape[0], references.shape[0], sources.shape[-1]
    canvas = torch.ones(3, (n_s + 1) * S, (n_r + 1) * S)
    columns = ((sources, references[j:j + 1].expand(n_s, -1, -1, -1)) for j in range(n_r))
    for j, (_, out) in enumerate(model_batches(translator.translate, columns, device)):
        out = torch.nan_to_num(out.float().cpu(), nan=0.0).clamp(-1, 1)
        for i in range(n_s):
            canvas[:, (i + 1) * S:(i + 2) * S, (j + 1) * S:(j + 2) * S] = out[i]
    for i in range(n_s):
        canvas[:, (i + 1) * S:(i + 2) * S, :S] = sources[i]
    for j in range(n_r):
        canvas[:, :S, (j + 1) * S:(j + 2) * S] = references[j]
    return ((canvas.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _truncate_log(path: Path, upto: int) -> None:
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(row.get("iter", 0)) <= upto:
            keep.append(line)
    path.write_text("".join(l + "\n" for l in keep))


def _fmt(v: float) -> str:
    return f"{v:.3g}" if math.isfinite(v) else str(v)


# ---------------------------------------------------------------------------------- loop
class Loop:
    """The iterations of one run: train steps, log.jsonl rows, sample grids, resume.pt, SIGINT/SIGTERM."""

    def __init__(self, name: str, recipe: Recipe, streams: data_mod.Streams, index: data_mod.DatasetIndex,
                 plan: Plan, files: RunFiles, dev: torch.device, info, *, sample_every: int | None,
                 ckpt_every: int | None, log_every: int, n_samples: int, snapshots=None):
        self.name, self.recipe, self.streams, self.index = name, recipe, streams, index
        self.plan, self.files, self.dev, self.info = plan, files, dev, info
        total = plan.total
        if sample_every is None:
            sample_every = min(5000, max(1, total // 10))
        if ckpt_every is None:
            ckpt_every = min(5000, max(1, total // 10))
        self.sample_every, self.ckpt_every = sample_every, ckpt_every
        self.log_every = max(1, int(log_every))
        self.snapshots = snapshots  # baselines.common.snapshots.Snapshots or None
        self.src_imgs = self.ref_imgs = None
        if info.is_main and sample_every > 0:
            self.src_imgs = data_mod.load_eval_images(index, _sample_ids(index, n_samples, plan.seed, "sources"), plan.img)
            self.ref_imgs = data_mod.load_eval_images(index, _sample_ids(index, n_samples, plan.seed, "references"), plan.img)
        if info.is_main:
            _truncate_log(files.log, plan.start)

    def save_resume(self, iteration: int, elapsed: float) -> None:
        info, plan = self.info, self.plan
        rngs = D.gather_objects(get_rng_state(self.dev))
        if info.is_main:
            from unit_eval.cache import atomic_torch_save

            atomic_torch_save({
                "format": RESUME_FORMAT, "model": self.name, "config": plan.config, "iteration": iteration,
                "iters": plan.total, "seed": plan.seed, "world_size": info.world_size, "rng": rngs,
                "recipe": self.recipe.state_dict(), "class_names": self.index.class_names,
                "elapsed_s": elapsed,
            }, self.files.resume)
        D.barrier()

    def write_samples(self, iteration: int) -> None:
        if not self.info.is_main or self.src_imgs is None:
            return
        dev = self.dev
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None
        grid = sample_grid(self.recipe.translator(), self.src_imgs, self.ref_imgs, dev)
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng, dev)
        from PIL import Image

        path = self.files.out / "samples" / f"iter_{iteration:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid).save(path)

    def run(self, progress: bool) -> tuple[int, float, float, dict[str, float]]:
        """Train from ``plan.start`` to ``plan.total``; returns (iteration reached, elapsed s incl. earlier
        sessions, seconds inside ``train_step``, the last logged loss averages)."""
        info, dev, plan, recipe, streams = self.info, self.dev, self.plan, self.recipe, self.streams
        state, start, total = plan.state, plan.start, plan.total
        log_every, sample_every, ckpt_every = self.log_every, self.sample_every, self.ckpt_every
        stop = _StopFlag()
        stop.install()
        prev_elapsed = float(state.get("elapsed_s", 0.0)) if state is not None else 0.0
        t0 = time.perf_counter()
        bar = None
        if info.is_main and progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=start, file=sys.stderr, desc=f"train {self.name}", dynamic_ncols=True,
                       mininterval=1.0)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        window_t, window_n = time.perf_counter(), 0
        last: dict[str, float] = {}
        step_time = 0.0
        it = start
        try:
            while it < total:
                batch = next(streams)
                ts = time.perf_counter()
                losses = recipe.train_step(batch, it)
                step_time += time.perf_counter() - ts
                it += 1
                window_n += 1
                for key, v in losses.items():
                    sums[key] = sums.get(key, 0.0) + float(v)
                    counts[key] = counts.get(key, 0) + 1
                if bar is not None:
                    bar.update(1)
                if it % log_every == 0 or it == total:
                    avg = {key: sums[key] / counts[key] for key in sorted(sums)}
                    avg = D.all_reduce_mean(avg, dev)
                    now = time.perf_counter()
                    row = {"iter": it, "elapsed_s": round(prev_elapsed + now - t0, 3),
                           "s_per_iter": round((now - window_t) / max(window_n, 1), 5), **avg}
                    if info.is_main:
                        self._log_row(row, avg, bar)
                    last = avg
                    sums, counts, window_t, window_n = {}, {}, now, 0
                if sample_every > 0 and (it % sample_every == 0 or it == total):
                    self.write_samples(it)
                if self.snapshots is not None and it < total:  # the last iteration's come from run.pt
                    self.snapshots.at(it, prev_elapsed + time.perf_counter() - t0)
                if (ckpt_every > 0 and it % ckpt_every == 0) or it == total:
                    self.save_resume(it, prev_elapsed + time.perf_counter() - t0)
                if self._should_stop(stop) and it < total:
                    self.save_resume(it, prev_elapsed + time.perf_counter() - t0)
                    raise UnitEvalError(f"interrupted after iteration {it}; state saved to {self.files.resume}, rerun with --resume")
        finally:
            stop.restore()
            streams.close()
            if bar is not None:
                bar.close()
        elapsed = prev_elapsed + time.perf_counter() - t0
        return it, elapsed, step_time, last

    def _log_row(self, row: dict, avg: dict[str, float], bar) -> None:
        with open(self.files.log, "a") as fh:
            fh.write(json.dumps({k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                                 for k, v in row.items()}) + "\n")
        if bar is not None:
            bar.set_postfix_str(" ".join(f"{k}={_fmt(v)}" for k, v in avg.items()), refresh=False)

    def _should_stop(self, stop: _StopFlag) -> bool:
        """The stop flag, agreed over all ranks (any rank signalled -> every rank stops)."""
        flag = stop.flag
        if D.is_active():
            t = torch.tensor([1 if flag else 0], device=self.dev)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            flag = bool(t.item())
        return flag
