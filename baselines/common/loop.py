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
  ``weights_only=True`` loadable);
- ``snapshots/iter_XXXXXXX.pt`` every ``snapshot_every`` iterations (the run.pt of that iteration; the newest
  ``keep`` when ``keep`` > 0) and ``results.jsonl`` rows of ``eval_protocols`` every ``eval_every`` iterations and
  at the end (``baselines.common.snapshots``).

Distributed: launch with ``torchrun --nproc_per_node N -m unit_eval.baselines.train ...`` (or
``-m unit_eval.cli train ...``); ranks are read from the environment, gloo on CPU, nccl on CUDA
(``cuda:LOCAL_RANK``). ``--batch-size`` is the global batch, split evenly over processes.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import torch

from unit_eval import distributed as D
from unit_eval.checkpoint import MODELS
from unit_eval.errors import UnitEvalError

from . import data as data_mod
from .iterate import RESUME_FORMAT, Loop, Plan, RunFiles
from .recipe import Recipe
from .seeding import derive_seed, rank_seed, seed_all, set_rng_state

#: model name -> module holding ``RECIPE`` (a Recipe subclass)
RECIPE_MODULES = {name: f"unit_eval.baselines.{name}.recipe" for name in MODELS}


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
    snapshot_every: int = 0,
    keep: int = 0,
    eval_every: int = 0,
    eval_protocols: list[str] | tuple[str, ...] = (),
    eval_data: str | None = None,
    eval_data_root: str | None = None,
    eval_numerics: str = "fp32",
    eval_batch_size: int = 32,
    eval_classifier: str | None = None,
) -> dict:
    """Train ``model`` on the class folders in ``data``; write RUN_DIR files (module docstring).

    ``iters`` etc. default to the recipe's published values; ``extra`` holds model options such as
    TUNIT's ``p_semi`` / ``toy``; ``overrides`` replaces config keys after the defaults are built
    (unknown keys are an error). ``amp=None`` means bf16 autocast on CUDA, off on CPU. With
    ``resume=True`` an existing ``RUN_DIR/resume.pt`` is continued (its config wins; ``iters`` may
    be raised) and a missing one starts a fresh run. ``snapshot_every``/``keep`` and ``eval_every`` with
    ``eval_protocols`` on ``eval_data`` (numerics ``eval_numerics``; translation accuracy's oracle
    ``eval_classifier``): see ``baselines.common.snapshots``.
    Returns a summary dict.

    Steps: :func:`_plan_run` (config, iterations, resume state), :func:`_scan_data`,
    :func:`_build_recipe` (networks and RNG state), :func:`_open_streams`, :class:`Loop` (steps,
    log.jsonl, samples, resume.pt, stopping), :func:`_write_run` (finalize, run.pt).
    """
    recipe_cls = get_recipe(model)
    name = recipe_cls.name
    if (eval_every > 0) != bool(eval_protocols) or (eval_every > 0 and not eval_data):
        raise UnitEvalError("evaluation during training needs --eval-every N, --eval-protocol P and --eval-data D together")
    if snapshot_every < 0 or keep < 0 or eval_every < 0:
        raise UnitEvalError("--snapshot-every, --keep and --eval-every must be >= 0")
    dev = _resolve_device(device)
    owns_group = D.is_active() is False and D.env_info().distributed
    info = D.init(dev)
    files = RunFiles.at(out)
    if info.is_main:
        files.out.mkdir(parents=True, exist_ok=True)
    D.barrier()

    try:
        plan = _plan_run(recipe_cls, files, dev, info, resume=resume, iters=iters, img_size=img_size,
                         batch_size=batch_size, k=k, seed=seed, amp=amp, extra=extra, overrides=overrides)
        index = _scan_data(recipe_cls, data, plan, files, allow_upscale)
        recipe = _build_recipe(recipe_cls, plan, index, dev, info)
        workers = _workers(dev, info, workers)
        snapshots = _snapshots(recipe, name, data, index, plan, files, dev, info, workers, progress,
                               snapshot_every=snapshot_every, keep=keep, eval_every=eval_every,
                               eval_protocols=list(eval_protocols), eval_data=eval_data, eval_data_root=eval_data_root,
                               eval_numerics=eval_numerics, eval_batch_size=eval_batch_size,
                               eval_classifier=eval_classifier)
        streams = _open_streams(recipe_cls, plan, index, dev, info, workers)
        loop = Loop(name, recipe, streams, index, plan, files, dev, info, sample_every=sample_every,
                     ckpt_every=ckpt_every, log_every=log_every, n_samples=n_samples, snapshots=snapshots)
        it, elapsed, step_time, last = loop.run(progress)
        _write_run(recipe, name, data, index, plan, files, dev, info, workers, it, elapsed, progress)
        if snapshots is not None:
            snapshots.final(it, files.run)
        D.barrier()
        done = it - plan.start
        return {"run": str(files.run), "model": name, "iterations": it, "trained_now": done,
                "elapsed_s": round(elapsed, 3),
                "step_s_per_iter": round(step_time / done, 5) if done else None, "last_losses": last}
    finally:
        if owns_group:
            D.shutdown()


