"""GP-UNIT training recipe for ``unit-eval train gpunit`` (williamyang1991/GP-UNIT ``train.py`` and
``prior_distillation.py`` defaults; see ``losses.py``, ``stage1.py``, ``sampler.py``).

Two stages, one model name, chosen with ``--set stage=1|2`` (default 2):

* **stage 2** (translation, train.py) needs the stage-I content encoder: ``--set content_encoder=FILE`` (else
  ``$UNIT_EVAL_GPUNIT_CONTENT_ENCODER``), the official ``content_encoder.pt`` or a stage-I ``run.pt``; its sha256
  is stored in the run's config. Without one the run is refused with one line: the
  encoder is the BigGAN prior GP-UNIT is about, and the class folders of a translation data set have neither
  the generated pairs nor the masks stage I needs, so a stand-in encoder would silently be another model.
  One generator serves every class folder as a target domain: content images come from all classes, style
  images from all classes, and the discriminator has one logit per domain, picked by the style image's class
  (the official model is one generator per source->target task with a single-logit D, i.e. this with one
  target domain). After training, ``finalize`` fits one style sampler per domain to the EMA style codes of
  that domain's training images (eval transform; the official run uses its augmented loader, train.py:70-75).
* **stage 1** (prior distillation): ``--set stage=1 --set masks=MASKS --iters 45000`` on the pair layout of
  ``stage1.py``; its run.pt holds the content encoder (official file layout) for stage 2.

Defaults (train.py:29-46, 253-261; dataset.py:101-136, 250-251; prior_distillation.py:22-30, 170): 256 px from a
286 x 286 resize, random crop and flip; batch 16; 75,000 iterations (``--iters 45000`` for stage 1, its
official count: the loop's default is one number per model); Adam lr 1e-4, betas (0, 0.99), weight decay
1e-4 for G and D; lambda content 1, style 50 (D layer 4), mask 1, reconstruction 1 (L1 + VGG19 perceptual);
EMA 0.999; no dynamic skips in the reconstruction (``use_allskip`` False), style images flipped
(``flip_style``); stage 1: Adam lr 2e-4, betas (0.9, 0.999), weights 1 / 5 / 0.001 / 1 / 1 / 5, noise 0.2.
Not offered: the identity loss (``--use_idloss``, IR-SE50 weights; off by default officially).
"""
from __future__ import annotations

import os

import torch

from unit_eval.distributed import average_gradients, broadcast_module
from unit_eval.errors import UnitEvalError

from ..common.ema import ema_update, make_ema
from ..common.recipe import Recipe, resize_crop_config
from . import losses
from .adapter import GPUNITTranslator, gen_kwargs
from .content_encoder import load_content_encoder
from .networks import ContentEncoder, Discriminator, Generator, add_spectral_norm, init_kaiming
from .sampler import fit_sampler

CONTENT_ENCODER_ENV = "UNIT_EVAL_GPUNIT_CONTENT_ENCODER"

PUBLISHED = {
    "stage": 2,
    # data: dataset.py:250-251 resize_and_crop, load 286, crop 256, flip (dataset.py:101-125); train.py:30-31
    "img_size": 256, "load_size": 286, "resize_mode": "square", "hflip": True, "batch_size": 16, "iters": 75_000,
    # networks: content_encoder.py:68 nef 64; generator.py:106-111 ngf 64, style code 256; discriminator.py:61-63
    "nef": 64, "n_down": 5, "ngf": 64, "style_nef": 64, "style_dim": 256, "dis_nf": 64, "dis_max": 512,
    # optimisation: train.py:29, 260-261 (Adam, both nets), util.py:63 / train.py:190 (EMA)
    "lr": 1e-4, "betas": [0.0, 0.99], "weight_decay": 1e-4, "ema_beta": 0.999,
    # losses: train.py:34-36, 37, 149 (VGG weight 1 inside L_rec), 43-46
    "lambda_content": 1.0, "lambda_style": 50.0, "lambda_mask": 1.0, "lambda_rec": 1.0, "vgg_w": 1.0,
    "style_layer": 4, "use_allskip": False, "flip_style": True,
    # style sampler: train.py:89-91, sampler.py:24-28
    "noise_dim": 128, "sampler_hidden": 128, "sampler_samples": 2_000_000, "mitigate_style_bias": False,
    "content_encoder": None, "vgg19": None,
    # stage 1: prior_distillation.py:22-30 (lr, iters 45000, batch 16, weights), 170 (betas); content_encoder.py:192, 202
    "masks": None, "s1_lr": 2e-4, "s1_betas": [0.9, 0.999], "s1_embed_dim": 128, "s1_noise": 0.2,
    "lambda_app_rec": 1.0, "lambda_shape_rec": 5.0, "lambda_reg": 0.001, "lambda_class": 1.0,
    "lambda_feat_dist": 1.0, "lambda_shape_dist": 5.0,
    "amp": False, "toy": False,
}

