"""GP-UNIT stage-II objectives (paper Sec. 4; official train.py:113-190), as pure functions.

Per iteration, content images x (any domain) and style images y with their domain labels l:

* style input y' = y flipped left-right with probability 1/2, one coin for the batch (train.py:123-127;
  ``flip_style=False`` is the official ``--not_flip_style``);
* G step: y^ = G(E_c(x), E_s(y')) (with dynamic skips), y- = G(E_c(y), E_s(y')) (skips only with
  ``use_allskip``, train.py:133), then
  adv = BCE(D_l(y^), 1);  con = lambda_content x L1(E_c(y^), E_c(x));
  sty = lambda_style x L1(f_D(y^), f_D(y)) with f_D the channel means after ``style_layer`` D modules, the
  real side detached;  msk = lambda_mask x sum over skip layers of mean(m);
  rec = lambda_rec x (L1(y-, y) + VGG(y-, y))  (perceptual term times ``vgg_w``, 1 in the official code);
* D step, with the *updated* G (train.py:170-171): BCE(D_l(y), 1) + BCE(D_l(y^), 0) + R1, where
  R1 = 0.5 x mean over samples of the summed squared gradient of sum(D_l(y)) w.r.t. y (util.py:51-61).

D_l is the logit of head l (the official D has one head: one target domain per model).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def adv_loss(logits: torch.Tensor, target: int) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits.float(), torch.full_like(logits.float(), float(target)))


def r1_reg(d_out: torch.Tensor, x_in: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(d_out.float().sum(), x_in, create_graph=True)
    return 0.5 * grad.float().pow(2).reshape(x_in.shape[0], -1).sum(1).mean()


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).abs().mean()


def generator_loss(gen, dis, enc, cfeat_x, cfeat_y, y, y_style, labels, *, style_layer, lambda_content,
                   lambda_style, lambda_mask, lambda_rec, vgg=None, vgg_w=1.0, use_allskip=False):
    """Total G loss and its parts (detached). Gradients reach D's parameters too: step only G."""
    from .perceptual import vgg_loss

    style = gen.style_encoder(y_style)
    yhat, masks = gen(cfeat_x, style)
    ybar, _ = gen(cfeat_y, style, useskip=use_allskip)
    n = y.shape[0]
    preds, sfeats = dis(torch.cat([yhat, y]), torch.cat([labels, labels]), style_layer)
    adv = adv_loss(preds[:n], 1)
    con = lambda_content * l1(enc(yhat), cfeat_x[0])
    sty = lambda_style * l1(sfeats[:n], sfeats[n:].detach())
    msk = lambda_mask * sum((m.float().mean() for m in masks), torch.zeros((), device=y.device))
    rec_l1 = l1(ybar, y)
    rec_vgg = vgg_loss(vgg, ybar, y) if (vgg is not None and vgg_w) else torch.zeros((), device=y.device)
    rec = lambda_rec * (rec_l1 + vgg_w * rec_vgg)
    total = adv + con + sty + msk + rec
    return total, {"g_total": total.detach(), "g_adv": adv.detach(), "g_con": con.detach(), "g_sty": sty.detach(),
                   "g_msk": msk.detach(), "g_rec": rec.detach(), "g_rec_l1": rec_l1.detach(), "g_rec_vgg": rec_vgg.detach()}


def discriminator_loss(gen, dis, cfeat_x, y, y_style, labels):
    """Total D loss and its parts (detached), fakes from the current G without gradients."""
    with torch.no_grad():
        yhat, _ = gen(cfeat_x, gen.style_encoder(y_style))
    y = y.detach().requires_grad_(True)
    n = y.shape[0]
    preds, _ = dis(torch.cat([yhat.detach(), y]), torch.cat([labels, labels]))
    real, fake = preds[n:], preds[:n]
    d_adv = adv_loss(real, 1) + adv_loss(fake, 0)
    r1 = r1_reg(real, y)
    total = d_adv + r1
    return total, {"d_total": total.detach(), "d_adv": d_adv.detach(), "d_r1": r1.detach(),
                   "d_real": real.detach().float().mean(), "d_fake": fake.detach().float().mean()}
