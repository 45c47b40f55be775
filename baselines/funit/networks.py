"""FUNIT networks (Liu et al., ICCV 2019): the functions computed by NVlabs/FUNIT ``networks.py`` / ``blocks.py``.

Checked against the official code (commit 198f430b, 2021-04-21) and pinned by
``tests/test_funit.py::test_networks_match_official_funit``; official file:line in parentheses.

Generator ``FewShotGenerator`` (official ``FewShotGen``, networks.py:111-172):
  * class encoder (``ClassModelEncoder``, networks.py:175-200): 7x7 conv, two stride-2 4x4 convs
    doubling the width, ``n_downs_class - 2`` more stride-2 4x4 convs at the same width, global average
    pooling, 1x1 conv to a ``latent_dim`` code; ReLU, no normalisation, reflection padding.
  * content encoder (networks.py:203-225): 7x7 conv, ``n_downs_content`` stride-2 4x4 convs doubling
    the width (64 -> 512 for the defaults), ``n_res_blks`` residual blocks (blocks.py:26-44:
    x + [conv IN ReLU, conv IN]); InstanceNorm without affine, ReLU, reflection padding everywhere.
  * decoder (networks.py:228-249): ``n_res_blks`` AdaIN residual blocks, ``n_downs_content`` x
    [nearest 2x upsample, 5x5 conv, InstanceNorm, ReLU], 7x7 conv + tanh.
  * AdaIN (blocks.py:171-192): per-sample, per-channel normalisation with the biased variance and
    eps 1e-5 (``F.batch_norm`` in training mode on a 1 x BC view), then ``* scale + bias``; the scale is
    used as is (not 1 + scale).
  * MLP (networks.py:252-265): ``n_mlp_blks`` linear layers of width ``nf_mlp`` (ReLU between, none
    after the last) maps the class code to every AdaIN layer's parameters, laid out per layer as
    [bias (C), scale (C)] in module order (``assign_adain_params``, networks.py:15-24).
  The generator's in-place ReLUs (blocks.py:92, 143) act on fresh conv/norm outputs and change no value.
Discriminator ``ProjectionResDiscriminator`` (official ``GPPatchMcResDis``, networks.py:36-69): 7x7 conv,
``n_res_blks`` pre-activation residual blocks (3x3 reflect-padded convs, widths doubling up to 1024,
reflect-pad + 3x3/2 average pooling after every second block but the last pair), then LeakyReLU + 1x1
conv to ``num_classes`` maps; the output is the map of each sample's class. The official activations
are in-place ``LeakyReLU(0.2, inplace=True)`` applied first (blocks.py:145, 156-158), and that changes
the function, which we compute explicitly (no in-place op, so autograd, double backward for the gradient
penalty and ``torch.autocast`` work):
  * ``ActFirstResBlock`` (blocks.py:65-70): ``conv_0`` overwrites its input ``x`` with lrelu(x) before
    ``out = x_s + dx`` reads it, so an identity shortcut carries lrelu(x): out = lrelu(x) + F(x). A learned
    1x1 shortcut (widths differ) is computed before, from x itself: out = W x + F(x).
  * ``cnn_c``'s activation (networks.py:56-59, 65-66) overwrites ``feat`` in place, so the returned
    feature-matching features are lrelu(feat), and the class maps are conv1x1(lrelu(feat)).

Everything is plain ``nn.Module`` code; AdaIN normalises in float32 and casts back (bf16 autocast).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pad(kind: str, p: int) -> nn.Module:
    if p == 0:
        return nn.Identity()
    return nn.ReflectionPad2d(p) if kind == "reflect" else nn.ZeroPad2d(p)


class ConvBlock(nn.Module):
    """pad -> conv -> (InstanceNorm) -> activation; or activation first (pre-activation)."""

    def __init__(self, cin, cout, k, stride=1, pad=0, *, norm="none", act="relu", pad_type="reflect",
                 bias=True, act_first=False):
        super().__init__()
        self.act_first = act_first
        self.pad = _pad(pad_type, pad)
        self.conv = nn.Conv2d(cin, cout, k, stride, bias=bias)
        self.norm = nn.InstanceNorm2d(cout) if norm == "in" else None
        if act == "relu":
            self.act = nn.ReLU()
        elif act == "lrelu":
            self.act = nn.LeakyReLU(0.2)
        elif act == "tanh":
            self.act = nn.Tanh()
        elif act == "none":
            self.act = None
        else:  # pragma: no cover - programming error
            raise ValueError(act)

    def forward(self, x):
        if self.act_first:
            if self.act is not None:
                x = self.act(x)
            x = self.conv(self.pad(x))
            return self.norm(x) if self.norm is not None else x
        x = self.conv(self.pad(x))
        if self.norm is not None:
            x = self.norm(x)
        return self.act(x) if self.act is not None else x


class ResBlock(nn.Module):
    """Two 3x3 convs (norm, ReLU between), identity shortcut; norm 'in' or 'none'."""

    def __init__(self, dim, norm="in"):
        super().__init__()
        self.c1 = ConvBlock(dim, dim, 3, 1, 1, norm=norm, act="relu")
        self.c2 = ConvBlock(dim, dim, 3, 1, 1, norm=norm, act="none")

    def forward(self, x):
        return x + self.c2(self.c1(x))


def adain(x: torch.Tensor, bias: torch.Tensor, scale: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Instance-normalise ``x`` per sample and channel, then ``* scale + bias`` (B x C each)."""
    dtype = x.dtype
    xf = x.float()
    mean = xf.mean(dim=(2, 3), keepdim=True)
    var = xf.var(dim=(2, 3), keepdim=True, unbiased=False)
    out = (xf - mean) * torch.rsqrt(var + eps)
    out = out * scale.float()[:, :, None, None] + bias.float()[:, :, None, None]
    return out.to(dtype)


