"""UNIT networks (Liu, Breuel & Kautz, NIPS 2017), written from the paper's Table 3 (Appendix A).

Two VAE-GAN branches, one per domain (domain 0 = first class folder by name, domain 1 = second):

* encoder E_d: ``n_down`` stride-2 convs with LeakyReLU and no normalisation. The first is 7x7 -> ch,
  the rest 3x3 doubling the width: 64, 128, 256 for the defaults (Table 3 layers 1-3, "CONV-(N64,K7,S2)",
  "(N128,K3,S2)", "(N256,K3,S2)"). Then ``n_res - n_shared`` private residual blocks and ``n_shared``
  residual blocks *shared* by E_0 and E_1 (Table 3 layers 4-6 and mu; only the last is shared). The
  output is the mean mu of q(z|x) = N(mu, I); training samples z = mu + eta.
* generator G_d: ``n_shared`` *shared* residual blocks (Table 3 layer 1), then ``n_res - n_shared``
  private ones. Then ``n_down`` stride-2 3x3 transposed convs with LeakyReLU, widths 256, 128, 64 for the
  defaults (the first keeps the width, then halving, Table 3 layers 5-7 "DCONV-(N256,K3,S2)" ...
  "(N64,K3,S2)"). Last, a 1x1 transposed conv to 3 channels + tanh (layer 8, "DCONV-(N3,K1,S1), TanH").
* discriminator D_d: ``dis_layers`` stride-2 3x3 convs with LeakyReLU (64 ... 1024 for 5 layers), then a
  2x2 conv to one logit map (Table 3 layers 1-6, "CONV-(N1,K2,S1), Sigmoid"; the sigmoid lives in the
  loss). ``dis_scales`` > 1 adds copies on 2x average-pooled inputs: the later official code's
  multi-scale discriminator. The default is 1, the paper's plain discriminator.

Sharing: Sec. 4 uses "VAEs with 1 sharing layer" (``n_shared=1``, "sharing 1 layer for E_1 and E_2 and,
at the same time, sharing 1 layer for G_1 and G_2").

Where Table 3 is not self-consistent, or silent, these choices are made:
- The residual blocks have the width of the last front-end conv, 256. Table 3 prints N512 after a
  256-wide conv, with no projection.
- They are "basic residual blocks [7]" (Sec. 4) of two 3x3 convs (Table 3 prints K1). Each block is
  conv-IN-ReLU-conv-IN + identity, as the released version_02 ``INSResBlock`` (common_net.py L83-104).
- Reflection padding in the blocks. This follows master's ``pad_type: reflect``; version_02 zero-pads,
  ``padding=1``. The padding holds no parameters, so parameter counts are the same either way.
- LeakyReLU slope 0.01: PyTorch's default, as version_02's ``nn.LeakyReLU(inplace=True)``
  (common_net.py L114).
- Weights initialised N(0, 0.02), biases left alone: version_02 ``gaussian_weights_init``
  (trainers/init.py).
How version_02 and master differ from Table 3 (7x7 stride-1 first conv, 2 samplings, IN + ReLU, 1x1 last
D conv, no sharing in master, ...) is written in ``recipe.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock(nn.Module):
    """(reflect pad, 3x3 conv, InstanceNorm, ReLU, reflect pad, 3x3 conv, InstanceNorm) + identity."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim),
        )

    def forward(self, x):
        return x + self.body(x)


def _front(ch: int, n_down: int, slope: float) -> tuple[nn.Sequential, int]:
    layers, dim = [nn.Conv2d(3, ch, 7, 2, 3), nn.LeakyReLU(slope)], ch
    for _ in range(n_down - 1):
        layers += [nn.Conv2d(dim, dim * 2, 3, 2, 1), nn.LeakyReLU(slope)]
        dim *= 2
    return nn.Sequential(*layers), dim


