"""Shared CLI helpers: JSON on stdout, everything else on stderr."""
from __future__ import annotations

import json
import math

import click


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):
        return _clean(obj.item())
    return obj


def emit(result: dict, as_json: bool, human: str | None = None) -> None:
    """``--json``: exactly one JSON object on stdout; otherwise a human summary on stdout."""
    if as_json:
        click.echo(json.dumps(_clean(result), sort_keys=False))
    else:
        click.echo(human if human is not None else "\n".join(f"{k}: {v}" for k, v in result.items()))


def info(message: str) -> None:
    click.echo(message, err=True)


json_option = click.option("--json", "as_json", is_flag=True, help="Print exactly one JSON object on stdout.")

# Named --numerics, not --precision: `dc` reports a metric called precision.
precision_option = click.option(
    "--numerics", "precision", type=click.Choice(["fp32", "tf32", "bf16"]), default="fp32", show_default=True,
    help="Inception numerics. fp32 reproduces published numbers; tf32 (CUDA) and bf16 are faster and move FID "
         "slightly (measured in benchmarks/README.md); the choice is named in every result row.")


def select_options(what: str):
    """``--select`` and ``--select-by`` (:mod:`unit_eval.selection`) for a command whose rows may span training
    iterations; ``what`` finishes the sentence "which ... " in the help."""
    def wrap(fn):
        fn = click.option("--select-by", default=None, metavar="[PROTOCOL:]METRIC",
                          help="The metric that ranks iterations for best/bestK [default: mfid, else fid].")(fn)
        fn = click.option("--select", default=None, metavar="last|best|bestK|iter=N",
                          help=f"Rows from several training iterations (a sweep): which {what}. best5 = the mean over "
                               "the five iterations with the best selection metric, as TUNIT reports mFID.")(fn)
        return fn

    return wrap


def official_tunit_options(fn):
    """``--img-size``, ``--k``, ``--sty-dim``: what an official TUNIT ``.ckpt`` cannot tell (clovaai/tunit's own
    defaults when not given); refused with a run.pt, which states its own."""
    fn = click.option("--sty-dim", type=click.IntRange(min=1), default=None,
                      help="Official TUNIT .ckpt only: its --sty_dim [default: 128, the official default].")(fn)
    fn = click.option("--k", "output_k", type=click.IntRange(min=1), default=None,
                      help="Official TUNIT .ckpt only: its --output_k (K-hat) [default: 10, the official default].")(fn)
    fn = click.option("--img-size", type=click.IntRange(min=1), default=None,
                      help="Official TUNIT .ckpt only: its --img_size [default: 128, the official default].")(fn)
    return fn


def official_tunit(img_size, output_k, sty_dim) -> dict:
    return {"img_size": img_size, "output_k": output_k, "sty_dim": sty_dim}


def writable_out(ctx, param, value):
    """Click callback: an output path is checked before any work (a folder, a file inside a file or a
    read-only place is one line, not a lost run)."""
    if value is not None:
        from ..results import check_writable

        check_writable(value, param.opts[0])
    return value


def bootstrap_options(fn):
    """``--bootstrap B``, ``--bootstrap-real``, ``--ci-level`` (FID, mFID, KID, D&C and evaluate)."""
    fn = click.option("--ci-level", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
                      show_default=True, help="Confidence level of the --bootstrap interval.")(fn)
    fn = click.option("--bootstrap-real", is_flag=True,
                      help="Resample the real set too (FID, KID; slower). D&C keeps the real k-NN balls fixed.")(fn)
    fn = click.option("--bootstrap", "bootstrap", type=click.IntRange(min=0), default=0, show_default=True,
                      help="Resample the fake features B times (seeded) and report a percentile interval beside each "
                           "FID/KID/D&C value (rows gain ci_low, ci_high, bootstrap).")(fn)
    return fn


def bootstrap_plan(bootstrap: int, bootstrap_real: bool, ci_level: float):
    from ..errors import UnitEvalError
    from ..evaluation.intervals import BootstrapPlan

    if bootstrap_real and not bootstrap:
        raise UnitEvalError("--bootstrap-real needs --bootstrap B (the number of resamples)")
    return BootstrapPlan(bootstrap, bootstrap_real, ci_level)


def note_sample_size(rows) -> None:
    """Say once on stderr when an FID was computed from fewer samples than feature dimensions."""
    from ..results import undersampled

    message = undersampled(rows)
    if message:
        info(f"note: {message}")


def interval_text(summary: dict, metric: str) -> str:
    """`` [95% CI low, high; B resamples]`` after a value when the summary holds its interval, else ''."""
    ci = summary.get("ci", {}).get(metric)
    if not ci:
        return ""
    return f" [{summary['ci_level']:.0%} CI {ci[0]:.4f}, {ci[1]:.4f}; {summary['bootstrap']} resamples]"
