"""UNIT training recipe (paper Sec. 3-4, Appendix A) for ``unit-eval train unit``.

Data: ``--data`` holds exactly two subfolders, the two domains. Sorted by name, the first is domain 0.
Each iteration is one step of the paper's "alternating gradient update" (Sec. 3), D first. Streams
``a`` (domain 0) and ``b`` (domain 1) give x_0 and x_1. One Adam step updates D_0 and D_1, then one
updates E_0, E_1, G_0 and G_1 (see ``losses.py``).

Paper settings (Sec. 4 and Table 3 unless stated):
- Adam with "learning rate ... 0.0001 and momentums ... 0.5 and 0.999".
- "Each mini-batch consisted of one image from the first domain and one image from the second domain"
  (``batch_size=1``).
- 100K iterations (the map experiment).
- lambda0 = 10 (``gan_w``), lambda1 = 0.1 (``kl_w``), lambda2 = 100 (``rec_w``), lambda3 = 0.1
  (``kl_cyc_w``), lambda4 = 100 (``cyc_w``).
- The direct KL term carries lambda1 + lambda3, because Eqs. 3 and 7 both contain it; the reasoning is
  in ``losses.py``.
- Table 3 networks with 1 shared layer and a 5-layer discriminator ("VAEs with 1 sharing layer and
  discriminators of 5 layers").
- The standard (BCE) GAN loss of Eqs. 5-6 (``gan_mode="bce"``, ``dis_scales=1``).
- The paper evaluates the final model, so UNIT keeps no EMA generator by default. ``ema_beta`` (default
  None) adds one, and that copy is then the one evaluated.

The paper leaves some settings open; these come from elsewhere:
- Weight decay 1e-4 on both Adams: the released code (version_02 cocogan_trainer.py L22-23; master
  configs ``weight_decay: 0.0001``).
- N(0, 0.02) initialisation of every (transposed) conv weight: version_02 ``gaussian_weights_init``.
- img_size 256, the later official configs' crop. The paper states no training resolution for the map
  task.
- No resize-crop; random horizontal flips.

Where the released code differs (mingyuliutw/UNIT; checked on the branches at version_01 6a0a5b8,
version_02 96def6b, master 28d5982):

- Which code. master's README says "For reproducing experiment results in the NIPS paper, please check
  out version_02 branch". Earlier notes here called that code "v0.1". The code for the paper's map
  experiment and its config were not released. version_02 ships configs for cat2tiger, corgi2husky,
  blondhair, svhn2mnist and street scenes.
  version_01 is an older, different trainer (``UNITTrainer``/``CoVAEGAN``). It has no cycle-consistency
  stream and learns a variance ``sd`` with KL (mu^2 + sd^2 - log sd^2).sum()/batch. It uses
  MSE-times-pixels or L1-times-pixels likelihoods, also puts the reconstructions through D, and its
  ``kaist_day_and_night.yaml`` has ``vae_enc_w: 1e-5, vae_ll_w: 1e-4, gan_w: 1``. It is not the paper's
  objective.
- version_02 loss weights (exps/unit/*.yaml, e.g. cat2tiger.yaml L12-17): ``gan_w: 10``,
  ``ll_direct_link_w: 100``, ``kl_direct_link_w: 0.1``, ``ll_cycle_link_w: 100``,
  ``kl_cycle_link_w: 0.1``, ``batch_size: 1``, ``max_iterations: 500000``.
  These are the paper's lambdas, but version_02 weights the direct KL by lambda1 only. Its total is
  (cocogan_trainer.py L66-70) ``gan_w*(ad_a+ad_b) + ll_direct_link_w*(ll_a+ll_b) +
  ll_cycle_link_w*(ll_aba+ll_bab) + kl_direct_link_w*(enc_loss+enc_loss) +
  kl_cycle_link_w*(enc_bab+enc_aba)``.
  ``enc_loss`` is mean(z^2) over the *concatenated* two-domain batch, so ``enc_loss+enc_loss`` =
  KL_0 + KL_1, each at 0.1. The paper's Eqs. 3+7 give 0.2 there. Its KLs are also taken on the noisy
  code z = mu + eta (``GaussianNoiseLayer`` closes ``enc_shared``, cocogan_nets.py L203), not on mu.
  Its two KL weights are equal, so ``--set kl_w=0`` gives version_02's KL weighting here (direct 0.1,
  cycle 0.1; KL on mu).
- version_02 networks differ from Table 3. ``COCOResGen``/``COCOResGen2`` (cocogan_nets.py L160-259,
  L262ff) have:
  - a 7x7 *stride-1* first conv (L183-184; Table 3: K7 S2);
  - then ``n_enc_front_blk - 1`` = 2 stride-2 3x3 convs, so 2 down/up-samplings (Table 3: 3);
  - ``COCOResGen``: IN + ReLU after those convs and transposed convs (Table 3: LeakyReLU, no norm);
    ``COCOResGen2`` keeps LeakyReLU without norm;
  - zero-padded 3x3 residual blocks, conv-IN-ReLU-conv-IN (common_net.py L83-104), with dropout 0.5 in
    the street configs;
  - 3 private + 1 shared residual blocks per side (as Table 3);
  - 2 stride-2 transposed convs, each halving the width (256 -> 128 -> 64), then a 1x1 transposed
    conv + tanh. Here it is 256 -> 256 -> 128 -> 64, Table 3's printed N256, N128, N64.
  Discriminators: ``COCODis`` has ``n_layer`` 3x3 stride-2 LeakyReLU convs (6 in cat2tiger) and a 1x1
  last conv (Table 3: 5 layers, 2x2 last conv). ``COCOMsDis`` (street configs) has 3 scales,
  Gaussian-smoothed downsampling and 4 layers. Both use BCE on sigmoid outputs, generator against ones.
  Crops: 216 px for cat2tiger (scale 1.2) and 640x480 for the street scenes.
- master (trainer.py ``UNIT_Trainer`` L202-306, networks.py ``VAEGen`` L150-181,
  configs/unit_*_folder.yaml) has:
  - weights ``gan_w: 1, recon_x_w: 10, recon_kl_w: 0.01, recon_x_cyc_w: 10, recon_kl_cyc_w: 0.01``,
    with the direct KL weighted once (L293-304) and taken on mu;
  - ``gan_type: lsgan``;
  - ``MsImageDis`` with ``num_scales: 3`` and ``n_layer: 4``: 4x4 stride-2 convs, LeakyReLU, 1x1 last
    conv, average-pool downsampling;
  - **no weight sharing**: two independent ``VAEGen``s;
  - encoder: 7x7 stride-1 conv, 2 4x4 stride-2 convs, then 4 residual blocks, all IN + ReLU with
    reflection padding (``pad_type: reflect``);
  - decoder: 4 residual blocks, then 2 x (nearest upsample + 5x5 conv + LayerNorm + ReLU), then a 7x7
    conv + tanh;
  - the same Adam (lr 1e-4, betas (0.5, 0.999), weight decay 1e-4), but halved every 100K of 1M
    iterations (``lr_policy: step``, ``step_size: 100000``, ``gamma: 0.5``);
  - Kaiming init for the generators, Gaussian for D;
  - batch 1 and 256 px crops.
  Its objective and networks are not the paper's. ``gan_mode="lsgan"`` and ``dis_scales`` only borrow
  its GAN form and multi-scale discriminator.
"""
from __future__ import annotations

