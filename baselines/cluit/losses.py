"""CLUIT losses and augmentations (all losses in float32). Randomness: torch's global RNG on the tensors'
device (the loop saves and restores it for exact resume).

- :func:`contrastive_loss` (Eq. 1 and 4): (N+1)-way cross-entropy with temperature ``tau`` between a query and
  its positive key against a dictionary of negatives; every vector is L2-normalised first (Eq. 1: "the vectors
  are normalized to prevent collapsing"), so the logits are cosine similarities / tau.
- :func:`patch_mean` (Eq. 5): ``n`` random crops of every image (:func:`random_crops`, the augmentation's crop
  range, A.2), each resized back to the full size, represented by ``represent``; the mean over an image's
  patches, renormalised (a mean of unit vectors is shorter than one; the dictionary's negatives are unit).
- :func:`d_nonsat` / :func:`g_nonsat`: the non-saturating GAN loss ([7], A.2), ``softplus`` form.
- :func:`r1_penalty`: ``gamma / 2 * E ||grad_x D(x)||^2`` ([26]); lazy regularisation multiplies it by its
  interval (StyleGAN2's lazy R1) in the recipe.
- :func:`augment` (Sec. 4.2 "Data augmentation", the default set): random resized crop with area 0.125-1.0
  of the image (aspect 3/4-4/3), horizontal flip, affine (rotation, shear, shift) and colour distortion.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CROP_SCALE = (0.125, 1.0)  # Sec. 4.2 / Table 2 default "Crop Size 0.125 - 1.0" (area, as RandomResizedCrop's scale)
CROP_RATIO = (3 / 4, 4 / 3)  # torchvision RandomResizedCrop's default aspect range (SimCLR [4])
ROTATE_DEG, SHEAR_DEG, SHIFT = 20.0, 10.0, 0.1  # TUNIT's augment ranges; CLUIT names the transforms only
JITTER = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue (MoCo v2 / SimCLR's colour distortion)
P_JITTER, P_GRAY = 0.8, 0.2


def contrastive_loss(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor, tau: float) -> torch.Tensor:
    """``-log exp(q.k/tau) / (exp(q.k/tau) + sum_j exp(q.n_j/tau))`` over normalised vectors, batch mean;
    ``key`` and ``negatives`` are constants (no gradient)."""
    q = F.normalize(query.float(), dim=1)
    k = F.normalize(key.detach().float(), dim=1)
    n = F.normalize(negatives.detach().float(), dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ n.t()], 1) / float(tau)
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def d_nonsat(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.softplus(-real_logit.float()).mean(), F.softplus(fake_logit.float()).mean()


def g_nonsat(fake_logit: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logit.float()).mean()


def r1_penalty(real_logit: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``0.5 * E_x ||grad_x D(x)||^2`` (times gamma in the recipe), differentiable for D's update."""
    (grad,) = torch.autograd.grad(real_logit.float().sum(), real, create_graph=True)
    return 0.5 * grad.float().pow(2).flatten(1).sum(1).mean()


