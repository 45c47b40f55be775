"""CLI commands over image folders and files: fid, kid, mfid, dc, lpips, diversity, cluster-acc, ioi, pixacc."""
from __future__ import annotations

import click

from ..errors import UnitEvalError
from .common import (bootstrap_options, bootstrap_plan, emit, interval_text, json_option, note_sample_size,
                     official_tunit, official_tunit_options, precision_option, writable_out)



def extractor_options(fn):
    fn = click.option("--size", type=click.IntRange(min=1), default=None, help="Resize every image to SIZE x SIZE first (recorded in results).")(fn)
    fn = click.option("--resize-filter", type=click.Choice(["bicubic", "bilinear", "lanczos", "nearest", "box"]), default="bicubic",
                      show_default=True, help="PIL filter used by --size.")(fn)
    fn = click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Images per forward pass (does not change results).")(fn)
    fn = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")(fn)
    fn = click.option("--workers", type=click.IntRange(min=0), default=None, help="Image decoding processes (default: min(4, cores)).")(fn)
    fn = click.option("--no-cache", is_flag=True, help="Do not read or write cached real-set features.")(fn)
    fn = precision_option(fn)
    return fn


def results_options(fn):
    fn = click.option("--out", "out", type=click.Path(dir_okay=False), default=None, callback=writable_out,
                      help="Append result rows to this JSONL file.")(fn)
    fn = click.option("--run", "run_name", default=None, help="Run name in result rows (default: the fake folder's name).")(fn)
    return fn


def _is_main() -> bool:
    """Under torchrun (fid, mfid, dc shard their extraction) only rank 0 prints and appends results."""
    from ..sharding import is_main

    return is_main()


def _extractor(device, batch_size, workers, precision):
    from ..features import InceptionFeatures

    return InceptionFeatures(device=device, batch_size=batch_size, num_workers=workers, progress=_is_main(),
                             precision=precision)


def _cache(no_cache):
    from ..features import FeatureCache

    return None if no_cache else FeatureCache()


def _finish(result, out, run_name, fake, as_json, text) -> None:
    """Print a folder command's result (rank 0 under torchrun), then append its rows: a failed write loses nothing."""
    from ..folders import summary

    if not _is_main():
        return
    note_sample_size(result.rows("-"))
    emit(summary(result), as_json, text(summary(result)))
    if out:
        from .evaluate import save_rows

        save_rows(out, result.rows(run_name or _name(fake)), "result")


def folder_pair_command(metric_fn: str, text):
    """A CLI command over two folders (REAL, FAKE) computing ``unit_eval.folders.<metric_fn>`` with the
    extractor, bootstrap, results and --json options; ``text(summary)`` is the human line."""
    def command(real, fake, size, resize_filter, batch_size, device, workers, no_cache, precision, bootstrap,
                bootstrap_real, ci_level, out, run_name, as_json):
        from .. import folders

        plan = bootstrap_plan(bootstrap, bootstrap_real, ci_level)
        extractor = _extractor(device, batch_size, workers, precision)
        result = getattr(folders, metric_fn)(real, fake, extractor, size, resize_filter, _cache(no_cache), plan)
        _finish(result, out, run_name, fake, as_json, text)

    for decorate in (json_option, results_options, bootstrap_options, extractor_options,
                     click.argument("fake", type=click.Path()), click.argument("real", type=click.Path())):
        command = decorate(command)
    return command


fid_command = click.command("fid", help="FID between the images in REAL and FAKE (recursive folders), TF-Inception "
                            "pool3.")(folder_pair_command(
    "folder_fid",
    lambda r: f"FID {r['fid']:.4f}{interval_text(r, 'fid')} ({r['n_real']} real, {r['n_fake']} fake)"))

kid_command = click.command("kid", help="KID between the images in REAL and FAKE (torch-fidelity's estimator: 100 "
                            "subsets of min(1000, set sizes), polynomial kernel; mean and std over subsets), "
                            "TF-Inception pool3.")(folder_pair_command(
    "folder_kid",
    lambda r: f"KID {r['kid']:.6f} ± {r['kid_std']:.6f}{interval_text(r, 'kid')} ({r['n_real']} real, "
              f"{r['n_fake']} fake)"))


