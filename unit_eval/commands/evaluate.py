"""``unit-eval evaluate`` (protocols against a checkpoint, a user model or a folder of generated images)
and ``unit-eval protocols`` (what protocols exist, where they come from)."""
from __future__ import annotations

import click

from .common import (bootstrap_options, bootstrap_plan, emit, info, json_option, note_sample_size, official_tunit,
                     official_tunit_options, precision_option, writable_out)


@click.command("evaluate")
@click.option("--ckpt", type=click.Path(), default=None,
              help="A run.pt checkpoint of a bundled baseline, or an official TUNIT .ckpt (see --img-size, --k, --sty-dim).")
@click.option("--model", "model_spec", default=None, help="A user model 'module:factory' (Translator interface).")
@click.option("--fake", type=click.Path(), default=None,
              help="A folder of already generated images (mFID kinds: class subfolders; D&C: any; pixel accuracy: files named by pair).")
@click.option("--protocol", "protocols", multiple=True, required=True,
              help="Protocol name (see 'unit-eval protocols') or path to a .toml file; repeat for several.")
@click.option("--data", required=True, help="Dataset name (afhq, animalfaces10, maps, digits, ...) or folder.")
@click.option("--data-root", default=None, help="Root for named datasets (default $UNIT_EVAL_DATA or ./data).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, callback=writable_out,
              help="Append result rows to this JSONL file (all at once, after the last evaluation).")
@click.option("--run", "run_name", default=None, help="Run name in result rows (default: the checkpoint's folder, model spec or fake folder).")
@click.option("--seed", "seeds", type=click.IntRange(min=0), multiple=True, help="Seed(s); each gives its own row set (default: the protocol's seed).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per forward pass (same samples at any size; numbers equal up to float round-off).")
@click.option("--no-cache", is_flag=True, help="Do not read or write cached real-set features.")
@click.option("--save-images", type=click.Path(file_okay=False), default=None,
              help="Also write every generated image as PNG under DIR/<protocol>/seed<S>/.")
@click.option("--target-domain", type=click.IntRange(min=0), default=None,
              help="Pixel-accuracy protocols: the model's index of the target domain, for a model without domain_names "
                   "(by default the protocol's target is looked up by name).")
@click.option("--classifier", default=None, metavar="CLF.pt|module:factory",
              help="Translation-accuracy protocols: the oracle classifier, a checkpoint of 'unit-eval train classifier' "
                   "or a user's 'module:factory' (class_names, classify).")
@official_tunit_options
@precision_option
@bootstrap_options
@json_option
def evaluate_command(ckpt, model_spec, fake, protocols, data, data_root, out, run_name, seeds, device, batch_size, no_cache,
                     save_images, target_domain, classifier, img_size, output_k, sty_dim, precision, bootstrap,
                     bootstrap_real, ci_level, as_json):
    """Run evaluation protocols and append one result row per (run, protocol, metric, class, seed).

    Under torchrun, generation and feature extraction of the FID and D&C protocols are sharded over the ranks;
    rank 0 alone prints and appends rows."""
    from ..evaluation import evaluate
    from ..sharding import is_main

    plan = bootstrap_plan(bootstrap, bootstrap_real, ci_level)
    results, rows = evaluate(list(protocols), ckpt=ckpt, model_spec=model_spec, fake=fake, data=data, data_root=data_root,
                             seeds=list(seeds) or [None], device=device, batch_size=batch_size, no_cache=no_cache,
                             out=out, save=False, run_name=run_name, save_images=save_images, precision=precision, progress=is_main(),
                             target_domain=target_domain, official_tunit=official_tunit(img_size, output_k, sty_dim),
                             bootstrap=plan, classifier=classifier)
    if not is_main():
        return
    note_sample_size(rows)
    payload = {"run": rows[0]["run"] if rows else run_name, "out": out, "results": [r.summary() for r in results], "rows": rows}
    emit(payload, as_json, "\n".join(_text(r) for r in results))
    if out:
        save_rows(out, rows, "results")


def save_rows(out: str, rows: list[dict], printed: str) -> None:
    """Append after the results were printed, so a failed write loses nothing that was computed; ``printed`` names
    what was printed ("result", "results")."""
    from ..errors import UnitEvalError
    from ..results import append_rows

    try:
        append_rows(out, rows)
    except UnitEvalError as exc:
        raise UnitEvalError(f"{exc}; the {printed} printed above {'were' if printed.endswith('s') else 'was'} not saved") from None
    info(f"appended {len(rows)} rows to {out}")


def _text(result) -> str:
    from ..results import MEAN

    head = [f"{result.protocol} (seed {result.seed}):"]
    for metric, per in result.values.items():
        mean = per.get(MEAN)
        classes = {c: v for c, v in per.items() if c != MEAN}
        if mean is not None:
            ci = result.intervals.get(metric, {}).get(MEAN)
            head.append(f"  {metric} {mean:.4f}" + (f" [{ci.level:.0%} CI {ci.low:.4f}, {ci.high:.4f}]" if ci else ""))
        if classes:
            head.append("  " + ", ".join(f"{metric}[{c}] {v:.4f}" for c, v in classes.items()))
    return "\n".join(head)


@click.command("protocols")
@json_option
def protocols_command(as_json):
    """List the shipped evaluation protocols with their source and description."""
    from ..protocol_specs import list_protocols

    specs = list_protocols()
    payload = {"protocols": [s.summary() for s in specs]}
    lines = []
    for s in specs:
        lines.append(f"{s.name}  [{s.kind}; needs {', '.join(s.model_methods())}"
                     f"{'; or --fake DIR' if s.fake_folder else ''}]")
        lines.append(f"    {s.description}")
        lines.append(f"    source: {s.source}")
    emit(payload, as_json, "\n".join(lines))
