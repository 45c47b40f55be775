"""TUNIT as a unit-eval Translator: from a ``run.pt`` (:func:`from_run`) or an official ``.ckpt``
(:func:`from_official_ckpt`).

Methods (images are float B x 3 x S x S in [-1, 1], S = ``image_size``):

- ``translate(source, reference)``: G_ema(source, E_ema style of reference); a single reference
  is broadcast over the sources.
- ``style(images, ema=True)``: B x 128 guiding-network style codes (EMA by default, as translation uses).
- ``cluster(images, ema=True)``: B pseudo-domain ids (argmax of the cluster head); ``ema=False`` uses
  the non-EMA guiding network, which is what the official cluster-accuracy code evaluates. A model
  without the non-EMA network (an official ``.ckpt`` lacking ``C_state_dict``) refuses ``ema=False``.
- ``domain_names``: None. TUNIT's domains are unlabelled clusters, so nothing names them; protocols
  that ask for a domain by name need an explicit index for this model.
- ``translate_to_domain(source, domain)``: G_ema with the *average style code of a pseudo-domain*;
  the averages are stored in run.pt by the trainer (EMA guiding network over the training set,
  eval transform) or computed with ``set_domain_styles(images)`` (needed for official checkpoints).
  ``domain`` is an int or a B tensor of ids.
- ``translate_with_style(source, styles)``.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import torch

from unit_eval.checkpoint import load_weights_only
from unit_eval.errors import UnitEvalError

from .networks import GuidingNet, Generator, build_networks, check_img_size, default_width, official_to_local


@contextlib.contextmanager
def _eval(*nets):
    modes = [n.training for n in nets if n is not None]
    for n in nets:
        if n is not None:
            n.eval()
    try:
        yield
    finally:
        for n, m in zip([n for n in nets if n is not None], modes):
            n.train(m)


class TunitTranslator:
    def __init__(self, generator: Generator, guide: GuidingNet, *, image_size: int, num_domains: int,
                 device: torch.device | str = "cpu", guide_raw: GuidingNet | None = None,
                 domain_styles: torch.Tensor | None = None, domain_counts: torch.Tensor | None = None,
                 batch_size: int = 64):
        self.generator, self.guide, self.guide_raw = generator, guide, guide_raw
        self.image_size = int(image_size)
        self.num_domains = int(num_domains)
        self.device = torch.device(device)
        self.domain_styles = domain_styles
        self.domain_counts = domain_counts
        self.batch_size = int(batch_size)
        self.name = "tunit"
        self.domain_names = None

    # ---------------------------------------------------------------- helpers
    def _prep(self, x: torch.Tensor, what: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            raise UnitEvalError(f"TUNIT {what} must be a B x 3 x H x W tensor, got {tuple(getattr(x, 'shape', ()))}")
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise UnitEvalError(f"TUNIT works at {self.image_size} px; {what} is {x.shape[-2]}x{x.shape[-1]} (resize first)")
        return x.to(self.device, torch.float32)

    def _chunks(self, n: int):
        for i in range(0, n, self.batch_size):
            yield slice(i, min(n, i + self.batch_size))

    # ---------------------------------------------------------------- Translator interface
    def _guide(self, ema: bool) -> GuidingNet:
        if ema:
            return self.guide
        if self.guide_raw is None:
            raise UnitEvalError("this TUNIT model has no non-EMA guiding network (an official .ckpt without C_state_dict); "
                                "score the EMA one (guiding_network = \"ema\")")
        return self.guide_raw

    @torch.no_grad()
    def style(self, images: torch.Tensor, ema: bool = True) -> torch.Tensor:
        net = self._guide(ema)
        x = self._prep(images, "images")
        if x.shape[0] == 0:
            return torch.zeros(0, net.sty_dim, device=self.device)
        with _eval(net):
            return torch.cat([net.style(x[s]).float() for s in self._chunks(x.shape[0])])

    @torch.no_grad()
    def cluster(self, images: torch.Tensor, ema: bool = True) -> torch.Tensor:
        net = self._guide(ema)
        x = self._prep(images, "images")
        with _eval(net):
            return torch.cat([net.cluster_logits(x[s]).argmax(1) for s in self._chunks(x.shape[0])])

    @torch.no_grad()
    def translate_with_style(self, source: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        x = self._prep(source, "source")
        s = styles.to(self.device, torch.float32)
        if s.shape[0] == 1 and x.shape[0] > 1:
            s = s.expand(x.shape[0], -1)
        if s.shape[0] != x.shape[0]:
            raise UnitEvalError(f"got {x.shape[0]} sources but {s.shape[0]} styles/references")
        with _eval(self.generator):
            return torch.cat([self.generator(x[c], s[c]).float() for c in self._chunks(x.shape[0])])

    @torch.no_grad()
    def translate(self, source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return self.translate_with_style(source, self.style(reference))

    @torch.no_grad()
    def translate_to_domain(self, source: torch.Tensor, domain) -> torch.Tensor:
        if self.domain_styles is None:
            raise UnitEvalError("this TUNIT model has no per-domain average styles; call set_domain_styles(images) first")
        ids = torch.as_tensor(domain, dtype=torch.long, device=self.device).reshape(-1)
        if ((ids < 0) | (ids >= self.num_domains)).any():
            raise UnitEvalError(f"domain ids must be in [0, {self.num_domains}), got {ids.tolist()[:8]}")
        empty = [int(i) for i in ids.unique().tolist() if int(self.domain_counts[i]) == 0]
        if empty:
            raise UnitEvalError(f"pseudo-domain(s) {empty} received no images when the average styles were computed")
        return self.translate_with_style(source, self.domain_styles.to(self.device)[ids])

    @torch.no_grad()
    def set_domain_styles(self, images) -> None:
        """Average EMA style per pseudo-domain (EMA cluster head) over ``images``: a tensor or an
        iterable of tensors (batches)."""
        if isinstance(images, torch.Tensor):
            images = [images]
        d = self.guide.sty_dim
        sums = torch.zeros(self.num_domains, d, dtype=torch.float64, device=self.device)
        counts = torch.zeros(self.num_domains, dtype=torch.long, device=self.device)
        with _eval(self.guide):
            for batch in images:
                x = self._prep(batch, "images")
                for c in self._chunks(x.shape[0]):
                    logits, s = self.guide(x[c])
                    ids = logits.argmax(1)
                    sums.index_add_(0, ids, s.double())
                    counts += torch.bincount(ids, minlength=self.num_domains)
        if int(counts.sum()) == 0:
            raise UnitEvalError("no images given to compute the per-domain styles")
        self.domain_styles = (sums / counts.clamp_min(1).unsqueeze(1)).float()
        self.domain_counts = counts

    def to(self, device):
        self.device = torch.device(device)
        for net in (self.generator, self.guide, self.guide_raw):
            if net is not None:
                net.to(self.device)
        if self.domain_styles is not None:
            self.domain_styles = self.domain_styles.to(self.device)
            self.domain_counts = self.domain_counts.to(self.device)
        return self


def _split(state: dict, prefix: str) -> dict:
    n = len(prefix)
    return {k[n:]: v for k, v in state.items() if k.startswith(prefix)}


def _load(net: torch.nn.Module, sd: dict, what: str) -> None:
    try:
        net.load_state_dict(sd)
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        raise UnitEvalError(f"TUNIT {what} weights do not match the configuration: {str(exc).splitlines()[0][:200]}") from None


def from_run(run: dict, device: torch.device | str = "cpu") -> TunitTranslator:
    """Rebuild the EMA generator and guiding network of a TUNIT run.pt (see ``unit_eval.checkpoint``)."""
    if run.get("model") != "tunit":
        raise UnitEvalError(f"not a TUNIT checkpoint (model {run.get('model')!r})")
    config, sd = run["config"], run["state_dict"]
    missing = [k for k in ("img_size", "k", "sty_dim") if config.get(k) is None]
    if missing:
        raise UnitEvalError(f"TUNIT checkpoint config lacks {', '.join(missing)}")
    device = torch.device(device)
    guide, gen, _ = build_networks(config, with_discriminator=False)
    _load(gen, _split(sd, "generator."), "generator")
    _load(guide, _split(sd, "guide."), "guiding-network")
    raw = None
    raw_sd = _split(sd, "guide_raw.")
    if raw_sd:
        raw = build_networks(config, with_discriminator=False)[0]
        _load(raw, raw_sd, "guiding-network (non-EMA)")
    tr = TunitTranslator(gen, guide, guide_raw=raw, image_size=int(config["img_size"]), num_domains=int(config["k"]),
                         device=device, domain_styles=sd.get("domain_styles"), domain_counts=sd.get("domain_counts"))
    tr.to(device)
    for net in (gen, guide, raw):
        if net is not None:
            net.eval()
    return tr


# clovaai/tunit main.py's argument defaults: --img_size 128, --output_k 10, --sty_dim 128.
OFFICIAL_DEFAULTS = {"img_size": 128, "output_k": 10, "sty_dim": 128}


def from_official_ckpt(path: str | os.PathLike, img_size: int = OFFICIAL_DEFAULTS["img_size"],
                       sty_dim: int = OFFICIAL_DEFAULTS["sty_dim"], output_k: int = OFFICIAL_DEFAULTS["output_k"],
                       device: torch.device | str = "cpu") -> TunitTranslator:
    """Load an official clovaai/tunit ``.ckpt`` (``{C,C_EMA,D,G,G_EMA}_state_dict``, optional ``module.``
    prefixes) with ``weights_only=True``; uses ``G_EMA`` and ``C_EMA`` (and ``C`` for ``cluster(ema=False)``).

    ``img_size``, ``sty_dim`` and ``output_k`` (K-hat) are the official run's arguments (defaults: the official
    ones); the widths are the official ones (64 below 256 px, 32 from 256 px for G; 64 for the guiding network).
    The per-domain average styles are not in official checkpoints: call ``set_domain_styles``.
    """
    path = Path(path)
    ckpt = load_weights_only(path, "{path} is not loadable with weights_only=True ({reason})")
    return from_official_state(ckpt, path, img_size=img_size, sty_dim=sty_dim, output_k=output_k, device=device)


def _head_shape(state: dict, name: str) -> tuple[int, ...] | None:
    for key in (name, f"module.{name}"):
        value = state.get(key)
        if isinstance(value, torch.Tensor):
            return tuple(value.shape)
    return None


def from_official_state(ckpt, path: str | os.PathLike, img_size: int = OFFICIAL_DEFAULTS["img_size"],
                        sty_dim: int = OFFICIAL_DEFAULTS["sty_dim"], output_k: int = OFFICIAL_DEFAULTS["output_k"],
                        device: torch.device | str = "cpu") -> TunitTranslator:
    """:func:`from_official_ckpt` on an already loaded checkpoint. ``output_k`` and ``sty_dim`` are checked
    against the guiding network's heads and ``img_size`` against the generator's layers: a wrong guess is a
    one-line error that says what the file holds, never a shape traceback."""
    path = Path(path)
    if not isinstance(ckpt, dict) or "G_EMA_state_dict" not in ckpt or "C_EMA_state_dict" not in ckpt:
        keys = sorted(ckpt)[:6] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UnitEvalError(f"{path} is not an official TUNIT checkpoint (no G_EMA_state_dict/C_EMA_state_dict; found {keys})")
    for name in ("G_EMA_state_dict", "C_EMA_state_dict", "C_state_dict"):
        if name in ckpt and not isinstance(ckpt[name], dict):
            raise UnitEvalError(f"{path}: {name} is not a state dict")
    disc, cont = _head_shape(ckpt["C_EMA_state_dict"], "disc.weight"), _head_shape(ckpt["C_EMA_state_dict"], "cont.weight")
    if disc is not None and disc[0] != int(output_k):
        raise UnitEvalError(f"{path}: its guiding network has {disc[0]} clusters, not output_k {output_k}; pass --k {disc[0]}")
    if cont is not None and cont[0] != int(sty_dim):
        raise UnitEvalError(f"{path}: its style codes have {cont[0]} dimensions, not sty_dim {sty_dim}; pass --sty-dim {cont[0]}")
    img_size = check_img_size(img_size)
    config = {"img_size": img_size, "k": int(output_k), "sty_dim": int(sty_dim), "g_ch": default_width(img_size),
              "e_ch": 64, "mlp_ch": 256, "n_res": 2}
    gen = Generator(img_size=img_size, sty_dim=int(sty_dim), ch=config["g_ch"], n_res=2, mlp_ch=256)
    guide = GuidingNet(k=int(output_k), sty_dim=int(sty_dim), ch=64)
    wrong_size = (f"{path}: its generator does not fit img_size {img_size}; pass the --img-size it was trained at "
                  "(a power of two; the official default is 128)")
    try:
        _load(gen, official_to_local(ckpt["G_EMA_state_dict"], "generator", img_size), "generator (G_EMA)")
    except UnitEvalError:
        raise UnitEvalError(wrong_size) from None
    _load(guide, official_to_local(ckpt["C_EMA_state_dict"], "guide", img_size), "guiding-network (C_EMA)")
    raw = None
    if "C_state_dict" in ckpt:
        raw = GuidingNet(k=int(output_k), sty_dim=int(sty_dim), ch=64)
        _load(raw, official_to_local(ckpt["C_state_dict"], "guide", img_size), "guiding-network (C)")
    tr = TunitTranslator(gen, guide, guide_raw=raw, image_size=img_size, num_domains=int(output_k), device=device)
    tr.to(device)
    for net in (gen, guide, raw):
        if net is not None:
            net.eval()
    tr.official_config = config
    return tr
