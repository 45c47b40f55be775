"""Latent style sampling: GLANN's IMLE-style mapping net fitted to the style codes of a domain (paper
"Style sampling"; official model/sampler.py:53-121 and train.py:66-94), one per target domain here.

Fitting ``StyleSampler`` T to codes W (N x D), for ``max(1, samples // N)`` epochs (official
``int(2000000 / N)``, train.py:91), each with a fresh Adam (lr 1e-3 x 0.5^(epoch // 50), betas (0.5, 0.999),
weight decay 1e-5; sampler.py:71-76) and batch b = min(128, N):
  draw 2 x (N // b) batches of unit Gaussian noise e and map them, T(e) (train mode: batch statistics);
  give every code its nearest mapped noise (L2; faiss IndexFlatL2 there, an exact ``cdist`` argmin here);
  then one pass over the codes in a random order, regressing T(e_nn) on the code with MSE.
``mitigate_style_bias`` (train.py:78-85) first appends, N // 1000 times, the half-as-many-again codes farthest
(L1) from the mean code. Randomness comes from torch's global RNG (the loop restores it after finalize).

At sampling time T is used in eval mode (BatchNorm running statistics), so a code does not depend on the
other draws of the batch; the official inference.py:47-78 leaves T in train mode (batch statistics).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .networks import StyleSampler


def oversample_rare(codes: torch.Tensor) -> torch.Tensor:
    """Official ``mitigate_style_bias``: codes far from the mean repeated (train.py:78-85)."""
    order = (codes - codes.mean(0, keepdim=True)).abs().sum(1).argsort()
    out, num = [codes], len(order)
    for _ in range(len(order) // 1000):
        num = max(num // 2, 1)
        out.append(codes[order[-num:]])
    return torch.cat(out)


def fit_sampler(codes: torch.Tensor, *, noise_dim: int = 128, hidden: int = 128, samples: int = 2_000_000,
                mitigate_style_bias: bool = False, batch_size: int = 128) -> StyleSampler:
    codes = codes.detach().float()
    if mitigate_style_bias:
        codes = oversample_rare(codes)
    n = codes.shape[0]
    net = StyleSampler(noise_dim, codes.shape[1], hidden).to(codes.device)
    b = min(batch_size, n)
    batch_n = n // b
    for epoch in range(max(1, samples // n)):
        lr = 1e-3 * 0.5 ** (epoch // 50)
        opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999), weight_decay=1e-5)
        net.train()
        perm = torch.randperm(n, device=codes.device)
        e = torch.randn(2 * batch_n * b, noise_dim, device=codes.device)
        with torch.no_grad():
            mapped = torch.cat([net(chunk) for chunk in e.split(b)])
        nearest = torch.cdist(codes, mapped).argmin(1)
        for i in range(batch_n):
            idx = perm[i * b:(i + 1) * b]
            opt.zero_grad(set_to_none=True)
            F.mse_loss(net(e[nearest[idx]]), codes[idx]).backward()
            opt.step()
    return net.eval().requires_grad_(False)