# CPU smoke runs: 32 px (3 downsamplings: 4 x 4 content), tiny widths, no perceptual term (no VGG19 here)
TOY = {"img_size": 32, "load_size": 36, "batch_size": 4, "nef": 8, "n_down": 3, "ngf": 8, "style_nef": 8,
       "style_dim": 32, "dis_nf": 8, "dis_max": 32, "style_layer": 3, "noise_dim": 8, "sampler_hidden": 16,
       "sampler_samples": 400, "vgg_w": 0.0, "s1_embed_dim": 16}


class GPUNITRecipe(Recipe):
    name = "gpunit"
    streams = {"source": None, "target": None}
    min_classes = 2
    default_iters = 75_000
    finalize_touches = ("samplers", "style_means")

    @classmethod
    def default_config(cls, *, iters, img_size=None, batch_size=None, k=None, **extra):
        if k is not None:
            raise UnitEvalError("gpunit has no pseudo-domain count; drop --k (GP-UNIT uses the class folders)")
        return resize_crop_config("gpunit", PUBLISHED, TOY, extra, iters, img_size, batch_size)

    def __init__(self, config, num_classes, device, distributed=False):
        super().__init__(config, num_classes, device, distributed)
        cfg = self.config
        validate_config(cfg)
        self.stage = int(cfg["stage"])
        self.vgg, self.samplers, self.style_means = None, [], None
        if self.stage == 2:
            path = cfg.get("content_encoder") or os.environ.get(CONTENT_ENCODER_ENV)
            if not path:
                raise UnitEvalError("gpunit stage 2 needs the stage-I content encoder: --set content_encoder=FILE (or "
                                    f"${CONTENT_ENCODER_ENV}=FILE) with GP-UNIT's content_encoder.pt or a run.pt of "
                                    "`unit-eval train gpunit --set stage=1` (see baselines/gpunit/recipe.py)")
            state, self.content_encoder_sha256 = load_content_encoder(path, int(cfg["nef"]), int(cfg["n_down"]))
        if float(cfg["vgg_w"]) > 0:
            from .perceptual import load_vgg19
            self.vgg = load_vgg19(cfg["vgg19"], self.device)
        if self.stage == 1:
            self._init_stage1()
            return
        self.enc = ContentEncoder(int(cfg["nef"]), int(cfg["n_down"]), int(cfg["img_size"])).to(self.device)
        self.enc.load_state_dict(state)
        self.enc.eval().requires_grad_(False)
        self.gen = Generator(**gen_kwargs(cfg)).to(self.device)
        self.dis = add_spectral_norm(Discriminator(self.num_classes, int(cfg["img_size"]), int(cfg["dis_nf"]), int(cfg["dis_max"])))
        self.dis.to(self.device)
        init_kaiming(self.gen)
        init_kaiming(self.dis)
        if self.distributed:
            broadcast_module(self.gen)
            broadcast_module(self.dis)
        self.gen_ema = make_ema(self.gen)
        adam = dict(lr=float(cfg["lr"]), betas=tuple(cfg["betas"]), weight_decay=float(cfg["weight_decay"]))
        self.opt_g = torch.optim.Adam(self.gen.parameters(), **adam)
        self.opt_d = torch.optim.Adam(self.dis.parameters(), **adam)

    def _init_stage1(self):
        from .stage1 import AutoEncoder

        cfg = self.config
        self.ae = AutoEncoder(self.num_classes, int(cfg["nef"]), int(cfg["n_down"]), int(cfg["img_size"]),
                              int(cfg["s1_embed_dim"]), float(cfg["s1_noise"])).to(self.device)
        init_kaiming(self.ae)
        torch.nn.init.normal_(self.ae.embed.weight)  # nn.Embedding keeps its N(0, 1) init officially
        if self.distributed:
            broadcast_module(self.ae)
        self.opt_ae = torch.optim.Adam(self.ae.parameters(), lr=float(cfg["s1_lr"]), betas=tuple(cfg["s1_betas"]))
        self.pairs = None

    def bind_data(self, index) -> None:
        if self.stage == 1:
            from .stage1 import PairData

            self.pairs = PairData(index, self.config["masks"], int(self.config["load_size"]), int(self.config["img_size"]))
        self.class_names = list(index.class_names)

    # ------------------------------------------------------------------ training
    def train_step(self, batch, iteration):
        parts = self._step1(batch) if self.stage == 1 else self._step2(batch)
        values = torch.stack([v.float().reshape(()) for v in parts.values()]).tolist()
        return dict(zip(parts.keys(), values))

    def _step1(self, batch):
        from .stage1 import stage1_losses

        dev = self.device
        x, m, lx, _ = self.pairs.batch(batch["source"]["index"].cpu(), dev)
        xa, ma, la, crops = self.pairs.batch(batch["target"]["index"].cpu(), dev)
        xb, mb, lb, _ = self.pairs.batch(batch["target"]["index"].cpu(), dev, crops=crops)
        self.opt_ae.zero_grad(set_to_none=True)
        with self.autocast():
            total, parts = stage1_losses(self.ae, x, xa, xb, lx, la, lb, m, ma, mb, self.config, self.vgg)
        total.backward()
        average_gradients(self.ae)
        self.opt_ae.step()
        return parts

    def _step2(self, batch):
        cfg = self.config
        x, y, labels = batch["source"]["image"], batch["target"]["image"], batch["target"]["label"]
        with torch.no_grad():
            cfeat_x, cfeat_y = self.enc.features(x), self.enc.features(y)
        flip = bool(cfg["flip_style"]) and bool(torch.rand((), device=self.device) < 0.5)
        y_style = y.flip(3) if flip else y
        self.dis.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            g_loss, g_parts = losses.generator_loss(
                self.gen, self.dis, self.enc, cfeat_x, cfeat_y, y, y_style, labels, style_layer=int(cfg["style_layer"]),
                lambda_content=cfg["lambda_content"], lambda_style=cfg["lambda_style"], lambda_mask=cfg["lambda_mask"],
                lambda_rec=cfg["lambda_rec"], vgg=self.vgg, vgg_w=float(cfg["vgg_w"]), use_allskip=bool(cfg["use_allskip"]))
        g_loss.backward()
        average_gradients(self.gen)
        self.opt_g.step()
        self.dis.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            d_loss, d_parts = losses.discriminator_loss(self.gen, self.dis, cfeat_x, y, y_style, labels)
        d_loss.backward()
        average_gradients(self.dis)
        self.opt_d.step()
        ema_update(self.gen_ema, self.gen, float(cfg["ema_beta"]))
        return {**g_parts, **d_parts}

    @torch.no_grad()
    def finalize(self, batches) -> None:
        """Stage 2: per domain, the mean EMA style code of its training images (``translate_to_domain``) and a
        style sampler fitted to those codes (``sample_style``)."""
        if self.stage == 1:
            return
        codes = [[] for _ in range(self.num_classes)]
        for b in batches():
            style = self.gen_ema.style_encoder(b["image"].to(self.device)).float()
            for c in range(self.num_classes):
                codes[c].append(style[b["label"].to(self.device) == c])
        cfg, samplers, means = self.config, [], []
        # the samplers' draws must not move the training RNG (mid-run snapshots finalize too); the loop restores
        # the CPU generator itself, fork_rng also the CUDA one
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            for c in range(self.num_classes):
                w = torch.cat(codes[c]) if codes[c] else torch.zeros(0, int(cfg["style_dim"]), device=self.device)
                if w.shape[0] < 2:
                    raise UnitEvalError(f"gpunit: class {c} has {w.shape[0]} training image(s); its style sampler needs at least 2")
                means.append(w.double().mean(0).float())
                samplers.append(fit_sampler(w, noise_dim=int(cfg["noise_dim"]), hidden=int(cfg["sampler_hidden"]),
                                            samples=int(cfg["sampler_samples"]), mitigate_style_bias=bool(cfg["mitigate_style_bias"])))
        self.samplers = samplers
        self.style_means = torch.stack(means)

    # ------------------------------------------------------------------ state
    def state_dict(self):
        if self.stage == 1:
            return {"ae": self.ae.state_dict(), "opt_ae": self.opt_ae.state_dict()}
        return {"gen": self.gen.state_dict(), "dis": self.dis.state_dict(), "gen_ema": self.gen_ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "content_encoder_sha256": self.content_encoder_sha256}

    def load_state_dict(self, state):
        if self.stage == 1:
            self.ae.load_state_dict(state["ae"])
            self.opt_ae.load_state_dict(state["opt_ae"])
            return
        if state.get("content_encoder_sha256") != self.content_encoder_sha256:
            raise UnitEvalError("the content_encoder file changed since this run started (sha256 differs); resume with the same file")
        self.gen.load_state_dict(state["gen"])
        self.dis.load_state_dict(state["dis"])
        self.gen_ema.load_state_dict(state["gen_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])

    def inference_state_dict(self):
        if self.stage == 1:
            return {f"content_encoder.{k}": v.detach() for k, v in self.ae.contentE.state_dict().items()}
        out = {f"gen.{k}": v.detach() for k, v in self.gen_ema.state_dict().items()}
        out.update({f"content_encoder.{k}": v.detach() for k, v in self.enc.state_dict().items()})
        for c, sampler in enumerate(self.samplers):
            out.update({f"sampler.{c}.{k}": v.detach() for k, v in sampler.state_dict().items()})
        if self.style_means is not None:
            out["style_means"] = self.style_means.detach().clone()
        return out

    def run_config(self):
        cfg = {**self.config, "num_classes": self.num_classes}
        if self.stage == 2:
            cfg["content_encoder_sha256"] = self.content_encoder_sha256
        return cfg

    def translator(self):
        if self.stage == 1:
            return Stage1Preview(self.ae, int(self.config["img_size"]))
        return GPUNITTranslator(self.gen_ema, self.enc, self.samplers, image_size=int(self.config["img_size"]),
                                num_domains=self.num_classes, class_names=getattr(self, "class_names", None),
                                style_means=self.style_means)


class Stage1Preview:
    """The loop's sample grids during stage I: the autoencoder decoding the source's content with the reference's
    image-level style and domain 0's embedding (a preview only; stage I has no translator)."""

    def __init__(self, ae, image_size):
        self.ae, self.image_size, self.num_domains = ae, image_size, None

    @torch.no_grad()
    def translate(self, source, reference):
        was = self.ae.training
        self.ae.eval()
        try:
            content = self.ae.contentE(source)
            labels = torch.zeros(source.shape[0], dtype=torch.long, device=source.device)
            out, _ = self.ae.decode(self.ae.styles(reference.expand_as(source)), self.ae.embed(labels), content)
        finally:
            self.ae.train(was)
        return out


def validate_config(cfg: dict) -> None:
    def need(cond, msg):
        if not cond:
            raise UnitEvalError(f"gpunit config: {msg}")

    need(int(cfg["stage"]) in (1, 2), f"stage must be 1 (prior distillation) or 2 (translation), got {cfg['stage']!r}")
    s, n = int(cfg["img_size"]), int(cfg["n_down"])
    need(n >= 3, f"n_down must be at least 3 (dynamic skips on generator layers 1 and 2), got {n}")
    need(s % 2 ** n == 0 and s // 2 ** n >= 2, f"img_size {s} must be a multiple of 2^n_down = {2 ** n} with at least 2 x 2 content")
    need(s >= 32 and (s & (s - 1)) == 0, f"img_size must be a power of two >= 32 (the discriminator halves it to 4), got {s}")
    need(int(cfg["load_size"]) >= s, f"load_size {cfg['load_size']} is smaller than img_size {s}")
    need(1 <= int(cfg["style_layer"]) <= int(torch.tensor(s).log2()) - 1,
         f"style_layer must be in 1..{int(torch.tensor(s).log2()) - 1} (discriminator modules before the style feature)")
    need(int(cfg["batch_size"]) >= 2, f"batch_size must be at least 2, got {cfg['batch_size']}")
    need(0.0 <= float(cfg["ema_beta"]) < 1.0, f"ema_beta must be in [0, 1), got {cfg['ema_beta']}")
    need(float(cfg["vgg_w"]) >= 0, f"vgg_w must be >= 0, got {cfg['vgg_w']}")


RECIPE = GPUNITRecipe
