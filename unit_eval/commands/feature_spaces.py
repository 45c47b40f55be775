"""``unit-eval fd REAL FAKE --features NAME`` (Fréchet distance in any feature space; FD_DINOv2 by default) and
``unit-eval cmmd REAL FAKE`` (CMMD on CLIP ViT-L/14@336px embeddings). Every row and ``--json`` object names the
extractor, its dimension, preprocessing and weights sha256."""
from __future__ import annotations

from pathlib import Path

import click

from .common import emit, json_option
from .metrics import _is_main, results_options

_FD_METRIC = {"inception": "fid", "dinov2-vitl14": "fd_dinov2", "dinov2-vitb14": "fd_dinov2_vitb14",
              "clip-vitl14-336": "fd_clip", "torchvision-inception": "fid_torchvision"}


def _options(fn):
    fn = click.option("--weights", type=click.Path(dir_okay=False), default=None,
                      help="The network's official weights file (its sha256 must be the pinned one) instead of "
                           "the one `unit-eval weights status` lists.")(fn)
    fn = click.option("--size", type=click.IntRange(min=1), default=None,
                      help="Resize every image to SIZE x SIZE first (before the extractor's own preprocessing).")(fn)
    fn = click.option("--resize-filter", type=click.Choice(["bicubic", "bilinear", "lanczos", "nearest", "box"]),
                      default="bicubic", show_default=True, help="PIL filter used by --size.")(fn)
    fn = click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                      help="Images per forward pass (does not change results).")(fn)
    fn = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1, ...")(fn)
    fn = click.option("--workers", type=click.IntRange(min=0), default=None,
                      help="Image decoding processes (default: min(4, cores)).")(fn)
    fn = click.option("--no-cache", is_flag=True, help="Do not read or write cached real-set features.")(fn)
    return results_options(fn)


def _extractor(name, preprocessing, weights, device, batch_size, workers):
    from ..extractors import get_extractor

    return get_extractor(name, device=device, weights=weights, preprocessing=preprocessing, batch_size=batch_size,
                         num_workers=workers, progress=_is_main())


def _cache(no_cache):
    from ..features import FeatureCache

    return None if no_cache else FeatureCache()


def _result(protocol, metric, value, n_real, n_fake, extractor, size, resize_filter, real):
    from ..extractors import provenance
    from ..results import MEAN, ProtocolResult

    options = {"size": size, "resize_filter": resize_filter if size else None, **provenance(extractor)}
    return ProtocolResult(protocol=protocol, seed=None, values={metric: {MEAN: float(value)}},
                          n_real={MEAN: n_real}, n_fake={MEAN: n_fake}, extractor=extractor.describe(),
                          options=options, dataset=Path(real).resolve().name)


def folder_fd(real, fake, extractor, size=None, resize_filter="bicubic", cache=None):
    """Fréchet distance of ``fake`` to ``real`` in ``extractor``'s feature space (real features through ``cache``)."""
    from ..evaluation.realsets import RealSets
    from ..images import list_images

    real_g = RealSets(cache).gaussian(list_images(real), extractor, size, resize_filter, "real")
    fake_g = RealSets(None).gaussian(list_images(fake), extractor, size, resize_filter, "fake")
    metric = _FD_METRIC.get(getattr(extractor, "name", ""), "fd")
    return _result("fd", metric, real_g.fid(fake_g), real_g.n, fake_g.n, extractor, size, resize_filter, real)


def folder_cmmd(real, fake, extractor, size=None, resize_filter="bicubic", cache=None):
    """CMMD of ``fake`` against ``real`` on ``extractor``'s embeddings (real embeddings through ``cache``)."""
    from ..evaluation.realsets import RealSets
    from ..images import list_images
    from ..metrics.cmmd import cmmd

    real_f = RealSets(cache).features(list_images(real), extractor, size, resize_filter, "real")
    fake_f = RealSets(None).features(list_images(fake), extractor, size, resize_filter, "fake")
    return _result("cmmd", "cmmd", cmmd(real_f, fake_f), len(real_f), len(fake_f), extractor, size, resize_filter, real)


def summary(result) -> dict:
    from ..results import MEAN

    out = {metric: per[MEAN] for metric, per in result.values.items()}
    out.update(n_real=result.n_real[MEAN], n_fake=result.n_fake[MEAN], extractor=result.extractor)
    out.update({k: result.options[k] for k in ("feature_extractor", "feature_dim", "preprocessing", "weights_sha256")})
    return out


def _finish(result, out, run_name, fake, as_json) -> None:
    if not _is_main():
        return
    s = summary(result)
    metric = next(iter(result.values))
    emit(s, as_json, f"{metric} {s[metric]:.4f} ({s['n_real']} real, {s['n_fake']} fake; {s['feature_extractor']}, "
                     f"{s['feature_dim']}-d, {s['preprocessing']}, weights sha256 {s['weights_sha256'][:16]}...)")
    if out:
        from ..results import append_rows
        from .common import info

        rows = result.rows(run_name or Path(fake).resolve().name)
        append_rows(out, rows)
        info(f"appended {len(rows)} rows to {out}")


@click.command("fd")
@click.argument("real", type=click.Path())
@click.argument("fake", type=click.Path())
@click.option("--features", "features", type=click.Choice(list(_FD_METRIC)), default="dinov2-vitl14",
              show_default=True, help="The feature space (dinov2-vitl14: FD_DINOv2 as dgm-eval and EDM2).")
@click.option("--preprocessing", default=None,
              help="The extractor's preprocessing [DINOv2: dgm-eval-pil (default) or edm2-torch; "
                   "inception: tf1-bilinear; CLIP: cmmd-pil; torchvision-inception: stargan-v2, StarGAN v2's "
                   "calculate_fid_given_paths with --size IMG_SIZE --resize-filter bilinear].")
@_options
@json_option
def fd_command(real, fake, features, preprocessing, weights, size, resize_filter, batch_size, device, workers,
               no_cache, out, run_name, as_json):
    """Fréchet distance between the images in REAL and FAKE in a chosen feature space (default FD_DINOv2)."""
    extractor = _extractor(features, preprocessing, weights, device, batch_size, workers)
    _finish(folder_fd(real, fake, extractor, size, resize_filter, _cache(no_cache)), out, run_name, fake, as_json)


@click.command("cmmd")
@click.argument("real", type=click.Path())
@click.argument("fake", type=click.Path())
@_options
@json_option
def cmmd_command(real, fake, weights, size, resize_filter, batch_size, device, workers, no_cache, out, run_name, as_json):
    """CMMD between the images in REAL and FAKE: RBF-kernel MMD (sigma 10, x1000) on CLIP ViT-L/14@336px embeddings."""
    extractor = _extractor("clip-vitl14-336", None, weights, device, batch_size, workers)
    _finish(folder_cmmd(real, fake, extractor, size, resize_filter, _cache(no_cache)), out, run_name, fake, as_json)
