"""UNIT training recipe (paper Sec. 3-4, Appendix A) for ``unit-eval train unit``.

Data: ``--data`` holds exactly two subfolders, the two domains; sorted by name, the first is domain 0.
Per iteration (paper: "alternating gradient update", D first): streams ``a`` (domain 0) and ``b``
(domain 1) give x_0 and x_1; one Adam step on D_0, D_1, then one on E_0, E_1, G_0, G_1 (see
``losses.py``). Adam lr 1e-4, betas (0.5, 0.999) (paper), weight decay 1e-4 (official v0.1 code);
the paper's mini-batch is one image per domain (``batch_size=1``), 100K iterations (map experiment).

UNIT keeps no EMA generator (the paper evaluates the final model); ``ema_beta`` (default None) adds
one, which is then the evaluated copy. Defaults: img_size 256 (the later official configs' crop;
the paper does not state a resolution), no resize-crop, random flips; plain 5-layer discriminators
(``dis_scales=1``) with the BCE GAN loss (``gan_mode="bce"``), as the paper.
"""
from __future__ import annotations

import torch

from unit_eval.errors import UnitEvalError

from ..common.distributed import average_gradients, broadcast_module
from ..common.ema import ema_update, make_ema
from ..common.recipe import Recipe, published_config
from . import losses
from .networks import Discriminator, UNITGenerator, init_weights

GEN_KEYS = ("ch", "n_down", "n_res", "n_shared", "lrelu_slope")

PUBLISHED = {
    "img_size": 256, "load_size": 256, "hflip": True, "batch_size": 1, "iters": 100_000,
    # networks (Table 3)
    "ch": 64, "n_down": 3, "n_res": 4, "n_shared": 1, "lrelu_slope": 0.01,
    "dis_ch": 64, "dis_layers": 5, "dis_scales": 1,
    # objective (Sec. 4: lambda0 = 10, lambda1 = lambda3 = 0.1, lambda2 = lambda4 = 100)
    "gan_w": 10.0, "kl_w": 0.1, "rec_w": 100.0, "kl_cyc_w": 0.1, "cyc_w": 100.0, "gan_mode": "bce",
    # optimisation
    "lr": 1e-4, "beta1": 0.5, "beta2": 0.999, "weight_decay": 1e-4,
    "init": "gaussian",  # N(0, 0.02) as UNIT v0.1; "kaiming" (He normal, fan-in) for narrow toy nets
    "ema_beta": None,
    "amp": False,
    "toy": False,
}

# Width/depth scaling for CPU smoke runs: 32 px, 8 base channels, 2 down/up-samplings, 2 residual blocks;
# He init, since N(0, 0.02) makes 8-channel layers shrink the signal to nothing.
TOY = {"img_size": 32, "load_size": 32, "batch_size": 2, "ch": 8, "n_down": 2, "n_res": 2, "dis_ch": 8,
       "dis_layers": 3, "init": "kaiming"}


