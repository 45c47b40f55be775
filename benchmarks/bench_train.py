"""Training speed of the bundled trainers (TUNIT, FUNIT, UNIT, CLUIT, GP-UNIT), and of the official TUNIT and
GP-UNIT beside ours.

    python benchmarks/bench_train.py                                   # all models, device auto
    python benchmarks/bench_train.py --device cpu --threads 1 --official-tunit /tmp/tunit-official --json
    python benchmarks/bench_train.py --device cuda --official-tunit /tmp/tunit-official --json
    python benchmarks/bench_train.py --device cuda --models tunit --sizes paper --iters 1000 \\
        --official-tunit /tmp/tunit-official --json       # losses over the first thousand iterations

Get the official implementation with ``git clone https://github.com/clovaai/tunit /tmp/tunit-official``
(tested at commit 405a77c). It is only imported from that path, at run time: nothing of it is
copied into this repository. It needs no extra packages beyond ours (tensorboardX, which it imports
for logging only, is replaced by a null writer when it is not installed).

What is measured, each configuration in its own child process (so peak memories do not mix):

- ours: ``unit_eval.baselines.common.loop.train`` (the real entry point) with ``log_every=1``; the
  per-iteration wall time is the loop's own ``s_per_iter`` (data fetch + step + loss read-out), the
  first ``--warmup`` iterations are dropped. Sample grids and intermediate checkpoints are off;
  ``finalize`` (once after training, not per iteration) is skipped to keep the benchmark short.
- TUNIT with full-size networks at 128 px, batch 32 on CUDA (the paper's setting; ``--tunit-batch``,
  2 on CPU, where one batch-32 joint iteration takes many minutes), separately for the
  guiding-network warm-up phase (``warmup_iters`` = all iterations: E alone) and the joint phase
  (``warmup_iters=0``: E, D and G every iteration); on CUDA each phase also with ``amp`` off (ours
  defaults to bf16 autocast on CUDA, the official code runs float32).
- FUNIT at 128 px (published load 140 -> crop 128), batch 64 on CUDA (``--funit-batch``; 2 on CPU),
  UNIT at batch 1, 256 px on CUDA and 128 px on CPU (``--unit-size``; digits upscaled where needed).
- GP-UNIT stage II at its published 256 px (load 286, crop 256), batch 16 on CUDA (``--gpunit-batch``; 2 on CPU),
  with a content encoder and VGG19 of random weights in the official files' layouts (written to the work folder:
  same compute; the VGG19 pin is set to that file's digest in the child), and the per-domain sampler fitting of
  ``finalize`` skipped like every finalize here.
- official GP-UNIT (``--official-gpunit PATH``, a checkout of github.com/williamyang1991/GP-UNIT, tested at
  d59695e): its ``train.train`` loop with its networks, ``create_unpaired_dataloader`` (no workers on CPU), Adam
  settings and VGGLoss, on the digits' first five classes as sources and the last five as targets, at the same
  batch. Shims, applied at run time: ``faiss`` and ``cv2`` (imported, unused while training) stubbed;
  ``torchvision.models.vgg19`` built without downloading (random weights, same compute); ``.cuda()`` kept on the
  CPU there; its sample-grid ``utils.save_image`` (a removed ``range=`` argument) and end-of-run sampler fitting
  and checkpoint skipped. Per-iteration times are stamped at its ``moving_average`` call (the last thing of every
  iteration), losses read from its progress-bar line.
- the toy configurations the tests use (``extra={"toy": True}``, 32 px, one thread as the tests).
- official TUNIT (``--official-tunit PATH``): its own ``main.build_model`` (networks, optimisers),
  ``get_dataset``/``get_loader`` (its data pipeline and augmentations, on the same images laid out
  as its ``afhq_cat`` dataset with one folder), ``initialize_queue`` and ``trainGAN_UNSUP`` with
  ``separated``/``ema_start`` set so that epoch 0 is the warm-up phase (C only) or the joint phase
  (C, D, G and the G EMA, as after epoch 66). Per-iteration times come from the
  ``torch.cuda.synchronize()`` it calls at the end of every iteration (wrapped to record a
  timestamp); losses from its ``AverageMeter`` updates (wrapped to keep every value). The FID
  Inception network that ``build_model`` also builds (and would download) is replaced by a stub:
  training never uses it, so the official peak GPU memory is, if anything, understated. Its
  ``calc_iic_loss`` clamps ``expand()``ed views in place, which PyTorch > 1.2 refuses in backward (it
  pins torch 1.1/1.2): while that function runs, ``expand()`` returns a contiguous copy (same values,
  same gradients). On CPU more shims, all applied at run time without touching its files:
  ``Tensor.cuda``/``Module.cuda`` return the object on the CPU, ``torch.cuda.set_device`` and
  ``synchronize`` are no-ops, ``initialize_queue`` gets ``"cpu"`` instead of the GPU index. The
  shims applied are listed in the JSON report.
- per configuration: iterations/s from the mean wall time of the timed iterations, the fastest
  iteration, and the process CPU time per iteration (``time.process_time``, all threads): on a shared
  CPU the wall time depends on the other processes, the CPU time much less (use ``--threads 1``;
  two threads on two busy cores stall each other). Loss comparison ours vs official: per loss, the
  signed means and the ratio of mean absolute values over every iteration run (early GAN losses
  swing in sign); "same magnitude" = ratio within [0.1, 10].

Peak memory: CUDA ``max_memory_allocated`` (and reserved) on GPU; ``VmHWM`` of the child process on
CPU (with the RSS after imports, before anything is built, for reference).
Data: scikit-learn digits written as class folders of 128 px RGB PNGs in a temporary folder.

Prints a Markdown summary (stderr) and, with --json, one JSON object on stdout.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OFFICIAL_METER_NAMES = ("D/LOSS", "D/ADV", "D/GP", "G/LOSS", "G/ADV", "G/IMGREC", "G/STYCONT", "C/LOSS", "C/MOCO", "C/IIC")
# ours (derived) -> official; ours logs D/r1 unweighted, the official D/GP is already x w_gp (10)
LOSS_PAIRS = (("E/moco", "C/MOCO"), ("E/iic", "C/IIC"), ("E/total", "C/LOSS"), ("D/adv", "D/ADV"), ("D/gp", "D/GP"),
              ("D/total", "D/LOSS"), ("G/adv", "G/ADV"), ("G/rec", "G/IMGREC"), ("G/style", "G/STYCONT"), ("G/total", "G/LOSS"))


# ---------------------------------------------------------------------------------------------- helpers
# ours -> official GP-UNIT progress-bar names (its bar prints 3 decimals: R1, ~1e-8 early on, reads 0.000 there)
GPUNIT_LOSS_PAIRS = (("g_adv", "Lg"), ("g_con", "Lcon"), ("g_sty", "Lsty"), ("g_msk", "Lmsk"), ("g_rec", "Lrec"),
                     ("d_adv", "Ld"))


def _git_commit(path) -> str | None:
    """The checked-out commit of an official code folder (None when it is not a git checkout)."""
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict:
    import torch

    cpu = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_cores": os.cpu_count(), "cpu": cpu, "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "gpu": gpu,
            "cuda": torch.version.cuda if gpu else None, "load_avg": os.getloadavg()[0]}


def _status_mb(key: str) -> float | None:
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def write_digits(root: Path, per_class: int, size: int = 128) -> dict:
    """Digits as class folders ``root/all10/<digit>/*.png`` (size x size RGB) plus symlinked layouts."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    classes = root / "all10"
    paths = []
    for c in range(10):
        folder = classes / str(c)
        folder.mkdir(parents=True)
        ids = np.nonzero(d.target == c)[0][:per_class]
        for i in ids:
            img = (d.images[i] * (255 / 16)).astype(np.uint8)
            p = folder / f"{int(i):05d}.png"
            Image.fromarray(img).resize((size, size), Image.BICUBIC).convert("RGB").save(p)
            paths.append(p)
    two = root / "two"  # UNIT: exactly two domain folders
    for c in (0, 1):
        (two / str(c)).mkdir(parents=True)
        for p in sorted((classes / str(c)).iterdir()):
            (two / str(c) / p.name).symlink_to(p)
    # official TUNIT: its afhq layout (afhq/{train,test}/<class>); one folder holding every image
    off = root / "official"
    for split, subset in (("train", paths), ("test", paths[:20])):
        folder = off / "afhq" / split / "all"
        folder.mkdir(parents=True)
        for p in subset:
            (folder / f"{p.parent.name}_{p.name}").symlink_to(p)
    return {"classes": str(classes), "two": str(two), "official": str(off), "images": len(paths), "size": size}


# ---------------------------------------------------------------------------------------------- children
def CountFlops():
    """FLOPs of every op with a formula in torch's ``flop_registry``, counted at dispatch. Unlike
    ``FlopCounterMode`` it tracks no modules, so it also counts through ``autograd.grad`` with ``create_graph``
    (the R1 / gradient penalties of TUNIT and FUNIT), double backward included."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class _Count(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.total += formula(*args, **kwargs, out_val=out)
            return out

    return _Count()


def _child_ours(spec: dict) -> dict:
    import torch

    from unit_eval.baselines.common import loop

    dev = torch.device(spec["device"])
    rss_before = _status_mb("VmRSS")
    base = loop.get_recipe(spec["model"])
    cpu_stamps: list[float] = []

    flops: list[int] = []

    def train_step(self, batch, iteration):  # CPU time (all threads) at the end of every step
        if spec.get("count_flops") and not flops:  # FLOPs of the first (untimed) iteration, forward and backward
            with CountFlops() as counter:
                out = base.train_step(self, batch, iteration)
            flops.append(counter.total)
        else:
            out = base.train_step(self, batch, iteration)
        cpu_stamps.append(time.process_time())
        return out

    # finalize runs once, after training (not per iteration): skipped to keep the benchmark short
    recipe = type(base.__name__, (base,), {"finalize": lambda self, batches: None, "train_step": train_step})
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    total = spec["warmup"] + spec["iters"]
    overrides = dict(spec.get("overrides") or {})
    if spec["model"] == "gpunit":
        overrides.update(_gpunit_files(spec, Path(spec["workdir"])))
    if spec["model"] == "tunit" and spec.get("phase"):
        overrides["warmup_iters"] = total if spec["phase"] == "warmup" else 0
    out = Path(spec["workdir"]) / "run"
    t0, c0 = time.perf_counter(), time.process_time()
    summary = loop.train(recipe, spec["data"], out, iters=total, img_size=spec.get("img_size"),
                         batch_size=spec.get("batch_size"), seed=0, device=dev, amp=spec.get("amp"),
                         sample_every=0, ckpt_every=0, log_every=1, progress=False, allow_upscale=True,
                         extra=spec.get("extra"), overrides=overrides or None)
    wall = time.perf_counter() - t0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]
    config = json.loads(json.dumps(torch.load(out / "resume.pt", map_location="cpu", weights_only=True)["config"]))
    times = [float(r["s_per_iter"]) for r in rows]
    losses: dict[str, list] = {}
    for r in rows:
        for k, v in r.items():
            if k not in ("iter", "elapsed_s", "s_per_iter"):
                losses.setdefault(k, []).append(v)
    if "D/real" in losses and spec["model"] == "tunit":  # official-comparable names (CLUIT logs D/r1 on lazy steps only)
        losses["D/adv"] = [a + b for a, b in zip(losses["D/real"], losses["D/fake"])]
        losses["D/gp"] = [float(config.get("w_r1", 10.0)) * v for v in losses["D/r1"]]
    cpu = [b - a for a, b in zip([c0] + cpu_stamps, cpu_stamps)]
    res = {"iter_times_s": times, "iter_cpu_s": cpu, "losses": losses, "wall_s": wall, "rss_before_mb": rss_before,
           "config": {k: config[k] for k in ("img_size", "load_size", "batch_size", "amp") if k in config},
           "step_s_per_iter_all": summary.get("step_s_per_iter"), "flops_first_iter": flops[0] if flops else None}
    if spec["model"] == "tunit":
        res["config"]["warmup_iters"] = config.get("warmup_iters")
    return res


def _gpunit_files(spec: dict, folder: Path) -> dict:
    """A GP-UNIT content encoder and (unless toy) VGG19 of random weights in the official files' layouts."""
    import torch

    from unit_eval.baselines.gpunit import perceptual
    from unit_eval.baselines.gpunit.networks import ContentEncoder
    from unit_eval.baselines.gpunit.recipe import PUBLISHED, TOY
    from unit_eval.cache import sha256_file

    cfg = {**PUBLISHED, **(TOY if (spec.get("extra") or {}).get("toy") else {})}
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    enc = folder / "content_encoder.pt"
    torch.save(ContentEncoder(cfg["nef"], cfg["n_down"], sn=True).state_dict(), enc)
    out = {"content_encoder": str(enc)}
    if cfg["vgg_w"]:
        vgg = folder / perceptual.VGG19_FILE
        net = perceptual.VGG19Features()
        torch.save({f"features.{i}.{p}": getattr(net.features[i], p) for i in perceptual.CONVS for p in ("weight", "bias")}, vgg)
        perceptual.VGG19_SHA256_PREFIX = sha256_file(vgg)[:8]  # this child only: random weights, same compute
        out["vgg19"] = str(vgg)
    return out


def _child_official_gpunit(spec: dict) -> dict:
    """The official GP-UNIT ``train.train`` loop (module docstring), timed per iteration."""
    import re
    import types

    import torch
    import torchvision

    path = str(Path(spec["official"]).resolve())
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, path)
    dev = torch.device(spec["device"])
    rss_before = _status_mb("VmRSS")
    shims = []
    for name in ("faiss", "cv2"):
        if name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                sys.modules[name] = types.ModuleType(name)
                shims.append(f"{name} (not installed; unused while training) stubbed")
    real_vgg19 = torchvision.models.vgg19
    torchvision.models.vgg19 = lambda *a, **k: real_vgg19(weights=None)
    shims.append("torchvision.models.vgg19(pretrained=True) -> random weights (no download; same compute)")
    if dev.type == "cpu":
        torch.Tensor.cuda = lambda self, *a, **k: self.to("cpu")
        torch.nn.Module.cuda = lambda self, *a, **k: self.to("cpu")
        shims.append("Tensor.cuda / Module.cuda -> .to('cpu')")
    torch.manual_seed(0)
    np.random.seed(0)
    import random

    random.seed(0)
    import train as official  # the official train.py (its __main__ block does not run)
    from dataset import create_unpaired_dataloader
    from model.content_encoder import ContentEncoder
    from model.discriminator import Discriminator
    from model.generator import Generator
    from model.vgg import VGGLoss

    official.utils = types.SimpleNamespace(save_image=lambda *a, **k: None)
    shims.append("train.utils.save_image (sample grid; its range= argument is gone from torchvision) skipped")
    stamps, cpu_stamps, losses = [], [], {}
    real_ma = official.moving_average
    total = spec["warmup"] + spec["iters"]

    class _Done(Exception):
        pass

    def moving_average(*a, **k):  # the last call of every official iteration
        real_ma(*a, **k)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())
        if len(stamps) == total:  # stop before its end-of-run sampler fitting and checkpoint
            raise _Done

    official.moving_average = moving_average
    real_tqdm = official.tqdm

    class _Bar:
        def __init__(self, *a, **k):
            self.it = real_tqdm(*a, **{**k, "disable": True})

        def __iter__(self):
            return iter(self.it)

        def set_description(self, message):
            for key, value in re.findall(r"L(\w+): (-?[0-9.]+(?:e-?\d+)?)", message):
                losses.setdefault("L" + key, []).append(float(value))

    official.tqdm = _Bar
    work = Path(spec["workdir"])
    args = official.TrainOptions().parser.parse_args([
        "--task", "bench", "--iter", str(total + 1), "--batch", str(spec["batch_size"]), "--model_path", str(work),
        "--source_paths", *spec["sources"], "--target_paths", *spec["targets"]])
    args.source_num, args.target_num = [int(1e8)] * len(args.source_paths), [int(1e8)] * len(args.target_paths)
    (work / "log" / "bench").mkdir(parents=True, exist_ok=True)
    os.chdir(work)
    net_ec = ContentEncoder().to(dev)
    for p in net_ec.parameters():
        p.requires_grad = False
    official.netEC = net_ec
    net_g, net_d = Generator().to(dev), Discriminator().to(dev)
    net_g.init_weights("kaiming", 0.02)
    net_d.init_weights("kaiming", 0.02)
    import copy

    net_g_ema = copy.deepcopy(net_g)
    for p in net_g_ema.parameters():
        p.requires_grad = False
    opt_d = torch.optim.Adam(net_d.parameters(), lr=args.lr, betas=(0.0, 0.99), weight_decay=1e-4)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=args.lr, betas=(0.0, 0.99), weight_decay=1e-4)
    workers = spec.get("workers", 0)
    loader = create_unpaired_dataloader(args.source_paths, args.target_paths, args.source_num, args.target_num,
                                        args.batch, nworkers=workers)
    vgg = VGGLoss()
    vgg.vgg = vgg.vgg.to(dev)
    vgg.vgg.mean, vgg.vgg.std = vgg.vgg.mean.to(dev), vgg.vgg.std.to(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        official.train(args, loader, None, net_g, net_d, opt_g, opt_d, net_g_ema, vgg, None, device=str(dev))
    except _Done:
        pass
    wall = time.perf_counter() - t0
    if len(stamps) != total:
        raise RuntimeError(f"expected {total} moving_average() calls (one per iteration), saw {len(stamps)}")
    times = [stamps[0] - t0] + [b - a for a, b in zip(stamps, stamps[1:])]
    cpu = [b - a for a, b in zip([c0] + cpu_stamps, cpu_stamps)]
    commit = _git_commit(path)
    return {"iter_times_s": times, "iter_cpu_s": cpu, "losses": losses, "wall_s": wall, "rss_before_mb": rss_before,
            "shims": shims, "official_commit": commit,
            "config": {"img_size": 256, "load_size": 286, "batch_size": args.batch, "workers": workers, "amp": False}}


def _child_official(spec: dict) -> dict:
    import types

    import torch

    path = str(Path(spec["official"]).resolve())
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, path)
    dev = torch.device(spec["device"])
    shims = []
    # its top-level folders have no __init__.py: bind them to the checkout so that an installed
    # package of the same name (e.g. Hugging Face ``datasets``) cannot shadow them
    for pkg in ("models", "tools", "train", "datasets", "validation"):
        if (Path(path) / pkg).is_dir():
            mod = types.ModuleType(pkg)
            mod.__path__ = [str(Path(path) / pkg)]
            sys.modules[pkg] = mod
    rss_before = _status_mb("VmRSS")
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        class _NullWriter:
            def __init__(self, *a, **k):
                pass

            def add_scalar(self, *a, **k):
                pass

        mod = types.ModuleType("tensorboardX")
        mod.SummaryWriter = _NullWriter
        sys.modules["tensorboardX"] = mod
        shims.append("tensorboardX (not installed) replaced by a null SummaryWriter")
    if dev.type == "cpu":
        torch.Tensor.cuda = lambda self, *a, **k: self.to("cpu")
        torch.nn.Module.cuda = lambda self, *a, **k: self.to("cpu")
        torch.cuda.set_device = lambda *a, **k: None
        shims.append("Tensor.cuda / Module.cuda -> .to('cpu'); torch.cuda.set_device and torch.cuda.synchronize -> no-op")
        real_sync = lambda *a, **k: None  # noqa: E731
    else:
        real_sync = torch.cuda.synchronize
    stamps: list[float] = []
    cpu_stamps: list[float] = []

    def sync(*a, **k):  # the official loop calls this once, at the end of every iteration
        real_sync(*a, **k)
        stamps.append(time.perf_counter())
        cpu_stamps.append(time.process_time())

    torch.cuda.synchronize = sync
    torch.manual_seed(0)
    np.random.seed(0)
    import random

    random.seed(0)

    import main as official_main  # the official main.py (argparse parser at import, no parse)
    import train.train_unsupervised as official_train
    from tools.ops import initialize_queue

    class _NoInception(torch.nn.Module):  # FID network: unused in training, would be downloaded
        BLOCK_INDEX_BY_DIM = {64: 0, 192: 1, 768: 2, 2048: 3}

        def __init__(self, *a, **k):
            super().__init__()

    official_main.InceptionV3 = _NoInception
    shims.append("main.InceptionV3 (FID only, downloads weights) replaced by an empty module")

    meters = []
    base_meter = official_train.AverageMeter

    class _RecordingMeter(base_meter):
        def __init__(self):
            super().__init__()
            self.values = []
            meters.append(self)

        def update(self, val, n=1):
            super().update(val, n)
            self.values.append(float(val))

    official_train.AverageMeter = _RecordingMeter

    # calc_iic_loss clamps p_i / p_j in place (p[(p < EPS).data] = EPS) although they are expand()ed
    # views; PyTorch > 1.2 (the code pins torch 1.1/1.2) refuses that in backward ("more than one
    # element of the written-to tensor refers to a single memory location"), on every device. While
    # it runs, expand() returns a contiguous copy: the same values (all elements of an expanded row
    # are equal, so the mask and the clamp are too), the same loss and gradients.
    real_iic = official_train.calc_iic_loss

    def iic_compat(*a, **k):
        real_expand = torch.Tensor.expand
        torch.Tensor.expand = lambda self, *s, **kw: real_expand(self, *s, **kw).contiguous()
        try:
            return real_iic(*a, **k)
        finally:
            torch.Tensor.expand = real_expand

    official_train.calc_iic_loss = iic_compat
    shims.append("calc_iic_loss: expand() returns a contiguous copy while it runs (in-place clamp of expanded "
                 "views fails in backward on PyTorch > 1.2; same values)")

    total = spec["warmup"] + spec["iters"]
    if dev.type == "cuda":
        gpu = dev.index if dev.index is not None else torch.cuda.current_device()
    else:
        gpu = 0
    argv = ["--dataset", "afhq_cat", "--data_path", spec["data"], "--batch_size", str(spec["batch_size"]),
            "--img_size", str(spec["img_size"]), "--iters", str(total), "--workers", str(spec["workers"]),
            "--gpu", str(gpu), "--log_step", str(10 ** 9)]
    args = official_main.parser.parse_args(argv)
    # what main() / main_worker() derive from the arguments (single GPU, unsupervised)
    args.data_dir = args.data_path
    args.start_epoch = 0
    args.train_mode = "GAN_UNSUP"
    joint = spec["phase"] == "joint"
    args.unsup_start = 0
    args.separated = 0 if joint else 1  # epoch 0 >= separated: joint phase
    args.ema_start = 0 if joint else 1  # G EMA as in the joint epochs after the first
    args.fid_start = args.ema_start
    args.multiprocessing_distributed = False
    args.distributed = False
    args.ngpus_per_node = torch.cuda.device_count() if dev.type == "cuda" else 0
    args.gpu = gpu
    args.num_cls = args.output_k
    args.att_to_use = [0]
    args.epoch_acc, args.epoch_avg_subhead_acc, args.epoch_stats = [], [], []
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    networks, opts = official_main.build_model(args)
    torch.backends.cudnn.benchmark = True  # as main_worker
    train_dataset, val_dataset = official_main.get_dataset(args.dataset, args)
    train_loader, _, _ = official_main.get_loader(args, {"train": train_dataset, "val": val_dataset})
    queue_device = "cpu" if dev.type == "cpu" else args.gpu  # it does queue.to(device): 0 would mean cuda:0
    if dev.type == "cpu":
        shims.append("initialize_queue(..., device=\"cpu\") instead of args.gpu")
    queue = initialize_queue(networks["C_EMA"], queue_device, train_loader, feat_size=args.sty_dim)
    epoch = 0
    if epoch == args.ema_start:  # as main() at the first EMA epoch
        networks["G_EMA"].load_state_dict(networks["G"].state_dict())

    class _NullLogger:
        def add_scalar(self, *a, **k):
            pass

    t0, c0 = time.perf_counter(), time.process_time()
    official_train.trainGAN_UNSUP(train_loader, networks, opts, epoch, args, {"logger": _NullLogger(), "queue": queue})
    wall = time.perf_counter() - t0
    if len(stamps) != total:
        raise RuntimeError(f"expected {total} torch.cuda.synchronize() calls (one per iteration), saw {len(stamps)}")
    times = [stamps[0] - t0] + [b - a for a, b in zip(stamps, stamps[1:])]
    cpu = [b - a for a, b in zip([c0] + cpu_stamps, cpu_stamps)]
    if len(meters) != len(OFFICIAL_METER_NAMES):
        raise RuntimeError(f"expected {len(OFFICIAL_METER_NAMES)} AverageMeters in trainGAN_UNSUP, saw {len(meters)}")
    losses = {name: m.values for name, m in zip(OFFICIAL_METER_NAMES, meters) if m.values}
    commit = _git_commit(path)
    return {"iter_times_s": times, "iter_cpu_s": cpu, "losses": losses, "wall_s": wall, "rss_before_mb": rss_before,
            "shims": shims,
            "official_commit": commit, "config": {"img_size": args.img_size, "batch_size": args.batch_size,
                                                  "workers": args.workers, "amp": False, "cudnn_benchmark": True}}


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))

    res = {"ok": False}
    try:
        if spec["impl"] != "official":
            res = _child_ours(spec)
        else:
            res = _child_official_gpunit(spec) if spec["model"] == "gpunit" else _child_official(spec)
        res["ok"] = True
    except BaseException as exc:  # reported by the parent, with the log tail
        import traceback

        traceback.print_exc()
        res = {"ok": False, "error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:500]}
    dev = torch.device(spec["device"])
    if dev.type == "cuda" and torch.cuda.is_available():
        res["peak_gpu_allocated_mb"] = torch.cuda.max_memory_allocated(dev) / 2 ** 20
        res["peak_gpu_reserved_mb"] = torch.cuda.max_memory_reserved(dev) / 2 ** 20
    res["peak_rss_mb"] = _status_mb("VmHWM")
    res["threads"] = torch.get_num_threads()
    Path(spec["result"]).write_text(json.dumps(res))


# ---------------------------------------------------------------------------------------------- parent
def run_config(spec: dict, workdir: Path, timeout: float) -> dict:
    workdir.mkdir(parents=True, exist_ok=True)
    spec = dict(spec, workdir=str(workdir), result=str(workdir / "result.json"))
    (workdir / "spec.json").write_text(json.dumps(spec))
    log = workdir / "child.log"
    start = time.perf_counter()
    with open(log, "w") as fh:
        try:
            proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(workdir / "spec.json")],
                                  stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
    elapsed = time.perf_counter() - start
    out = {k: spec[k] for k in ("name", "impl", "model", "phase", "device", "warmup", "iters") if k in spec}
    out["child_wall_s"] = elapsed
    result_file = Path(spec["result"])
    if rc is None:
        out.update(ok=False, error=f"timed out after {timeout:.0f} s")
    elif not result_file.exists():
        out.update(ok=False, error=f"child exited with status {rc} without a result")
    else:
        out.update(json.loads(result_file.read_text()))
    if not out.get("ok"):
        tail = log.read_text(errors="replace").strip().splitlines()[-12:]
        out["log_tail"] = tail
        return out
    measured = out["iter_times_s"][spec["warmup"]:]
    out["measured_iters"] = len(measured)
    out["mean_s_per_iter"] = sum(measured) / len(measured)
    out["median_s_per_iter"] = statistics.median(measured)
    out["min_s_per_iter"] = min(measured)
    out["it_per_s"] = 1.0 / out["mean_s_per_iter"]
    cpu = out.get("iter_cpu_s", [])[spec["warmup"]:]
    out["mean_cpu_s_per_iter"] = sum(cpu) / len(cpu) if cpu else None
    out["loss_means"] = {k: (sum(v) / len(v) if v and all(x is not None for x in v) else None)
                         for k, v in out["losses"].items()}
    return out


def compare_losses(ours: dict, official: dict, pairs=LOSS_PAIRS) -> list[dict]:
    """Per loss: signed means, and the ratio of mean absolute values (early GAN losses swing in sign)."""
    rows = []
    for a, b in pairs:
        va, vb = ours["losses"].get(a), official["losses"].get(b)
        if not va or not vb or any(x is None for x in va + vb):
            continue
        aa, ab = sum(abs(x) for x in va) / len(va), sum(abs(x) for x in vb) / len(vb)
        ratio = aa / ab if ab else math.inf
        rows.append({"ours": a, "official": b, "ours_mean": sum(va) / len(va), "official_mean": sum(vb) / len(vb),
                     "ours_mean_abs": aa, "official_mean_abs": ab, "ratio_mean_abs": ratio,
                     "ours_first": va[0], "official_first": vb[0], "n_ours": len(va), "n_official": len(vb),
                     "same_magnitude": bool(0.1 <= ratio <= 10.0)})
    return rows


def _mem(r: dict) -> str:
    if r.get("peak_gpu_allocated_mb") is not None:
        return f"{r['peak_gpu_allocated_mb']:.0f} MiB GPU"
    if r.get("peak_rss_mb") is not None:
        return f"{r['peak_rss_mb']:.0f} MiB RSS"
    return "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when available)")
    parser.add_argument("--models", default="tunit,funit,unit,cluit,gpunit", help="comma list of tunit, funit, unit, cluit, gpunit")
    parser.add_argument("--sizes", default="paper,toy", help="comma list: paper (published sizes), toy (test configs)")
    parser.add_argument("--iters", type=int, default=None,
                        help="measured iterations per paper-size configuration (default 50 on CUDA, 2 on CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="iterations run first and not timed (default 3 on CUDA, 1 on CPU)")
    parser.add_argument("--toy-iters", type=int, default=20, help="measured iterations per toy configuration")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads for the full-size runs, ours and official (0 = torch's default); 1 is "
                             "steadier on a shared CPU, where other processes stall multi-threaded kernels")
    parser.add_argument("--toy-threads", type=int, default=1, help="torch threads for toy runs (the tests use 1; 0 = default)")
    parser.add_argument("--funit-batch", type=int, default=None, help="FUNIT batch (default 64 on CUDA, 2 on CPU)")
    parser.add_argument("--tunit-batch", type=int, default=None,
                        help="TUNIT batch, ours and official (default: the paper's 32 on CUDA, 2 on CPU)")
    parser.add_argument("--unit-size", type=int, default=None, help="UNIT resolution (default 256 on CUDA, 128 on CPU)")
    parser.add_argument("--unit-batch", type=int, default=1)
    parser.add_argument("--cluit-batch", type=int, default=None, help="CLUIT batch (default: the paper's 32 on CUDA, 2 on CPU)")
    parser.add_argument("--gpunit-batch", type=int, default=None, help="GP-UNIT batch (default: the official 16 on CUDA, 2 on CPU)")
    parser.add_argument("--official-gpunit", metavar="PATH", help="checkout of github.com/williamyang1991/GP-UNIT to run beside ours")
    parser.add_argument("--per-class", type=int, default=60, help="digit images per class written at 128 px")
    parser.add_argument("--official-tunit", metavar="PATH", help="checkout of github.com/clovaai/tunit to run beside ours")
    parser.add_argument("--official-workers", type=int, default=None,
                        help="DataLoader workers of the official run (default: its 4 on CUDA, 0 on CPU as ours)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per configuration")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return

    import torch

    from unit_eval.device import resolve_device

    dev = resolve_device(args.device)
    cuda = dev.type == "cuda"
    device = str(dev)
    iters = args.iters if args.iters is not None else (50 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    if warmup < 1:
        parser.error("--warmup must be at least 1 (the first iteration builds queues, autotunes kernels)")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    funit_batch = args.funit_batch or (64 if cuda else 2)
    tunit_batch = args.tunit_batch or (32 if cuda else 2)
    args.unit_size = args.unit_size or (256 if cuda else 128)
    official_workers = args.official_workers if args.official_workers is not None else (4 if cuda else 0)
    if args.official_gpunit and not (Path(args.official_gpunit) / "model" / "generator.py").exists():
        parser.error(f"--official-gpunit {args.official_gpunit}: not a williamyang1991/GP-UNIT checkout (no model/generator.py)")
    if args.official_tunit and not (Path(args.official_tunit) / "train" / "train_unsupervised.py").exists():
        parser.error(f"--official-tunit {args.official_tunit}: not a clovaai/tunit checkout (no train/train_unsupervised.py)")

    report = {"machine": machine(), "device": device, "iters": iters, "warmup": warmup, "toy_iters": args.toy_iters,
              "configs": [], "comparisons": []}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        tmp = Path(tmp)
        data = write_digits(tmp / "data", args.per_class)
        report["data"] = {"images": data["images"], "size": data["size"], "source": "sklearn digits, 10 class folders"}
        specs = []
        common = {"device": device, "warmup": warmup, "iters": iters, "threads": args.threads or None}
        if "paper" in sizes:
            if "tunit" in models:
                variants = [("amp", None)] + ([("fp32", False)] if cuda else [])
                for phase in ("warmup", "joint"):
                    for tag, amp in variants:
                        specs.append({**common, "name": f"tunit 128px b{tunit_batch} {phase}" + (" fp32" if tag == "fp32" else ""),
                                      "impl": "ours", "model": "tunit", "phase": phase, "data": data["classes"],
                                      "img_size": 128, "batch_size": tunit_batch, "amp": amp})
                    if args.official_tunit:
                        specs.append({**common, "name": f"tunit 128px b{tunit_batch} {phase}", "impl": "official", "model": "tunit",
                                      "phase": phase, "data": data["official"], "official": args.official_tunit,
                                      "img_size": 128, "batch_size": tunit_batch, "workers": official_workers})
            if "funit" in models:
                specs.append({**common, "name": f"funit 128px b{funit_batch}", "impl": "ours", "model": "funit",
                              "data": data["classes"], "img_size": 128, "batch_size": funit_batch})
            if "unit" in models:
                specs.append({**common, "name": f"unit {args.unit_size}px b{args.unit_batch}", "impl": "ours", "model": "unit",
                              "data": data["two"], "img_size": args.unit_size, "batch_size": args.unit_batch})
            if "cluit" in models:
                cluit_batch = args.cluit_batch or (32 if cuda else 2)
                specs.append({**common, "name": f"cluit 128px b{cluit_batch}", "impl": "ours", "model": "cluit",
                              "data": data["classes"], "img_size": 128, "batch_size": cluit_batch})
            if "gpunit" in models:
                gpunit_batch = args.gpunit_batch or (16 if cuda else 2)
                name = f"gpunit 256px b{gpunit_batch}"
                specs.append({**common, "name": name, "impl": "ours", "model": "gpunit", "data": data["classes"],
                              "batch_size": gpunit_batch})
                if args.official_gpunit:
                    folders = sorted(str(p) for p in Path(data["classes"]).iterdir() if p.is_dir())
                    specs.append({**common, "name": name, "impl": "official", "model": "gpunit", "official": args.official_gpunit,
                                  "sources": folders[:5], "targets": folders[5:], "batch_size": gpunit_batch,
                                  "workers": official_workers})
        if "toy" in sizes:
            toy = {**common, "iters": args.toy_iters, "warmup": max(warmup, 2), "extra": {"toy": True},
                   "threads": args.toy_threads or None, "impl": "ours"}
            if "tunit" in models:
                for phase in ("warmup", "joint"):
                    specs.append({**toy, "name": f"tunit toy {phase}", "model": "tunit", "phase": phase, "data": data["classes"]})
            if "funit" in models:
                specs.append({**toy, "name": "funit toy", "model": "funit", "data": data["classes"]})
            if "unit" in models:
                specs.append({**toy, "name": "unit toy", "model": "unit", "data": data["two"]})
            if "cluit" in models:
                specs.append({**toy, "name": "cluit toy", "model": "cluit", "data": data["classes"]})
            if "gpunit" in models:
                specs.append({**toy, "name": "gpunit toy", "model": "gpunit", "data": data["classes"]})

        for i, spec in enumerate(specs):
            print(f"[{i + 1}/{len(specs)}] {spec['impl']}: {spec['name']} on {device} ...", file=sys.stderr, flush=True)
            r = run_config(spec, tmp / f"c{i:02d}", args.timeout)
            report["configs"].append(r)
            if r.get("ok"):
                print(f"    {r['it_per_s']:.3f} it/s ({r['mean_s_per_iter']:.3f} s/it over {r['measured_iters']}), "
                      f"peak {_mem(r)}", file=sys.stderr, flush=True)
            else:
                print(f"    FAILED: {r.get('error')}", file=sys.stderr, flush=True)

    # ---------------------------------------------------------------- ours vs official, same run
    by = {(r["impl"], r["name"]): r for r in report["configs"]}
    for r in report["configs"]:
        if r["impl"] != "official":
            continue
        mine = [by.get(("ours", r["name"]))] + ([by.get(("ours", r["name"] + " fp32"))] if cuda else [])
        for o in mine:
            if o is None:
                continue
            cmp = {"config": o["name"], "official": r["name"]}
            if o.get("ok") and r.get("ok"):
                cmp.update(speedup=o["it_per_s"] / r["it_per_s"], ours_it_per_s=o["it_per_s"], official_it_per_s=r["it_per_s"],
                           speedup_best_iter=r["min_s_per_iter"] / o["min_s_per_iter"],
                           losses=compare_losses(o, r, GPUNIT_LOSS_PAIRS if r["model"] == "gpunit" else LOSS_PAIRS))
                if o.get("mean_cpu_s_per_iter") and r.get("mean_cpu_s_per_iter"):
                    cmp["cpu_time_ratio"] = r["mean_cpu_s_per_iter"] / o["mean_cpu_s_per_iter"]
                if o.get("peak_gpu_allocated_mb") and r.get("peak_gpu_allocated_mb"):
                    cmp["peak_gpu_memory_ratio"] = r["peak_gpu_allocated_mb"] / o["peak_gpu_allocated_mb"]
                elif o.get("peak_rss_mb") and r.get("peak_rss_mb"):
                    cmp["peak_rss_ratio"] = r["peak_rss_mb"] / o["peak_rss_mb"]
            else:
                cmp["missing"] = r.get("error") if not r.get("ok") else o.get("error")
            report["comparisons"].append(cmp)
    report["total_wall_s"] = time.perf_counter() - t_start

    # ---------------------------------------------------------------- summary
    m = report["machine"]
    hw = m["gpu"] if cuda else f"{m['cpu_cores']}-core CPU ({m['cpu'] or 'unknown'}), no GPU used"
    print(f"\n## Training speed on {device}: {hw}; torch {m['torch']}; load average {m['load_avg']:.1f} at start\n",
          file=sys.stderr)
    print("| configuration | impl | it/s | wall s/it (mean, min) | CPU s/it | timed iters | threads | peak memory |",
          file=sys.stderr)
    print("|---|---|---|---|---|---|---|---|", file=sys.stderr)
    for r in report["configs"]:
        if r.get("ok"):
            cpu_s = f"{r['mean_cpu_s_per_iter']:.3g}" if r.get("mean_cpu_s_per_iter") is not None else "-"
            print(f"| {r['name']} | {r['impl']} | {r['it_per_s']:.3g} | {r['mean_s_per_iter']:.3g}, {r['min_s_per_iter']:.3g} | "
                  f"{cpu_s} | {r['measured_iters']} | {r.get('threads')} | {_mem(r)} |", file=sys.stderr)
        else:
            print(f"| {r['name']} | {r['impl']} | failed: {r.get('error')} | | | | | |", file=sys.stderr)
    for c in report["comparisons"]:
        if "speedup" not in c:
            print(f"\nours vs official, {c['config']}: not measured ({c['missing']})", file=sys.stderr)
            continue
        mem = (f", official/ours peak GPU memory {c['peak_gpu_memory_ratio']:.2f}x" if "peak_gpu_memory_ratio" in c else
               f", official/ours peak RSS {c['peak_rss_ratio']:.2f}x" if "peak_rss_ratio" in c else "")
        cpu_r = f", CPU time official/ours {c['cpu_time_ratio']:.2f}x" if "cpu_time_ratio" in c else ""
        print(f"\nours vs official, {c['config']}: {c['ours_it_per_s']:.3g} vs {c['official_it_per_s']:.3g} it/s "
              f"= {c['speedup']:.2f}x (fastest iteration {c['speedup_best_iter']:.2f}x{cpu_r}){mem}", file=sys.stderr)
        for l in c["losses"]:
            print(f"  {l['ours']:>8} mean {l['ours_mean']:+.4g} (|.| {l['ours_mean_abs']:.4g}) vs {l['official']:<10} mean "
                  f"{l['official_mean']:+.4g} (|.| {l['official_mean_abs']:.4g}): |.| ratio {l['ratio_mean_abs']:.2f}"
                  f"{'' if l['same_magnitude'] else ', NOT same magnitude'}", file=sys.stderr)
    print(f"\ntotal {report['total_wall_s']:.0f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