def _back(dim: int, n_down: int, slope: float) -> nn.Sequential:
    layers = [nn.ConvTranspose2d(dim, dim, 3, 2, 1, output_padding=1), nn.LeakyReLU(slope)]
    for _ in range(n_down - 1):
        layers += [nn.ConvTranspose2d(dim, dim // 2, 3, 2, 1, output_padding=1), nn.LeakyReLU(slope)]
        dim //= 2
    layers += [nn.ConvTranspose2d(dim, 3, 1, 1, 0), nn.Tanh()]
    return nn.Sequential(*layers)


class UNITGenerator(nn.Module):
    """E_0, E_1, G_0, G_1 with the shared high-level layers; ``encode``/``decode``/``translate``."""

    def __init__(self, ch=64, n_down=3, n_res=4, n_shared=1, lrelu_slope=0.01):
        super().__init__()
        if not 1 <= n_shared <= n_res:
            raise ValueError("need 1 <= n_shared <= n_res")
        if n_down < 1:
            raise ValueError("need n_down >= 1")
        self.enc_private = nn.ModuleList()
        self.dec_private = nn.ModuleList()
        dim = ch * 2 ** (n_down - 1)
        for _ in range(2):
            front, dim = _front(ch, n_down, lrelu_slope)
            self.enc_private.append(nn.Sequential(front, *[ResBlock(dim) for _ in range(n_res - n_shared)]))
        self.enc_shared = nn.Sequential(*[ResBlock(dim) for _ in range(n_shared)])
        self.dec_shared = nn.Sequential(*[ResBlock(dim) for _ in range(n_shared)])
        for _ in range(2):
            self.dec_private.append(nn.Sequential(*[ResBlock(dim) for _ in range(n_res - n_shared)],
                                                  _back(dim, n_down, lrelu_slope)))
        self.latent_dim = dim
        self.downsampling = 2 ** n_down

    def encode(self, x: torch.Tensor, domain: int) -> torch.Tensor:
        """mu of q_domain(z | x); B x latent_dim x H/2^n x W/2^n."""
        return self.enc_shared(self.enc_private[domain](x))

    def decode(self, z: torch.Tensor, domain: int) -> torch.Tensor:
        return self.dec_private[domain](self.dec_shared(z))

    def translate(self, x: torch.Tensor, source_domain: int, target_domain: int) -> torch.Tensor:
        """Deterministic translation G_target(mu_source(x)): the noise is a training-time device (version_02's
        translate scripts run in eval mode, where its ``GaussianNoiseLayer`` is the identity)."""
        return self.decode(self.encode(x, source_domain), target_domain)

    def forward(self, x, source_domain: int, target_domain: int):
        return self.translate(x, source_domain, target_domain)


#: the config keys that are ``UNITGenerator``'s constructor arguments (recipe config, run.pt config)
GEN_KEYS = ("ch", "n_down", "n_res", "n_shared", "lrelu_slope")


class PlainDiscriminator(nn.Module):
    """Table 3 discriminator: ``n_layers`` x (3x3/2 conv, LeakyReLU), then a 2x2 conv to 1 logit map."""

    def __init__(self, ch=64, n_layers=5, lrelu_slope=0.01, last_kernel=2):
        super().__init__()
        layers, cin, dim = [], 3, ch
        for _ in range(n_layers):
            layers += [nn.Conv2d(cin, dim, 3, 2, 1), nn.LeakyReLU(lrelu_slope)]
            cin, dim = dim, dim * 2
        layers.append(nn.Conv2d(cin, 1, last_kernel, 1, 0))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


class Discriminator(nn.Module):
    """One domain's discriminator: ``scales`` plain discriminators on 1x, 1/2x, ... inputs; list of logit maps."""

    def __init__(self, ch=64, n_layers=5, scales=1, lrelu_slope=0.01):
        super().__init__()
        self.nets = nn.ModuleList(PlainDiscriminator(ch, n_layers, lrelu_slope) for _ in range(scales))

    def forward(self, x):
        outs = []
        for i, net in enumerate(self.nets):
            if i:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            outs.append(net(x))
        return outs


def init_weights(module: nn.Module, kind: str = "gaussian", std: float = 0.02) -> None:
    """``gaussian``: UNIT version_02 ``gaussian_weights_init``, N(0, 0.02) for every (transposed) conv weight,
    biases untouched. ``kaiming``: He normal (fan-in, ReLU gain) weights and zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if kind == "gaussian":
                nn.init.normal_(m.weight, 0.0, std)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            else:
                raise ValueError(f"unknown init {kind!r}")
