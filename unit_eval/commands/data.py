"""``unit-eval data``: list, describe, materialise embedded sets, write synthetic paper-shaped sets, export paired sets."""
from __future__ import annotations

import click

from .common import emit, info, json_option

data_root_option = click.option(
    "--data-root", type=click.Path(file_okay=False), default=None,
    help="Where named datasets live (default: $UNIT_EVAL_DATA, else ./data).",
)


@click.group("data")
def data_group():
    """Datasets: the published benchmarks by name, and the embedded sets that install with unit-eval."""


@data_group.command("list")
@data_root_option
@json_option
def list_command(data_root, as_json):
    """Named datasets (found or not under the data root) and embedded sets."""
    from ..datasets import data_root as resolve_root, list_named
    from ..embedded import list_embedded

    named, embedded = list_named(data_root), list_embedded()
    lines = [f"named datasets (data root {resolve_root(data_root)}):"]
    for row in named:
        where = f"found at {row['found']}" if row["found"] else f"missing; layout {row['layout']}; from {row['source']}"
        lines.append(f"  {row['name']:<15} {row['title']}: {where}")
    lines.append("embedded datasets (unit-eval data materialize NAME):")
    for row in embedded:
        state = "materialized" if row["materialized"] else "not yet written"
        lines.append(f"  {row['name']:<15} {row['title']}: {row['path']} ({state})")
    emit({"named": named, "embedded": embedded}, as_json, "\n".join(lines))


@data_group.command("materialize")
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder to write the dataset into (default: <cache>/data/NAME).")
@click.option("--force", is_flag=True, help="Rewrite even when a complete copy is already there.")
@json_option
def materialize_command(name, out, force, as_json):
    """Write embedded dataset NAME (digits, photos, photos-paired) as image folders; idempotent."""
    from ..datasets import resolve_dataset
    from ..embedded import materialize

    path = materialize(name, out, force=force)
    description = resolve_dataset(path).describe()
    emit({"name": name, "path": str(path), "dataset": description}, as_json, str(path))


@data_group.command("synth", short_help="Write a SYNTHETIC set with a benchmark's shape (paper-scale dry runs).")
@click.argument("name", type=click.Choice(["animalfaces10-shape", "maps-shape"]))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="New or empty folder (or an earlier copy to rewrite).")
@click.option("--scale", type=click.FloatRange(min=0, max=1, min_open=True), default=1.0, show_default=True,
              help="Multiply every image count (tests use 0.01).")
@click.option("--size", type=click.IntRange(min=16), default=None, help="Image side in pixels (default: the benchmark's, 128 or 256).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rewrite even when a complete copy is already there.")
@json_option
def synth_command(name, out, scale, size, seed, force, as_json):
    """Write NAME, real photographs cut and recoloured into the shape of a benchmark, at its published counts.

    animalfaces10-shape: 10 classes x (740 train + 50 test) at 128 px. maps-shape: 1096 train satellites,
    1098 test satellite/map pairs at 256 px. The data are SYNTHETIC: the dataset name in every result row
    starts with 'synthetic-'.
    """
    from ..datasets import resolve_dataset
    from ..synth import write_synth

    path = write_synth(name, out, scale=scale, size=size, seed=seed, force=force)
    description = resolve_dataset(path).describe()
    emit({"name": name, "path": str(path), "dataset": description}, as_json, str(path))


@data_group.command("describe")
@click.argument("dataset")
@data_root_option
@click.option("--classes", default=None, help="Comma-separated class folders to keep (e.g. Food-10's ten).")
@click.option("--holdout", type=click.IntRange(min=1), default=None, help="Hold out the last N images per class as the test split.")
@json_option
def describe_command(dataset, data_root, classes, holdout, as_json):
    """Layout, split rule and counts per class of DATASET (a folder or a dataset name)."""
    from ..datasets import resolve_dataset

    ds = resolve_dataset(dataset, data_root, classes=_classes(classes), holdout=holdout)
    d = ds.describe()
    lines = [f"{d['name']} ({d['kind']}) at {d['root']}", f"layout: {d['layout']}", f"split: {d['split_rule']}"]
    for split, counts in d["counts"].items():
        total = sum(counts.values())
        shown = ", ".join(f"{c}: {n}" for c, n in list(counts.items())[:12]) + (", ..." if len(counts) > 12 else "")
        lines.append(f"{split}: {total} images ({shown})")
    if d.get("assumptions"):
        lines.append(f"assumed: {d['assumptions']}")
    emit(d, as_json, "\n".join(lines))


@data_group.command("export-pairs", short_help="Write a paired dataset (maps) as PNG folders in the UNIT split.")
@click.argument("dataset")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Empty or new folder to write.")
@data_root_option
@click.option("--size", type=click.IntRange(min=1), default=None, help="Resize every image to SIZE x SIZE (default: keep).")
@json_option
def export_pairs_command(dataset, out, data_root, size, as_json):
    """Write a paired DATASET (e.g. maps) as OUT/{train,test}/{source,target}/*.png in the UNIT split.

    OUT/train holds the two training domains (the UNIT trainer's --data); OUT/test/<target> is the
    ground truth for 'unit-eval pixacc', paired by file name with the translated OUT/test/<source>.
    """
    from ..datasets import resolve_paired

    ds = resolve_paired(dataset, data_root)
    info(f"exporting {ds.name}: {ds.split_rule}")
    path = ds.export(out, size=size)
    emit({"path": str(path), "dataset": ds.describe()}, as_json, str(path))


def _classes(text):
    if not text:
        return None
    return [c.strip() for c in text.split(",") if c.strip()]