class AdaINResBlock(nn.Module):
    """Residual block whose two normalisations are AdaIN with externally supplied parameters."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim
        self.pad1, self.conv1 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3)
        self.pad2, self.conv2 = nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3)

    num_adain_params = property(lambda self: 4 * self.dim)

    def forward(self, x, params):
        d = self.dim
        # Layout per AdaIN layer: [bias (d), scale (d)], layers in forward order (the official order).
        b1, s1, b2, s2 = params[:, :d], params[:, d:2 * d], params[:, 2 * d:3 * d], params[:, 3 * d:4 * d]
        h = F.relu(adain(self.conv1(self.pad1(x)), b1, s1))
        h = adain(self.conv2(self.pad2(h)), b2, s2)
        return x + h


class ClassEncoder(nn.Module):
    def __init__(self, nf=64, n_downs=4, latent_dim=64):
        super().__init__()
        if n_downs < 2:
            raise ValueError("n_downs_class must be >= 2")
        layers = [ConvBlock(3, nf, 7, 1, 3)]
        dim = nf
        for _ in range(2):
            layers.append(ConvBlock(dim, dim * 2, 4, 2, 1))
            dim *= 2
        for _ in range(n_downs - 2):
            layers.append(ConvBlock(dim, dim, 4, 2, 1))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, latent_dim, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x).flatten(1)  # B x latent_dim


class ContentEncoder(nn.Module):
    def __init__(self, nf=64, n_downs=3, n_res=2):
        super().__init__()
        layers = [ConvBlock(3, nf, 7, 1, 3, norm="in")]
        dim = nf
        for _ in range(n_downs):
            layers.append(ConvBlock(dim, dim * 2, 4, 2, 1, norm="in"))
            dim *= 2
        layers += [ResBlock(dim, "in") for _ in range(n_res)]
        self.model = nn.Sequential(*layers)
        self.output_dim = dim

    def forward(self, x):
        return self.model(x)


class Decoder(nn.Module):
    def __init__(self, dim=512, n_ups=3, n_res=2):
        super().__init__()
        self.res = nn.ModuleList(AdaINResBlock(dim) for _ in range(n_res))
        ups = []
        for _ in range(n_ups):
            ups += [nn.Upsample(scale_factor=2, mode="nearest"), ConvBlock(dim, dim // 2, 5, 1, 2, norm="in")]
            dim //= 2
        ups.append(ConvBlock(dim, 3, 7, 1, 3, act="tanh"))
        self.up = nn.Sequential(*ups)

    @property
    def num_adain_params(self) -> int:
        return sum(b.num_adain_params for b in self.res)

    def forward(self, content, adain_params):
        x, offset = content, 0
        for block in self.res:
            n = block.num_adain_params
            x = block(x, adain_params[:, offset:offset + n])
            offset += n
        return self.up(x)


class MLP(nn.Module):
    def __init__(self, cin, cout, width=256, n_blk=3):
        super().__init__()
        layers, d = [], cin
        for _ in range(n_blk - 1):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        layers.append(nn.Linear(d, cout))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x.flatten(1))


class FewShotGenerator(nn.Module):
    def __init__(self, nf=64, nf_mlp=256, latent_dim=64, n_mlp_blks=3, n_res_blks=2, n_downs_content=3,
                 n_downs_class=4):
        super().__init__()
        self.latent_dim = latent_dim
        self.enc_class = ClassEncoder(nf, n_downs_class, latent_dim)
        self.enc_content = ContentEncoder(nf, n_downs_content, n_res_blks)
        self.dec = Decoder(self.enc_content.output_dim, n_downs_content, n_res_blks)
        self.mlp = MLP(latent_dim, self.dec.num_adain_params, nf_mlp, n_mlp_blks)

    def class_code(self, images):
        return self.enc_class(images)

    def content(self, images):
        return self.enc_content(images)

    def decode(self, content, code):
        return self.dec(content, self.mlp(code))

    def forward(self, source, reference):
        return self.decode(self.content(source), self.class_code(reference))


#: the config keys that are ``FewShotGenerator``'s constructor arguments (recipe config, run.pt config)
GEN_KEYS = ("nf", "nf_mlp", "latent_dim", "n_mlp_blks", "n_res_blks", "n_downs_content", "n_downs_class")


class ActFirstResBlock(nn.Module):
    """Pre-activation residual block as the official one computes it (blocks.py:47-70).

    F(x) = conv_1(lrelu(conv_0(lrelu(x)))) (3x3, reflect padding); out = lrelu(x) + F(x) with the identity
    shortcut (the official in-place LeakyReLU of ``conv_0`` overwrites x before the shortcut reads it), or
    W x + F(x) with the bias-free 1x1 shortcut used when the widths differ (computed before the overwrite).
    """

    def __init__(self, fin, fout):
        super().__init__()
        fhid = min(fin, fout)
        self.act = nn.LeakyReLU(0.2)
        self.conv_0 = ConvBlock(fin, fhid, 3, 1, 1, act="none")  # its activation is ``self.act``, shared
        self.conv_1 = ConvBlock(fhid, fout, 3, 1, 1, act="lrelu", act_first=True)
        self.shortcut = nn.Conv2d(fin, fout, 1, bias=False) if fin != fout else None

    def forward(self, x):
        h = self.act(x)
        s = self.shortcut(x) if self.shortcut is not None else h
        return s + self.conv_1(self.conv_0(h))


class ProjectionResDiscriminator(nn.Module):
    """FUNIT's patch discriminator with one output map per class (indexed by the sample's label)."""

    def __init__(self, num_classes, nf=64, n_res_blks=10, max_nf=1024):
        super().__init__()
        if n_res_blks < 2 or n_res_blks % 2:
            raise ValueError("dis_n_res_blks must be an even number >= 2")
        n_layers = n_res_blks // 2
        layers = [ConvBlock(3, nf, 7, 1, 3, act="none")]
        for _ in range(n_layers - 1):
            nf_out = min(nf * 2, max_nf)
            layers += [ActFirstResBlock(nf, nf), ActFirstResBlock(nf, nf_out),
                       nn.ReflectionPad2d(1), nn.AvgPool2d(3, 2)]
            nf = nf_out
        nf_out = min(nf * 2, max_nf)
        layers += [ActFirstResBlock(nf, nf), ActFirstResBlock(nf, nf_out)]
        self.features = nn.Sequential(*layers)
        self.act = nn.LeakyReLU(0.2)  # the official cnn_c's activation-first LeakyReLU (networks.py:56-59)
        self.classifier = ConvBlock(nf_out, num_classes, 1, 1, 0, act="none")
        self.num_classes = num_classes
        self.num_downsamplings = n_layers - 1

    def forward(self, x, labels):
        """Return (B x H' x W' map of each sample's class, B x C x H' x W' features).

        The features are lrelu(last block's output), as the official ``forward`` returns them (its
        ``cnn_c`` activates ``feat`` in place, networks.py:65-69): FUNIT's feature matching uses these.
        """
        feat = self.act(self.features(x))
        out = self.classifier(feat)
        idx = torch.arange(out.shape[0], device=out.device)
        return out[idx, labels], feat


def init_weights_kaiming(module: nn.Module) -> None:
    """Official FUNIT ``init: kaiming``: N(0, 2/fan_in) for every Conv2d / Linear weight, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
