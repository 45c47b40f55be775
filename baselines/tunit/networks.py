"""TUNIT networks (Baek et al., "Rethinking the Truly Unsupervised Image-to-Image Translation",
ICCV 2021, Appendix E, Tables 4-6), written for unit-eval.

- :class:`GuidingNet` (Table 5): VGG11-BN convolutional trunk (widths ch, 2ch, 4ch, 4ch, 8ch x 4;
  five 2x2 max-pools), global average pooling, two linear heads: cluster logits (K-hat) and a
  style code (128-d).
- :class:`Generator` (Table 4): content encoder (7x7 conv, log2(S/16) stride-2 4x4 convs doubling
  the width, 2 residual blocks, all InstanceNorm), decoder (2 AdaIN residual blocks, then per
  level nearest 2x upsampling + 5x5 conv + AdaIN, 7x7 conv + tanh), and an MLP (style -> 256 ->
  256 -> AdaIN parameters) that the table leaves implicit. Reflection padding; residual blocks
  add 0.1 x the residual; AdaIN is instance normalisation (biased variance, eps 1e-5) followed by
  ``std * x + mean`` with (mean, std) from the MLP, per layer in module order.
- :class:`Discriminator` (Table 6): 3x3 conv, log2(S)-2 pairs of pre-activation FRN residual blocks
  (the second of each pair doubles the width up to 16ch and average-pools), LReLU, 4x4 conv,
  LReLU, 1x1 conv to K-hat logits; the logit of the requested domain is returned.

Widths default to the paper (ch = 64 at 128 px, 32 at >= 256 px for G and D) and can be reduced
for toy runs. Tensor names differ from the official code; :func:`official_to_local` maps an official
``.ckpt`` state dict onto these modules.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from unit_eval.errors import UnitEvalError


def check_img_size(img_size: int) -> int:
    img_size = int(img_size)
    if img_size < 32 or img_size & (img_size - 1):
        raise UnitEvalError(f"TUNIT needs a power-of-two image size of at least 32 px, got {img_size}")
    return img_size


def default_width(img_size: int) -> int:
    """The official channel multiplier of G and D: 64 below 256 px, 32 from 256 px."""
    return 64 if img_size < 256 else 32


# ----------------------------------------------------------------------------- guiding network
class GuidingNet(nn.Module):
    """E: image -> (cluster logits B x K, style code B x sty_dim)."""

    def __init__(self, k: int = 10, sty_dim: int = 128, ch: int = 64):
        super().__init__()
        plan = [ch, "M", 2 * ch, "M", 4 * ch, 4 * ch, "M", 8 * ch, 8 * ch, "M", 8 * ch, 8 * ch, "M"]
        layers: list[nn.Module] = []
        c_in = 3
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU()]
                c_in = item
        self.features = nn.Sequential(*layers)
        self.cluster_head = nn.Linear(c_in, k)
        self.style_head = nn.Linear(c_in, sty_dim)
        self.k, self.sty_dim = k, sty_dim
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embed(x)
        return self.cluster_head(h), self.style_head(h)

    def style(self, x: torch.Tensor) -> torch.Tensor:
        return self.style_head(self.embed(x))

    def cluster_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.cluster_head(self.embed(x))


# ----------------------------------------------------------------------------- generator
class ConvBlock(nn.Module):
    """Reflection pad -> conv -> norm ('none' | 'in' | 'adain') -> activation ('relu' | 'tanh' | 'none')."""

    def __init__(self, c_in, c_out, kernel, stride, pad, norm="none", act="relu"):
        super().__init__()
        self.pad = pad
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride)
        self.norm, self.act, self.channels = norm, act, c_out

    def forward(self, x, adain: tuple[torch.Tensor, torch.Tensor] | None = None):
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        x = self.conv(x)
        if self.norm == "in":
            x = F.instance_norm(x, eps=1e-5)
        elif self.norm == "adain":
            mean, std = adain
            x = F.instance_norm(x, eps=1e-5) * std[:, :, None, None] + mean[:, :, None, None]
        if self.act == "relu":
            x = F.relu(x)
        elif self.act == "tanh":
            x = torch.tanh(x)
        return x

    def adain_size(self) -> int:
        return 2 * self.channels if self.norm == "adain" else 0


class ResBlock(nn.Module):
    def __init__(self, ch, norm):
        super().__init__()
        self.conv1 = ConvBlock(ch, ch, 3, 1, 1, norm, "relu")
        self.conv2 = ConvBlock(ch, ch, 3, 1, 1, norm, "none")

    def forward(self, x, adain=None):
        a1, a2 = adain if adain is not None else (None, None)
        return x + 0.1 * self.conv2(self.conv1(x, a1), a2)


class ContentEncoder(nn.Module):
    def __init__(self, ch, n_downs, n_res):
        super().__init__()
        self.stem = ConvBlock(3, ch, 7, 1, 3, "in", "relu")
        downs = []
        for _ in range(n_downs):
            downs.append(ConvBlock(ch, 2 * ch, 4, 2, 1, "in", "relu"))
            ch *= 2
        self.down = nn.ModuleList(downs)
        self.res = nn.ModuleList(ResBlock(ch, "in") for _ in range(n_res))
        self.out_channels = ch

    def forward(self, x):
        x = self.stem(x)
        for m in self.down:
            x = m(x)
        for m in self.res:
            x = m(x)
        return x


class Decoder(nn.Module):
    def __init__(self, ch, n_ups, n_res):
        super().__init__()
        self.res = nn.ModuleList(ResBlock(ch, "adain") for _ in range(n_res))
        ups = []
        for _ in range(n_ups):
            ups.append(ConvBlock(ch, ch // 2, 5, 1, 2, "adain", "relu"))
            ch //= 2
        self.up = nn.ModuleList(ups)
        self.out = ConvBlock(ch, 3, 7, 1, 3, "none", "tanh")

    def adain_layers(self) -> list[ConvBlock]:
        """AdaIN layers in the order their parameters are laid out in the MLP output."""
        layers = []
        for blk in self.res:
            layers += [blk.conv1, blk.conv2]
        return layers + list(self.up)

    def forward(self, x, params: torch.Tensor):
        pairs, offset = [], 0
        for layer in self.adain_layers():
            c = layer.channels
            pairs.append((params[:, offset:offset + c], params[:, offset + c:offset + 2 * c]))
            offset += 2 * c
        it = iter(pairs)
        for blk in self.res:
            x = blk(x, (next(it), next(it)))
        for layer in self.up:
            x = layer(F.interpolate(x, scale_factor=2, mode="nearest"), next(it))
        return self.out(x)


class Generator(nn.Module):
    """G: (source image, style code) -> image."""

    def __init__(self, img_size=128, sty_dim=128, ch=None, n_res=2, mlp_ch=256):
        super().__init__()
        img_size = check_img_size(img_size)
        ch = default_width(img_size) if ch is None else int(ch)
        n_downs = int(round(math.log2(img_size // 16)))
        self.content = ContentEncoder(ch, n_downs, n_res)
        self.decoder = Decoder(self.content.out_channels, n_downs, n_res)
        n_adain = sum(layer.adain_size() for layer in self.decoder.adain_layers())
        self.mlp = nn.Sequential(nn.Linear(sty_dim, mlp_ch), nn.ReLU(), nn.Linear(mlp_ch, mlp_ch), nn.ReLU(),
                                 nn.Linear(mlp_ch, n_adain))
        self.img_size, self.sty_dim, self.n_adain = img_size, sty_dim, n_adain
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                nn.init.zeros_(m.bias)

    def encode(self, x):
        return self.content(x)

    def decode(self, content, style):
        return self.decoder(content, self.mlp(style))

    def forward(self, x, style):
        return self.decode(self.encode(x), style)


# ----------------------------------------------------------------------------- discriminator
class FRN(nn.Module):
    """Filter response normalisation with a thresholded linear unit (eps 1e-6)."""

    def __init__(self, ch, eps=1e-6):
        super().__init__()
        self.tau = nn.Parameter(torch.zeros(1, ch, 1, 1))
        self.gamma = nn.Parameter(torch.ones(1, ch, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, ch, 1, 1))
        self.eps = eps

    def forward(self, x):
        x = x * torch.rsqrt(x.pow(2).mean(dim=(2, 3), keepdim=True) + self.eps)
        return torch.maximum(self.gamma * x + self.beta, self.tau)


class DResBlock(nn.Module):
    """Pre-activation residual block: FRN -> conv3x3 -> [avgpool] -> FRN -> conv3x3, shortcut 1x1."""

    def __init__(self, c_in, c_out, downsample):
        super().__init__()
        self.norm1, self.conv1 = FRN(c_in), nn.Conv2d(c_in, c_in, 3, 1, 1)
        self.norm2, self.conv2 = FRN(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False) if c_in != c_out else None
        self.downsample = downsample

    def forward(self, x):
        s = self.shortcut(x) if self.shortcut is not None else x
        r = self.conv1(self.norm1(x))
        if self.downsample:
            s, r = F.avg_pool2d(s, 2), F.avg_pool2d(r, 2)
        r = self.conv2(self.norm2(r))
        return (s + r) * (1.0 / math.sqrt(2.0))


class Discriminator(nn.Module):
    """Multi-task D: (image, domain ids) -> logits B (one per requested domain)."""

    def __init__(self, img_size=128, k=10, ch=None, max_ch=1024):
        super().__init__()
        img_size = check_img_size(img_size)
        ch = default_width(img_size) if ch is None else int(ch)
        self.stem = nn.Conv2d(3, ch, 3, 1, 1)
        blocks, c = [], ch
        for _ in range(int(round(math.log2(img_size))) - 2):
            c_out = min(2 * c, max_ch)
            blocks += [DResBlock(c, c, False), DResBlock(c, c_out, True)]
            c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.conv4 = nn.Conv2d(c, c, 4, 1, 0)
        self.out = nn.Conv2d(c, k, 1, 1, 0)
        self.k = k
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def all_logits(self, x):
        h = F.leaky_relu(self.blocks(self.stem(x)), 0.2)
        h = F.leaky_relu(self.conv4(h), 0.2)
        return self.out(h).flatten(1)

    def forward(self, x, y):
        return self.all_logits(x).gather(1, y.view(-1, 1)).squeeze(1)


# ----------------------------------------------------------------------------- from a config
#: the config keys that fix the architecture (``build_networks`` reads these)
ARCH_KEYS = ("img_size", "k", "sty_dim", "g_ch", "d_ch", "d_max_ch", "e_ch", "mlp_ch", "n_res")


def build_networks(config: dict, with_discriminator: bool = True):
    """(guiding network, generator, discriminator or None) from a recipe / run.pt config."""
    img = check_img_size(config["img_size"])
    guide = GuidingNet(k=int(config["k"]), sty_dim=int(config["sty_dim"]), ch=int(config.get("e_ch", 64)))
    gen = Generator(img_size=img, sty_dim=int(config["sty_dim"]), ch=config.get("g_ch"), n_res=int(config.get("n_res", 2)),
                    mlp_ch=int(config.get("mlp_ch", 256)))
    disc = None
    if with_discriminator:
        disc = Discriminator(img_size=img, k=int(config["k"]), ch=config.get("d_ch"), max_ch=int(config.get("d_max_ch", 1024)))
    return guide, gen, disc


# ----------------------------------------------------------------------------- official checkpoints
def _official_guide_key(key: str) -> str | None:
    if key.startswith("features."):
        return key
    m = re.fullmatch(r"(disc|cont)\.(weight|bias)", key)
    if m:
        return ("cluster_head." if m.group(1) == "disc" else "style_head.") + m.group(2)
    return None


def _official_generator_key(key: str, n_downs: int) -> str | None:
    m = re.fullmatch(r"cnt_encoder\.model\.(\d+)\.(.*)", key)
    if m:
        i, rest = int(m.group(1)), m.group(2)
        if i == 0:
            m2 = re.fullmatch(r"conv\.(weight|bias)", rest)
            return f"content.stem.conv.{m2.group(1)}" if m2 else None
        if i <= n_downs:
            m2 = re.fullmatch(r"conv\.(weight|bias)", rest)
            return f"content.down.{i - 1}.conv.{m2.group(1)}" if m2 else None
        m2 = re.fullmatch(r"model\.(\d+)\.model\.([01])\.conv\.(weight|bias)", rest)
        return f"content.res.{m2.group(1)}.conv{int(m2.group(2)) + 1}.conv.{m2.group(3)}" if m2 else None
    m = re.fullmatch(r"decoder\.model\.(\d+)\.(.*)", key)
    if m:
        i, rest = int(m.group(1)), m.group(2)
        if i == 0:
            m2 = re.fullmatch(r"model\.(\d+)\.model\.([01])\.conv\.(weight|bias)", rest)
            return f"decoder.res.{m2.group(1)}.conv{int(m2.group(2)) + 1}.conv.{m2.group(3)}" if m2 else None
        m2 = re.fullmatch(r"conv\.(weight|bias)", rest)
        if not m2:
            return None  # AdaIN running statistics: unused (AdaIN always normalises per instance)
        if i == 2 * n_downs + 1:
            return f"decoder.out.conv.{m2.group(1)}"
        if i % 2 == 0 and 2 <= i <= 2 * n_downs:
            return f"decoder.up.{i // 2 - 1}.conv.{m2.group(1)}"
        return None
    m = re.fullmatch(r"mlp\.model\.(\d+)\.fc\.(weight|bias)", key)
    if m:
        return f"mlp.{2 * int(m.group(1))}.{m.group(2)}"
    return None


def official_to_local(state: dict, net: str, img_size: int) -> dict:
    """Map an official TUNIT state dict (``G``/``G_EMA`` or ``C``/``C_EMA``) to this module's names.

    ``module.`` prefixes (DataParallel/DDP) are stripped. Unknown keys are an error; AdaIN running
    statistics in the official decoder (never used at inference) are dropped.
    """
    n_downs = int(round(math.log2(img_size // 16)))
    out = {}
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        if net == "generator":
            local = _official_generator_key(k, n_downs)
            if local is None and (k.endswith("running_mean") or k.endswith("running_var")):
                continue
        else:
            local = _official_guide_key(k)
        if local is None:
            raise UnitEvalError(f"official TUNIT checkpoint has an unexpected {net} tensor {key!r} (img_size {img_size}?)")
        out[local] = value
    return out
