"""Protocols end to end (generation + features + metric), unit-eval against the routes researchers use today,
with the same model, the same samples and the same device, in one run:

- ``mfid``: tunit-mfid vs generating PNGs with the model (same source/reference pairs), then torch-fidelity's
  ``calculate_metrics`` per class.
- ``dc``: tunit-dc vs generating PNGs (same pairs), torch-fidelity's feature extractor on the PNG folders and on
  the real images, then ``prdc.compute_prdc``.
- ``legacy`` (with ``--official-tunit PATH``): tunit-mfid-legacy vs the authors' own evaluation loop,
  ``validation.validation.calcFIDBatch`` of github.com/clovaai/tunit, run unmodified on our network (wrapped in
  its ``cnt_encoder``/``decode``/``C(x, sty=True)`` interface), its own Inception module (``models/inception.py``)
  holding the same converted weights, and datasets laid out as its ``att_to_use`` class subsets. Its randomness
  (``torch.randperm`` reference draws, ``RandomHorizontalFlip`` of the real images) is replaced by unit-eval's
  seeded draws of the same shapes, so both routes see identical images and must give the same mFID.

    python benchmarks/bench_protocol.py [--device auto] [--routes mfid,dc] [--official-tunit /tmp/tunit-official] [--json]

Data: scikit-learn digits (10 classes, embedded). Models: for the mFID routes a TUNIT checkpoint trained for a
few toy iterations here (a protocol's speed does not depend on how good the model is); for ``dc`` a translator
that returns its reference image, because a toy TUNIT's outputs lie outside the real manifold and give
D&C = 0 on both routes, which would prove nothing about their agreement. Each unit-eval route is timed cold (empty
feature cache) and warm (real-set features cached, as when a leaderboard evaluates the next checkpoint).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import inception_state_with_head, machine, sync, write_torch_fidelity_weights  # noqa: E402


def _quiet():
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    return stack


class Setup:
    """Digits data, a toy TUNIT checkpoint, protocol files and a private feature cache, in ``tmp``."""

    def __init__(self, tmp: Path, args, device: torch.device):
        from unit_eval.baselines.common.loop import train
        from unit_eval.commands.demo import digits_subset, write_demo_protocols
        from unit_eval.embedded import materialize
        from unit_eval.weights import inception_weights_path

        self.tmp, self.args, self.device = tmp, args, device
        self.data = digits_subset(materialize("digits", progress=False), tmp / "digits", args.train_per_class, args.test_per_class)
        if args.classes is not None:  # the first N digit classes only (e.g. 2: calcFIDBatch's K = 2 branch)
            import shutil

            for split in ("train", "test"):
                for extra in sorted((self.data / split).iterdir())[args.classes:]:
                    shutil.rmtree(extra)
        train("tunit", self.data / "train", tmp / "run", iters=10, img_size=32, k=10, device=device, progress=False,
              extra={"toy": True}, sample_every=0)
        self.ckpt = tmp / "run" / "run.pt"
        sizes = {"tunit-mfid": {"sources_per_class": args.sources, "references_per_source": args.references},
                 "tunit-dc": {"max_fake": args.dc_fakes}}
        self.protocols = write_demo_protocols(tmp / "protocols", sizes)
        # A private, empty feature cache; the converted weights are shared with the default cache.
        weights_dir = inception_weights_path().parent
        os.environ["UNIT_EVAL_CACHE"] = str(tmp / "cache")
        (tmp / "cache").mkdir()
        (tmp / "cache" / "weights").symlink_to(weights_dir, target_is_directory=True)
        self.fidelity_weights = write_torch_fidelity_weights(tmp / "inception.pth")

    def ours(self, protocol: str, no_cache: bool, model_spec: str | None = None) -> tuple[float, dict]:
        from unit_eval.evaluation import evaluate

        sync(self.device)
        start = time.perf_counter()
        model = {"model_spec": model_spec} if model_spec else {"ckpt": str(self.ckpt)}
        results, _ = evaluate([str(protocol)], **model, data=str(self.data), seeds=[0], device=str(self.device),
                              batch_size=self.args.batch_size, no_cache=no_cache, progress=False)
        sync(self.device)
        return time.perf_counter() - start, results[0].summary()

    def ours_cold_and_warm(self, protocol, model_spec: str | None = None) -> dict:
        self.ours(protocol, True, model_spec)  # warm-up: networks built, weights verified
        t_cold, cold = self.ours(protocol, True, model_spec)
        self.ours(protocol, False, model_spec)  # fills the real-set cache
        t_warm, warm = self.ours(protocol, False, model_spec)
        return {"cold_s": t_cold, "warm_s": t_warm, "cold": cold, "warm_equals_cold": warm == cold}

    def write_fakes(self, jobs, out_dir: Path, images, model=None) -> None:
        """The model's outputs for ``jobs`` as PNGs (what a researcher's script does before torch-fidelity)."""
        from unit_eval.images import float_to_uint8, save_image, uint8_to_float

        model = model or self.model
        bs = self.args.batch_size
        for i in range(0, len(jobs), bs):
            chunk = jobs[i: i + bs]
            with torch.no_grad():
                out = model.translate(uint8_to_float(images.uint8([j.source for j in chunk])).to(self.device),
                                           uint8_to_float(images.uint8([j.reference for j in chunk])).to(self.device))
            for j, img in zip(chunk, float_to_uint8(out).cpu()):
                save_image(img, out_dir / f"{Path(j.name).name}.png")

    @property
    def model(self):
        from unit_eval.translator import load_checkpoint_translator

        if not hasattr(self, "_model"):
            self._model = load_checkpoint_translator(self.ckpt, self.device)
        return self._model

    def dataset(self):
        from unit_eval.datasets import resolve_dataset

        return resolve_dataset(str(self.data))


def route_mfid(s: Setup) -> dict:
    import torch_fidelity

    from unit_eval.images import save_image
    from unit_eval.evaluation import sample_class_fid
    from unit_eval.evaluation.batches import ImageCache as _Images
    from unit_eval.protocol_specs import load_protocol

    toml = s.protocols["demo-tunit-mfid"]
    ours = s.ours_cold_and_warm(toml)
    spec = load_protocol(toml)
    sync(s.device)
    start = time.perf_counter()
    dataset = s.dataset()
    test, train_split = dataset.split("test"), dataset.split("train")
    plan = sample_class_fid(test, spec.sources_per_class, spec.references_per_source, 0, purpose="class-fid", label=spec.name)
    images = _Images(s.model.image_size, spec.resize_filter)
    per_class = {}
    for cls, jobs in plan.items():
        s.write_fakes(jobs, s.tmp / "mfid-fake" / cls, images)
        for p in train_split[cls]:  # the real set at the model's resolution, as the protocol defines it
            save_image(images.array(p), s.tmp / "mfid-real" / cls / f"{p.stem}.png")
        with _quiet():
            per_class[cls] = torch_fidelity.calculate_metrics(
                input1=str(s.tmp / "mfid-fake" / cls), input2=str(s.tmp / "mfid-real" / cls), fid=True,
                cuda=s.device.type == "cuda", batch_size=s.args.batch_size, feature_extractor_weights_path=str(s.fidelity_weights),
                verbose=False, cache=False)["frechet_inception_distance"]
    sync(s.device)
    t_theirs = time.perf_counter() - start
    v_theirs = float(np.mean(list(per_class.values())))
    v_ours = ours["cold"]["mfid"]
    return {"classes": len(plan), "fakes_per_class": len(next(iter(plan.values()))), "real_per_class": s.args.train_per_class,
            "unit_eval_cold_s": ours["cold_s"], "unit_eval_warm_s": ours["warm_s"], "png_torch_fidelity_s": t_theirs,
            "speedup_cold": t_theirs / ours["cold_s"], "speedup_warm": t_theirs / ours["warm_s"],
            "mfid_unit_eval": v_ours, "mfid_torch_fidelity": v_theirs, "mfid_rel_diff": abs(v_ours - v_theirs) / v_theirs,
            "warm_equals_cold": ours["warm_equals_cold"]}


def route_dc(s: Setup) -> dict:
    import prdc
    from torch_fidelity.utils import create_feature_extractor, extract_featuresdict_from_input_id

    from unit_eval.images import save_image
    from unit_eval.evaluation import sample_pairs_uniform
    from unit_eval.evaluation.batches import ImageCache as _Images
    from unit_eval.protocol_specs import load_protocol

    toml = s.protocols["demo-tunit-dc"]
    ours = s.ours_cold_and_warm(toml, model_spec="bench_protocol:copy_reference")
    model = copy_reference()
    spec = load_protocol(toml)
    cuda = s.device.type == "cuda"
    sync(s.device)
    start = time.perf_counter()
    dataset = s.dataset()
    train_split = dataset.split(spec.real_split)
    n = min(sum(len(p) for p in train_split.values()), spec.max_fake)
    jobs = sample_pairs_uniform(dataset.split(spec.source_split), n, 0, purpose="dc")
    images = _Images(model.image_size, spec.resize_filter)
    s.write_fakes(jobs, s.tmp / "dc-fake", images, model)
    for c, paths in train_split.items():
        for p in paths:
            save_image(images.array(p), s.tmp / "dc-real" / f"{c}_{p.stem}.png")
    with _quiet():
        extractor = create_feature_extractor("inception-v3-compat", ["2048"], cuda=cuda,
                                             feature_extractor_weights_path=str(s.fidelity_weights))
        feats = {}
        for name in ("dc-real", "dc-fake"):
            feats[name] = extract_featuresdict_from_input_id(  # input id 1 = the input1 keyword
                1, extractor, input1=str(s.tmp / name), cuda=cuda, batch_size=s.args.batch_size, verbose=False)["2048"].numpy()
        theirs = {k: float(v) for k, v in prdc.compute_prdc(feats["dc-real"], feats["dc-fake"], spec.k).items()}
    sync(s.device)
    t_theirs = time.perf_counter() - start
    diff = max(abs(ours["cold"][k] - theirs[k]) for k in ("density", "coverage", "precision", "recall"))
    return {"n_real": len(feats["dc-real"]), "n_fake": len(feats["dc-fake"]), "unit_eval_cold_s": ours["cold_s"],
            "unit_eval_warm_s": ours["warm_s"], "png_torch_fidelity_prdc_s": t_theirs,
            "speedup_cold": t_theirs / ours["cold_s"], "speedup_warm": t_theirs / ours["warm_s"],
            "unit_eval": {k: ours["cold"][k] for k in ("density", "coverage", "precision", "recall")}, "theirs": theirs,
            "max_abs_diff": diff, "warm_equals_cold": ours["warm_equals_cold"]}


class CopyReference:
    """A Translator whose output is its reference image: fakes on the real manifold, so D&C is not 0."""

    image_size = 32
    num_domains = None

    def translate(self, source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return reference.clone()


def copy_reference(device=None) -> CopyReference:
    return CopyReference()


class _OfficialSet(torch.utils.data.Dataset):
    """A class-ordered image list in the shape the official loaders expect: ((image,), label), ``targets``;
    images through torchvision's Resize((size, size)) -> ToTensor -> Normalize(0.5, 0.5), as its datasetgetter."""

    def __init__(self, split: dict[str, list[Path]], size: int, flips: dict[Path, bool] | None = None):
        from torchvision import transforms

        self.items = [(p, ci) for ci, c in enumerate(split) for p in split[c]]
        self.targets = [ci for _, ci in self.items]
        self.flips = flips or {}
        self.transform = transforms.Compose([transforms.Resize((size, size)), transforms.ToTensor(),
                                             transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image, ImageOps

        path, label = self.items[i]
        with Image.open(path) as im:
            im = im.convert("RGB")
            if self.flips.get(path, False):  # its RandomHorizontalFlip, with unit-eval's seeded coin
                im = ImageOps.mirror(im)
            return (self.transform(im),), label


class _OfficialG(torch.nn.Module):
    def __init__(self, generator):
        super().__init__()
        self.g = generator

    def cnt_encoder(self, x):
        return self.g.encode(x)

    def decode(self, content, style):
        return self.g.decode(content, style)


class _OfficialC(torch.nn.Module):
    def __init__(self, guide):
        super().__init__()
        self.guide = guide

    def forward(self, x, sty=False):
        assert sty, "calcFIDBatch only asks for style codes"
        return self.guide.style(x)


def route_legacy(s: Setup, official: Path) -> dict:
    from argparse import Namespace

    from unit_eval.evaluation import legacy_real_flips, legacy_real_paths, rng_for, sample_legacy

    toml = Path(__file__).resolve().parents[1] / "protocols" / "tunit-mfid-legacy.toml"
    ours = s.ours_cold_and_warm(toml)

    sys.path.insert(0, str(official.resolve()))
    with _quiet():
        import models.inception as official_inception
        from validation.validation import calcFIDBatch
    state = inception_state_with_head()
    official_inception.load_state_dict_from_url = lambda *a, **k: state  # instead of its download
    with _quiet():
        inception = official_inception.InceptionV3([official_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).to(s.device).eval()

    dataset = s.dataset()
    train, val = dataset.split("train"), dataset.split("test")
    classes = list(train)
    counts = [len(p) for p in train.values()]
    plan = sample_legacy(val, dict(zip(classes, counts)), 50, 0, "other")
    real_paths = legacy_real_paths(train, plan)
    flips = legacy_real_flips(real_paths, classes, 0)
    flip_of = {p: bool(f) for c in classes for p, f in zip(real_paths[c], flips[c])}
    size = s.model.image_size
    model = s.model
    args = Namespace(min_data=min(counts), max_data=max(counts), att_to_use=list(range(len(classes))), dims=2048,
                     dataset="digits", workers=0, distributed=False, gpu=s.device.index or 0)
    networks = {"G_EMA": _OfficialG(model.generator).eval(), "C_EMA": _OfficialC(model.guide).eval(), "inceptionNet": inception}
    # unit-eval's seeded reference permutations, in calcFIDBatch's call order (class, then draw)
    perms = []
    for ti, c in enumerate(classes):
        rng = rng_for(0, "legacy", "references", ti)
        perms += [torch.from_numpy(rng.permutation(len(val[c]))) for _ in range(plan.multiples)]
    calls = []
    real_randperm = torch.randperm

    def seeded_randperm(n, *a, **k):
        perm = perms[len(calls)]
        calls.append(n)
        assert len(perm) == n, (len(perm), n)
        return perm.clone()

    sync(s.device)
    start = time.perf_counter()
    train_set = _OfficialSet(train, size, flip_of)
    val_set = _OfficialSet(val, size)
    torch.randperm = seeded_randperm
    try:
        with _quiet():
            per_class = calcFIDBatch(args, {"VAL": {"VALSET": val_set}}, networks, model="EMA", train_dataset={"FULL": train_set})
    finally:
        torch.randperm = real_randperm
    sync(s.device)
    t_official = time.perf_counter() - start
    assert len(calls) == len(perms), "calcFIDBatch drew a different number of reference permutations"
    v_official = float(np.mean(per_class))
    ours_per_class = [ours["cold"]["per_class"][c] for c in classes]
    v_ours = ours["cold"]["mfid"]
    return {"classes": len(classes), "fakes_per_class": len(plan.jobs[classes[0]]), "real_per_class": plan.target_count,
            "multiples": plan.multiples, "num_each": plan.num_each,
            "unit_eval_cold_s": ours["cold_s"], "unit_eval_warm_s": ours["warm_s"], "official_s": t_official,
            "speedup_cold": t_official / ours["cold_s"], "speedup_warm": t_official / ours["warm_s"],
            "mfid_unit_eval": v_ours, "mfid_official": v_official, "mfid_rel_diff": abs(v_ours - v_official) / v_official,
            "max_class_rel_diff": max(abs(a - b) / b for a, b in zip(ours_per_class, per_class)),
            "warm_equals_cold": ours["warm_equals_cold"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--routes", default=None, help="comma-separated mfid,dc,legacy (default: mfid,dc, plus legacy with --official-tunit)")
    parser.add_argument("--official-tunit", metavar="PATH", help="checkout of github.com/clovaai/tunit (the legacy route)")
    parser.add_argument("--sources", type=int, default=2, help="tunit-mfid sources per other class (paper: 18)")
    parser.add_argument("--references", type=int, default=2, help="tunit-mfid references per source (paper: 5)")
    parser.add_argument("--dc-fakes", type=int, default=10000, help="tunit-dc max_fake (the protocol's 10000; n_fake = min(train images, this))")
    parser.add_argument("--train-per-class", type=int, default=50, help="real images per class (>= 45 for the legacy route's K=10)")
    parser.add_argument("--test-per-class", type=int, default=20)
    parser.add_argument("--classes", type=int, default=None,
                        help="use only the first N digit classes (2 runs calcFIDBatch's K = 2 branch; default all 10)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    routes = (args.routes or ("mfid,dc,legacy" if args.official_tunit else "mfid,dc")).split(",")
    if "legacy" in routes and not args.official_tunit:
        parser.error("the legacy route needs --official-tunit PATH (git clone https://github.com/clovaai/tunit)")

    from unit_eval.device import resolve_device

    device = resolve_device(args.device)
    report = {"machine": machine(), "device": str(device)}
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(Path(tmp), args, device)
        if "mfid" in routes:
            r = report["mfid"] = route_mfid(setup)
            print(f"tunit-mfid, {r['classes']} classes x {r['fakes_per_class']} fakes, {r['real_per_class']} reals/class on {device}: "
                  f"PNG + torch-fidelity {r['png_torch_fidelity_s']:.1f} s, unit-eval {r['unit_eval_cold_s']:.1f} s cold "
                  f"({r['speedup_cold']:.2f}x), {r['unit_eval_warm_s']:.1f} s warm ({r['speedup_warm']:.2f}x); "
                  f"mFID rel. diff {r['mfid_rel_diff']:.1e}", file=sys.stderr)
        if "dc" in routes:
            r = report["dc"] = route_dc(setup)
            print(f"tunit-dc, {r['n_fake']} fakes vs {r['n_real']} reals on {device}: PNG + torch-fidelity + prdc "
                  f"{r['png_torch_fidelity_prdc_s']:.1f} s, unit-eval {r['unit_eval_cold_s']:.1f} s cold ({r['speedup_cold']:.2f}x), "
                  f"{r['unit_eval_warm_s']:.1f} s warm ({r['speedup_warm']:.2f}x); max abs diff {r['max_abs_diff']:.1e}", file=sys.stderr)
        if "legacy" in routes:
            r = report["legacy"] = route_legacy(setup, Path(args.official_tunit))
            print(f"tunit-mfid-legacy, {r['classes']} classes x {r['fakes_per_class']} fakes, {r['real_per_class']} reals/class on "
                  f"{device}: official calcFIDBatch {r['official_s']:.1f} s, unit-eval {r['unit_eval_cold_s']:.1f} s cold "
                  f"({r['speedup_cold']:.2f}x), {r['unit_eval_warm_s']:.1f} s warm ({r['speedup_warm']:.2f}x); "
                  f"mFID {r['mfid_unit_eval']:.4f} vs {r['mfid_official']:.4f} (rel. diff {r['mfid_rel_diff']:.1e}, "
                  f"worst class {r['max_class_rel_diff']:.1e})", file=sys.stderr)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
