"""A tiny deterministic model behind the Translator interface, for protocol tests.

``translate``: a fixed random 3x3 convolution of the source, mixed with the reference's mean colour, tanh.
``style``: a fixed random projection of per-channel means and standard deviations (16-d).
``cluster``: ids from the mean brightness, cut into ``num_domains`` equal bands.
``translate_to_domain``: the convolution plus a fixed colour per domain.
No training, no randomness at call time: the same inputs always give the same outputs, per sample
(the output for one image never depends on the other images of its batch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class TinyTranslator:
    def __init__(self, image_size: int = 32, num_domains: int = 3, device: str | torch.device = "cpu", seed: int = 0,
                 domain_names: list[str] | None = None):
        g = torch.Generator().manual_seed(seed)
        self.image_size = image_size
        self.num_domains = num_domains
        self.domain_names = domain_names
        self.device = torch.device(device)
        self.weight = (torch.randn(3, 3, 3, 3, generator=g) * 0.25).to(self.device)
        self.bias = (torch.randn(3, generator=g) * 0.1).to(self.device)
        self.projection = torch.randn(6, 16, generator=g).to(self.device)
        self.domain_colours = (torch.rand(max(num_domains, 2), 3, generator=g) * 2 - 1).to(self.device)
        self.calls = 0

    def _content(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x.to(self.device), self.weight, self.bias, padding=1)

    @torch.no_grad()
    def translate(self, source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        colour = reference.to(self.device).mean(dim=(2, 3), keepdim=True)
        return torch.tanh(0.7 * self._content(source) + 0.8 * colour)

    @torch.no_grad()
    def style(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device)
        stats = torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)
        return stats @ self.projection

    @torch.no_grad()
    def cluster(self, images: torch.Tensor) -> torch.Tensor:
        brightness = (images.to(self.device).mean(dim=(1, 2, 3)) + 1) / 2
        return (brightness * self.num_domains).long().clamp(0, self.num_domains - 1)

    @torch.no_grad()
    def translate_to_domain(self, source: torch.Tensor, domain) -> torch.Tensor:
        colour = self.domain_colours[int(domain)].view(1, 3, 1, 1)
        return torch.tanh(0.5 * self._content(source) + colour)


class LatentTinyTranslator(TinyTranslator):
    """TinyTranslator with latent-guided translation (GP-UNIT / StarGAN v2 style) and named domains.

    ``sample_style(n, domain, generator)``: ``n`` 3-d codes, ``0.5 * randn(n, 3, generator=generator)`` plus the
    domain's fixed colour (so codes depend on the domain asked for); ``translate_with_style(source, style)``:
    ``tanh(0.5 * content(source) + code)``, the code added as a colour per image. Every ``sample_style`` call is
    recorded in ``style_calls`` as (n, domain, the generator's seed, the codes)."""

    def __init__(self, image_size: int = 32, num_domains: int = 3, device: str | torch.device = "cpu", seed: int = 0,
                 domain_names: list[str] | None = None):
        names = domain_names if domain_names is not None else [str(i) for i in range(num_domains)]
        super().__init__(image_size, num_domains, device, seed, names)
        self.style_calls: list[tuple[int, int | None, int | None, torch.Tensor]] = []

    def sample_style(self, n: int, domain: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        codes = 0.5 * torch.randn(n, 3, generator=generator) + self.domain_colours[int(domain)].cpu()
        self.style_calls.append((n, domain, None if generator is None else generator.initial_seed(), codes.clone()))
        return codes

    @torch.no_grad()
    def translate_with_style(self, source: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return torch.tanh(0.5 * self._content(source) + style.to(self.device).view(-1, 3, 1, 1))


class NoClusterTranslator(TinyTranslator):
    """Lacks cluster(): protocols that need it must say so."""

    cluster = None


def factory(device="cpu"):
    return TinyTranslator(device=device)


def factory_no_cluster(device="cpu"):
    return NoClusterTranslator(device=device)


def latent_factory(device="cpu"):
    return LatentTinyTranslator(device=device)
