"""``unit-eval train {tunit,funit,unit,cluit,gpunit} --data DIR --out RUN_DIR``: the bundled trainers; ``unit-eval train
classifier --data DATASET --out CLF.pt``: translation accuracy's oracle classifier (:mod:`unit_eval.classifier_train`).

Progress (tqdm) and messages go to stderr; ``--json`` prints one summary object on stdout. The
heavy lifting is :func:`unit_eval.baselines.common.loop.train`. Distributed training:
``torchrun --nproc_per_node N -m unit_eval.cli train ...`` (``--batch-size`` is the global batch).
``train`` is a group: one subcommand per bundled model (the same options for each) and ``classifier``.
"""
from __future__ import annotations

import json

import click

from ..checkpoint import MODELS
from ..errors import UnitEvalError
from .common import emit, info, json_option


def _parse_set(items: tuple[str, ...]) -> dict:
    out = {}
    for item in items:
        if "=" not in item:
            raise UnitEvalError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


LABELS = {"gpunit": "GP-UNIT (stage II; --set stage=1 for stage I)"}

# The options of every bundled model's trainer (``unit-eval train tunit|funit|unit|cluit|gpunit``).
_OPTIONS = [
    click.option("--data", "data", required=True, type=click.Path(file_okay=True, dir_okay=True),
                 help="Folder of class subfolders (UNIT: exactly the two domains as two subfolders)."),
    click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="RUN_DIR for log.jsonl, samples/, resume.pt, run.pt."),
    click.option("--iters", type=click.IntRange(min=1), default=None, help="Iterations [default: the model's published schedule]."),
    click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Global batch size [default: the model's]."),
    click.option("--img-size", type=click.IntRange(min=8), default=None, help="Training resolution [default: the model's]."),
    click.option("--k", type=click.IntRange(min=1), default=None, help="TUNIT: number of pseudo-domains K-hat [10]."),
    click.option("--p-semi", type=click.FloatRange(0.0, 1.0), default=None, help="TUNIT: labelled fraction per class (semi-supervised)."),
    click.option("--seed", type=click.IntRange(min=0), default=0),
    click.option("--device", default="auto", help="auto, cpu, cuda, cuda:1 ..."),
    click.option("--amp/--no-amp", default=None, help="bf16 autocast [default: on for CUDA, off on CPU]."),
    click.option("--sample-every", type=click.IntRange(min=0), default=None, help="Sample grid every N iterations (0: never) [min(5000, iters/10)]."),
    click.option("--ckpt-every", type=click.IntRange(min=0), default=None, help="resume.pt every N iterations (always at the end) [min(5000, iters/10)]."),
    click.option("--log-every", type=click.IntRange(min=1), default=10, help="log.jsonl row every N iterations."),
    click.option("--snapshot-every", type=click.IntRange(min=0), default=0,
                 help="Write RUN_DIR/snapshots/iter_XXXXXXX.pt (a run.pt of that iteration) every N iterations (0: never)."),
    click.option("--keep", type=click.IntRange(min=0), default=0, help="Keep only the newest K snapshots (0: all)."),
    click.option("--eval-every", type=click.IntRange(min=0), default=0,
                 help="Evaluate --eval-protocol on the EMA weights every N iterations and at the end; rows go to RUN_DIR/results.jsonl."),
    click.option("--eval-protocol", "eval_protocols", multiple=True, help="Protocol(s) for --eval-every (name or .toml)."),
    click.option("--eval-data", default=None, help="Dataset the --eval-every protocols read (name or folder), e.g. digits."),
    click.option("--eval-data-root", default=None, help="Root for named datasets of --eval-data."),
    click.option("--eval-classifier", default=None, metavar="CLF.pt|module:factory",
                 help="Translation-accuracy --eval-protocol: the oracle classifier (as 'unit-eval evaluate --classifier')."),
    click.option("--eval-numerics", type=click.Choice(["fp32", "tf32", "bf16"]), default="fp32",
                 help="Inception numerics of --eval-every (bf16/tf32: fast, named in the rows' extractor)."),
    click.option("--resume", is_flag=True, help="Continue RUN_DIR/resume.pt if present (exactly); start fresh otherwise."),
    click.option("--workers", type=click.IntRange(min=0), default=None, help="Data loader processes [CUDA: up to 8, CPU: 0]."),
    click.option("--allow-upscale", is_flag=True, help="Accept images smaller than the training resolution (upscaled)."),
    click.option("--toy", is_flag=True, help="Tiny networks at 32 px (CPU smoke runs and tests)."),
    click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a config key (JSON value), e.g. --set warmup_iters=100."),
    click.option("--quiet", is_flag=True, help="No progress bar."),
    json_option,
]


def _train_baseline(model, data, out, iters, batch_size, img_size, k, p_semi, seed, device, amp, sample_every, ckpt_every,
                    log_every, snapshot_every, keep, eval_every, eval_protocols, eval_data, eval_data_root, eval_classifier,
                    eval_numerics,
                    resume, workers, allow_upscale, toy, sets, quiet, as_json):
    from unit_eval.baselines.common.loop import train

    extra = {}
    if p_semi is not None:
        extra["p_semi"] = p_semi
    if toy:
        extra["toy"] = True
    summary = train(model, data, out, iters=iters, img_size=img_size, batch_size=batch_size, k=k, seed=seed,
                    device=device, amp=amp, sample_every=sample_every, ckpt_every=ckpt_every, log_every=log_every,
                    resume=resume, allow_upscale=allow_upscale, workers=workers, progress=not quiet,
                    extra=extra, overrides=_parse_set(sets), snapshot_every=snapshot_every, keep=keep,
                    eval_every=eval_every, eval_protocols=eval_protocols, eval_data=eval_data,
                    eval_data_root=eval_data_root, eval_numerics=eval_numerics, eval_classifier=eval_classifier)
    if not as_json:
        info(f"wrote {summary['run']} after {summary['iterations']} iterations")
    emit(summary, as_json, human=summary["run"])


def _baseline_command(model: str) -> click.Command:
    """``unit-eval train MODEL``: the same options for every bundled model."""
    def command(**kwargs):
        _train_baseline(model, **kwargs)

    for option in reversed(_OPTIONS):
        command = option(command)
    return click.command(model, context_settings={"show_default": True},
                         help=f"Train the bundled {LABELS.get(model, model.upper())} baseline; writes RUN_DIR/run.pt (evaluate it with "
                              "`unit-eval evaluate --ckpt`).")(command)


class _TrainGroup(click.Group):
    """``train``'s subcommands, built on use: one per bundled model, and ``classifier``."""

    def list_commands(self, ctx):
        return [*MODELS, "classifier"]

    def get_command(self, ctx, name):
        if name == "classifier":
            from .train_classifier import classifier_command

            return classifier_command
        return _baseline_command(name) if name in MODELS else None


train_command = _TrainGroup("train", help="Train a bundled baseline (tunit, funit, unit, cluit, gpunit; writes RUN_DIR/run.pt) or "
                                          "translation accuracy's oracle classifier (classifier; writes CLF.pt).")
