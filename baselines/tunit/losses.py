"""TUNIT losses and the guiding network's augmentation (all computed in float32).

- :func:`iic_loss`: negative mutual information between the cluster assignments of an image and of
  its augmented view (IIC), from the symmetrised, normalised K x K joint distribution.
- :func:`contrastive_loss`: MoCo-style (N+1)-way cross-entropy with temperature 0.07 against a queue
  of negative style codes (used for the guiding network, Eq. 2, and the generator, Eq. 4). Style
  codes are not L2-normalised, as in the official implementation.
- hinge adversarial losses and the R1 penalty on real images (``w * sum |grad|^2 / B``).
- :func:`augment`: the random view x+ = f(x) for IIC/MoCo, applied on the training device: random
  affine (rotation +-20 deg, translation +-10 %, shear +-10 deg, scale 0.9-1.1 of the area, aspect
  0.9-1.1, black fill), colour jitter (brightness/contrast/saturation 0.4, hue 0.125 as a chroma
  rotation in YIQ space) and a horizontal flip; a tensor counterpart of the official PIL pipeline
  (RandomAffine, RandomResizedCrop, ColorJitter, RandomHorizontalFlip). Randomness comes from
  torch's global RNG on the tensor's device (saved for exact resume).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def iic_loss(p: torch.Tensor, p_aug: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """``-I(p, p+)`` for softmax outputs ``p``, ``p_aug`` (B x K)."""
    p, p_aug = p.float(), p_aug.float()
    k = p.shape[1]
    joint = p.t() @ p_aug
    joint = (joint + joint.t()) / 2
    joint = joint / joint.sum()
    pi = joint.sum(1, keepdim=True).expand(k, k)
    pj = joint.sum(0, keepdim=True).expand(k, k)
    joint_c, pi, pj = joint.clamp_min(eps), pi.clamp_min(eps), pj.clamp_min(eps)
    return -(joint * (joint_c.log() - pi.log() - pj.log())).sum()


def contrastive_loss(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """``-log exp(q.k/t) / (exp(q.k/t) + sum_i exp(q.n_i/t))`` averaged over the batch; ``key`` is detached."""
    q, k = query.float(), key.detach().float()
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.float().t()
    logits = torch.cat([pos, neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def d_hinge(real_logit: torch.Tensor, fake_logit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.relu(1.0 - real_logit.float()).mean(), F.relu(1.0 + fake_logit.float()).mean()


def g_hinge(fake_logit: torch.Tensor) -> torch.Tensor:
    return -fake_logit.float().mean()


def r1_penalty(real_logit: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(real_logit.float().sum(), real, create_graph=True)
    return grad.float().pow(2).sum() / real.shape[0]


def _rand(b: int, device, lo: float, hi: float) -> torch.Tensor:
    return torch.rand(b, device=device) * (hi - lo) + lo


def _gray(y: torch.Tensor) -> torch.Tensor:
    return (0.299 * y[:, 0] + 0.587 * y[:, 1] + 0.114 * y[:, 2]).unsqueeze(1)


_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64)
_RGB = torch.linalg.inv(_YIQ).float()
_YIQ = _YIQ.float()


def augment(x: torch.Tensor) -> torch.Tensor:
    """Random view of a batch in [-1, 1] (module docstring)."""
    x = x.float()
    b, dev = x.shape[0], x.device
    # -- geometry: output -> input sampling matrix
    angle = _rand(b, dev, -20.0, 20.0) * (math.pi / 180)
    shear = _rand(b, dev, -10.0, 10.0) * (math.pi / 180)
    area = _rand(b, dev, 0.9, 1.1)
    aspect = torch.exp(_rand(b, dev, math.log(0.9), math.log(1.1)))
    sx = (area * aspect).sqrt()
    sy = (area / aspect).sqrt()
    tx, ty = _rand(b, dev, -0.2, 0.2), _rand(b, dev, -0.2, 0.2)  # +-10 % of the size in [-1, 1] units
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # rotation @ shear, then divide by scale (zooming in samples a smaller input window)
    a, bb = cos, cos * tan - sin
    c, d = sin, sin * tan + cos
    theta = torch.stack([torch.stack([a / sx, bb / sy, tx], 1), torch.stack([c / sx, d / sy, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = (F.grid_sample(x + 1.0, grid, mode="bilinear", padding_mode="zeros", align_corners=False)) / 2.0  # [0, 1], black fill
    # -- colour jitter in [0, 1]
    y = (y * _rand(b, dev, 0.6, 1.4).view(b, 1, 1, 1)).clamp(0, 1)
    m = _gray(y).mean(dim=(1, 2, 3), keepdim=True)
    y = ((y - m) * _rand(b, dev, 0.6, 1.4).view(b, 1, 1, 1) + m).clamp(0, 1)
    g = _gray(y)
    y = ((y - g) * _rand(b, dev, 0.6, 1.4).view(b, 1, 1, 1) + g).clamp(0, 1)
    hue = _rand(b, dev, -0.125, 0.125) * (2 * math.pi)
    yiq, rgb = _YIQ.to(dev), _RGB.to(dev)
    q = torch.einsum("ij,bjhw->bihw", yiq, y)
    ch, sh = torch.cos(hue).view(b, 1, 1), torch.sin(hue).view(b, 1, 1)
    i2 = q[:, 1] * ch - q[:, 2] * sh
    q2 = q[:, 1] * sh + q[:, 2] * ch
    y = torch.einsum("ij,bjhw->bihw", rgb, torch.stack([q[:, 0], i2, q2], 1)).clamp(0, 1)
    # -- flip
    flip = torch.rand(b, device=dev) < 0.5
    y = torch.where(flip.view(b, 1, 1, 1), y.flip(3), y)
    return y * 2.0 - 1.0
