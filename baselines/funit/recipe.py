"""FUNIT training recipe (NVlabs/FUNIT ``configs/funit_animals.yaml`` defaults) for ``unit-eval train funit``.

Per iteration (official ``train.py``: D update, then G update, then EMA):
  * streams ``content`` (x_a, l_a) and ``style`` (x_b, l_b), independent draws over all classes, each
    image resized with its shorter side to 140 (aspect kept), randomly cropped to 128 and flipped
    (``resize_mode="shorter_side"``, official ``utils.py:40-52``);
  * D: hinge on reals x_b / translations G(x_a, x_b) at label l_b, + 10 x real gradient penalty;
  * G: 0.5 (adv(translation) + adv(reconstruction)) + 0.1 L1 reconstruction + 1 x feature matching;
  * RMSprop lr 1e-4, weight decay 1e-4 for both; EMA of the generator with beta 0.999 (evaluated).
``use_labels=False`` trains with every label equal to 0 (a one-class discriminator), the TUNIT
paper's unlabelled FUNIT baseline; such a model has ``num_domains = None``.

Class codes for ``translate_to_domain``: with labels, the recipe keeps a per-class running mean of
the EMA class encoder's codes of the style images it sees (exact mean of the first
``class_code_window`` images of a class, then an exponential average over about that many), and
:meth:`FUNITRecipe.finalize` (called by the loop at the end, when it has one) replaces it with the
exact mean code of every training image of the class (centre/eval transform).
"""
from __future__ import annotations

import torch

from unit_eval.errors import UnitEvalError

from ..common.data import RESIZE_MODES
from unit_eval.distributed import all_gather_cat, average_gradients, broadcast_module
from ..common.ema import ema_update, make_ema
from ..common.recipe import Recipe, resize_crop_config
from . import losses
from .adapter import FUNITTranslator
from .networks import GEN_KEYS, FewShotGenerator, ProjectionResDiscriminator, init_weights_kaiming

PUBLISHED = {
    # data (funit_animals.yaml:38-40 new_size 140, crop 128; utils.py:40-52 RandomHorizontalFlip,
    # Resize(140) = shorter side to 140 with the aspect kept, bilinear, RandomCrop((128, 128)))
    "img_size": 128, "load_size": 140, "resize_mode": "shorter_side", "hflip": True, "batch_size": 64,
    "iters": 100_000,
    # generator (FewShotGen)
    "nf": 64, "nf_mlp": 256, "latent_dim": 64, "n_mlp_blks": 3, "n_res_blks": 2,
    "n_downs_content": 3, "n_downs_class": 4,
    # discriminator (GPPatchMcResDis)
    "dis_nf": 64, "dis_n_res_blks": 10,
    # optimisation
    "lr_gen": 1e-4, "lr_dis": 1e-4, "weight_decay": 1e-4, "gan_w": 1.0, "fm_w": 1.0, "r_w": 0.1, "gp_w": 10.0,
    "ema_beta": 0.999,
    # set-level supervision (False: all labels equal, the unlabelled baseline)
    "use_labels": True,
    "class_code_window": 1000,
    # not FUNIT's: gradients accumulated over micro-batches of this many images (0: the whole batch at once), the
    # same gradient up to float rounding; lets batch 64 at 128 px train in 24 GB of host memory (benchmarks README)
    "micro_batch": 0,
    "amp": False,
    "toy": False,
}

# Width/depth scaling for CPU smoke runs (32 px, tiny widths, 4-block discriminator).
TOY = {"img_size": 32, "load_size": 36, "batch_size": 4, "nf": 8, "nf_mlp": 32, "latent_dim": 16,
       "dis_nf": 8, "dis_n_res_blks": 4}


