"""GP-UNIT networks (Yang et al., CVPR 2022), written from the paper and williamyang1991/GP-UNIT
(commit d59695e; ``model/*.py`` line numbers below are that commit's). Module names follow the official
ones so that state-dict keys line up (``content_encoder.official_to_ours`` maps the official content
encoder file).

Sizes are parametric for CPU toys; the published size (256 px) is ``n_down=5, nef=ngf=64, style_nef=64,
style_dim=256, dis_nf=64, dis_max=512``:

* :class:`ContentEncoder` (stage I's E_c, frozen in stage II; content_encoder.py:67-107): ``n_down``
  stride-2 blocks ``layer1..layer<n_down>`` (widths nef x [1, 2, 4, 8, 8]) and ``layer<n_down+1>`` down to
  one channel; every conv is 3x3, reflect padding, instance norm, LeakyReLU(0.2). Inputs are resized to
  ``img_size`` first (official: always 256, bilinear, content_encoder.py:97-98). ``features(x)`` returns
  ``[c_last, c_n, ..., c_1]`` (the official ``get_feature=True`` order). Stage I trains it with spectral
  norm on every conv (the official Conv2dBlock, content_encoder.py:25); the frozen stage-II copy holds the
  normalised weights (``fold_spectral_norm``), i.e. the eval-mode spectral norm of the official inference.py:44.
* :class:`Generator` (generator.py:105-168): style encoder (generator.py:171-205) + ``n_down + 1``
  AdaIN residual layers, upsampling x2 between them; dynamic skip connections (generator.py:48-78) at layers
  1 and 2 from the encoder features of the matching resolution; tanh RGB from the last layer.
* :class:`Discriminator` (discriminator.py:60-96): StarGAN v2's, spectral norm, ``log2(img_size) - 2``
  downsampling residual blocks; one logit per target domain (the official one has a single output: the
  same network for one domain), and the channel-mean ``style_layer`` feature for the style loss.
* :class:`StyleSampler` (sampler.py:19-39): GLANN's mapping net, noise -> style code (bias-free linears,
  BatchNorm1d, ReLU).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm


def enc_mult(i: int) -> int:
    """Width multiplier of encoder block ``i`` (1-based): 1, 2, 4, 8, 8, ... (content_encoder.py:71-89)."""
    return min(2 ** (i - 1), 8)


# ---------------------------------------------------------------------------------------------- content encoder
class ConvBlock(nn.Module):
    """conv (reflect padding) -> instance norm -> LeakyReLU(0.2); ``sn`` wraps the conv in spectral norm."""

    def __init__(self, fin: int, fout: int, stride: int, sn: bool = False):
        super().__init__()
        conv = nn.Conv2d(fin, fout, 3, stride=stride, padding=1, padding_mode="reflect")
        self.conv = spectral_norm(conv) if sn else conv
        self.norm = nn.InstanceNorm2d(fout)

    def forward(self, x):
        return F.leaky_relu(self.norm(self.conv(x)), 0.2)


class ContentEncoder(nn.Module):
    def __init__(self, nef: int = 64, n_down: int = 5, img_size: int = 256, sn: bool = False):
        super().__init__()
        self.n_down, self.img_size, self.nef = int(n_down), int(img_size), int(nef)
        for i in range(1, self.n_down + 1):
            fin = 3 if i == 1 else nef * enc_mult(i - 1)
            mid = nef if i == 1 else fin
            self.add_module(f"layer{i}", nn.Sequential(ConvBlock(fin, mid, 1, sn), ConvBlock(mid, nef * enc_mult(i), 2, sn)))
        top = nef * enc_mult(self.n_down)
        self.add_module(f"layer{self.n_down + 1}", nn.Sequential(ConvBlock(top, top, 1, sn), ConvBlock(top, 1, 1, sn)))

    def channels(self) -> list[int]:
        """Channels of ``features()``: [1, c_n, ..., c_1]."""
        return [1] + [self.nef * enc_mult(i) for i in range(self.n_down, 0, -1)]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[-2:] != (self.img_size, self.img_size):
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bilinear")
        feats = []
        for i in range(1, self.n_down + 2):
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        return feats[::-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[0]


# ---------------------------------------------------------------------------------------------- generator
class AdaIN(nn.Module):
    """Instance norm, then gamma, beta from a linear map of the style code (base_network.py:57-74)."""

    def __init__(self, style_dim: int, channels: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels)
        self.style = nn.Linear(style_dim, channels * 2)

    def forward(self, x, style):
        gamma, beta = self.style(style)[:, :, None, None].chunk(2, 1)
        return gamma * self.norm(x) + beta


class AdaResnetBlock(nn.Module):
    """Pre-activation AdaIN residual block (generator.py:9-45); learned 1x1 shortcut when widths differ."""

    def __init__(self, fin: int, fout: int, style_dim: int):
        super().__init__()
        self.learned_shortcut = fin != fout
        self.conv_0 = nn.Conv2d(fin, fout, 3, padding=1)
        self.conv_1 = nn.Conv2d(fout, fout, 3, padding=1)
        self.norm_0 = AdaIN(style_dim, fin)
        self.norm_1 = AdaIN(style_dim, fout)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, 1, bias=False)
            self.norm_s = AdaIN(style_dim, fin)

    def forward(self, x, style):
        x_s = self.conv_s(self.norm_s(x, style)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, style), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, style), 0.2))
        return x_s + dx


class DynamicSkipLayer(nn.Module):
    """GRU-like selective transfer of encoder features f_E (paper Sec. 4.1, generator.py:48-78)."""

    def __init__(self, hidden_nc: int, feature_nc: int):
        super().__init__()
        conv = lambda cin: nn.Conv2d(cin, feature_nc, 3, padding=1, padding_mode="reflect")  # noqa: E731
        self.trans, self.reset, self.mask, self.update = conv(hidden_nc), conv(2 * feature_nc), conv(2 * feature_nc), conv(2 * feature_nc)

    def forward(self, fdec, fenc, state):
        state = F.leaky_relu(self.trans(F.interpolate(state, scale_factor=2, mode="nearest")), 0.2)  # h^
        both = torch.cat((state, fenc), dim=1)
        new_state = torch.sigmoid(self.reset(both)) * state                                    # h = r h^
        mask = torch.tanh(F.relu(self.mask(both)))                                              # m (sparse)
        new_fenc = self.update(torch.cat((new_state, fenc), dim=1))                             # f_E^
        return (1 - mask) * fdec + mask * new_fenc, new_state, mask


class GeneratorLayer(nn.Module):
    def __init__(self, fin: int, fout: int, hidden_nc: int, style_dim: int, usepost: bool = False, useskip: bool = False):
        super().__init__()
        self.reslayer = AdaResnetBlock(fin, fout, style_dim)
        self.postlayer = AdaResnetBlock(fout, fout, style_dim) if usepost else None
        self.rgblayer = nn.Conv2d(fout, 3, 7, padding=3)
        self.skiplayer = DynamicSkipLayer(hidden_nc, fout) if useskip else None

    def forward(self, x, style, content=None, state=None):
        x = self.reslayer(x, style)
        if self.postlayer is not None:
            x = self.postlayer(x, style)
        if self.skiplayer is not None and content is not None and state is not None:
            x, state, mask = self.skiplayer(x, content, state)
            return x, state, mask
        return x, None, None

    def rgb(self, x):
        return self.rgblayer(F.leaky_relu(x, 0.2))


class StyleEncoder(nn.Module):
    """7x7 conv + 5 stride-2 4x4 convs (reflect padding, ReLU), global average, MLP 256 -> 64 -> 256 -> 256
    with ReLU after every linear (generator.py:171-205)."""

    def __init__(self, nef: int = 64, style_dim: int = 256, compress_nc: int = 64, n_layers: int = 5, mlp_layers: int = 2):
        super().__init__()
        seq = [nn.Conv2d(3, nef, 7, padding=3, padding_mode="reflect"), nn.ReLU()]
        nf = nef
        for _ in range(n_layers):
            prev, nf = nf, min(nf * 2, style_dim)
            seq += [nn.Conv2d(prev, nf, 4, stride=2, padding=1, padding_mode="reflect"), nn.ReLU()]
        seq.append(nn.AdaptiveAvgPool2d(1))
        self.model = nn.Sequential(*seq)
        mlp, width = [nn.Linear(nf, compress_nc), nn.ReLU()], compress_nc
        for _ in range(mlp_layers):
            mlp += [nn.Linear(width, nf), nn.ReLU()]
            width = nf
        self.mlp = nn.Sequential(*mlp)

    def forward(self, x):
        return self.mlp(self.model(x).flatten(1))


def generator_widths(ngf: int, n_down: int) -> list[int]:
    """Output widths of the ``n_down + 1`` generator layers: ngf x [8, 8, 4, 2, 1, 1] at n_down=5
    (generator.py:115-120); in general layer j < n_down matches encoder block n_down - j."""
    widths = [ngf * enc_mult(n_down - j) for j in range(1, n_down)]
    return [widths[0]] + widths + [ngf]


SKIP_LAYERS = (1, 2)  # generator.py:116-117: dynamic skip connections on the 2nd and 3rd layers


class Generator(nn.Module):
    def __init__(self, ngf: int = 64, n_down: int = 5, style_nef: int = 64, style_dim: int = 256):
        super().__init__()
        self.n_down, self.style_dim = int(n_down), int(style_dim)
        self.style_encoder = StyleEncoder(style_nef, style_dim)
        widths = generator_widths(ngf, n_down)
        layers = [GeneratorLayer(1, widths[0], 1, style_dim, usepost=True)]
        for j in range(1, n_down + 1):
            # hidden state channels: the content code (1) into layer 1, then the previous layer's width
            hidden = 1 if j == 1 else widths[j - 1]
            layers.append(GeneratorLayer(widths[j - 1], widths[j], hidden, style_dim, useskip=j in SKIP_LAYERS))
        self.model = nn.Sequential(*layers)

    def forward(self, content: list[torch.Tensor], style: torch.Tensor, useskip: bool = True):
        """``content``: ``ContentEncoder.features`` of the source; ``style``: B x style_dim codes.
        Returns the image and the skip masks. ``useskip=False`` is the official reconstruction path without
        dynamic skips (m = 0, generator.py:129)."""
        state = content[0] if useskip else None
        x, _, _ = self.model[0](content[0], style)
        masks = []
        for j in range(1, self.n_down + 1):
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            feat = content[j + 1] if j < self.n_down else None
            x, state, mask = self.model[j](x, style, feat, state)
            if mask is not None:
                masks.append(mask)
        return torch.tanh(self.model[self.n_down].rgb(x)), masks


# ---------------------------------------------------------------------------------------------- discriminator
class DisResBlock(nn.Module):
    """Pre-activation residual block, optional 2x average-pool downsampling, output / sqrt(2)
    (discriminator.py:12-57; its ``normalize`` option is unused by GP-UNIT)."""

    def __init__(self, fin: int, fout: int, downsample: bool = True):
        super().__init__()
        self.learned_shortcut, self.downsample = fin != fout, downsample
        self.conv_0 = nn.Conv2d(fin, fin, 3, 1, 1)
        self.conv_1 = nn.Conv2d(fin, fout, 3, 1, 1)
        if self.learned_shortcut:
            self.conv_s = nn.Conv2d(fin, fout, 1, 1, 0, bias=False)

    def forward(self, x):
        x_s = self.conv_s(x) if self.learned_shortcut else x
        if self.downsample:
            x_s = F.avg_pool2d(x_s, 2)
        dx = self.conv_0(F.leaky_relu(x, 0.2))
        if self.downsample:
            dx = F.avg_pool2d(dx, 2)
        dx = self.conv_1(F.leaky_relu(dx, 0.2))
        return (x_s + dx) / math.sqrt(2)


class Discriminator(nn.Module):
    def __init__(self, num_domains: int = 1, img_size: int = 256, nf: int = 64, max_nf: int = 512):
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(3, nf, 3, 1, 1)]
        dim_in = nf
        for _ in range(int(math.log2(img_size)) - 2):
            dim_out = min(dim_in * 2, max_nf)
            blocks.append(DisResBlock(dim_in, dim_out))
            dim_in = dim_out
        blocks += [nn.LeakyReLU(0.2), nn.Conv2d(dim_in, dim_in, 4, 1, 0), nn.LeakyReLU(0.2)]
        self.model = nn.Sequential(*blocks)
        self.linear = nn.Conv2d(dim_in, num_domains, 1, 1, 0)
        self.num_domains = int(num_domains)

    def forward(self, x: torch.Tensor, labels: torch.Tensor, style_layer: int | None = None):
        """Logits ``B`` (the head of each sample's ``labels``) and, with ``style_layer``, the channel means of
        the output of ``model[:style_layer]`` (B x C; discriminator.py:89-96)."""
        style = None
        if style_layer is None:
            feat = self.model(x)
        else:
            feat = self.model[:style_layer](x)
            style = feat.mean(dim=(2, 3))
            feat = self.model[style_layer:](feat)
        out = self.linear(feat).reshape(x.shape[0], self.num_domains)
        return out.gather(1, labels.reshape(-1, 1)).reshape(-1), style


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral norm on every conv of ``module`` (the official discriminator's ``spectral_norm(...)``)."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv2d):
            setattr(module, name, spectral_norm(child))
        else:
            add_spectral_norm(child)
    return module


# ---------------------------------------------------------------------------------------------- sampler
class StyleSampler(nn.Module):
    """noise (noise_dim) -> style code: linear, BN, ReLU, linear, BN, ReLU, linear; no biases (sampler.py:19-39)."""

    def __init__(self, noise_dim: int = 128, style_dim: int = 256, hidden: int = 128):
        super().__init__()
        self.noise_dim = int(noise_dim)
        self.lin1 = nn.Linear(noise_dim, hidden, bias=False)
        self.bn1 = nn.BatchNorm1d(hidden)
        self.lin2 = nn.Linear(hidden, hidden, bias=False)
        self.bn2 = nn.BatchNorm1d(hidden)
        self.lin_out = nn.Linear(hidden, style_dim, bias=False)

    def forward(self, z):
        z = F.relu(self.bn1(self.lin1(z)))
        z = F.relu(self.bn2(self.lin2(z)))
        return self.lin_out(z)


# ---------------------------------------------------------------------------------------------- init
@torch.no_grad()
def init_kaiming(module: nn.Module) -> None:
    """Official ``init_weights('kaiming', 0.02)`` (base_network.py:23-54): every Conv/Linear weight
    kaiming-normal (fan_in, a=0), every bias 0 (the AdaIN linears included, so their 1/0 bias init is undone).
    Spectral-normed convs get it on ``weight_orig`` (the official writes into the shared storage)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weight = m.weight_orig if hasattr(m, "weight_orig") else m.weight
            nn.init.kaiming_normal_(weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