@click.command("mfid")
@click.option("--real", type=click.Path(), default=None, help="Folder with one subfolder of real images per class.")
@click.option("--fake", type=click.Path(), default=None, help="Folder with the same class subfolders of generated images.")
@click.option("--ckpt", type=click.Path(), default=None,
              help="Evaluate a run.pt (or an official TUNIT .ckpt, see --img-size, --k, --sty-dim) instead of a fake folder.")
@click.option("--model", "model_spec", default=None, help="Evaluate a user model 'module:factory' (Translator interface).")
@click.option("--data", default=None, help="Dataset name or class-folder path (with --ckpt/--model).")
@click.option("--data-root", default=None, help="Root for named datasets (default $UNIT_EVAL_DATA or ./data).")
@click.option("--protocol", default="tunit-mfid", show_default=True, help="Protocol for --ckpt/--model.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Protocol seed (default: the protocol's).")
@official_tunit_options
@extractor_options
@bootstrap_options
@results_options
@json_option
def mfid_command(real, fake, ckpt, model_spec, data, data_root, protocol, seed, img_size, output_k, sty_dim, size,
                 resize_filter, batch_size, device, workers, no_cache, precision, bootstrap, bootstrap_real, ci_level,
                 out, run_name, as_json):
    """Class-wise mean FID: --real/--fake class folders, or --ckpt run.pt (or --model) with --data."""
    plan = bootstrap_plan(bootstrap, bootstrap_real, ci_level)
    if ckpt or model_spec:
        if not (data or real):
            raise UnitEvalError("--ckpt/--model needs --data DATASET (or --real with class folders)")
        from ..evaluation import evaluate, protocol_summary
        from ..protocol_specs import load_protocol
        from .evaluate import save_rows

        if "mfid" not in load_protocol(protocol).metrics:
            raise UnitEvalError(f"protocol {protocol!r} does not report mfid")
        results, rows = evaluate([protocol], ckpt=ckpt, model_spec=model_spec, data=data or real, data_root=data_root,
                                 seeds=[seed], device=device, batch_size=batch_size, no_cache=no_cache,
                                 out=out, save=False, run_name=run_name, precision=precision, progress=_is_main(),
                                 official_tunit=official_tunit(img_size, output_k, sty_dim), bootstrap=plan)
        if _is_main():
            note_sample_size(rows)
            emit(protocol_summary(results, rows, run_name), as_json, _mfid_text(results[0].summary()))
            if out:
                save_rows(out, rows, "results")
        return
    if not (real and fake):
        raise UnitEvalError("give --real and --fake class folders, or --ckpt run.pt with --data")
    from ..folders import folder_mfid

    extractor = _extractor(device, batch_size, workers, precision)
    result = folder_mfid(real, fake, extractor, size, resize_filter, _cache(no_cache), plan)
    _finish(result, out, run_name, fake, as_json, _mfid_text)


def _mfid_text(result):
    lines = [f"mFID {result['mfid']:.4f}{interval_text(result, 'mfid')}"] + \
        [f"  {c}: {v:.4f}" for c, v in result["per_class"].items()]
    return "\n".join(lines)


def _name(path):
    from pathlib import Path

    return Path(path).resolve().name


@click.command("dc")
@click.argument("real", type=click.Path())
@click.argument("fake", type=click.Path())
@click.option("--k", "k", type=click.IntRange(min=1), default=5, show_default=True, help="Nearest neighbour k (the D&C paper's k=5).")
@extractor_options
@bootstrap_options
@results_options
@json_option
def dc_command(real, fake, k, size, resize_filter, batch_size, device, workers, no_cache, precision, bootstrap,
               bootstrap_real, ci_level, out, run_name, as_json):
    """Density, coverage, precision and recall of FAKE against REAL (prdc semantics)."""
    from ..folders import folder_prdc

    plan = bootstrap_plan(bootstrap, False, ci_level)
    if bootstrap_real:
        raise UnitEvalError("--bootstrap-real does not apply to dc: the real set's k-NN balls are the reference")
    extractor = _extractor(device, batch_size, workers, precision)
    result = folder_prdc(real, fake, extractor, k, size, resize_filter, _cache(no_cache), plan)
    _finish(result, out, run_name, fake, as_json,
            lambda r: " ".join(f"{m} {r[m]:.4f}{interval_text(r, m)}" for m in ("density", "coverage", "precision",
                                                                                  "recall")))


