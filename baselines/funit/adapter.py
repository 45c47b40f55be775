"""FUNIT as a unit-eval Translator (the EMA generator, as the official ``gen_test``).

* ``translate(source, reference)``: each source image gets the class code of its reference
  (B references for B sources, or 1 reference for all).
* ``translate_k_shot(source, references)``: the official K-shot mode: the codes of the K reference
  images (one class) are averaged into one code applied to every source (``test_k_shot.py``).
* ``style(images)``: B x latent_dim class codes; ``class_code(images)``: their mean (1 x latent_dim).
* ``translate_with_code(source, codes)``: decode with given codes (B x D or 1 x D).
* ``translate_to_domain(source, domain)``: decode with the stored mean class code of training class
  ``domain`` (int or B ids). The codes come from training (see ``recipe.py``); models trained without
  labels store none and do not offer this method's data (it raises), and ``num_domains`` is None.
  ``set_class_codes`` / ``compute_class_codes`` replace the stored codes, e.g. with the mean codes of
  a protocol's own reference images.
* ``domain_names``: the training class folders, in code order, while the stored codes are the
  training classes' (None for a model trained without labels, or once other codes are set).
"""
from __future__ import annotations

import torch

from unit_eval.errors import UnitEvalError

from ..common.adapter import model_input
from .networks import GEN_KEYS, FewShotGenerator


class FUNITTranslator:
    def __init__(self, gen: FewShotGenerator, *, image_size: int, num_domains: int | None = None,
                 class_codes: torch.Tensor | None = None, class_names: list[str] | None = None):
        self.gen = gen
        self.image_size = int(image_size)
        self.num_domains = num_domains
        self.class_codes = class_codes
        self.class_names = list(class_names) if class_names else None
        self.latent_dim = gen.latent_dim

    @property
    def device(self) -> torch.device:
        return next(self.gen.parameters()).device

    @property
    def domain_names(self) -> list[str] | None:
        if self.class_codes is None or self.class_names is None or len(self.class_names) != self.class_codes.shape[0]:
            return None
        return list(self.class_names)

    def _prep(self, x: torch.Tensor, what: str) -> torch.Tensor:
        return model_input(x, "funit", what, self.image_size, self.device)

    def _codes_for(self, codes: torch.Tensor, n: int) -> torch.Tensor:
        if codes.shape[0] == 1 and n != 1:
            return codes.expand(n, -1)
        if codes.shape[0] != n:
            raise UnitEvalError(f"funit needs 1 or {n} references/codes for {n} sources, got {codes.shape[0]}")
        return codes

    @torch.no_grad()
    def style(self, images: torch.Tensor) -> torch.Tensor:
        return self.gen.class_code(self._prep(images, "reference"))

    @torch.no_grad()
    def class_code(self, images: torch.Tensor) -> torch.Tensor:
        """The mean class code of K images (1 x D), FUNIT's K-shot class representation."""
        return self.style(images).mean(0, keepdim=True)

    @torch.no_grad()
    def translate_with_code(self, source: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        source = self._prep(source, "source")
        codes = self._codes_for(codes.to(self.device, torch.float32).reshape(-1, self.latent_dim), source.shape[0])
        return self.gen.decode(self.gen.content(source), codes)

    @torch.no_grad()
    def translate(self, source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return self.translate_with_code(source, self.style(reference))

    @torch.no_grad()
    def translate_k_shot(self, source: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return self.translate_with_code(source, self.class_code(references))

    # ------------------------------------------------------------------ class codes
    def set_class_codes(self, codes: torch.Tensor) -> None:
        codes = torch.as_tensor(codes, dtype=torch.float32)
        if codes.dim() != 2 or codes.shape[1] != self.latent_dim:
            raise UnitEvalError(f"class codes must be K x {self.latent_dim}, got {tuple(codes.shape)}")
        self.class_codes = codes.to(self.device)
        self.num_domains = codes.shape[0]
        self.class_names = None  # the new codes are not the training classes'

    @torch.no_grad()
    def compute_class_codes(self, images_per_class) -> torch.Tensor:
        """Mean code of each class's images (a list of K tensors N_k x 3 x H x W); stored and returned."""
        codes = torch.cat([self.class_code(imgs) for imgs in images_per_class])
        self.set_class_codes(codes)
        return codes

    @torch.no_grad()
    def translate_to_domain(self, source: torch.Tensor, domain) -> torch.Tensor:
        if self.class_codes is None or self.class_codes.shape[0] == 0:
            raise UnitEvalError(
                "this funit model stores no class codes (trained without labels); use translate() with references "
                "or set_class_codes()/compute_class_codes() first")
        k = self.class_codes.shape[0]
        ids = torch.as_tensor(domain, dtype=torch.long).reshape(-1)
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= k):
            raise UnitEvalError(f"funit domain must be in 0..{k - 1}, got {ids.tolist()[:8]}")
        codes = self.class_codes[ids.to(self.class_codes.device)]
        return self.translate_with_code(source, codes)


def build_generator(config: dict) -> FewShotGenerator:
    try:
        return FewShotGenerator(**{k: int(config[k]) for k in GEN_KEYS})
    except KeyError as exc:
        raise UnitEvalError(f"funit run.pt config lacks {exc.args[0]!r}") from None


def from_run(run: dict, device: torch.device) -> FUNITTranslator:
    """Rebuild the EMA generator (and the stored class codes) from a loaded run.pt."""
    config, state = run["config"], run["state_dict"]
    gen = build_generator(config)
    gen_state = {k[len("gen."):]: v for k, v in state.items() if k.startswith("gen.")}
    try:
        gen.load_state_dict(gen_state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UnitEvalError(f"funit run.pt weights do not match its config: {first[:200]}") from None
    gen.to(device).eval().requires_grad_(False)
    codes = state.get("class_codes")
    use_labels = bool(config.get("use_labels", True))
    if codes is not None:
        codes = codes.to(device, torch.float32)
    names = run.get("meta", {}).get("class_names")
    return FUNITTranslator(gen, image_size=int(config["img_size"]),
                           num_domains=int(codes.shape[0]) if (use_labels and codes is not None) else None,
                           class_codes=codes if use_labels else None, class_names=names)
