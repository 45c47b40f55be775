"""CLUIT as a unit-eval Translator (the EMA generator and style encoder; A.2: "exponential moving averages over
parameters of all modules" for evaluation).

* ``translate(source, reference)``: G(source, E(reference)), one reference per source (or one for all), clamped
  to [-1, 1] (the generator has no output nonlinearity, as StarGAN v2's; its saved images are clamped the same way).
* ``style(images)``: B x sty_dim style codes; ``translate_with_style(source, styles)``: decode with given codes.
* ``num_domains`` and ``domain_names`` are None: CLUIT is trained without labels and has no domains, only
  references. The reference-driven protocols (``cluit-mfid``, ``translation-accuracy``, ``lpips-diversity`` with
  references) need nothing else; protocols that ask for a domain (``translate_to_domain``) are refused by name.
"""
from __future__ import annotations

import torch

from unit_eval.errors import UnitEvalError

from ..common.adapter import model_input
from .networks import Generator, StyleEncoder, build_networks


class CluitTranslator:
    num_domains = None
    domain_names = None

    def __init__(self, generator: Generator, style_encoder: StyleEncoder, *, image_size: int, batch_size: int = 64):
        self.generator, self.style_encoder = generator, style_encoder
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.name = "cluit"

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def _prep(self, x, what: str) -> torch.Tensor:
        return model_input(x, "cluit", what, self.image_size, self.device)

    def _chunks(self, n: int):
        for i in range(0, n, self.batch_size):
            yield slice(i, min(n, i + self.batch_size))

    @torch.no_grad()
    def style(self, images: torch.Tensor) -> torch.Tensor:
        x = self._prep(images, "reference")
        if x.shape[0] == 0:
            return torch.zeros(0, self.style_encoder.sty_dim, device=self.device)
        return torch.cat([self.style_encoder(x[c]).float() for c in self._chunks(x.shape[0])])

    @torch.no_grad()
    def translate_with_style(self, source: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        x = self._prep(source, "source")
        s = torch.as_tensor(styles).to(self.device, torch.float32)
        if s.dim() != 2 or s.shape[1] != self.style_encoder.sty_dim:
            raise UnitEvalError(f"cluit style codes must be N x {self.style_encoder.sty_dim}, got {tuple(s.shape)}")
        if s.shape[0] == 1 and x.shape[0] != 1:
            s = s.expand(x.shape[0], -1)
        if s.shape[0] != x.shape[0]:
            raise UnitEvalError(f"cluit needs 1 or {x.shape[0]} references/styles for {x.shape[0]} sources, got {s.shape[0]}")
        return torch.cat([self.generator(x[c], s[c]).float().clamp(-1, 1) for c in self._chunks(x.shape[0])])

    @torch.no_grad()
    def translate(self, source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return self.translate_with_style(source, self.style(reference))

    def to(self, device):
        self.generator.to(device)
        self.style_encoder.to(device)
        return self


def _load(net: torch.nn.Module, state: dict, prefix: str, what: str) -> None:
    sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        net.load_state_dict(sub)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise UnitEvalError(f"cluit run.pt {what} weights do not match its config: {str(exc).strip().splitlines()[0][:200]}") from None


def from_run(run: dict, device: torch.device | str = "cpu") -> CluitTranslator:
    """Rebuild the EMA generator and style encoder of a CLUIT run.pt (``unit_eval.checkpoint``)."""
    if run.get("model") != "cluit":
        raise UnitEvalError(f"not a CLUIT checkpoint (model {run.get('model')!r})")
    config, state = run["config"], run["state_dict"]
    gen, enc, _ = build_networks(config, with_discriminator=False)
    _load(gen, state, "generator.", "generator")
    _load(enc, state, "style_encoder.", "style-encoder")
    for net in (gen, enc):
        net.to(torch.device(device)).eval().requires_grad_(False)
    return CluitTranslator(gen, enc, image_size=int(config["img_size"]))