def lpips_options(fn):
    fn = click.option("--net", type=click.Choice(["alex", "vgg"]), default="alex", show_default=True, help="LPIPS trunk (v0.1 linear layers).")(fn)
    fn = click.option("--size", type=click.IntRange(min=1), default=None, help="Resize images to SIZE x SIZE first.")(fn)
    fn = click.option("--resize-filter", type=click.Choice(["bicubic", "bilinear", "lanczos", "nearest", "box"]), default="bicubic", show_default=True)(fn)
    fn = click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)(fn)
    fn = click.option("--device", default="auto", show_default=True)(fn)
    return fn


@click.command("lpips")
@click.argument("dir_a", type=click.Path())
@click.argument("dir_b", type=click.Path())
@lpips_options
@click.option("--per-pair", is_flag=True, help="Include every pair's distance in the output.")
@json_option
def lpips_command(dir_a, dir_b, net, size, resize_filter, batch_size, device, per_pair, as_json):
    """Mean LPIPS between images of DIR_A and DIR_B paired by relative path."""
    from ..device import resolve_device
    from ..folders import folder_lpips
    from ..weights import load_lpips

    model = load_lpips(net, resolve_device(device))
    result = folder_lpips(dir_a, dir_b, model, size, resize_filter, batch_size)
    if not per_pair:
        result.pop("per_pair")
    result["net"] = f"{net}-v0.1"
    emit(result, as_json, f"LPIPS ({net}) {result['lpips']:.4f} over {result['n_pairs']} pairs")


@click.command("diversity")
@click.argument("folder", type=click.Path())
@lpips_options
@json_option
def diversity_command(folder, net, size, resize_filter, batch_size, device, as_json):
    """LPIPS diversity: each subfolder of FOLDER holds several outputs of one input (StarGAN v2 protocol)."""
    from ..device import resolve_device
    from ..folders import folder_diversity
    from ..weights import load_lpips

    model = load_lpips(net, resolve_device(device))
    result = folder_diversity(folder, model, size, resize_filter, batch_size)
    result["net"] = f"{net}-v0.1"
    emit(result, as_json, f"LPIPS diversity ({net}) {result['lpips_diversity']:.4f} over {result['n_inputs']} inputs")


@click.command("cluster-acc")
@click.argument("csv_path", metavar="CSV", type=click.Path())
@json_option
def cluster_acc_command(csv_path, as_json):
    """Cluster accuracy from a CSV with columns pred,label: Hungarian (one-to-one), majority (many-to-one), NMI."""
    from ..folders import cluster_scores, read_cluster_csv

    result = cluster_scores(*read_cluster_csv(csv_path))
    emit(result, as_json, f"accuracy {result['accuracy']:.4f} (Hungarian), {result['accuracy_majority']:.4f} (majority), NMI {result['nmi']:.4f}")


@click.command("ioi")
@click.argument("codes_path", metavar="CODES", type=click.Path())
@json_option
def ioi_command(codes_path, as_json):
    """IOI of style codes: CODES is .npz (codes, clusters) or .csv (a 'cluster' column plus code columns)."""
    from ..folders import read_codes
    from ..metrics.cluster import ioi

    codes, clusters = read_codes(codes_path)
    result = {"ioi": ioi(codes, clusters), "n": int(len(clusters))}
    emit(result, as_json, f"IOI {result['ioi']:.4f}")


@click.command("pixacc")
@click.argument("pred", type=click.Path())
@click.argument("gt", type=click.Path())
@click.option("--threshold", type=click.IntRange(min=1, max=256), default=16, show_default=True, help="Max-channel colour difference must be below this (UNIT paper: 16).")
@click.option("--size", type=click.IntRange(min=1), default=None, help="Resize both sides to SIZE x SIZE first (nearest filter).")
@json_option
def pixacc_command(pred, gt, threshold, size, as_json):
    """Pixel accuracy of predicted maps against ground truth, paired by file name, pooled over all pixels."""
    from ..folders import folder_pixacc

    result = folder_pixacc(pred, gt, threshold, size)
    emit(result, as_json, f"pixel accuracy {result['pixel_accuracy']:.4f} over {result['n_images']} images (threshold {threshold})")