# ---------------------------------------------------------------------------------- state to continue from
def _plan_run(recipe_cls: type[Recipe], files: RunFiles, dev: torch.device, info, *, resume, iters, img_size,
              batch_size, k, seed, amp, extra, overrides) -> Plan:
    """The config and iteration range: from ``resume.pt`` when continuing, else the recipe's defaults."""
    name = recipe_cls.name
    resume_path = files.resume
    state = None
    if resume and resume_path.exists():
        state = load_resume(resume_path, name)
    elif not resume and (resume_path.exists() or files.run.exists()):
        raise UnitEvalError(f"{files.out} already holds a run (resume.pt/run.pt); pass --resume to continue it or choose another --out")

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
    return Plan(config=config, seed=seed, start=start, total=total, state=state, img=img, load_size=load_size,
                 resize_mode=resize_mode, gbatch=gbatch)


# ---------------------------------------------------------------------------------- data
def _scan_data(recipe_cls: type[Recipe], data, plan: Plan, files: RunFiles, allow_upscale: bool) -> data_mod.DatasetIndex:
    index = data_mod.scan(data, model=recipe_cls.name, min_classes=recipe_cls.min_classes, load_size=plan.load_size,
                          allow_upscale=allow_upscale)
    recipe_cls.validate_data(index.class_names, index.counts)
    state = plan.state
    if state is not None and state.get("class_names") not in (None, index.class_names):
        raise UnitEvalError(f"{files.resume} was trained on classes {state['class_names']}, --data has {index.class_names}")
    return index


# ---------------------------------------------------------------------------------- recipe
def _build_recipe(recipe_cls: type[Recipe], plan: Plan, index: data_mod.DatasetIndex, dev: torch.device,
                  info) -> Recipe:
    """The recipe (networks seeded by ``seed``, or the resumed state), then each rank's RNG state."""
    seed, state = plan.seed, plan.state
    seed_all(seed)
    recipe = recipe_cls(plan.config, num_classes=len(index.class_names), device=dev, distributed=info.distributed)
    if state is not None:
        recipe.load_state_dict(state["recipe"])
    recipe.bind_data(index)
    seed_all(rank_seed(seed, info.rank))
    if state is not None:
        rngs = state.get("rng") or []
        if len(rngs) == info.world_size:
            set_rng_state(rngs[info.rank], dev)
        else:
            seed_all(derive_seed("resume", seed, info.rank, plan.start))
            if info.is_main:
                print(f"warning: resuming with {info.world_size} processes instead of {len(rngs)}: not bit-exact",
                      file=sys.stderr)
    return recipe


