"""GP-UNIT stage I, prior distillation (paper Sec. 3.2; official prior_distillation.py and
model/content_encoder.py:109-241), trained on pairs the user provides (``unit-eval train gpunit --set stage=1``).

Data layout (the official synImageNet291 layout, data_preparation/readme.md):

    PAIRS/<class>/<name>.<ext>   --data: images; files with the same <name> in different class folders were
                                 generated from one latent code (a pair)
    MASKS/<class>/<name>.<ext>   --set masks=MASKS: each image's instance-segmentation map (any image format)

Per iteration (prior_distillation.py:55-112) the "source" stream gives B unpaired images x and the "target"
stream B anchors x_a, each with a partner x_b of the same <name> from a class folder drawn among those that
hold it (officially any class, dataset.py:318-334); an image, its mask and (for anchors) the partner and its
mask share one crop and flip. The official run also draws x from real ImageNet291/CelebA-HQ images; here x is
drawn from the same folders. Losses on the 3B images (weights prior_distillation.py:25-30):
  arec = lambda_app_rec (MSE + vgg_w VGG)(F(E_c~(x), E_s(x'), l), x)  (E_c~: content + N(0, 0.2^2) noise,
         x' = x flipped with probability 1/2 for E_s, one coin);  srec = lambda_shape_rec L1(F_s(E_c~(x), l), mask);
  fdist = lambda_feat_dist L1(E_c(x_a), E_c(x_b) detached);  sdist = lambda_shape_dist L1(F_s(E_c~(x_b), l_a),
         mask_a) and the reverse;  reg = lambda_reg ||E_c(x)||_2 (whole batch) + lambda_class CE(C(R(E_c(x))), l)
  with R a gradient reversal. Adam lr 2e-4, betas (0.9, 0.999) (prior_distillation.py:170).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from unit_eval.errors import UnitEvalError
from unit_eval.images import load_image

from .networks import ContentEncoder, enc_mult

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Block(nn.Module):
    """Official Conv2dBlock (content_encoder.py:20-64): spectral-normed conv (reflect), norm, activation."""

    def __init__(self, fin, fout, k, pad, stride, norm="none", act="relu", style_dim=128):
        super().__init__()
        self.conv = nn.utils.spectral_norm(nn.Conv2d(fin, fout, k, stride=stride, padding=pad, padding_mode="reflect"))
        self.norm = {"instance": lambda: nn.InstanceNorm2d(fout), "none": lambda: None,
                     "adain": lambda: _AdaIN(style_dim, fout)}[norm]()
        self.act = {"relu": nn.ReLU(), "lrelu": nn.LeakyReLU(0.2), "tanh": nn.Tanh(), "none": None}[act]

    def forward(self, x, s=None):
        x = self.conv(x)
        if isinstance(self.norm, _AdaIN):
            x = self.norm(x, s)
        elif self.norm is not None:
            x = self.norm(x)
            if s is not None:
                x = x * s[1] + s[0]
        return self.act(x) if self.act is not None else x


class _AdaIN(nn.Module):
    def __init__(self, style_dim, channels):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels)
        self.style = nn.Linear(style_dim, 2 * channels)

    def forward(self, x, s):
        gamma, beta = self.style(s)[:, :, None, None].chunk(2, 1)
        return gamma * self.norm(x) + beta


def _named(children: dict) -> nn.Module:
    """A container with the given named children (the official attribute names, so state-dict keys match)."""
    module = nn.Module()
    for name, child in children.items():
        module.add_module(name, child)
    return module


class AutoEncoder(nn.Module):
    """E_c (``contentE``), image-level style encoder E_s (``styleE``), decoder F (``G``), classifier C (``C``),
    the 1 -> top channels lift ``fc`` and the domain embedding (content_encoder.py:191-241)."""

    def __init__(self, num_classes, nef=64, n_down=5, img_size=256, embed_dim=128, noise=0.2):
        super().__init__()
        self.n_down, self.noise, self.bottom = n_down, noise, img_size // 2 ** n_down
        top = nef * enc_mult(n_down)
        self.contentE = ContentEncoder(nef, n_down, img_size, sn=True)
        self.styleE = _named({f"layer{i}": Block(3 if i == 1 else nef * enc_mult(i - 1), nef * enc_mult(i), 3, 1, 2, "none", "lrelu")
                              for i in range(1, n_down + 2)})
        image = {f"layer{4 + k}": Block(top if k == 0 else nef * enc_mult(n_down - 1 - k), nef * enc_mult(n_down - 2 - k),
                                        3, 1, 1, "instance") for k in range(n_down - 2)}
        self.G = _named({
            "layer1": nn.Sequential(*[Block(top, top, 3, 1, 1, "adain", style_dim=embed_dim) for _ in range(3)]),
            "layer2": Block(top, top, 3, 1, 1, "adain", style_dim=embed_dim),
            "layer3": Block(top, top, 3, 1, 1, "adain", style_dim=embed_dim),
            **image,
            f"layer{n_down + 2}": Block(nef, 3, 3, 1, 1, "none", "tanh"),
            "tomask": Block(top, 3, 3, 1, 1, "none", "tanh"),
        })
        self.C = _named({"fc3": nn.Linear(num_classes, num_classes), "layer1": Block(1, 32, 3, 1, 2, "none", "lrelu"),
                         "layer2": Block(32, 64, 3, 1, 1, "none", "lrelu"),
                         "layer3": Block(64, num_classes, max(1, self.bottom // 2), 0, 1, "none", "lrelu")})
        self.fc = Block(1, top, 1, 0, 1, "instance", "lrelu")
        self.embed = nn.Embedding(num_classes, embed_dim)

    def styles(self, x):
        """Mean and (unbiased) std over space of the first n_down - 2 style-encoder maps (getstyle)."""
        out = []
        for i in range(1, self.n_down - 1):
            x = getattr(self.styleE, f"layer{i}")(x)
            f = x.flatten(2)
            out.append((f.mean(2)[:, :, None, None], f.std(2)[:, :, None, None]))
        return out

    def decode(self, styles, y, z):
        g = self.G
        x = self.fc(z)
        for conv in g.layer1:
            x = conv(x, y)
        x = F.interpolate(g.layer2(x, y), scale_factor=2)
        tmp = g.layer3(x, y)
        mask = g.tomask(tmp)
        x = F.interpolate(tmp, scale_factor=2)
        for k in range(self.n_down - 2):
            x = F.interpolate(getattr(g, f"layer{4 + k}")(x, styles[self.n_down - 3 - k]), scale_factor=2)
        return getattr(g, f"layer{self.n_down + 2}")(x), mask

    def classify(self, content):
        x = _Reverse.apply(content)
        for name in ("layer1", "layer2", "layer3"):
            x = getattr(self.C, name)(x)
        return self.C.fc3(x.flatten(1))


def stage1_losses(ae: AutoEncoder, x, xa, xb, l, la, lb, m, ma, mb, cfg, vgg=None):
    """The stage-I objective on one batch (module docstring); returns the total and its detached parts."""
    from .perceptual import vgg_loss

    b = x.shape[0]
    imgs, labels = torch.cat((x, xa, xb)), torch.cat((l, la, lb))
    size = ae.bottom * 2
    masks = F.interpolate(torch.cat((m, ma, mb)), size=size, mode="bilinear")
    content = ae.contentE(imgs)
    noisy = content + torch.randn_like(content) * ae.noise
    flip = bool(torch.rand(()) < 0.5)  # official encode(x, 0.5): np.random.rand(1) > 0.5 flips for E_s
    styles = ae.styles(imgs.flip(3) if flip else imgs)
    y = ae.embed(labels)
    recon, recon_masks = ae.decode(styles, y, noisy)
    paired = [(mu[b:], sd[b:]) for mu, sd in styles]
    _, trans_masks = ae.decode(paired, y[b:], torch.cat((noisy[2 * b:], noisy[b:2 * b])))
    pred = ae.classify(content)
    vgg_term = vgg_loss(vgg, recon, imgs) if (vgg is not None and cfg["vgg_w"]) else torch.zeros((), device=x.device)
    arec = cfg["lambda_app_rec"] * (F.mse_loss(recon, imgs) + cfg["vgg_w"] * vgg_term)
    srec = cfg["lambda_shape_rec"] * F.l1_loss(recon_masks, masks)
    fdist = cfg["lambda_feat_dist"] * F.l1_loss(content[b:2 * b], content[2 * b:].detach())
    sdist = cfg["lambda_shape_dist"] * F.l1_loss(trans_masks, masks[b:])
    reg = cfg["lambda_reg"] * torch.norm(content, p=2) + cfg["lambda_class"] * F.cross_entropy(pred, labels)
    total = arec + srec + fdist + sdist + reg
    return total, {"ae_total": total.detach(), "ae_arec": arec.detach(), "ae_srec": srec.detach(),
                   "ae_fdist": fdist.detach(), "ae_sdist": sdist.detach(), "ae_reg": reg.detach()}


class PairData:
    """Masks and partners of a stage-I dataset (module docstring), loaded with one crop and flip per sample."""

    def __init__(self, index, masks_root, load_size: int, img_size: int):
        if not masks_root:
            raise UnitEvalError("gpunit stage I needs instance masks: --set masks=DIR with DIR/<class>/<name>.<ext> "
                                "for every training image (see baselines/gpunit/stage1.py)")
        root = Path(str(masks_root)).expanduser()
        if not root.is_dir():
            raise UnitEvalError(f"gpunit stage I masks folder {root} is not a folder")
        self.paths, self.labels, self.load, self.size = list(index.paths), np.asarray(index.labels), load_size, img_size
        names = index.class_names
        self.masks, by_stem = [], {}
        for i, p in enumerate(self.paths):
            cls, stem = names[int(self.labels[i])], Path(p).stem
            found = next((root / cls / (stem + e) for e in IMAGE_EXTS if (root / cls / (stem + e)).is_file()), None)
            if found is None:
                raise UnitEvalError(f"gpunit stage I: no mask for {cls}/{Path(p).name} under {root / cls} (expected {stem}.png or .jpg)")
            self.masks.append(found)
            by_stem.setdefault(stem, []).append(i)
        self.partners = [by_stem[Path(p).stem] for p in self.paths]

    def _load(self, ids, partner: bool, device):
        imgs, masks, labels = [], [], []
        for i in ids.tolist():
            if partner:
                group = self.partners[i]
                i = group[int(torch.randint(len(group), ()))]
            imgs.append(load_image(self.paths[i], size=self.load, resize_filter="bilinear"))
            masks.append(load_image(self.masks[i], size=self.load, resize_filter="bilinear"))
            labels.append(int(self.labels[i]))
        return imgs, masks, torch.tensor(labels, device=device)

    def batch(self, ids, device, crops=None):
        """Images, masks, labels of ``ids`` (and the crop/flip used, to repeat it for partners)."""
        imgs, masks, labels = self._load(ids, crops is not None, device)
        if crops is None:
            span = self.load - self.size + 1
            crops = [(int(torch.randint(span, ())), int(torch.randint(span, ())), bool(torch.rand(()) < 0.5)) for _ in imgs]
        out = []
        for arrs in (imgs, masks):
            t = []
            for a, (top, left, flip) in zip(arrs, crops):
                a = a[top:top + self.size, left:left + self.size]
                t.append(torch.from_numpy(np.ascontiguousarray(a[:, ::-1] if flip else a)).permute(2, 0, 1))
            out.append(torch.stack(t).to(device).float() / 127.5 - 1.0)
        return out[0], out[1], labels, crops
