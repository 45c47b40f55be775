"""FUNIT objectives (paper Sec. 3 and NVlabs/FUNIT ``funit_model.py``), as pure functions.

Per iteration, with a content batch (x_a, l_a) and an independently drawn class batch (x_b, l_b):

* discriminator: hinge  mean(relu(1 - D(x_b)[l_b])) + mean(relu(1 + D(x_t)[l_b]))  (times ``gan_w``)
  plus ``gp_w`` (10) x the real-image gradient penalty  sum((dD(x_b)[l_b].mean() / dx_b)^2) / B,
  where x_t = G(x_a, x_b) is computed without gradients;
* generator: ``gan_w`` x 0.5 (adv(x_t, l_b) + adv(x_r, l_a)) with adv = -mean(D(.)[label]),
  + ``r_w`` (0.1) x L1(x_r, x_a) with x_r = G(x_a, x_a) (reconstruction from its own class code),
  + ``fm_w`` (1) x [L1(mean_hw feat(x_r), mean_hw feat(x_a)) + L1(mean_hw feat(x_t), mean_hw feat(x_b))]
  (feature matching on the discriminator's last feature map, spatially averaged; ``feat`` is the
  map after the classifier's LeakyReLU, as the official in-place activation leaves it: see
  ``networks.ProjectionResDiscriminator``). The official G step (funit_model.py:40-43) computes feat(x_a)
  and feat(x_b) with gradients, which only reach D's parameters (not stepped there): ``no_grad`` here.

Losses are returned in float32 whatever the autocast dtype.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).abs().mean()


def dis_hinge_real(resp: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - resp.float()).mean()


def dis_hinge_fake(resp: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 + resp.float()).mean()


def gen_hinge(resp: torch.Tensor) -> torch.Tensor:
    return -resp.float().mean()


def real_gradient_penalty(resp_real: torch.Tensor, x_real: torch.Tensor, batch: int | None = None) -> torch.Tensor:
    """Squared gradient norm of mean(D(x)[label]) w.r.t. the real images, summed, per sample (official calc_grad2).

    The official mean is over the whole batch, so the penalty scales as 1 / B^3: ``batch`` (the whole batch's size,
    when ``x_real`` is one micro-batch of it) keeps that normalisation, and the micro-batches' penalties add up to
    the whole batch's."""
    if batch is None:
        (grad,) = torch.autograd.grad(resp_real.float().mean(), x_real, create_graph=True)
        return grad.float().pow(2).sum() / x_real.shape[0]
    per_sample = resp_real.float().reshape(resp_real.shape[0], -1).mean(dim=1)
    (grad,) = torch.autograd.grad(per_sample.sum() / batch, x_real, create_graph=True)
    return grad.float().pow(2).sum() / batch


def discriminator_loss(gen, dis, x_a, x_b, l_b, *, gan_w=1.0, gp_w=10.0, batch=None):
    """Total D loss and its parts (detached tensors, for logging).

    ``batch``: the whole batch's size when these images are one micro-batch of it; every term then comes back
    as this micro-batch's share, so the micro-batches' losses, gradients and parts sum to the whole batch's."""
    w = 1.0 if batch is None else x_b.shape[0] / batch
    x_b = x_b.detach().requires_grad_(True)
    resp_real, _ = dis(x_b, l_b)
    loss_real = w * dis_hinge_real(resp_real)
    gp = real_gradient_penalty(resp_real, x_b, batch)
    with torch.no_grad():
        x_t = gen.decode(gen.content(x_a), gen.class_code(x_b))
    resp_fake, _ = dis(x_t.detach(), l_b)
    loss_fake = w * dis_hinge_fake(resp_fake)
    total = gan_w * (loss_real + loss_fake) + gp_w * gp
    acc = w * 0.5 * ((resp_real.detach() >= 0).float().mean() + (resp_fake.detach() < 0).float().mean())
    return total, {"d_total": total.detach(), "d_real": loss_real.detach(), "d_fake": loss_fake.detach(),
                   "d_gp": gp.detach(), "d_acc": acc}


def generator_loss(gen, dis, x_a, l_a, x_b, l_b, *, gan_w=1.0, r_w=0.1, fm_w=1.0, batch=None):
    """Total G loss and its parts (detached tensors, for logging). Gradients reach D's parameters too: step only G.
    ``batch``: as :func:`discriminator_loss` (every term here is a mean over samples, so a share is w x it)."""
    c_a = gen.content(x_a)
    s_a = gen.class_code(x_a)
    s_b = gen.class_code(x_b)
    x_t = gen.decode(c_a, s_b)  # translation to x_b's class
    x_r = gen.decode(c_a, s_a)  # reconstruction
    resp_t, feat_t = dis(x_t, l_b)
    resp_r, feat_r = dis(x_r, l_a)
    with torch.no_grad():
        _, feat_b = dis(x_b, l_b)
        _, feat_a = dis(x_a, l_a)
    adv = 0.5 * (gen_hinge(resp_t) + gen_hinge(resp_r))
    rec = l1(x_r, x_a)
    fm_r = l1(feat_r.mean(dim=(2, 3)), feat_a.mean(dim=(2, 3)))
    fm_t = l1(feat_t.mean(dim=(2, 3)), feat_b.mean(dim=(2, 3)))
    total = gan_w * adv + r_w * rec + fm_w * (fm_r + fm_t)
    if batch is not None:
        w = x_a.shape[0] / batch
        total, adv, rec, fm_r, fm_t = (w * t for t in (total, adv, rec, fm_r, fm_t))
    return total, {"g_total": total.detach(), "g_adv": adv.detach(), "g_rec": rec.detach(),
                   "g_fm_rec": fm_r.detach(), "g_fm_trans": fm_t.detach()}, x_t.detach()
