"""The shared training loop behind ``unit-eval train`` (and ``python -m unit_eval.baselines.train``).

``train(model, data, out, ...)`` builds the model's :class:`~baselines.common.recipe.Recipe`,
streams the data (``baselines.common.data``), calls ``train_step`` ``iters`` times and writes, on
rank 0 only, into ``out`` (RUN_DIR):

- ``log.jsonl``: one JSON object per ``log_every`` iterations: ``iter``, ``elapsed_s``,
  ``s_per_iter`` and the recipe's losses averaged over the window (and across ranks);
- ``samples/iter_XXXXXXX.png`` every ``sample_every`` iterations: a grid whose first row holds
  fixed reference images, first column fixed source images, cell (i, j) = translate(source i,
  reference j) with the EMA networks;
- ``resume.pt`` every ``ckpt_every`` iterations and at the end: recipe state (networks, EMA,
  optimisers, queues), per-rank RNG states (torch, CUDA, NumPy, Python), the iteration and config.
  The data order is a pure function of (seed, iteration, world size), so ``--resume`` continues
  bit-exactly (same device type, thread settings and world size). SIGINT/SIGTERM stop the run
  at the next iteration boundary after writing ``resume.pt``;
- ``run.pt`` at the end via :func:`unit_eval.checkpoint.save_run` (EMA inference weights,
  ``weights_only=True`` loadable).

Distributed: launch with ``torchrun --nproc_per_node N -m unit_eval.baselines.train ...`` (or
``-m unit_eval.cli train ...``); ranks are read from the environment, gloo on CPU, nccl on CUDA
(``cuda:LOCAL_RANK``). ``--batch-size`` is the global batch, split evenly over processes.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from unit_eval.errors import UnitEvalError

from . import data as data_mod
from unit_eval import distributed as D
from .recipe import Recipe
from .seeding import derive_seed, get_rng_state, rank_seed, seed_all, set_rng_state

RESUME_FORMAT = "unit-eval-resume/1"

#: model name -> module holding ``RECIPE`` (a Recipe subclass)
RECIPE_MODULES = {
    "tunit": "unit_eval.baselines.tunit.recipe",
    "funit": "unit_eval.baselines.funit.recipe",
    "unit": "unit_eval.baselines.unit.recipe",
}


def get_recipe(model: str | type[Recipe]) -> type[Recipe]:
    if isinstance(model, type) and issubclass(model, Recipe):
        return model
    name = str(model)
    if name not in RECIPE_MODULES:
        raise UnitEvalError(f"unknown model {name!r}; expected one of {', '.join(RECIPE_MODULES)}")
    try:
        module = importlib.import_module(RECIPE_MODULES[name])
    except ImportError as exc:
        raise UnitEvalError(f"the {name} trainer is not available ({RECIPE_MODULES[name]}: {exc})") from None
    recipe = getattr(module, "RECIPE", None)
    if not (isinstance(recipe, type) and issubclass(recipe, Recipe)):
        raise UnitEvalError(f"{RECIPE_MODULES[name]} does not define RECIPE (a Recipe subclass)")
    return recipe


def check_plain(obj, where: str = "config") -> None:
    """Configs are stored in weights_only checkpoints: only plain containers and scalars."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise UnitEvalError(f"{where} has a non-string key {k!r}")
            check_plain(v, f"{where}.{k}")
        return
    raise UnitEvalError(f"{where} holds a {type(obj).__name__}; configs must be plain values")


def _resolve_device(device) -> torch.device:
    from unit_eval.device import resolve_device

    dev = resolve_device(device)
    info = D.env_info()
    if info.distributed and dev.type == "cuda":
        if torch.cuda.device_count() <= info.local_rank:
            raise UnitEvalError(f"LOCAL_RANK {info.local_rank} but only {torch.cuda.device_count()} CUDA devices")
        dev = torch.device("cuda", info.local_rank)
    elif dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


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
    n_s, n_r, S = sources.shape[0], references.shape[0], sources.shape[-1]
    canvas = torch.ones(3, (n_s + 1) * S, (n_r + 1) * S)
    src = sources.to(device)
    ref = references.to(device)
    with torch.no_grad():
        for j in range(n_r):
            out = translator.translate(src, ref[j:j + 1].expand(n_s, -1, -1, -1)).float().cpu()
            out = torch.nan_to_num(out, nan=0.0).clamp(-1, 1)
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


