"""FUNIT networks (Liu et al., ICCV 2019), written from the paper and the facts of NVlabs/FUNIT.

Generator ``FewShotGenerator``:
  * class encoder: 7x7 conv, two stride-2 4x4 convs doubling the width, ``n_downs_class - 2`` more
    stride-2 4x4 convs at the same width, global average pooling, 1x1 conv to a ``latent_dim`` code;
    ReLU, no normalisation, reflection padding.
  * content encoder: 7x7 conv, ``n_downs_content`` stride-2 4x4 convs doubling the width
    (64 -> 512 for the defaults), ``n_res_blks`` residual blocks; InstanceNorm (no affine) + ReLU.
  * decoder: ``n_res_blks`` AdaIN residual blocks, ``n_downs_content`` x [nearest 2x upsample,
    5x5 conv, InstanceNorm, ReLU], 7x7 conv + tanh.
  * MLP (``n_mlp_blks`` linear layers, width ``nf_mlp``) maps the class code to every AdaIN layer's
    (bias, scale); the AdaIN scale is used as is (not 1 + scale), as in the official code.
Discriminator ``ProjectionResDiscriminator``: 7x7 conv, ``n_res_blks`` pre-activation residual blocks
(LeakyReLU 0.2, 3x3 convs, learned 1x1 shortcut when the width changes, widths doubling up to 1024,
reflect-pad + 3x3/2 average pooling after every second block but the last pair), then LeakyReLU +
1x1 conv to ``num_classes`` maps; the output is the map of each sample's class.

Everything is plain ``nn.Module`` code with no in-place tricks that break under ``torch.autocast``
(bf16): AdaIN normalises in float32 and casts back.
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


class ActFirstResBlock(nn.Module):
    """Pre-activation residual block: (LReLU, 3x3 conv) x 2; learned bias-free 1x1 shortcut if widths differ."""

    def __init__(self, fin, fout):
        super().__init__()
        fhid = min(fin, fout)
        self.conv_0 = ConvBlock(fin, fhid, 3, 1, 1, act="lrelu", act_first=True)
        self.conv_1 = ConvBlock(fhid, fout, 3, 1, 1, act="lrelu", act_first=True)
        self.shortcut = nn.Conv2d(fin, fout, 1, bias=False) if fin != fout else None

    def forward(self, x):
        s = self.shortcut(x) if self.shortcut is not None else x
        return s + self.conv_1(self.conv_0(x))


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
        self.classifier = ConvBlock(nf_out, num_classes, 1, 1, 0, act="lrelu", act_first=True)
        self.num_classes = num_classes
        self.num_downsamplings = n_layers - 1

    def forward(self, x, labels):
        """Return (B x H' x W' map of each sample's class, B x C x H' x W' features)."""
        feat = self.features(x)
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