import torch

from unit_eval.errors import UnitEvalError

from unit_eval.distributed import average_gradients, broadcast_module
from ..common.ema import ema_update, make_ema
from ..common.recipe import Recipe, published_config
from . import losses
from .adapter import UNITTranslator
from .networks import GEN_KEYS, Discriminator, UNITGenerator, init_weights

PUBLISHED = {
    "img_size": 256, "load_size": 256, "hflip": True, "batch_size": 1, "iters": 100_000,
    # networks (Table 3)
    "ch": 64, "n_down": 3, "n_res": 4, "n_shared": 1, "lrelu_slope": 0.01,
    "dis_ch": 64, "dis_layers": 5, "dis_scales": 1,
    # objective (Sec. 4: lambda0 = 10, lambda1 = lambda3 = 0.1, lambda2 = lambda4 = 100); gan_w = lambda0,
    # kl_w = lambda1, rec_w = lambda2, kl_cyc_w = lambda3, cyc_w = lambda4. The direct KL is weighted
    # kl_w + kl_cyc_w (Eqs. 3 + 7; see losses.py); the released version_02 code weights it kl_w only.
    "gan_w": 10.0, "kl_w": 0.1, "rec_w": 100.0, "kl_cyc_w": 0.1, "cyc_w": 100.0, "gan_mode": "bce",
    # optimisation: Adam lr and betas from the paper, weight decay from the released code (paper silent)
    "lr": 1e-4, "beta1": 0.5, "beta2": 0.999, "weight_decay": 1e-4,
    "init": "gaussian",  # N(0, 0.02) as version_02; "kaiming" (He normal, fan-in) for narrow toy nets
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
