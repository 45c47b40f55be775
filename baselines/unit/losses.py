"""UNIT objectives (Liu, Breuel & Kautz, NIPS 2017, Eqs. 2-8) as pure functions.

With x_0 from domain 0 and x_1 from domain 1 (the paper's X_1 and X_2), mu_d = E_d(x_d) and
z_d = mu_d + eta, eta ~ N(0, I) (q_d(z|x) = N(mu_d, I), Sec. 3 "VAE"); e = 1 - d:

* VAE (Eqs. 3-4):  lambda1 KL(q_d(z_d|x_d) || N(0, I)) - lambda2 E[log p_G_d(x_d|z_d)]
* GAN (Eqs. 5-6):  lambda0 E[log D_d(x_d)] + lambda0 E[log(1 - D_d(G_d(z_e)))]   (translations only)
* CC  (Eqs. 7-8):  lambda3 KL(q_d(z_d|x_d) || N(0, I)) + lambda3 KL(q_e(z_e|x_d->e) || N(0, I))
                   - lambda4 E[log p_G_d(x_d|z_e)],   x_d->e = G_e(z_d), z_e ~ q_e(z|x_d->e)
* Eq. 2: E/G minimise, D maximise, L_VAE1 + L_GAN1 + L_CC1 + L_VAE2 + L_GAN2 + L_CC2.
Defaults (Sec. 4): "lambda0 = 10, lambda3 = lambda1 = 0.1 and lambda4 = lambda2 = 100".
Config keys: gan_w = lambda0, kl_w = lambda1, rec_w = lambda2, kl_cyc_w = lambda3, cyc_w = lambda4.

**The direct KL carries lambda1 + lambda3 (0.2 by default); this is a decision.** The same term
KL(q_1(z_1|x_1) || p_eta(z)) is written twice: with lambda1 in L_VAE1 (Eq. 3) and again, as the first
term of L_CC1, with lambda3 (Eq. 7); likewise KL(q_2(z_2|x_2)) in Eqs. 4 and 8. The paper states the
duplication on purpose: after Eq. 8, "the KL terms penalize the latent codes deviating from the prior
distribution in the cycle-reconstruction stream (Therefore, there are two KL terms)". The cycle stream
x_1 -> z_1 -> x_1->2 -> z_2 -> x_1->2->1 has two codes, and its first code z_1 ~ q_1(z_1|x_1) is the
VAE stream's. The KL is a function of x_1 alone, not of the sample, so summing Eq. 2 as written gives
(lambda1 + lambda3) KL(q_d(z_d|x_d)) + lambda3 KL(q_e(z_e|x_d->e)) per domain. ``generator_loss`` adds
the terms in that order, Eq. by Eq. A review found that the direct KL "carries twice the weight" of
0.1: that is lambda1 + lambda3 = 0.2, what the equations give. The released code weights it by lambda1
only (its ``kl_direct_link_w``, 0.1; mingyuliutw/UNIT version_02, src/trainers/cocogan_trainer.py
L66-70); see "Where the released code differs" in ``recipe.py``. ``--set kl_w=0`` gives its KL
weighting here.

Normalisations (the paper gives none; the released code's, with which its lambdas were tuned):
the Laplacian negative log-likelihood -log p_G(x|z) = |x - G(z)|_1 / b + const is taken as the *mean*
absolute difference over batch, channels and pixels (``torch.nn.L1Loss()``, version_02
cocogan_trainer.py L28-29, L62-65; master trainer.py L237-238). KL(N(mu, I) || N(0, I)) = 0.5 sum mu^2
is taken as mean(mu^2) over batch and latent elements, i.e. 2x the per-element KL (``_compute_kl``,
version_02 cocogan_trainer.py L32-40; master trainer.py L249-257). The KL is taken on the mean mu
(as master). version_02 takes it on the noisy code mu + eta, because its ``enc_shared`` ends in a
``GaussianNoiseLayer`` (cocogan_nets.py L203). That has the same gradient in expectation and is not
copied here. GAN terms: logit maps (the sigmoid of Table 3's last discriminator layer lives in the
loss). BCE is averaged over each map and summed over scales, as version_02 L48-57 and L93-111 do. The
generator minimises the non-saturating -log D_d(G_d(z_e)) rather than log(1 - D_d(.)), as version_02
(BCE against ones). D minimises lambda0 sum_d [BCE(D_d(x_d), 1) + BCE(D_d(x_e->d), 0)] = -(Eq. 5 + 6),
as version_02 L118. ``gan_mode="lsgan"`` swaps BCE for least squares (master's ``gan_type: lsgan``).
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
    """lambda0 x sum_d [adv(D_d(x_d), real) + adv(D_d(x_e->d), fake)] = -(Eq. 5 + Eq. 6) for the BCE form,
    with the translations decoded from sampled codes z = mu + eta (Eqs. 5-6: z_e ~ q_e(z_e|x_e))."""
    with torch.no_grad():
        mu0 = gen.encode(x0, 0)
        mu1 = gen.encode(x1, 1)
        x10 = gen.decode(mu1 + torch.randn_like(mu1), 0)
        x01 = gen.decode(mu0 + torch.randn_like(mu0), 1)
    real = _adv(dis[0](x0), True, gan_mode) + _adv(dis[1](x1), True, gan_mode)
    fake = _adv(dis[0](x10.detach()), False, gan_mode) + _adv(dis[1](x01.detach()), False, gan_mode)
    total = gan_w * (real + fake)
    return total, {"d_total": total.detach(), "d_real": real.detach(), "d_fake": fake.detach()}


def generator_loss(gen, dis, x0, x1, *, gan_w=10.0, kl_w=0.1, rec_w=100.0, kl_cyc_w=0.1, cyc_w=100.0,
                   gan_mode="bce"):
    """Total loss of E_0, E_1, G_0, G_1 and its parts; also returns (x_01, x_10) for sample grids.

    total = gan_w adv + (kl_w + kl_cyc_w) kl_direct + rec_w rec + kl_cyc_w kl_cycle + cyc_w cyc
          = lambda0 adv + (lambda1 + lambda3) kl_direct + lambda2 rec + lambda3 kl_cycle + lambda4 cyc,
    where kl_direct = KL(mu_0) + KL(mu_1), kl_cycle = KL(E_1(x_01)) + KL(E_0(x_10)) (re-encoded with the
    target domain's encoder), rec = L1(x_00, x_0) + L1(x_11, x_1), cyc = L1(x_010, x_0) + L1(x_101, x_1),
    adv = -log D_0(x_10) - log D_1(x_01). The parts dict reports them unweighted (g_kl = kl_direct)."""
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
    # Eq. 2, term by term: the direct KL appears in L_VAE (Eqs. 3-4, lambda1) and in L_CC (Eqs. 7-8, lambda3).
    vae = kl_w * kl_direct + rec_w * rec                          # L_VAE1 + L_VAE2
    gan = gan_w * adv                                             # L_GAN1 + L_GAN2 (E/G side)
    cc = kl_cyc_w * kl_direct + kl_cyc_w * kl_cycle + cyc_w * cyc  # L_CC1 + L_CC2
    total = vae + gan + cc
    parts = {"g_total": total.detach(), "g_adv": adv.detach(), "g_rec": rec.detach(), "g_cyc": cyc.detach(),
             "g_kl": kl_direct.detach(), "g_kl_cyc": kl_cycle.detach()}
    return total, parts, (x01.detach(), x10.detach())
