"""CLUIT training recipe: contrastive discriminator D (GAN logit + contrastive representation), style encoder E,
locality-preserving AdaIN generator G (arXiv 2105.03117, Sec. 3 and Appendix A).

One iteration (``train_step``) on a batch x of B images (B even; under DDP each rank's local batch):

1. **Split** (Sec. 3.2): "the first half of batch images as the input images and the rest as the reference
   images": x_in = x[:B/2], x_ref = x[B/2:]; s_ref = E(x_ref), x_fake = G(x_in, s_ref).
2. **D step**: non-saturating loss on D(x) (all B reals) and D(x_fake) (Eq. 2), plus
   ``w_con`` x L_con (Eq. 1): the normalised representation of every real image (query, D) against that of its
   augmented view (key, from the momentum copy D_ema) and the dictionary of ``queue_size`` negatives, temperature
   ``tau``. Lazy R1 ([26], A.2): on iterations with ``iteration % r1_every == 0`` only, a second D step on
   ``r1_every * gamma/2 * E||grad_x D(x)||^2`` of the reals (StyleGAN2's lazy regularisation: its own step, the
   penalty scaled by its interval so that its average weight is unchanged).
3. **G step** (G and E, D frozen): g_nonsat(D(x_fake)) + ``w_sty`` x L_style + ``w_cyc`` x L_cyc, with
   L_cyc = |x_in - G(x_fake, E(x_in))|_1 (Eq. 3) and L_style (Eq. 4-5) the contrastive loss between the patch-mean
   representation of x_fake (through D) and that of x_ref (through D_ema), against the same dictionary: ``n_patches``
   random crops of each image with the augmentation's crop range (A.2), their mean representation.
4. Enqueue this step's keys (all ranks' under DDP, first-in first-out); EMA of G, E and D (``ema_beta``).

Read from the paper: batch 32 (Sec. 4), tau 0.07 and a dictionary of 2048 negatives (A.2), representation 256-d and
style 128-d (A.1), the non-saturating loss with lazy R1 (A.2), Adam (A.2), EMA of all modules for evaluation (A.2),
patch aggregation with 4 patches ("We use [.] patches" is blank, but Table 3's PatchMean-4 row repeats the full
model's 17.84 / 96.1 of Table 2), crops of
0.125-1.0 (Table 2), flips, affine (rotation, shear, shift) and colour augmentation (Sec. 4.2), 100,000 iterations
(Sec. 4 "Implementation").

Left open: Eq. 6 has three loss weights, and Sec. 4 "Implementation" / A.2 give two of them, R1's gamma for AFHQ,
Adam's betas and the learning rate, but the stored paper text has lost every one of those numbers ("We set [.] and
[.] in Equation 6", "[.] for CelebA and [.] for AFHQ", "with [.] and [.]", "set to [.]"). No official code is public.
The one public code found with CLUIT's own names (a package ``cluit`` whose ``CLUIT`` model has the paper's tau 0.07,
dictionary 2048, 256-d representation, 128-d style and lazy R1 every 16 steps) is a derivative that replaces the
generator's contrastive style loss with a CLIP loss; its other defaults are taken here, each a ``--set`` key:

- ``w_con`` 0.1 (its ``lambda_Dcont``: D's contrastive term), ``w_cyc`` 3 (``lambda_cyc``), ``r1_gamma`` 10
  (``gamma``), ``r1_every`` 16 (``lazy_r1_freq``), Adam lr 5e-5 with betas (0, 0.99) for G and E, and for D the
  betas raised to the power r1_every / (r1_every + 1) (StyleGAN2's lazy-regularisation correction, as it does).
- ``w_sty`` 1: its generator weight (``lambda_Gcont`` 7) scales a CLIP cosine loss, not this InfoNCE loss, so it
  does not carry over; 1 is StarGAN v2's style weight, the code base the architecture tables follow.
- ``ema_beta`` 0.999 (StarGAN v2); no weight decay.
- Keys of the positive views and of the references come from D_ema, the momentum encoder of MoCo [9] the paper
  follows ("a memory bank architecture following MOCO"), momentum = ``ema_beta``; TUNIT does the same with its
  EMA guiding network. The dictionary starts as random unit vectors (MoCo's initial queue).
- Patches and crops "of 1/8 to 1 of the full image dimension" are read as area fractions (RandomResizedCrop's
  ``scale``, aspect 3/4-4/3), the form of SimCLR's pipeline that Sec. 4.2 follows; side fractions would reach 1/64
  of the area.
- The real term of D (and R1, and the query of L_con) covers all B images, inputs and references; the fake term
  uses x_fake only (Eq. 2 has one fake term); R1 is taken on the GAN logit alone. The cycle decodes x_fake with
  the input's own style E(x_in) (StarGAN v2's cycle; Eq. 3 names no style).
- Augmentation ranges beyond the crop (rotation 20 deg, shear 10 deg, shift 10 %, colour jitter 0.4/0.4/0.4/0.1
  with p 0.8, grayscale p 0.2): see ``losses.py``.

``toy=True``: 32 px, widths 8 (max 32), style/representation 16-d, batch 4, a dictionary of 64, for CPU tests.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from unit_eval import distributed as dist_
from unit_eval.errors import UnitEvalError

from ..common.ema import ema_update, make_ema
from ..common.recipe import Recipe, published_config
from .adapter import CluitTranslator
from .losses import augment, contrastive_loss, d_nonsat, g_nonsat, patch_mean, r1_penalty
from .networks import build_networks, check_img_size

PAPER_ITERS = 100_000

PUBLISHED = {
    "img_size": 128, "load_size": None, "hflip": True, "batch_size": 32, "ch": 64, "max_ch": 512, "sty_dim": 128,
    "proj_dim": 256, "tau": 0.07, "queue_size": 2048, "n_patches": 4, "w_con": 0.1, "w_sty": 1.0, "w_cyc": 3.0,
    "r1_gamma": 10.0, "r1_every": 16, "lr": 5e-5, "betas": [0.0, 0.99], "ema_beta": 0.999, "amp": False,
    "iters": PAPER_ITERS, "toy": False,
}
TOY = {"img_size": 32, "batch_size": 4, "ch": 8, "max_ch": 32, "sty_dim": 16, "proj_dim": 16, "queue_size": 64}


class CluitRecipe(Recipe):
    name = "cluit"
    streams = {"main": None}
    min_classes = 1  # unsupervised: class folders are ignored, a flat folder is one class
    default_iters = PAPER_ITERS

    @classmethod
    def default_config(cls, *, iters, img_size=None, batch_size=None, k=None, toy=False, **extra) -> dict:
        if k is not None:
            raise UnitEvalError("CLUIT has no number of domains (--k is TUNIT's); drop --k")
        cfg = published_config("cluit", PUBLISHED, TOY, {**extra, "toy": toy}, iters)
        if img_size is not None:
            cfg["img_size"] = img_size
        if batch_size is not None:
            cfg["batch_size"] = int(batch_size)
        cfg["img_size"] = check_img_size(cfg["img_size"])
        cfg["load_size"] = cfg["img_size"]
        _check_config(cfg)
        return cfg

    def __init__(self, config, num_classes, device, distributed=False):
        super().__init__(config, num_classes, device, distributed)
        cfg = self.config
        _check_config(cfg)
        world = dist_.info().world_size if self.distributed else 1
        if (int(cfg["batch_size"]) // world) % 2:
            raise UnitEvalError(f"CLUIT splits each process's batch into inputs and references: batch {cfg['batch_size']} "
                                f"over {world} processes leaves an odd {int(cfg['batch_size']) // world} per process")
        self.G, self.E, self.D = build_networks(cfg)
        for net in (self.G, self.E, self.D):
            net.to(self.device)
            dist_.broadcast_module(net)
        self.G_ema, self.E_ema, self.D_ema = make_ema(self.G), make_ema(self.E), make_ema(self.D)
        lr, betas = float(cfg["lr"]), tuple(float(b) for b in cfg["betas"])
        self.opt_G = torch.optim.Adam(list(self.G.parameters()) + list(self.E.parameters()), lr=lr, betas=betas)
        # lazy R1 (StyleGAN2): D's momentum spans the same time with one extra step every r1_every
        c = int(cfg["r1_every"]) / (int(cfg["r1_every"]) + 1) if int(cfg["r1_every"]) > 0 else 1.0
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=lr, betas=tuple(b ** c for b in betas))
        queue = F.normalize(torch.randn(int(cfg["queue_size"]), int(cfg["proj_dim"]), device=self.device), dim=1)
        if self.distributed:
            torch.distributed.broadcast(queue, 0)
        self.queue = queue

    # ------------------------------------------------------------------ training
    def train_step(self, batch, iteration):
        cfg = self.config
        x = batch["main"]["image"]
        b = x.shape[0]
        if b < 2 or b % 2:
            raise UnitEvalError(f"CLUIT splits each (per-process) batch into inputs and references; it needs an even "
                                f"size of at least 2, got {b}")
        half = b // 2
        x_in, x_ref = x[:half], x[half:]
        tau = float(cfg["tau"])
        lazy = int(cfg["r1_every"]) > 0 and iteration % int(cfg["r1_every"]) == 0

        with torch.no_grad():
            keys = self.D_ema.represent(augment(x))
            with self.autocast():
                x_fake = self.G(x_in, self.E(x_ref))

        # ---------------- D step
        self.D.requires_grad_(True)
        real_logit, z_real = self.D(x)
        with self.autocast():
            fake_logit = self.D.logit(x_fake.float())
        l_real, l_fake = d_nonsat(real_logit, fake_logit)
        l_con = contrastive_loss(z_real, keys, self.queue, tau)
        d_loss = l_real + l_fake + float(cfg["w_con"]) * l_con
        out = {"D/real": l_real.item(), "D/fake": l_fake.item(), "D/con": l_con.item()}
        self.opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        dist_.average_gradients([self.D])
        self.opt_D.step()
        out["D/total"] = d_loss.item()
        if lazy:  # its own D step (StyleGAN2's lazy regularisation, which D's Adam betas are corrected for)
            x_real = x.detach().requires_grad_(True)
            r1 = r1_penalty(self.D.logit(x_real), x_real)  # float32: R1 needs an accurate input gradient
            self.opt_D.zero_grad(set_to_none=True)
            (int(cfg["r1_every"]) * float(cfg["r1_gamma"]) * r1).backward()
            dist_.average_gradients([self.D])
            self.opt_D.step()
            out["D/r1"] = r1.item()

        # ---------------- G step (G and E)
        self.D.requires_grad_(False)
        n = int(cfg["n_patches"])
        with self.autocast():
            x_fake = self.G(x_in, self.E(x_ref))
            x_cyc = self.G(x_fake, self.E(x_in))
            fake_logit = self.D.logit(x_fake)
            z_fake = patch_mean(self.D.represent, x_fake, n)
        with torch.no_grad():
            z_ref = patch_mean(self.D_ema.represent, x_ref, n)
        g_adv = g_nonsat(fake_logit)
        g_sty = contrastive_loss(z_fake, z_ref, self.queue, tau)
        g_cyc = (x_cyc.float() - x_in).abs().mean()
        g_loss = g_adv + float(cfg["w_sty"]) * g_sty + float(cfg["w_cyc"]) * g_cyc
        self.opt_G.zero_grad(set_to_none=True)
        g_loss.backward()
        dist_.average_gradients([self.G, self.E])
        self.opt_G.step()
        self.D.requires_grad_(True)
        out.update({"G/adv": g_adv.item(), "G/style": g_sty.item(), "G/cyc": g_cyc.item(), "G/total": g_loss.item()})

        # ---------------- dictionary and EMA
        self.queue = torch.cat([self.queue, dist_.all_gather_cat(keys.float())], 0)[-int(cfg["queue_size"]):]
        beta = float(cfg["ema_beta"])
        for ema, net in ((self.G_ema, self.G), (self.E_ema, self.E), (self.D_ema, self.D)):
            ema_update(ema, net, beta)
        return out

    # ------------------------------------------------------------------ state
    NETS = ("G", "E", "D", "G_ema", "E_ema", "D_ema", "opt_G", "opt_D")

    def state_dict(self) -> dict:
        state = {name: getattr(self, name).state_dict() for name in self.NETS}
        state["queue"] = self.queue.detach().cpu().clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        try:
            for name in self.NETS:
                getattr(self, name).load_state_dict(state[name])
            queue = state["queue"]
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UnitEvalError(f"resume state does not match the CLUIT networks: {str(exc).splitlines()[0][:200]}") from None
        if tuple(queue.shape) != tuple(self.queue.shape):
            raise UnitEvalError(f"resume state's dictionary is {tuple(queue.shape)}, expected {tuple(self.queue.shape)}")
        self.queue = queue.to(self.device)

    def inference_state_dict(self) -> dict:
        sd = {f"generator.{k}": v for k, v in self.G_ema.state_dict().items()}
        sd.update({f"style_encoder.{k}": v for k, v in self.E_ema.state_dict().items()})
        return sd

    def translator(self):
        return CluitTranslator(self.G_ema, self.E_ema, image_size=int(self.config["img_size"]))


def _check_config(cfg: dict) -> None:
    for key in ("batch_size", "queue_size", "n_patches"):
        if int(cfg[key]) < 1:
            raise UnitEvalError(f"CLUIT {key} must be at least 1, got {cfg[key]}")
    if int(cfg["batch_size"]) % 2:
        raise UnitEvalError(f"CLUIT needs an even batch size (first half inputs, second half references), "
                            f"got {cfg['batch_size']}")
    if int(cfg["r1_every"]) < 0 or float(cfg["tau"]) <= 0:
        raise UnitEvalError("CLUIT needs r1_every >= 0 and tau > 0")


RECIPE = CluitRecipe