class UNITRecipe(Recipe):
    name = "unit"
    streams = {"a": 0, "b": 1}
    default_iters = 100_000
    min_classes = 2

    @classmethod
    def default_config(cls, *, iters, img_size=None, batch_size=None, k=None, **extra):
        if k is not None:
            raise UnitEvalError("unit has no pseudo-domain count; drop --k (UNIT translates between two domain folders)")
        cfg = published_config("unit", PUBLISHED, TOY, extra, iters)
        if img_size is not None:
            cfg["img_size"] = int(img_size)
            if extra.get("load_size") is None:
                cfg["load_size"] = int(img_size)
            if extra.get("dis_layers") is None:
                # Table 3's 5 stride-2 layers need >= 64 px (2x2 left for the last 2x2 conv); use fewer below.
                cfg["dis_layers"] = max(1, min(PUBLISHED["dis_layers"], int(img_size).bit_length() - 2))
        if batch_size is not None:
            cfg["batch_size"] = int(batch_size)
        return cfg  # validated when the recipe is built (after the loop's --set overrides)

    @classmethod
    def validate_data(cls, class_names, counts):
        if len(class_names) != 2:
            raise UnitEvalError(
                f"unit needs --data with exactly two domain subfolders, found {len(class_names)}"
                + (f" ({', '.join(class_names[:6])}{', ...' if len(class_names) > 6 else ''})" if class_names else ""))

    def __init__(self, config, num_classes, device, distributed=False):
        super().__init__(config, num_classes, device, distributed)
        if self.num_classes != 2:
            raise UnitEvalError(f"unit needs --data with exactly two domain subfolders, found {self.num_classes}")
        cfg = self.config
        validate_config(cfg)
        self.gen = UNITGenerator(**{k: cfg[k] for k in GEN_KEYS}).to(self.device)
        self.dis = torch.nn.ModuleList(
            Discriminator(cfg["dis_ch"], cfg["dis_layers"], cfg["dis_scales"], cfg["lrelu_slope"]) for _ in range(2)
        ).to(self.device)
        init_weights(self.gen, cfg["init"])
        init_weights(self.dis, cfg["init"])
        if self.distributed:
            broadcast_module(self.gen)
            broadcast_module(self.dis)
        self.gen_ema = make_ema(self.gen) if cfg["ema_beta"] is not None else None
        adam = dict(lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]), weight_decay=cfg["weight_decay"])
        self.opt_g = torch.optim.Adam(self.gen.parameters(), **adam)
        self.opt_d = torch.optim.Adam(self.dis.parameters(), **adam)

    def train_step(self, batch, iteration):
        cfg = self.config
        x0, x1 = batch["a"]["image"], batch["b"]["image"]
        self.dis.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            d_loss, d_parts = losses.discriminator_loss(self.gen, self.dis, x0, x1, gan_w=cfg["gan_w"],
                                                        gan_mode=cfg["gan_mode"])
        d_loss.backward()
        average_gradients(self.dis)
        self.opt_d.step()
        self.dis.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            g_loss, g_parts, _ = losses.generator_loss(
                self.gen, self.dis, x0, x1, gan_w=cfg["gan_w"], kl_w=cfg["kl_w"], rec_w=cfg["rec_w"],
                kl_cyc_w=cfg["kl_cyc_w"], cyc_w=cfg["cyc_w"], gan_mode=cfg["gan_mode"])
        g_loss.backward()
        average_gradients(self.gen)
        self.opt_g.step()
        self.dis.requires_grad_(True)
        if self.gen_ema is not None:
            ema_update(self.gen_ema, self.gen, cfg["ema_beta"])
        parts = {**d_parts, **g_parts}
        values = torch.stack([v.float().reshape(()) for v in parts.values()]).tolist()
        return dict(zip(parts.keys(), values))

    # ------------------------------------------------------------------ state
    def eval_generator(self) -> UNITGenerator:
        return self.gen_ema if self.gen_ema is not None else self.gen

    def state_dict(self):
        state = {"gen": self.gen.state_dict(), "dis": self.dis.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}
        if self.gen_ema is not None:
            state["gen_ema"] = self.gen_ema.state_dict()
        return state

    def load_state_dict(self, state):
        self.gen.load_state_dict(state["gen"])
        self.dis.load_state_dict(state["dis"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        if self.gen_ema is not None:
            self.gen_ema.load_state_dict(state["gen_ema"])

    def inference_state_dict(self):
        return {f"gen.{k}": v.detach() for k, v in self.eval_generator().state_dict().items()}

    def run_config(self):
        return dict(self.config)

    def translator(self):
        from .adapter import UNITTranslator

        return UNITTranslator(self.eval_generator(), image_size=self.config["img_size"])


def validate_config(cfg: dict) -> None:
    def need(cond, msg):
        if not cond:
            raise UnitEvalError(f"unit config: {msg}")

    s, n_down, layers = int(cfg["img_size"]), int(cfg["n_down"]), int(cfg["dis_layers"])
    need(n_down >= 1, f"n_down must be >= 1, got {n_down}")
    need(s % 2 ** n_down == 0, f"img_size {s} must be divisible by 2^n_down = {2 ** n_down}")
    smallest = s // 2 ** (int(cfg["dis_scales"]) - 1)
    need(smallest // 2 ** layers >= 2,
         f"img_size {s} is too small for {layers} stride-2 discriminator layers at {cfg['dis_scales']} scale(s) "
         f"(the last scale must keep at least 2x2 for the final 2x2 conv); lower dis_layers or dis_scales")
    need(1 <= int(cfg["n_shared"]) <= int(cfg["n_res"]), f"need 1 <= n_shared <= n_res, got {cfg['n_shared']}, {cfg['n_res']}")
    need(int(cfg["load_size"]) >= s, f"load_size {cfg['load_size']} is smaller than img_size {s}")
    need(cfg["gan_mode"] in ("bce", "lsgan"), f"gan_mode must be 'bce' or 'lsgan', got {cfg['gan_mode']!r}")
    need(int(cfg["batch_size"]) >= 1, f"batch_size must be positive, got {cfg['batch_size']}")
    need(cfg["init"] in ("gaussian", "kaiming"), f"init must be 'gaussian' or 'kaiming', got {cfg['init']!r}")
    need(int(cfg["dis_scales"]) >= 1, f"dis_scales must be >= 1, got {cfg['dis_scales']}")
    need(cfg["ema_beta"] is None or 0.0 <= float(cfg["ema_beta"]) < 1.0, "ema_beta must be None or in [0, 1)")


RECIPE = UNITRecipe
