"""UNIT objectives (paper Eqs. 2-8) as pure functions.

With x_0 from domain 0 and x_1 from domain 1, mu_d = E_d(x_d) and z_d = mu_d + eta (eta ~ N(0, I)):

* VAE (Eqs. 3-4):  lambda1 KL(q_d(z|x_d) || N(0, I)) + lambda2 |G_d(z_d) - x_d|_1        for d = 0, 1
* GAN (Eqs. 5-6):  lambda0 [log D_d(x_d) + log(1 - D_d(G_d(z_e)))], e = 1 - d (translations only);
  D maximises it; G minimises the non-saturating form -log D_d(G_d(z_e)) (as the official code).
* CC  (Eqs. 7-8):  lambda3 KL(q_d(z|x_d)) + lambda3 KL(q_e(z|x_d->e)) + lambda4 |G_d(z') - x_d|_1,
  z' = E_e(x_d->e) + eta', x_d->e = G_e(z_d).
Defaults lambda0 = 10, lambda1 = lambda3 = 0.1, lambda2 = lambda4 = 100 (Sec. 4).

Normalisations (the official code's): the Laplacian negative log-likelihood is the *mean* absolute
difference over pixels and channels; KL(N(mu, I) || N(0, I)) = 0.5 sum mu^2 is taken as mean(mu^2)
(``_compute_kl`` in UNIT v0.1); the BCE terms are means over logit maps (and summed over scales).
Following Eqs. 3 and 7 literally, the direct KL term appears with weight lambda1 + lambda3 (the v0.1
code used lambda1 only). ``gan_mode="lsgan"`` swaps BCE for least squares (the later official code).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def kl(mu: torch.Tensor) -> torch.Tensor:
    return mu.float().pow(2).mean()


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).abs().mean()


def _adv(outs, target_real: bool, mode: str) -> torch.Tensor:
    total = 0.0
    for o in outs:
        o = o.float()
        if mode == "bce":
            t = torch.ones_like(o) if target_real else torch.zeros_like(o)
            total = total + F.binary_cross_entropy_with_logits(o, t)
        else:  # lsgan
            total = total + ((o - (1.0 if target_real else 0.0)) ** 2).mean()
    return total


def discriminator_loss(gen, dis, x0, x1, *, gan_w=10.0, gan_mode="bce"):
    """lambda0 x sum_d [adv(D_d(x_d), real) + adv(D_d(x_e->d), fake)] with translations from sampled z."""
    with torch.no_grad():
        z0 = gen.encode(x0, 0)
        z1 = gen.encode(x1, 1)
        x10 = gen.decode(z1 + torch.randn_like(z1), 0)
        x01 = gen.decode(z0 + torch.randn_like(z0), 1)
    real = _adv(dis[0](x0), True, gan_mode) + _adv(dis[1](x1), True, gan_mode)
    fake = _adv(dis[0](x10.detach()), False, gan_mode) + _adv(dis[1](x01.detach()), False, gan_mode)
    total = gan_w * (real + fake)
    return total, {"d_total": total.detach(), "d_real": real.detach(), "d_fake": fake.detach()}


def generator_loss(gen, dis, x0, x1, *, gan_w=10.0, kl_w=0.1, rec_w=100.0, kl_cyc_w=0.1, cyc_w=100.0,
                   gan_mode="bce"):
    """Total loss of E_0, E_1, G_0, G_1 and its parts; also returns (x_01, x_10) for sample grids."""
    mu0 = gen.encode(x0, 0)
    mu1 = gen.encode(x1, 1)
    z0 = mu0 + torch.randn_like(mu0)
    z1 = mu1 + torch.randn_like(mu1)
    x00 = gen.decode(z0, 0)
    x11 = gen.decode(z1, 1)
    x01 = gen.decode(z0, 1)
    x10 = gen.decode(z1, 0)
    mu01 = gen.encode(x01, 1)  # re-encode the translations with the target domain's encoder
    mu10 = gen.encode(x10, 0)
    x010 = gen.decode(mu01 + torch.randn_like(mu01), 0)
    x101 = gen.decode(mu10 + torch.randn_like(mu10), 1)

    kl_direct = kl(mu0) + kl(mu1)
    kl_cycle = kl(mu01) + kl(mu10)
    rec = l1(x00, x0) + l1(x11, x1)
    cyc = l1(x010, x0) + l1(x101, x1)
    adv = _adv(dis[0](x10), True, gan_mode) + _adv(dis[1](x01), True, gan_mode)
    total = (gan_w * adv + (kl_w + kl_cyc_w) * kl_direct + rec_w * rec + kl_cyc_w * kl_cycle + cyc_w * cyc)
    parts = {"g_total": total.detach(), "g_adv": adv.detach(), "g_rec": rec.detach(), "g_cyc": cyc.detach(),
             "g_kl": kl_direct.detach(), "g_kl_cyc": kl_cycle.detach()}
    return total, parts, (x01.detach(), x10.detach())
