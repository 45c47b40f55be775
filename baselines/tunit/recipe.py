"""TUNIT training recipe (guiding network E, generator G, multi-task discriminator D).

One iteration (``train_step``), following the paper (Sec. 3, Appendix B) and the official code:

1. **E step** (always): x+ = augment(x); IIC loss between softmax cluster outputs of x and x+;
   MoCo contrastive loss between E(x) style codes and EMA-E(x+) keys against a queue of 1024
   negatives (temperature 0.07); ``L_E = w_moco * MoCo + w_mi * IIC`` (w_mi = 5), multiplied by
   ``joint_e_scale`` (0.1) once joint training starts. Semi-supervised: labelled samples add
   ``w_mi * (CE(E(x)) + CE(E(x+)))`` with their true labels.
2. **Joint phase** (``iteration >= warmup_iters``): references are a random permutation of the
   batch; pseudo-labels y = argmax E_class(x) from this iteration's E forward (true labels for
   labelled samples in semi-supervised mode). D step: hinge loss on real references / fakes
   G(x, s_ref) with the reference's label, plus ``w_r1`` (10) x R1 on reals. G step (updates G
   *and* E): hinge loss on G(x, s_ref) with y_ref and on the reconstruction G(x, s_x) with y_x,
   ``w_rec`` (0.1) x L1 reconstruction, ``w_gsty`` (0.01) x style contrastive loss of
   E(G(x, s_ref)) against EMA-E(x_ref) with the same queue.
3. Enqueue this iteration's keys (all ranks' keys under DDP); EMA (0.999) of E every iteration,
   of G from the joint phase on (G is frozen before it, so its EMA equals it).

Optimisers: E Adam lr 1e-4, weight decay 1e-3, betas (0.9, 0.999) (official code; the paper
text says beta2 0.99 and wd 1e-4); G and D RMSprop lr 1e-4, weight decay 1e-4, alpha 0.99.

Warm-up: the paper trains E alone for 65K iterations, then 100K jointly; the official code runs
200 x 1000 iterations with E alone for the first 65 "epochs". Default here: ``iters`` = 200,000
and ``warmup_iters = round(0.325 * iters)`` (= 65,000 at the default; the same fraction for short
runs). Override with ``--set warmup_iters=N``.

Data: the folder's class subfolders are used only in semi-supervised mode (``p_semi`` > 0: for each
class the first ``max(1, int(n * p_semi))`` images in name order are labelled, as the official
code, and K-hat must equal the number of classes). Unsupervised runs accept a single class folder
or a flat folder of images. Differences from the official loop, for speed: E's outputs from the E
step are reused for the pseudo-labels and reference styles of the D step (the official code
recomputes them after E's update); style codes of references are the permuted codes of the
batch (identical values); G's two decodes and D's two generator-step passes are batched.

Config keys (``default_config``): img_size 128, batch_size 32, k 10, sty_dim 128, g_ch/d_ch
(None = 64 below 256 px, 32 from 256 px), d_max_ch 1024, e_ch 64, mlp_ch 256, n_res 2, iters,
warmup_iters, lr_e, wd_e, e_betas, lr_g, lr_d, wd_gd, rms_alpha, w_mi 5, w_moco 1, joint_e_scale 0.1,
w_adv 1, w_rec 0.1, w_gsty 0.01, w_r1 10, temperature 0.07, queue_size 1024, ema_beta 0.999, p_semi 0,
hflip True, load_size (= img_size), amp. ``toy=True`` shrinks the networks (32 px, widths 8,
batch 4) for CPU tests and smoke runs.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from unit_eval.errors import UnitEvalError

from unit_eval import distributed as dist_
from ..common.ema import ema_update, make_ema
from ..common.recipe import Recipe, check_extra
from .adapter import TunitTranslator
from .losses import augment, contrastive_loss, d_hinge, g_hinge, iic_loss, r1_penalty
from .networks import build_networks, check_img_size

PAPER_ITERS = 200_000
WARMUP_FRACTION = 0.325  # 65K of the official 200K iterations


class TunitRecipe(Recipe):
    name = "tunit"
    finalize_touches = ("domain_styles", "domain_counts")
    streams = {"main": None}
    min_classes = 1
    default_iters = PAPER_ITERS

    @classmethod
    def default_config(cls, *, iters, img_size=None, batch_size=None, k=None, p_semi=None, toy=False, **extra) -> dict:
        check_extra("tunit", extra, set())
        iters = int(iters)
        cfg = {
            "img_size": 128, "load_size": None, "hflip": True, "batch_size": 32, "k": 10, "sty_dim": 128,
            "g_ch": None, "d_ch": None, "d_max_ch": 1024, "e_ch": 64, "mlp_ch": 256, "n_res": 2,
            "iters": iters, "warmup_iters": int(round(WARMUP_FRACTION * iters)),
            "lr_e": 1e-4, "wd_e": 1e-3, "e_betas": [0.9, 0.999], "lr_g": 1e-4, "lr_d": 1e-4, "wd_gd": 1e-4,
            "rms_alpha": 0.99,
            "w_mi": 5.0, "w_moco": 1.0, "joint_e_scale": 0.1, "w_adv": 1.0, "w_rec": 0.1, "w_gsty": 0.01, "w_r1": 10.0,
            "temperature": 0.07, "queue_size": 1024, "ema_beta": 0.999, "p_semi": 0.0, "amp": False,
        }
        if toy:
            cfg.update({"img_size": 32, "batch_size": 4, "g_ch": 8, "d_ch": 8, "d_max_ch": 32, "e_ch": 8,
                        "mlp_ch": 32, "sty_dim": 16, "queue_size": 256})
        if img_size is not None:
            cfg["img_size"] = check_img_size(img_size)
        if batch_size is not None:
            if int(batch_size) < 2:
                raise UnitEvalError("TUNIT needs a batch size of at least 2 (references are a permutation of the batch)")
            cfg["batch_size"] = int(batch_size)
        if p_semi is not None:
            p = float(p_semi)
            if not 0.0 <= p <= 1.0:
                raise UnitEvalError(f"--p-semi must be in [0, 1], got {p}")
            cfg["p_semi"] = p
            if p > 0 and k is None:
                cfg["k"] = None  # resolved to the number of classes when the data is seen
        if k is not None:
            if int(k) < 1:
                raise UnitEvalError(f"--k must be at least 1, got {k}")
            cfg["k"] = int(k)
        cfg["load_size"] = cfg["img_size"]
        return cfg

    # ------------------------------------------------------------------ construction
    def __init__(self, config, num_classes, device, distributed=False):
        super().__init__(config, num_classes, device, distributed)
        cfg = self.config
        if cfg.get("p_semi", 0.0) > 0:
            if cfg.get("k") is None:
                cfg["k"] = self.num_classes
            if int(cfg["k"]) != self.num_classes:
                raise UnitEvalError(
                    f"semi-supervised TUNIT needs K-hat = number of class folders ({self.num_classes}), got --k {cfg['k']}")
            if self.num_classes < 2:
                raise UnitEvalError("semi-supervised TUNIT needs at least 2 class folders")
        elif cfg.get("k") is None:
            cfg["k"] = 10
        check_img_size(cfg["img_size"])
        self.C, self.G, self.D = build_networks(cfg)
        for net in (self.C, self.G, self.D):
            net.to(self.device)
            dist_.broadcast_module(net)
        self.C_ema, self.G_ema = make_ema(self.C), make_ema(self.G)
        self.opt_C = torch.optim.Adam(self.C.parameters(), lr=cfg["lr_e"], weight_decay=cfg["wd_e"],
                                      betas=tuple(cfg.get("e_betas", (0.9, 0.999))))
        self.opt_G = torch.optim.RMSprop(self.G.parameters(), lr=cfg["lr_g"], weight_decay=cfg["wd_gd"], alpha=cfg["rms_alpha"])
        self.opt_D = torch.optim.RMSprop(self.D.parameters(), lr=cfg["lr_d"], weight_decay=cfg["wd_gd"], alpha=cfg["rms_alpha"])
        self.queue = torch.zeros(0, int(cfg["sty_dim"]), device=self.device)
        self.labelled: torch.Tensor | None = None
        self.domain_styles: torch.Tensor | None = None
        self.domain_counts: torch.Tensor | None = None
        for net in (self.C, self.G, self.D, self.C_ema, self.G_ema):
            net.train()

    def bind_data(self, index) -> None:
        p = float(self.config.get("p_semi", 0.0))
        if p <= 0:
            self.labelled = None
            return
        mask = np.zeros(len(index.labels), dtype=bool)
        for c in range(len(index.class_names)):
            ids = np.nonzero(index.labels == c)[0]  # in name order
            mask[ids[:max(1, int(len(ids) * p))]] = True
        self.labelled = torch.from_numpy(mask).to(self.device)

    # ------------------------------------------------------------------ training
    def train_step(self, batch, iteration):
        cfg = self.config
        x = batch["main"]["image"]
        b = x.shape[0]
        joint = iteration >= int(cfg["warmup_iters"])
        lab = self.labelled[batch["main"]["index"]] if self.labelled is not None else None
        y_true = batch["main"]["label"]
        temp = float(cfg["temperature"])
        out: dict[str, float] = {}

        with torch.no_grad():
            x_aug = augment(x)
            if self.queue.shape[0] == 0:  # first step: fill the queue with keys of another random view
                with self.autocast():
                    first = self.C_ema.style(augment(x)).float()
                self.queue = dist_.all_gather_cat(first)[-int(cfg["queue_size"]):]

        # ---------------- E step
        with self.autocast():
            q_logit, q_style = self.C(x)
            k_logit, _ = self.C(x_aug)
            with torch.no_grad():
                k_style = self.C_ema.style(x_aug).float()
        q_logit, k_logit, q_style = q_logit.float(), k_logit.float(), q_style.float()
        mi = iic_loss(F.softmax(q_logit, 1), F.softmax(k_logit, 1))
        moco = contrastive_loss(q_style, k_style, self.queue, temp)
        e_loss = float(cfg["w_moco"]) * moco + float(cfg["w_mi"]) * mi
        if lab is not None:
            if bool(lab.any()):
                ce = F.cross_entropy(q_logit[lab], y_true[lab]) + F.cross_entropy(k_logit[lab], y_true[lab])
            else:
                ce = q_logit.sum() * 0.0
            e_loss = e_loss + float(cfg["w_mi"]) * ce
            out["E/ce"] = ce.item()
        if joint:
            e_loss = e_loss * float(cfg["joint_e_scale"])
        self.opt_C.zero_grad(set_to_none=True)
        e_loss.backward()
        dist_.average_gradients([self.C])
        self.opt_C.step()
        out.update({"E/moco": moco.item(), "E/iic": mi.item(), "E/total": e_loss.item()})

        if joint:
            perm = torch.randperm(b, device=self.device)
            y_org = q_logit.detach().argmax(1)
            if lab is not None:
                y_org = torch.where(lab, y_true, y_org)
            y_ref, x_ref = y_org[perm], x[perm]
            with torch.no_grad(), self.autocast():
                x_fake = self.G(x, q_style.detach()[perm])

            # ---------------- D step
            self.D.requires_grad_(True)
            x_real = x_ref.detach().requires_grad_(True)
            d_real = self.D(x_real, y_ref)  # float32: R1 needs an accurate input gradient
            with self.autocast():
                d_fake = self.D(x_fake.detach(), y_ref)
            l_real, l_fake = d_hinge(d_real, d_fake)
            r1 = r1_penalty(d_real, x_real)
            d_loss = l_real + l_fake + float(cfg["w_r1"]) * r1
            self.opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            dist_.average_gradients([self.D])
            self.opt_D.step()

            # ---------------- G step (G and E)
            self.D.requires_grad_(False)
            with self.autocast():
                s_src = self.C.style(x)
                s_ref = s_src[perm]
                content = self.G.encode(x)
                both = self.G.decode(torch.cat([content, content]), torch.cat([s_ref, s_src]))
                logits = self.D(both, torch.cat([y_ref, y_org]))
                x_fake, x_rec = both[:b], both[b:]
                s_fake = self.C.style(x_fake)
                with torch.no_grad():
                    s_ref_ema = self.C_ema.style(x_ref).float()
            g_adv = g_hinge(logits[:b]) + g_hinge(logits[b:])
            g_rec = (x_rec.float() - x).abs().mean()
            g_sty = contrastive_loss(s_fake.float(), s_ref_ema, self.queue, temp)
            g_loss = float(cfg["w_adv"]) * g_adv + float(cfg["w_rec"]) * g_rec + float(cfg["w_gsty"]) * g_sty
            self.opt_G.zero_grad(set_to_none=True)
            self.opt_C.zero_grad(set_to_none=True)
            g_loss.backward()
            dist_.average_gradients([self.G, self.C])
            self.opt_C.step()
            self.opt_G.step()
            self.D.requires_grad_(True)
            out.update({"D/real": l_real.item(), "D/fake": l_fake.item(), "D/r1": r1.item(), "D/total": d_loss.item(),
                        "G/adv": g_adv.item(), "G/rec": g_rec.item(), "G/style": g_sty.item(), "G/total": g_loss.item()})

        # ---------------- queue and EMA
        if self.distributed:
            dist_.average_buffers(self.C)  # BN statistics: one model on every rank
        keys = dist_.all_gather_cat(k_style.detach())
        self.queue = torch.cat([self.queue, keys], 0)[-int(cfg["queue_size"]):]
        beta = float(cfg["ema_beta"])
        if joint:
            ema_update(self.G_ema, self.G, beta)
        ema_update(self.C_ema, self.C, beta)
        return out

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        return {
            "C": self.C.state_dict(), "C_ema": self.C_ema.state_dict(), "G": self.G.state_dict(),
            "G_ema": self.G_ema.state_dict(), "D": self.D.state_dict(),
            "opt_C": self.opt_C.state_dict(), "opt_G": self.opt_G.state_dict(), "opt_D": self.opt_D.state_dict(),
            "queue": self.queue.detach().cpu().clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        try:
            self.C.load_state_dict(state["C"])
            self.C_ema.load_state_dict(state["C_ema"])
            self.G.load_state_dict(state["G"])
            self.G_ema.load_state_dict(state["G_ema"])
            self.D.load_state_dict(state["D"])
            self.opt_C.load_state_dict(state["opt_C"])
            self.opt_G.load_state_dict(state["opt_G"])
            self.opt_D.load_state_dict(state["opt_D"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UnitEvalError(f"resume state does not match the TUNIT networks: {str(exc).splitlines()[0][:200]}") from None
        self.queue = state["queue"].to(self.device)

    def inference_state_dict(self) -> dict:
        sd = {}
        sd.update({f"generator.{k}": v for k, v in self.G_ema.state_dict().items()})
        sd.update({f"guide.{k}": v for k, v in self.C_ema.state_dict().items()})
        sd.update({f"guide_raw.{k}": v for k, v in self.C.state_dict().items()})
        if self.domain_styles is not None:
            sd["domain_styles"] = self.domain_styles
            sd["domain_counts"] = self.domain_counts
        return sd

    def run_config(self) -> dict:
        return dict(self.config)

    def translator(self):
        return TunitTranslator(self.G_ema, self.C_ema, guide_raw=self.C, image_size=int(self.config["img_size"]),
                               num_domains=int(self.config["k"]), device=self.device,
                               domain_styles=self.domain_styles, domain_counts=self.domain_counts)

    @torch.no_grad()
    def finalize(self, batches) -> None:
        """Average EMA style code of each pseudo-domain over the training set (``translate_to_domain``)."""
        tr = self.translator()
        tr.set_domain_styles(b["image"] for b in batches())
        self.domain_styles, self.domain_counts = tr.domain_styles, tr.domain_counts


RECIPE = TunitRecipe