def train(
    model: str | type[Recipe],
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    iters: int | None = None,
    img_size: int | None = None,
    batch_size: int | None = None,
    k: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    amp: bool | None = None,
    sample_every: int | None = None,
    ckpt_every: int | None = None,
    log_every: int = 10,
    resume: bool = False,
    allow_upscale: bool = False,
    workers: int | None = None,
    progress: bool = True,
    extra: dict | None = None,
    overrides: dict | None = None,
    n_samples: int = 8,
) -> dict:
    """Train ``model`` on the class folders in ``data``; write RUN_DIR files (module docstring).

    ``iters`` etc. default to the recipe's published values; ``extra`` holds model options such as
    TUNIT's ``p_semi`` / ``toy``; ``overrides`` replaces config keys after the defaults are built
    (unknown keys are an error). ``amp=None`` means bf16 autocast on CUDA, off on CPU. With
    ``resume=True`` an existing ``RUN_DIR/resume.pt`` is continued (its config wins; ``iters`` may
    be raised) and a missing one starts a fresh run. Returns a summary dict.
    """
    recipe_cls = get_recipe(model)
    name = recipe_cls.name
    dev = _resolve_device(device)
    owns_group = D.is_active() is False and D.env_info().distributed
    info = D.init(dev)
    out = Path(out)
    resume_path, run_path, log_path = out / "resume.pt", out / "run.pt", out / "log.jsonl"
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    D.barrier()

    try:
        # ------------------------------------------------------------ state to continue from
        state = None
        if resume and resume_path.exists():
            state = load_resume(resume_path, name)
        elif not resume and (resume_path.exists() or run_path.exists()):
            raise UnitEvalError(f"{out} already holds a run (resume.pt/run.pt); pass --resume to continue it or choose another --out")

        if state is not None:
            config = dict(state["config"])
            seed = int(state["seed"])
            start = int(state["iteration"])
            total = int(iters) if iters is not None else int(state["iters"])
            if total < start:
                raise UnitEvalError(f"--iters {total} is below the {start} iterations already done in {resume_path}")
            asked = {"img_size": img_size, "batch_size": batch_size, "k": k, **(extra or {}), **(overrides or {})}
            for key, value in asked.items():
                if value is not None and key in config and config[key] != value:
                    raise UnitEvalError(f"{resume_path} was trained with {key}={config[key]!r}; it cannot change to "
                                        f"{value!r} when resuming (drop the option or use a new --out)")
            if amp is not None:
                config["amp"] = bool(amp)
            if "iters" in config:
                config["iters"] = total
        else:
            total = int(iters) if iters is not None else int(recipe_cls.default_iters)
            if total < 1:
                raise UnitEvalError("--iters must be at least 1")
            config = recipe_cls.default_config(iters=total, img_size=img_size, batch_size=batch_size, k=k, **(extra or {}))
            for key, value in (overrides or {}).items():
                if key not in config:
                    raise UnitEvalError(f"unknown {name} config key {key!r} in --set; known keys: {', '.join(sorted(config))}")
                config[key] = value
            config["amp"] = (dev.type == "cuda") if amp is None else bool(amp)
            start = 0
        check_plain(config)
        img = int(config["img_size"])
        load_size = int(config.get("load_size") or img)
        resize_mode = data_mod.check_resize_mode(config.get("resize_mode") or "square")
        gbatch = int(config["batch_size"])
        if gbatch % info.world_size:
            raise UnitEvalError(f"batch size {gbatch} is not divisible by the {info.world_size} processes")

        # ------------------------------------------------------------ data
        index = data_mod.scan(data, model=name, min_classes=recipe_cls.min_classes, load_size=load_size,
                              allow_upscale=allow_upscale)
        recipe_cls.validate_data(index.class_names, index.counts)
        if state is not None and state.get("class_names") not in (None, index.class_names):
            raise UnitEvalError(f"{resume_path} was trained on classes {state['class_names']}, --data has {index.class_names}")

        # ------------------------------------------------------------ recipe
        seed_all(seed)
        recipe = recipe_cls(config, num_classes=len(index.class_names), device=dev, distributed=info.distributed)
        if state is not None:
            recipe.load_state_dict(state["recipe"])
        recipe.bind_data(index)
        seed_all(rank_seed(seed, info.rank))
        if state is not None:
            rngs = state.get("rng") or []
            if len(rngs) == info.world_size:
                set_rng_state(rngs[info.rank], dev)
            else:
                seed_all(derive_seed("resume", seed, info.rank, start))
                if info.is_main:
                    print(f"warning: resuming with {info.world_size} processes instead of {len(rngs)}: not bit-exact",
                          file=sys.stderr)
        if workers is None:
            workers = min(8, max(1, (os.cpu_count() or 2) // info.world_size)) if dev.type == "cuda" else 0
        streams = data_mod.Streams(index, recipe_cls.streams, img_size=img, load_size=load_size,
                                   hflip=bool(config.get("hflip", True)), global_batch=gbatch, seed=seed,
                                   rank=info.rank, world_size=info.world_size, start=start, device=dev,
                                   workers=workers, resize_mode=resize_mode)

        if sample_every is None:
            sample_every = min(5000, max(1, total // 10))
        if ckpt_every is None:
            ckpt_every = min(5000, max(1, total // 10))
        log_every = max(1, int(log_every))
        src_imgs = ref_imgs = None
        if info.is_main and sample_every > 0:
            src_imgs = data_mod.load_eval_images(index, _sample_ids(index, n_samples, seed, "sources"), img)
            ref_imgs = data_mod.load_eval_images(index, _sample_ids(index, n_samples, seed, "references"), img)
        if info.is_main:
            _truncate_log(log_path, start)

        def save_resume(iteration: int, elapsed: float) -> None:
            rngs = D.gather_objects(get_rng_state(dev))
            if info.is_main:
                from unit_eval.cache import atomic_torch_save

                atomic_torch_save({
                    "format": RESUME_FORMAT, "model": name, "config": config, "iteration": iteration,
                    "iters": total, "seed": seed, "world_size": info.world_size, "rng": rngs,
                    "recipe": recipe.state_dict(), "class_names": index.class_names,
                    "elapsed_s": elapsed,
                }, resume_path)
            D.barrier()

        def write_samples(iteration: int) -> None:
            if not info.is_main or src_imgs is None:
                return
            rng = torch.get_rng_state()
            cuda_rng = torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None
            grid = sample_grid(recipe.translator(), src_imgs, ref_imgs, dev)
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state(cuda_rng, dev)
            from PIL import Image

            path = out / "samples" / f"iter_{iteration:07d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(grid).save(path)

        # ------------------------------------------------------------ loop
        stop = _StopFlag()
        stop.install()
        prev_elapsed = float(state.get("elapsed_s", 0.0)) if state is not None else 0.0
        t0 = time.perf_counter()
        bar = None
        if info.is_main and progress:
            from tqdm import tqdm

            bar = tqdm(total=total, initial=start, file=sys.stderr, desc=f"train {name}", dynamic_ncols=True,
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
                        with open(log_path, "a") as fh:
                            fh.write(json.dumps({k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                                                 for k, v in row.items()}) + "\n")
                        if bar is not None:
                            bar.set_postfix_str(" ".join(f"{k}={_fmt(v)}" for k, v in avg.items()), refresh=False)
                    last = avg
                    sums, counts, window_t, window_n = {}, {}, now, 0
                if sample_every > 0 and (it % sample_every == 0 or it == total):
                    write_samples(it)
                if (ckpt_every > 0 and it % ckpt_every == 0) or it == total:
                    save_resume(it, prev_elapsed + time.perf_counter() - t0)
                flag = stop.flag
                if D.is_active():
                    t = torch.tensor([1 if flag else 0], device=dev)
                    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
                    flag = bool(t.item())
                if flag and it < total:
                    save_resume(it, prev_elapsed + time.perf_counter() - t0)
                    raise UnitEvalError(f"interrupted after iteration {it}; state saved to {resume_path}, rerun with --resume")
        finally:
            stop.restore()
            streams.close()
            if bar is not None:
                bar.close()
        elapsed = prev_elapsed + time.perf_counter() - t0

        # ------------------------------------------------------------ run.pt
        if info.is_main:
            rng = torch.get_rng_state()
            recipe.finalize(data_mod.eval_batches(index, img, dev, workers=workers))
            torch.set_rng_state(rng)
            from unit_eval.checkpoint import save_run

            meta = {
                "iterations": it, "dataset": str(Path(data).resolve()), "class_names": list(index.class_names),
                "num_images": len(index), "seed": seed, "world_size": info.world_size, "device": dev.type,
                "batch_size": gbatch, "elapsed_s": round(elapsed, 3), "resumed_from": start if state is not None else None,
            }
            save_run(run_path, model=name, config=recipe.run_config(), state_dict=recipe.inference_state_dict(), meta=meta)
        D.barrier()
        done = it - start
        return {"run": str(run_path), "model": name, "iterations": it, "trained_now": done,
                "elapsed_s": round(elapsed, 3),
                "step_s_per_iter": round(step_time / done, 5) if done else None, "last_losses": last}
    finally:
        if owns_group:
            D.shutdown()


def load_resume(path: Path, model: str) -> dict:
    import pickle

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnitEvalError(f"{path} is not a loadable resume file ({first[:160]})") from None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise UnitEvalError(f"{path}: not a unit-eval resume file (expected format {RESUME_FORMAT!r})")
    if state.get("model") != model:
        raise UnitEvalError(f"{path} belongs to a {state.get('model')!r} run, not {model!r}")
    return state