def _rand(n: int, device, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(n, device=device) * (hi - lo) + lo


def crop_boxes(n: int, device, scale=CROP_SCALE, ratio=CROP_RATIO) -> torch.Tensor:
    """n boxes (width, height, centre x, centre y) as fractions of the image side / normalised [-1, 1] centres:
    area drawn in ``scale``, log-aspect in ``ratio``; a side above 1 is clipped to the image (then the area stays
    at least 3/4 > 0.125: clipping needs area * ratio > 1)."""
    area = _rand(n, device, *scale)
    aspect = torch.exp(_rand(n, device, math.log(ratio[0]), math.log(ratio[1])))
    w = (area * aspect).sqrt().clamp(max=1.0)
    h = (area / aspect).sqrt().clamp(max=1.0)
    cx = _rand(n, device, -1.0, 1.0) * (1 - w)
    cy = _rand(n, device, -1.0, 1.0) * (1 - h)
    return torch.stack([w, h, cx, cy], 1)


def _sample(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_crops(x: torch.Tensor, n: int = 1) -> torch.Tensor:
    """``n`` random crops of every image (areas in ``CROP_SCALE``), bilinearly resized to the full size:
    (n * B) x C x H x W, crop j of image i at row ``j * B + i``. Differentiable in ``x``."""
    b = x.shape[0]
    xs = x.repeat(n, 1, 1, 1)
    w, h, cx, cy = crop_boxes(n * b, x.device).unbind(1)
    zero = torch.zeros_like(w)
    theta = torch.stack([torch.stack([w, zero, cx], 1), torch.stack([zero, h, cy], 1)], 1)
    return _sample(xs, theta)


def patch_mean(represent, x: torch.Tensor, n: int) -> torch.Tensor:
    """Eq. 5: the renormalised mean representation of ``n`` random patches of each image (B x D)."""
    b = x.shape[0]
    z = represent(random_crops(x, n)).float().view(n, b, -1)
    return F.normalize(z.mean(0), dim=1)


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)
_RGB = torch.linalg.inv(_YIQ).float()
_YIQ = _YIQ.float()


def _gray(y: torch.Tensor) -> torch.Tensor:
    return (0.299 * y[:, 0] + 0.587 * y[:, 1] + 0.114 * y[:, 2]).unsqueeze(1)


def _colour(y: torch.Tensor) -> torch.Tensor:
    """Colour distortion of images in [0, 1]: jitter with probability 0.8, then grayscale with probability 0.2."""
    b, dev = y.shape[0], y.device
    bri, con, sat, hue = JITTER
    j = y * _rand(b, dev, 1 - bri, 1 + bri).view(b, 1, 1, 1)
    j = j.clamp(0, 1)
    m = _gray(j).mean(dim=(1, 2, 3), keepdim=True)
    j = ((j - m) * _rand(b, dev, 1 - con, 1 + con).view(b, 1, 1, 1) + m).clamp(0, 1)
    g = _gray(j)
    j = ((j - g) * _rand(b, dev, 1 - sat, 1 + sat).view(b, 1, 1, 1) + g).clamp(0, 1)
    angle = _rand(b, dev, -hue, hue) * (2 * math.pi)  # hue shift as a chroma rotation in YIQ space
    q = torch.einsum("ij,bjhw->bihw", _YIQ.to(dev), j)
    c, s = torch.cos(angle).view(b, 1, 1), torch.sin(angle).view(b, 1, 1)
    q = torch.stack([q[:, 0], q[:, 1] * c - q[:, 2] * s, q[:, 1] * s + q[:, 2] * c], 1)
    j = torch.einsum("ij,bjhw->bihw", _RGB.to(dev), q).clamp(0, 1)
    y = torch.where((torch.rand(b, device=dev) < P_JITTER).view(b, 1, 1, 1), j, y)
    gray = (torch.rand(b, device=dev) < P_GRAY).view(b, 1, 1, 1)
    return torch.where(gray, _gray(y).expand_as(y), y)


def augment(x: torch.Tensor) -> torch.Tensor:
    """The positive view x~ of Eq. 1 for a batch in [-1, 1] (module docstring): one sampling pass for crop,
    flip and affine (output -> input map: crop box o flip o rotation/shear + shift), then colour."""
    x = x.float()
    b, dev = x.shape[0], x.device
    w, h, cx, cy = crop_boxes(b, dev).unbind(1)
    flip = torch.where(torch.rand(b, device=dev) < 0.5, -1.0, 1.0)
    angle = _rand(b, dev, -ROTATE_DEG, ROTATE_DEG) * (math.pi / 180)
    shear = _rand(b, dev, -SHEAR_DEG, SHEAR_DEG) * (math.pi / 180)
    tx, ty = _rand(b, dev, -2 * SHIFT, 2 * SHIFT), _rand(b, dev, -2 * SHIFT, 2 * SHIFT)  # [-1, 1] units
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # affine A (rotation @ shear) with shift t, then the crop box: input = box(A @ (flip * out) + t)
    a11, a12, a21, a22 = cos * flip, cos * tan - sin, sin * flip, sin * tan + cos
    theta = torch.stack([torch.stack([w * a11, w * a12, w * tx + cx], 1),
                         torch.stack([h * a21, h * a22, h * ty + cy], 1)], 1)
    y = _sample(x + 1.0, theta) / 2.0  # [0, 1], black outside the image
    return _colour(y) * 2.0 - 1.0
