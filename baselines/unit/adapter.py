"""UNIT as a unit-eval Translator.

``num_domains = 2``; domain 0 is the first of the two data subfolders by name (``domain_names``).

* ``translate_to_domain(source, domain)``: the source is taken to come from the *other* domain:
  G_domain(mu), mu = E_(1 - domain)(source) (the paper's F_1->2 / F_2->1, with the posterior mean
  instead of a sample, so translation is deterministic). ``domain`` is an int or B ids.
* ``translate(source, reference, domain=None)``: UNIT is unimodal: a reference can only say which
  domain to translate to, and the model cannot tell an image's domain. So the target is ``domain``
  when given, else ``default_target_domain`` (1, i.e. domain 0 -> domain 1; set it to 0 for the
  other direction); the reference's pixels are not used.
* ``reconstruct(images, domain)``: G_domain(E_domain(images)).
"""
from __future__ import annotations

import torch

from unit_eval.errors import UnitEvalError

from ..common.adapter import model_input
from .networks import GEN_KEYS, UNITGenerator


class UNITTranslator:
    num_domains = 2

    def __init__(self, gen: UNITGenerator, *, image_size: int, domain_names: list[str] | None = None,
                 default_target_domain: int = 1):
        self.gen = gen
        self.image_size = int(image_size)
        self.domain_names = list(domain_names) if domain_names else None
        self.default_target_domain = int(default_target_domain)

    @property
    def device(self) -> torch.device:
        return next(self.gen.parameters()).device

    def _prep(self, x: torch.Tensor, what: str = "source") -> torch.Tensor:
        return model_input(x, "unit", what, self.image_size, self.device)

    @staticmethod
    def _domains(domain, n: int) -> torch.Tensor:
        ids = torch.as_tensor(domain, dtype=torch.long).reshape(-1).cpu()
        if ids.numel() == 1:
            ids = ids.expand(n)
        if ids.numel() != n:
            raise UnitEvalError(f"unit needs 1 or {n} target domains for {n} sources, got {ids.numel()}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) > 1):
            raise UnitEvalError(f"unit domains are 0 and 1, got {sorted(set(ids.tolist()))}")
        return ids

    @torch.no_grad()
    def translate_to_domain(self, source: torch.Tensor, domain) -> torch.Tensor:
        source = self._prep(source)
        ids = self._domains(domain, source.shape[0])
        out = torch.empty_like(source)
        for d in (0, 1):
            sel = (ids == d).nonzero().flatten()
            if sel.numel():
                sel = sel.to(source.device)
                out[sel] = self.gen.translate(source[sel], 1 - d, d)
        return out

    @torch.no_grad()
    def translate(self, source: torch.Tensor, reference: torch.Tensor | None = None, domain=None) -> torch.Tensor:
        return self.translate_to_domain(source, self.default_target_domain if domain is None else domain)

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, domain: int) -> torch.Tensor:
        images = self._prep(images, "input")
        return self.gen.translate(images, int(domain), int(domain))


def from_run(run: dict, device: torch.device) -> UNITTranslator:
    config, state = run["config"], run["state_dict"]
    try:
        gen = UNITGenerator(**{k: config[k] for k in GEN_KEYS})
    except KeyError as exc:
        raise UnitEvalError(f"unit run.pt config lacks {exc.args[0]!r}") from None
    gen_state = {k[len("gen."):]: v for k, v in state.items() if k.startswith("gen.")}
    try:
        gen.load_state_dict(gen_state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UnitEvalError(f"unit run.pt weights do not match its config: {first[:200]}") from None
    gen.to(device).eval().requires_grad_(False)
    return UNITTranslator(gen, image_size=int(config["img_size"]), domain_names=run.get("meta", {}).get("class_names"))
