"""``unit-eval sweep``: evaluate every snapshot of one or more runs (see :mod:`unit_eval.evaluation.sweep`)."""
from __future__ import annotations

import click

from .common import emit, json_option, precision_option, writable_out


@click.command("sweep")
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("--protocol", "protocols", multiple=True, required=True,
              help="Protocol name (see 'unit-eval protocols') or a .toml file; repeat for several.")
@click.option("--data", required=True, help="Dataset name (afhq, animalfaces10, maps, digits, ...) or folder.")
@click.option("--data-root", default=None, help="Root for named datasets (default $UNIT_EVAL_DATA or ./data).")
@click.option("--out", type=click.Path(dir_okay=False), required=True, callback=writable_out,
              help="Results JSONL: rows already there are not evaluated again; each checkpoint's rows are appended at once.")
@click.option("--run", "run_name", default=None, help="Run name in result rows (default: each checkpoint's run folder).")
@click.option("--seed", "seeds", type=click.IntRange(min=0), multiple=True, help="Seed(s) (default: the protocol's seed).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ... (under torchrun: each rank's GPU).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per forward pass.")
@click.option("--no-cache", is_flag=True, help="Do not read or write cached real-set features.")
@click.option("--classifier", default=None, metavar="CLF.pt|module:factory",
              help="Translation-accuracy protocols: the oracle classifier (as 'unit-eval evaluate --classifier'); rows of "
                   "another classifier already in --out do not count as done.")
@precision_option
@json_option
def sweep_command(inputs, protocols, data, data_root, out, run_name, seeds, device, batch_size, no_cache, classifier,
                  precision, as_json):
    """Evaluate every checkpoint of the RUN_DIRs (snapshots/iter_*.pt in order, then run.pt) or files given.

    Checkpoints whose rows (same checkpoint sha256, protocol, seed, numerics and dataset) are already in --out are
    skipped (translation accuracy: and classifier), so a killed sweep run again finishes the rest. Real-set features are extracted once. Under torchrun
    (torchrun --nproc_per_node N -m unit_eval.cli sweep ...) the checkpoints are dealt to the ranks and rank 0
    appends the rows; they equal a one-process sweep's. Then: unit-eval table --select best5, unit-eval plot curves.
    """
    from ..evaluation.sweep import sweep
    from ..sharding import is_main

    summary = sweep(list(inputs), list(protocols), data=data, data_root=data_root, out=out, seeds=list(seeds) or [None],
                    device=device, batch_size=batch_size, no_cache=no_cache, run_name=run_name, precision=precision,
                    progress=True, classifier=classifier)
    if not is_main():
        return
    human = (f"evaluated {len(summary['evaluated'])} checkpoint(s), skipped {len(summary['skipped'])} already in "
             f"{out}; appended {summary['rows']} rows")
    emit(summary, as_json, human)