def _workers(dev: torch.device, info, workers: int | None) -> int:
    """Data loader processes: as given, else up to 8 per GPU rank, none on the CPU."""
    if workers is None:
        workers = min(8, max(1, (os.cpu_count() or 2) // info.world_size)) if dev.type == "cuda" else 0
    return workers


def _open_streams(recipe_cls: type[Recipe], plan: Plan, index: data_mod.DatasetIndex, dev: torch.device, info,
                  workers: int) -> data_mod.Streams:
    """The recipe's training streams from iteration ``plan.start``."""
    streams = data_mod.Streams(index, recipe_cls.streams, img_size=plan.img, load_size=plan.load_size,
                               hflip=bool(plan.config.get("hflip", True)), global_batch=plan.gbatch, seed=plan.seed,
                               rank=info.rank, world_size=info.world_size, start=plan.start, device=dev,
                               workers=workers, resize_mode=plan.resize_mode)
    return streams


# ---------------------------------------------------------------------------------- run.pt, snapshots
def run_payload(recipe: Recipe, name: str, data, index: data_mod.DatasetIndex, plan: Plan, dev: torch.device, info,
                workers: int, it: int, elapsed: float, progress: bool = True) -> dict:
    """The run.pt of iteration ``it``, in memory: ``recipe.finalized_state_dict`` over the training set (torch RNG
    restored after; the training state is left as it was), config and meta.

    The pass over the training set has its own progress bar: at paper scale on a CPU it takes minutes (TUNIT's
    style codes of 7,400 images at 128 px: about 10 minutes on 2 cores, benchmarks README)."""
    from unit_eval.checkpoint import FORMAT

    rng = torch.get_rng_state()
    batches = data_mod.eval_batches(index, plan.img, dev, workers=workers)

    def with_bar():
        from tqdm import tqdm

        with tqdm(total=len(index), desc=f"{name}: finalize over the training set", unit="img", disable=not progress,
                  leave=False, file=sys.stderr) as bar:
            for b in batches():
                yield b
                bar.update(len(b["image"]))

    state = recipe.finalized_state_dict(with_bar)
    torch.set_rng_state(rng)
    meta = {
        "iterations": it, "dataset": str(Path(data).resolve()), "class_names": list(index.class_names),
        "num_images": len(index), "seed": plan.seed, "world_size": info.world_size, "device": dev.type,
        "batch_size": plan.gbatch, "elapsed_s": round(elapsed, 3),
        "resumed_from": plan.start if plan.state is not None else None,
    }
    return {"format": FORMAT, "model": name, "config": recipe.run_config(),
            "state_dict": {k: v.detach().cpu().contiguous() for k, v in state.items()}, "meta": meta}


def _write_run(recipe: Recipe, name: str, data, index: data_mod.DatasetIndex, plan: Plan, files: RunFiles,
               dev: torch.device, info, workers: int, it: int, elapsed: float, progress: bool = True) -> None:
    """Rank 0: :func:`run_payload` written to ``run.pt``."""
    if not info.is_main:
        return
    from unit_eval.checkpoint import save_run

    run = run_payload(recipe, name, data, index, plan, dev, info, workers, it, elapsed, progress)
    save_run(files.run, model=name, config=run["config"], state_dict=run["state_dict"], meta=run["meta"])


def _snapshots(recipe: Recipe, name: str, data, index: data_mod.DatasetIndex, plan: Plan, files: RunFiles,
               dev: torch.device, info, workers: int, progress: bool, *, snapshot_every: int, keep: int,
               eval_every: int, eval_protocols: list[str], eval_data: str | None, eval_data_root: str | None,
               eval_numerics: str, eval_batch_size: int, eval_classifier: str | None = None):
    """Snapshots and evaluation during training (None when neither is asked); protocols, data and the model's
    abilities are checked here, before the first iteration."""
    from .snapshots import LiveEval, Snapshots

    if not snapshot_every and not eval_every:
        return None
    live = None
    if eval_every and info.is_main:
        live = LiveEval(eval_protocols, eval_data, eval_data_root, dev, eval_numerics, eval_batch_size,
                        run_name=files.out.resolve().name, results=files.out / "results.jsonl",
                        classifier=eval_classifier)
        live.check(recipe.translator())

    def payload(it: int, elapsed: float) -> dict:
        return run_payload(recipe, name, data, index, plan, dev, info, workers, it, elapsed, progress)

    snapshots = Snapshots(files.out, every=snapshot_every, keep=keep, eval_every=eval_every if info.is_main else 0,
                          live=live, payload=payload, device=dev, is_main=info.is_main)
    if plan.state is not None:
        snapshots.prune_future(plan.start)
    return snapshots


def load_resume(path: Path, model: str) -> dict:
    from unit_eval.weights.safe_load import load_weights_only

    state = load_weights_only(path, "{path} is not a loadable resume file ({reason})")
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise UnitEvalError(f"{path}: not a unit-eval resume file (expected format {RESUME_FORMAT!r})")
    if state.get("model") != model:
        raise UnitEvalError(f"{path} belongs to a {state.get('model')!r} run, not {model!r}")
    return state
