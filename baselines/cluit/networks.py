"""CLUIT networks (Lee, Seol, Lee, "Contrastive Learning for Unsupervised Image-to-Image Translation",
arXiv 2105.03117, Appendix A.1 and its three architecture tables), written for unit-eval.

The tables mirror StarGAN v2's (Choi et al. 2020, the paper's [6], cited for the "locality-preserving
architecture"): the building blocks below follow StarGAN v2's ``core/model.py`` where the tables are silent.

- :class:`ContrastiveDiscriminator` (Table "Type shared/unshared"): Conv1x1 -> 5 shared pre-activation
  residual blocks with average pooling (64, 128, 256, 512, 512, 512 at 128 px) -> two unshared branches, each
  LReLU, Conv4x4 (the first "fully connected" layer: a 4x4 map to 1x1), LReLU, Linear: 256-d contrastive
  representation (L2-normalised by :meth:`ContrastiveDiscriminator.represent`) and 1 GAN logit. No normalisation.
- :class:`StyleEncoder`: the same trunk, unshared, then LReLU, Conv4x4, LReLU, Linear -> 128-d style code.
- :class:`Generator`: Conv1x1 -> 3 downsampling IN residual blocks -> 2 IN blocks -> 2 AdaIN blocks -> 3
  upsampling AdaIN blocks -> to-RGB. Every AdaIN layer has its own Linear(style, 2C) giving (gamma, beta),
  applied as ``(1 + gamma) * IN(x) + beta`` (StarGAN v2). The table's last row ("Conv1x1", no norm listed) is
  StarGAN v2's ``to_rgb`` = InstanceNorm(affine) -> LReLU -> Conv1x1, whose table row reads the same; no tanh
  (StarGAN v2 has none; the adapter clamps outputs to [-1, 1] as StarGAN v2 clamps the images it saves).

Residual blocks (StarGAN v2 ``ResBlk``/``AdainResBlk``): ``(shortcut + residual) / sqrt(2)``; the residual is
norm -> LReLU(0.2) -> conv3x3 (c_in -> c_in, or c_in -> c_out with AdaIN) -> [pool / nearest upsample] -> norm ->
LReLU -> conv3x3; a learned 1x1 shortcut without bias where the width changes. He initialisation everywhere
(A.1; ``kaiming_normal_`` fan-in, zero biases). Widths: ``ch`` doubling to ``max_ch`` (64 / 512 in the paper).
Sizes other than 128 px: the trunk has log2(S) - 2 blocks (so that its map is 4x4, as StarGAN v2's
``repeat_num``), the generator keeps its 3 downsamplings (the paper's count).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from unit_eval.errors import UnitEvalError

SLOPE = 0.2  # leaky ReLU slope (StarGAN v2; the paper says leaky ReLU without a slope)
N_DOWN = 3  # generator downsampling / upsampling layers (A.1)


def check_img_size(img_size) -> int:
    size = int(img_size)
    if size < 32 or size & (size - 1):
        raise UnitEvalError(f"CLUIT needs a power-of-two image size of at least 32 px, got {img_size}")
    return size


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, SLOPE)


def he_init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResBlk(nn.Module):
    """Pre-activation residual block; ``norm`` adds affine InstanceNorm (generator encoder), else none."""

    def __init__(self, c_in: int, c_out: int, norm: bool = False, downsample: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_in, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.norm1 = nn.InstanceNorm2d(c_in, affine=True) if norm else None
        self.norm2 = nn.InstanceNorm2d(c_in, affine=True) if norm else None
        self.shortcut = nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False) if c_in != c_out else None
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shortcut(x) if self.shortcut is not None else x
        if self.downsample:
            s = F.avg_pool2d(s, 2)
        r = self.norm1(x) if self.norm1 is not None else x
        r = self.conv1(_lrelu(r))
        if self.downsample:
            r = F.avg_pool2d(r, 2)
        r = self.norm2(r) if self.norm2 is not None else r
        r = self.conv2(_lrelu(r))
        return (s + r) / math.sqrt(2)


class AdaIN(nn.Module):
    def __init__(self, sty_dim: int, channels: int):
        super().__init__()
        self.fc = nn.Linear(sty_dim, 2 * channels)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(s)[:, :, None, None].chunk(2, dim=1)
        return (1 + gamma) * F.instance_norm(x, eps=1e-5) + beta


class AdainResBlk(nn.Module):
    def __init__(self, c_in: int, c_out: int, sty_dim: int, upsample: bool = False):
        super().__init__()
        self.norm1, self.conv1 = AdaIN(sty_dim, c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.norm2, self.conv2 = AdaIN(sty_dim, c_out), nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False) if c_in != c_out else None
        self.upsample = upsample

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        up = (lambda t: F.interpolate(t, scale_factor=2, mode="nearest")) if self.upsample else (lambda t: t)
        sc = up(x)
        if self.shortcut is not None:
            sc = self.shortcut(sc)
        r = self.conv1(up(_lrelu(self.norm1(x, s))))
        r = self.conv2(_lrelu(self.norm2(r, s)))
        return (sc + r) / math.sqrt(2)


def trunk_widths(img_size: int, ch: int, max_ch: int) -> list[int]:
    """Channels after the stem and after each of the log2(S) - 2 pooling blocks (64 ... 512 at 128 px)."""
    widths = [ch]
    for _ in range(int(math.log2(check_img_size(img_size))) - 2):
        widths.append(min(2 * widths[-1], max_ch))
    return widths


class Trunk(nn.Module):
    """Conv1x1 and the pooling residual blocks shared by the discriminator's heads (and the style encoder's)."""

    def __init__(self, img_size: int, ch: int, max_ch: int):
        super().__init__()
        widths = trunk_widths(img_size, ch, max_ch)
        self.stem = nn.Conv2d(3, ch, 1, 1, 0)
        self.blocks = nn.Sequential(*(ResBlk(a, b, downsample=True) for a, b in zip(widths, widths[1:])))
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class Head(nn.Module):
    """LReLU -> Conv4x4 (4x4 -> 1x1) -> LReLU -> Linear: the tables' "unshared" rows."""

    def __init__(self, channels: int, out_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 4, 1, 0)
        self.linear = nn.Linear(channels, out_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.linear(_lrelu(self.conv(_lrelu(h))).flatten(1))


class ContrastiveDiscriminator(nn.Module):
    def __init__(self, img_size: int = 128, ch: int = 64, max_ch: int = 512, proj_dim: int = 256):
        super().__init__()
        self.trunk = Trunk(img_size, ch, max_ch)
        self.adv_head = Head(self.trunk.out_channels, 1)
        self.con_head = Head(self.trunk.out_channels, proj_dim)
        self.proj_dim = proj_dim
        he_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(GAN logits B, L2-normalised contrastive representations B x proj_dim) from one trunk pass."""
        h = self.trunk(x)
        return self.adv_head(h).squeeze(1), F.normalize(self.con_head(h).float(), dim=1)

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """The GAN logit alone (B)."""
        return self.adv_head(self.trunk(x)).squeeze(1)

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised contrastive representation alone (Eq. 1: normalised "to prevent collapsing")."""
        return F.normalize(self.con_head(self.trunk(x)).float(), dim=1)


class StyleEncoder(nn.Module):
    def __init__(self, img_size: int = 128, ch: int = 64, max_ch: int = 512, sty_dim: int = 128):
        super().__init__()
        self.trunk = Trunk(img_size, ch, max_ch)
        self.head = Head(self.trunk.out_channels, sty_dim)
        self.sty_dim = sty_dim
        he_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class Generator(nn.Module):
    """G: (input image, style code) -> image."""

    def __init__(self, img_size: int = 128, ch: int = 64, max_ch: int = 512, sty_dim: int = 128):
        super().__init__()
        check_img_size(img_size)
        widths = [ch]
        for _ in range(N_DOWN):
            widths.append(min(2 * widths[-1], max_ch))
        bottom = widths[-1]
        self.from_rgb = nn.Conv2d(3, ch, 1, 1, 0)
        self.encode_blocks = nn.ModuleList(
            [ResBlk(a, b, norm=True, downsample=True) for a, b in zip(widths, widths[1:])]
            + [ResBlk(bottom, bottom, norm=True) for _ in range(2)])
        ups = list(zip(widths[::-1], widths[::-1][1:]))
        self.decode_blocks = nn.ModuleList(
            [AdainResBlk(bottom, bottom, sty_dim) for _ in range(2)]
            + [AdainResBlk(a, b, sty_dim, upsample=True) for a, b in ups])
        self.to_rgb = nn.Sequential(nn.InstanceNorm2d(ch, affine=True), nn.LeakyReLU(SLOPE), nn.Conv2d(ch, 3, 1, 1, 0))
        self.sty_dim = sty_dim
        he_init(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.from_rgb(x)
        for blk in self.encode_blocks:
            h = blk(h)
        return h

    def decode(self, h: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        for blk in self.decode_blocks:
            h = blk(h, s)
        return self.to_rgb(h)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), s)


#: the config keys that fix the architecture
ARCH_KEYS = ("img_size", "ch", "max_ch", "sty_dim", "proj_dim")


def build_networks(config: dict, with_discriminator: bool = True):
    """(generator, style encoder, discriminator or None) from a recipe / run.pt config."""
    try:
        img, ch, max_ch = check_img_size(config["img_size"]), int(config["ch"]), int(config["max_ch"])
        sty, proj = int(config["sty_dim"]), int(config["proj_dim"])
    except KeyError as exc:
        raise UnitEvalError(f"CLUIT config lacks {exc.args[0]!r}") from None
    if min(ch, max_ch, sty, proj) < 1:
        raise UnitEvalError("CLUIT widths (ch, max_ch, sty_dim, proj_dim) must be positive")
    gen = Generator(img, ch, max_ch, sty)
    enc = StyleEncoder(img, ch, max_ch, sty)
    disc = ContrastiveDiscriminator(img, ch, max_ch, proj) if with_discriminator else None
    return gen, enc, disc
