"""The ``cluster`` protocol kind: cluster accuracy (Hungarian when K-hat = K, majority), NMI and IOI of style codes,
from the guiding network the protocol names (TUNIT Sec. 4.2; clovaai/tunit ``validation/cluster_eval.py``)."""
from __future__ import annotations

import inspect
from typing import Callable

import numpy as np
import torch

from ..errors import UnitEvalError
from ..protocol_specs import ClusterEval
from ..results import MEAN, ProtocolResult
from .batches import ImageCache, model_batches
from .sampling import check_classes, pooled


def with_ema(method: Callable, ema: bool) -> tuple[Callable, str]:
    """``method`` bound to the guiding network a protocol asks for, and which network that is.

    A model whose method takes ``ema`` (the bundled TUNIT) is called with it; any other model has one network,
    which is what gets scored (and named so in the row's options)."""
    try:
        takes_ema = "ema" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        takes_ema = False
    if takes_ema:
        return (lambda x: method(x, ema=ema)), ("ema" if ema else "non-ema")
    return method, "the model's only network (its method takes no ema argument)"


def cluster_scores(runner, spec: ClusterEval, seed: int) -> ProtocolResult:
    from ..metrics import cluster as cm

    split = runner.split(spec.split)
    classes = check_classes(split, spec.name)
    size = runner.image_size
    images = ImageCache(size, spec.resize_filter, capacity=0)
    pool = pooled(split)
    bs = runner.settings.batch_size
    ema = spec.guiding_network == "ema"
    cluster_fn, cluster_net = with_ema(runner.model.cluster, ema)
    style_fn, style_net = with_ema(runner.model.style, ema)
    batches = ((images.uint8([p for _, p in pool[start: start + bs]]),) for start in range(0, len(pool), bs))
    preds, codes = [], []
    for (x,), (ids, style) in model_batches(lambda x: (cluster_fn(x), style_fn(x)), batches, runner.settings.device):
        ids = torch.as_tensor(ids).detach().cpu()
        style = torch.as_tensor(style).detach().cpu()
        if ids.ndim != 1 or ids.shape[0] != x.shape[0] or ids.is_floating_point():
            raise UnitEvalError(f"{spec.name}: model.cluster must return {x.shape[0]} integer ids, got "
                                f"{tuple(ids.shape)} {ids.dtype}")
        if style.ndim != 2 or style.shape[0] != x.shape[0]:
            raise UnitEvalError(f"{spec.name}: model.style must return {x.shape[0]} x D codes, got {tuple(style.shape)}")
        preds.append(ids.numpy())
        codes.append(style.double().numpy())
    pred = np.concatenate(preds)
    label = np.array([classes.index(c) for c, _ in pool])
    code = np.concatenate(codes)
    n_domains = getattr(runner.model, "num_domains", None)
    k_hat = int(n_domains) if isinstance(n_domains, int) else int(pred.max()) + 1
    values = {}
    if k_hat == len(classes):  # clovaai/tunit validation.py: cluster_eval only when output_k == len(att_to_use)
        values["cluster_acc"] = {MEAN: cm.hungarian_accuracy(pred, label)}
    values["cluster_acc_majority"] = {MEAN: cm.majority_accuracy(pred, label)}
    values["nmi"] = {MEAN: cm.nmi(pred, label)}
    groups = pred if spec.ioi_groups == "predicted" else label
    if len(np.unique(groups)) >= 2:
        values["ioi"] = {MEAN: cm.ioi(code, groups)}
        ioi_note = "reported"
    else:  # a collapsed clustering: the accuracies say so; IOI (a ratio between clusters) does not exist
        ioi_note = "not reported: every image fell in one cluster, so there is no inter-cluster variance"
    options = runner.options(
        spec, size, n_clusters_found=int(len(np.unique(pred))), num_domains=n_domains, k_hat=k_hat,
        n_classes=len(classes), cluster_network=cluster_net, style_network=style_net,
        hungarian="reported (K-hat = K)" if k_hat == len(classes) else
        f"not reported: K-hat {k_hat} != K {len(classes)} (as the official code)", ioi=ioi_note)
    return ProtocolResult(spec.name, seed, values, {MEAN: len(pool)}, {}, None, options)