class FUNITRecipe(Recipe):
    name = "funit"
    finalize_touches = ("class_codes", "class_code_count")
    streams = {"content": None, "style": None}
    default_iters = 100_000
    min_classes = 1  # 2 with labels: checked when the recipe is built (validate_data has no config)

    @classmethod
    def default_config(cls, *, iters, img_size=None, batch_size=None, k=None, **extra):
        if k is not None:
            raise UnitEvalError("funit has no pseudo-domain count; drop --k (FUNIT uses the class folders)")
        # validated when the recipe is built (after the loop's --set overrides)
        return resize_crop_config("funit", PUBLISHED, TOY, extra, iters, img_size, batch_size)

    def __init__(self, config, num_classes, device, distributed=False):
        super().__init__(config, num_classes, device, distributed)
        cfg = self.config
        validate_config(cfg)
        self.use_labels = bool(cfg["use_labels"])
        if self.use_labels and self.num_classes < 2:
            raise UnitEvalError(
                f"funit with class labels needs at least 2 class folders, found {self.num_classes}; "
                "add classes or train without labels (use_labels=False)")
        self.dis_classes = self.num_classes if self.use_labels else 1
        self.gen = FewShotGenerator(**{k: cfg[k] for k in GEN_KEYS}).to(self.device)
        self.dis = ProjectionResDiscriminator(self.dis_classes, cfg["dis_nf"], cfg["dis_n_res_blks"]).to(self.device)
        init_weights_kaiming(self.gen)
        init_weights_kaiming(self.dis)
        if self.distributed:
            broadcast_module(self.gen)
            broadcast_module(self.dis)
        self.gen_ema = make_ema(self.gen)
        self.opt_g = torch.optim.RMSprop(self.gen.parameters(), lr=cfg["lr_gen"], weight_decay=cfg["weight_decay"])
        self.opt_d = torch.optim.RMSprop(self.dis.parameters(), lr=cfg["lr_dis"], weight_decay=cfg["weight_decay"])
        n_codes = self.num_classes if self.use_labels else 0
        self.class_codes = torch.zeros(n_codes, cfg["latent_dim"], device=self.device)
        self.class_code_count = torch.zeros(n_codes, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------ training
    def _labels(self, b):
        return b["label"] if self.use_labels else torch.zeros_like(b["label"])

    def _micro_batches(self, n: int) -> tuple[list[slice], int | None]:
        size = int(self.config.get("micro_batch") or 0)
        if size <= 0 or size >= n:
            return [slice(0, n)], None
        return [slice(i, min(i + size, n)) for i in range(0, n, size)], n

    def train_step(self, batch, iteration):
        cfg = self.config
        x_a, x_b = batch["content"]["image"], batch["style"]["image"]
        l_a, l_b = self._labels(batch["content"]), self._labels(batch["style"])
        chunks, whole = self._micro_batches(x_a.shape[0])
        # discriminator
        self.dis.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        d_parts = {}
        for c in chunks:
            with self.autocast():
                d_loss, parts = losses.discriminator_loss(self.gen, self.dis, x_a[c], x_b[c], l_b[c],
                                                          gan_w=cfg["gan_w"], gp_w=cfg["gp_w"], batch=whole)
            d_loss.backward()
            d_parts = {k: d_parts.get(k, 0) + v for k, v in parts.items()}
        average_gradients(self.dis)
        self.opt_d.step()
        # generator (D frozen: its parameters get no gradients from the G loss)
        self.dis.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        g_parts = {}
        for c in chunks:
            with self.autocast():
                g_loss, parts, _ = losses.generator_loss(self.gen, self.dis, x_a[c], l_a[c], x_b[c], l_b[c],
                                                         gan_w=cfg["gan_w"], r_w=cfg["r_w"], fm_w=cfg["fm_w"], batch=whole)
            g_loss.backward()
            g_parts = {k: g_parts.get(k, 0) + v for k, v in parts.items()}
        average_gradients(self.gen)
        self.opt_g.step()
        self.dis.requires_grad_(True)
        ema_update(self.gen_ema, self.gen, cfg["ema_beta"])
        if self.use_labels:
            self._update_class_codes(x_b, batch["style"]["label"])
        parts = {**d_parts, **g_parts}
        values = torch.stack([v.float().reshape(()) for v in parts.values()]).tolist()
        return dict(zip(parts.keys(), values))

    @torch.no_grad()
    def _update_class_codes(self, images, labels):
        # Vectorised (no host syncs): per class c with n_c new codes of mean m_c,
        # count_c += n_c;  bank_c += min(1, n_c / min(count_c, window)) * (m_c - bank_c).
        codes = self.gen_ema.class_code(images).float()
        codes, labels = all_gather_cat(codes), all_gather_cat(labels)
        k = self.num_classes
        n = torch.bincount(labels, minlength=k)
        sums = torch.zeros(k, codes.shape[1], device=codes.device).index_add_(0, labels, codes)
        self.class_code_count += n
        denom = self.class_code_count.clamp(min=1, max=int(self.config["class_code_window"])).float()
        rate = (n.float() / denom).clamp(max=1.0)
        mean = sums / n.clamp(min=1).float()[:, None]
        self.class_codes += rate[:, None] * (mean - self.class_codes)

    @torch.no_grad()
    def finalize(self, batches) -> None:
        """Exact per-class mean EMA class codes over the training images (``batches()`` yields loop batches)."""
        if not self.use_labels:
            return
        sums = torch.zeros_like(self.class_codes, dtype=torch.float64)
        counts = torch.zeros(self.num_classes, dtype=torch.long, device=self.device)
        for b in batches():
            codes = self.gen_ema.class_code(b["image"].to(self.device)).double()
            labels = b["label"].to(self.device)
            sums.index_add_(0, labels, codes)
            counts += torch.bincount(labels, minlength=self.num_classes)
        seen = counts > 0
        self.class_codes[seen] = (sums[seen] / counts[seen, None]).float()
        self.class_code_count[seen] = counts[seen]

    # ------------------------------------------------------------------ state
    def state_dict(self):
        return {
            "gen": self.gen.state_dict(), "dis": self.dis.state_dict(), "gen_ema": self.gen_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "class_codes": self.class_codes.clone(), "class_code_count": self.class_code_count.clone(),
        }

    def load_state_dict(self, state):
        self.gen.load_state_dict(state["gen"])
        self.dis.load_state_dict(state["dis"])
        self.gen_ema.load_state_dict(state["gen_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.class_codes.copy_(state["class_codes"])
        self.class_code_count.copy_(state["class_code_count"])

    def inference_state_dict(self):
        out = {f"gen.{k}": v.detach() for k, v in self.gen_ema.state_dict().items()}
        if self.use_labels:
            out["class_codes"] = self.class_codes.detach().clone()
            out["class_code_count"] = self.class_code_count.detach().clone()
        return out

    def run_config(self):
        return {**self.config, "num_classes": self.num_classes}

    def translator(self):
        return FUNITTranslator(self.gen_ema, image_size=self.config["img_size"],
                               num_domains=self.num_classes if self.use_labels else None,
                               class_codes=self.class_codes if self.use_labels else None)


def validate_config(cfg: dict) -> None:
    def need(cond, msg):
        if not cond:
            raise UnitEvalError(f"funit config: {msg}")

    s = int(cfg["img_size"])
    need(s >= 8, f"img_size must be at least 8, got {s}")
    need(s % 2 ** int(cfg["n_downs_content"]) == 0,
         f"img_size {s} must be divisible by 2^n_downs_content = {2 ** int(cfg['n_downs_content'])}")
    need(int(cfg["load_size"]) >= s, f"load_size {cfg['load_size']} is smaller than img_size {s}")
    need(cfg.get("resize_mode", "square") in RESIZE_MODES,
         f"resize_mode must be one of {', '.join(RESIZE_MODES)}, got {cfg.get('resize_mode')!r}")
    need(int(cfg["dis_n_res_blks"]) >= 2 and int(cfg["dis_n_res_blks"]) % 2 == 0,
         f"dis_n_res_blks must be an even number >= 2, got {cfg['dis_n_res_blks']}")
    need(int(cfg["n_downs_class"]) >= 2, f"n_downs_class must be >= 2, got {cfg['n_downs_class']}")
    need(int(cfg["n_mlp_blks"]) >= 2, f"n_mlp_blks must be >= 2, got {cfg['n_mlp_blks']}")
    need(int(cfg["batch_size"]) >= 1, f"batch_size must be positive, got {cfg['batch_size']}")
    need(0.0 <= float(cfg["ema_beta"]) < 1.0, f"ema_beta must be in [0, 1), got {cfg['ema_beta']}")
    need(int(cfg.get("micro_batch") or 0) >= 0, f"micro_batch must be 0 (whole batch) or positive, got {cfg.get('micro_batch')}")


RECIPE = FUNITRecipe
