"""GP-UNIT as a unit-eval Translator (the EMA generator, the frozen content encoder, one style sampler per domain).

* ``translate(source, reference)``: exemplar-guided (official inference.py:74-76): the content features of each
  source with the style code of its reference (B references for B sources, or 1 for all).
* ``sample_style(n, domain=None, generator=None)``: latent-guided codes: ``n`` unit Gaussian noise vectors drawn
  on the CPU with ``generator``, mapped by domain ``domain``'s sampler (eval mode; inference.py:78). ``domain``
  may be None only for a one-domain model.
* ``translate_with_style(source, style)``: decode with given codes (B x style_dim, or 1 x style_dim for all).
* ``style(images)``: the style encoder's codes, B x style_dim.
* ``translate_to_domain(source, domain)``: decode with the mean style code of the domain's training images
  (stored by training; deterministic), ``domain`` an index or B indices.
"""
from __future__ import annotations

import torch

from unit_eval.errors import UnitEvalError

from ..common.adapter import model_input
from .networks import ContentEncoder, Generator, StyleSampler


def gen_kwargs(config: dict) -> dict:
    return {"ngf": int(config["ngf"]), "n_down": int(config["n_down"]), "style_nef": int(config["style_nef"]),
            "style_dim": int(config["style_dim"])}


class GPUNITTranslator:
    def __init__(self, gen: Generator, enc: ContentEncoder, samplers, *, image_size: int, num_domains: int,
                 class_names=None, style_means: torch.Tensor | None = None):
        self.gen, self.enc, self.samplers = gen, enc, list(samplers)
        self.image_size, self.num_domains = int(image_size), int(num_domains)
        self.style_means = style_means
        self.class_names = list(class_names) if class_names else None
        self.style_dim = gen.style_dim

    @property
    def device(self) -> torch.device:
        return next(self.gen.parameters()).device

    @property
    def domain_names(self):
        return list(self.class_names) if self.class_names and len(self.class_names) == self.num_domains else None

    def _prep(self, x, what):
        return model_input(x, "gpunit", what, self.image_size, self.device)

    def _domains(self, domain, n: int | None = None) -> torch.Tensor:
        if domain is None:
            if self.num_domains != 1:
                raise UnitEvalError(f"gpunit has {self.num_domains} domains; name the target domain index")
            domain = 0
        ids = torch.as_tensor(domain, dtype=torch.long).reshape(-1)
        if ids.numel() == 0 or int(ids.min()) < 0 or int(ids.max()) >= self.num_domains:
            raise UnitEvalError(f"gpunit domain must be in 0..{self.num_domains - 1}, got {ids.tolist()[:8]}")
        if n is not None and ids.numel() not in (1, n):
            raise UnitEvalError(f"gpunit needs 1 or {n} domain ids, got {ids.numel()}")
        return ids

    @torch.no_grad()
    def style(self, images):
        return self.gen.style_encoder(self._prep(images, "reference"))

    @torch.no_grad()
    def translate_with_style(self, source, style):
        source = self._prep(source, "source")
        style = torch.as_tensor(style).to(self.device, torch.float32)
        if style.dim() != 2 or style.shape[1] != self.style_dim or style.shape[0] not in (1, source.shape[0]):
            raise UnitEvalError(f"gpunit style codes must be 1 or {source.shape[0]} x {self.style_dim}, got {tuple(style.shape)}")
        out, _ = self.gen(self.enc.features(source), style.expand(source.shape[0], -1))
        return out

    @torch.no_grad()
    def translate(self, source, reference):
        return self.translate_with_style(source, self.style(reference))

    @torch.no_grad()
    def sample_style(self, n: int, domain=None, generator: torch.Generator | None = None):
        d = int(self._domains(domain)[0])
        if d >= len(self.samplers):
            raise UnitEvalError("this gpunit model has no style samplers (they are fitted when training finishes)")
        sampler = self.samplers[d]
        noise = torch.randn(int(n), sampler.noise_dim, generator=generator)
        return sampler(noise.to(self.device))

    @torch.no_grad()
    def translate_to_domain(self, source, domain):
        if self.style_means is None:
            raise UnitEvalError("this gpunit model stores no mean style codes (they are computed when training finishes)")
        source = self._prep(source, "source")
        ids = self._domains(domain, source.shape[0])
        return self.translate_with_style(source, self.style_means[ids.to(self.style_means.device)])


def from_run(run: dict, device: torch.device) -> GPUNITTranslator:
    config, state = run["config"], run["state_dict"]
    if int(config.get("stage", 2)) != 2:
        raise UnitEvalError("this run.pt is a gpunit stage-I content encoder, not a translator; train stage 2 with "
                            "--set content_encoder=<this run.pt>")
    try:
        gen = Generator(**gen_kwargs(config))
        enc = ContentEncoder(int(config["nef"]), int(config["n_down"]), int(config["img_size"]))
        k = int(config["num_classes"])
    except KeyError as exc:
        raise UnitEvalError(f"gpunit run.pt config lacks {exc.args[0]!r}") from None

    def part(prefix):
        return {key[len(prefix):]: v for key, v in state.items() if key.startswith(prefix)}

    samplers = []
    for c in range(k):
        sub = part(f"sampler.{c}.")
        if not sub:
            break
        sampler = StyleSampler(int(config["noise_dim"]), int(config["style_dim"]), int(config["sampler_hidden"]))
        samplers.append(sampler)
        _load(sampler, sub, "sampler")
    _load(gen, part("gen."), "generator")
    _load(enc, part("content_encoder."), "content encoder")
    means = state.get("style_means")
    for net in (gen, enc, *samplers):
        net.to(device).eval().requires_grad_(False)
    return GPUNITTranslator(gen, enc, samplers, image_size=int(config["img_size"]), num_domains=k,
                            class_names=run.get("meta", {}).get("class_names"),
                            style_means=None if means is None else means.to(device, torch.float32))


def _load(net, state, what):
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UnitEvalError(f"gpunit run.pt {what} weights do not match its config: {first[:200]}") from None
