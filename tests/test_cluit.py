"""CLUIT (arXiv 2105.03117): architecture at the published size, losses by hand, the batch split, lazy R1, patch
aggregation, toy training through the shared loop, run.pt round trip, seeded determinism and exact resume, the
``cluit-mfid`` and ``translation-accuracy`` protocols on its checkpoint, bad inputs. CPU, 32 px digits, one thread.
"""
from __future__ import annotations

import copy
import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unit_eval.baselines.cluit import adapter
from unit_eval.baselines.cluit.losses import (augment, contrastive_loss, crop_boxes, patch_mean, r1_penalty,
                                              random_crops)
from unit_eval.baselines.cluit.networks import ContrastiveDiscriminator, Generator, StyleEncoder
from unit_eval.baselines.cluit.recipe import CluitRecipe
from unit_eval.baselines.common import data as data_mod
from unit_eval.baselines.common.loop import load_resume, train
from unit_eval.checkpoint import save_run
from unit_eval.errors import UnitEvalError
from unit_eval.translator import load_checkpoint_translator

from .conftest import assert_same_state, n_params, write_digits

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("cluit") / "digits", per_class=8)


# ----------------------------------------------------------------------------- architecture (A.1)
def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def resblk(a, b, inorm=False):
    """Pre-activation block: conv3x3 a->a, conv3x3 a->b, 1x1 shortcut without bias when a != b, 2 affine INs of a."""
    return conv(3, a, a) + conv(3, a, b) + (a * b if a != b else 0) + (4 * a if inorm else 0)


def adain_blk(a, b, s=128):
    """AdaIN block: Linear(s, 2a) and Linear(s, 2b) for (gamma, beta), conv3x3 a->b, conv3x3 b->b, shortcut."""
    return (s + 1) * 2 * a + (s + 1) * 2 * b + conv(3, a, b) + conv(3, b, b) + (a * b if a != b else 0)


def test_published_architecture_at_128():
    """Counts derived by hand from A.1's three tables (128 px; widths 64, 128, 256, 512, 512, 512):
      trunk (D and E alike)  Conv1x1 3->64 256 + ResBlks 64->128 118,976 | 128->256 475,520 | 256->512 1,901,312
                             | 512->512 4,719,616 x 2                                                 = 11,935,296
      head                   Conv4x4 512->512 4,194,816 + Linear 512->out
      D = trunk + GAN head (4,194,816 + 513) + contrastive head (4,194,816 + 131,328)                = 20,456,769
      E = trunk + Conv4x4 4,194,816 + Linear 512->128 65,664                                         = 16,195,776
      G encoder  Conv1x1 256 + IN ResBlks 64->128 119,232 | 128->256 476,032 | 256->512 1,902,336
                 | 512 x 2 9,443,328                                                                  = 11,941,184
      G decoder  AdaIN ResBlks 512 x 2 9,967,616 | 512->256 2,099,200 | 256->128 574,464 | 128->64 168,448
                                                                                                      = 12,809,728
      to-RGB     IN(64, affine) 128 + Conv1x1 64->3 195                                               =        323
      G                                                                                               = 24,751,235
    Choices behind these (the tables do not show them; StarGAN v2's blocks, the paper's [6]): learned 1x1 shortcuts
    without bias, affine IN in the encoder, one Linear(128, 2C) per AdaIN layer, IN + LReLU before the last Conv1x1.
    """
    widths = [64, 128, 256, 512, 512, 512]
    trunk = conv(1, 3, 64) + sum(resblk(a, b) for a, b in zip(widths, widths[1:]))
    head4 = conv(4, 512, 512)
    d = trunk + head4 + (512 + 1) + head4 + (512 + 1) * 256
    e = trunk + head4 + (512 + 1) * 128
    g_enc = conv(1, 3, 64) + sum(resblk(a, b, True) for a, b in [(64, 128), (128, 256), (256, 512), (512, 512), (512, 512)])
    g_dec = sum(adain_blk(a, b) for a, b in [(512, 512), (512, 512), (512, 256), (256, 128), (128, 64)])
    g = g_enc + g_dec + 2 * 64 + conv(1, 64, 3)
    assert (trunk, d, e, g_enc, g_dec, g) == (11_935_296, 20_456_769, 16_195_776, 11_941_184, 12_809_728, 24_751_235)

    torch.manual_seed(0)
    D, E, G = ContrastiveDiscriminator(), StyleEncoder(), Generator()
    assert n_params(D.trunk) == trunk and n_params(D) == d and n_params(E) == e and n_params(G) == g
    assert n_params(G.encode_blocks) + n_params(G.from_rgb) == g_enc and n_params(G.decode_blocks) == g_dec
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        assert D.trunk(x).shape == (1, 512, 4, 4)
        logit, z = D(x)
        assert logit.shape == (1,) and z.shape == (1, 256) and z.norm(dim=1).item() == pytest.approx(1, abs=1e-6)
        s = E(x)
        assert s.shape == (1, 128)
        assert G.encode(x).shape == (1, 512, 16, 16) and G(x, s).shape == (1, 3, 128, 128)


def test_published_config_and_refusals():
    cfg = CluitRecipe.default_config(iters=100_000)
    assert (cfg["img_size"], cfg["batch_size"], cfg["iters"]) == (128, 32, 100_000)
    assert (cfg["tau"], cfg["queue_size"], cfg["proj_dim"], cfg["sty_dim"], cfg["n_patches"]) == (0.07, 2048, 256, 128, 4)
    assert CluitRecipe.default_iters == 100_000
    # blank in the paper's stored text; the defaults of the one public code with CLUIT's names (recipe docstring)
    assert (cfg["w_con"], cfg["w_cyc"], cfg["w_sty"], cfg["r1_gamma"], cfg["r1_every"]) == (0.1, 3.0, 1.0, 10.0, 16)
    assert (cfg["lr"], cfg["betas"]) == (5e-5, [0.0, 0.99])
    r = CluitRecipe(CluitRecipe.default_config(iters=5, toy=True), 1, torch.device("cpu"))
    assert r.opt_G.defaults["betas"] == (0.0, 0.99) and r.opt_G.defaults["lr"] == 5e-5
    assert r.opt_D.defaults["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)), abs=1e-15)
    toy = CluitRecipe.default_config(iters=5, toy=True)
    assert (toy["img_size"], toy["batch_size"], toy["ch"]) == (32, 4, 8)
    for kwargs, message in (({"k": 3}, "no number of domains"), ({"batch_size": 5}, "even batch size"),
                            ({"img_size": 48}, "power-of-two"), ({"p_semi": 0.5}, "does not take option")):
        with pytest.raises(UnitEvalError, match=message):
            CluitRecipe.default_config(iters=5, **kwargs)


# ----------------------------------------------------------------------------- losses by hand
def test_contrastive_loss_by_hand():
    # unnormalised inputs: the loss normalises query, key and negatives (Eq. 1)
    q = torch.tensor([[3.0, 0.0]])
    k = torch.tensor([[0.6, 0.8]])  # unit
    negatives = torch.tensor([[2.0, 2.0], [0.0, -5.0]])
    tau = 0.07
    pos, n1, n2 = 0.6 / tau, math.sqrt(0.5) / tau, 0.0 / tau
    expected = -math.log(math.exp(pos) / (math.exp(pos) + math.exp(n1) + math.exp(n2)))
    assert contrastive_loss(q, k, negatives, tau).item() == pytest.approx(expected, rel=1e-5)
    # the gradient reaches the query only
    qg, kg = q.clone().requires_grad_(True), k.clone().requires_grad_(True)
    contrastive_loss(qg, kg, negatives, tau).backward()
    assert qg.grad is not None and kg.grad is None


def test_r1_penalty_by_hand():
    a = torch.tensor([0.5, -1.0, 2.0])
    x = torch.zeros(4, 3, requires_grad=True)
    logit = (x * a).sum(1) + 3.0  # D linear in x: grad = a for every sample
    assert r1_penalty(logit, x).item() == pytest.approx(0.5 * float((a ** 2).sum()), rel=1e-6)


def _ramps(b: int, size: int) -> torch.Tensor:
    """Channel 0 = x coordinate, 1 = y coordinate of each pixel centre in [-1, 1] units, 2 = the image index."""
    c = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1
    x = torch.zeros(b, 3, size, size, dtype=torch.float64)
    x[:, 0] = c.view(1, 1, size)
    x[:, 1] = c.view(1, size, 1)
    x[:, 2] = torch.arange(b, dtype=torch.float64).view(b, 1, 1)
    return x


def test_patches_cover_an_eighth_to_all_of_the_image():
    """Sec. 3.3 / A.2: patches of 1/8 to 1 of the image (area, as the augmentation's crop range 0.125-1.0),
    measured from the crops' content: on a coordinate ramp the slope between two middle output pixels is the
    crop's side as a fraction of the image's."""
    torch.manual_seed(0)
    size, b, n = 32, 50, 8
    crops = random_crops(_ramps(b, size), n)
    assert crops.shape == (n * b, 3, size, size)
    m = size // 2
    width = (crops[:, 0, m, m] - crops[:, 0, m, m - 1]) * size / 2
    height = (crops[:, 1, m, m] - crops[:, 1, m - 1, m]) * size / 2
    area = (width * height).numpy()
    assert area.min() >= 0.125 - 1e-9 and area.max() <= 1 + 1e-9
    assert area.min() < 0.2 and area.max() > 0.8  # the whole range is used
    assert len(np.unique(area.round(6))) == n * b
    # crop j of image i sits at row j * B + i: the index channel is constant within a crop's interior
    assert torch.allclose(crops[:, 2, m, m], torch.arange(b, dtype=torch.float64).repeat(n))
    boxes = crop_boxes(20_000, CPU)
    w, h, cx, cy = boxes.unbind(1)
    assert float((w * h).min()) >= 0.125 - 1e-6 and float((w * h).max()) <= 1.0
    assert bool(((cx.abs() + w) <= 1 + 1e-6).all() and ((cy.abs() + h) <= 1 + 1e-6).all())  # inside the image


def test_patch_mean_averages_each_images_patches():
    torch.manual_seed(1)
    b, n = 3, 4
    x = _ramps(b, 32).float()

    def represent(imgs):  # 2-d "representation": (image index + 1, 1) read from the crop's centre
        return torch.stack([imgs[:, 2, 16, 16] + 1, torch.ones(imgs.shape[0])], 1)

    z = patch_mean(represent, x, n)
    expected = F.normalize(torch.tensor([[i + 1.0, 1.0] for i in range(b)]), dim=1)
    assert torch.allclose(z, expected, atol=1e-5)


def test_augment_is_a_random_view_in_range():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 32, 32) * 2 - 1
    y, y2 = augment(x), augment(x)
    assert y.shape == x.shape and float(y.min()) >= -1 and float(y.max()) <= 1
    assert not torch.equal(y, y2) and not torch.equal(y, x)


# ----------------------------------------------------------------------------- one step
def _recipe(**overrides):
    cfg = CluitRecipe.default_config(iters=20, toy=True)
    cfg.update(overrides)
    torch.manual_seed(0)
    return CluitRecipe(cfg, 3, CPU)


def _batches(digits, n, batch=4, seed=0):
    index = data_mod.scan(digits)
    streams = data_mod.Streams(index, {"main": None}, img_size=32, load_size=32, hflip=True, global_batch=batch,
                               seed=seed, rank=0, world_size=1, start=0, device=CPU)
    return [next(streams) for _ in range(n)]


def test_first_half_inputs_second_half_references(digits):
    r = _recipe()
    seen = {"G": [], "E": [], "D": [], "D_ema": []}
    hooks = [getattr(r, name).register_forward_pre_hook(
                 lambda m, args, name=name: seen[name].append(args[0].detach().clone()))
             for name in ("G", "E")]
    hooks += [getattr(r, name).trunk.register_forward_pre_hook(lambda m, args, name=name: seen[name].append(args[0].shape[0]))
              for name in ("D", "D_ema")]
    batch = _batches(digits, 1)[0]
    x = batch["main"]["image"]
    r.train_step(batch, 1)
    for h in hooks:
        h.remove()
    assert torch.equal(seen["G"][0], x[:2]) and torch.equal(seen["E"][0], x[2:])  # G(x_in, E(x_ref))
    assert torch.equal(seen["G"][1], x[:2]) and torch.equal(seen["E"][1], x[2:])  # the G step's translation
    assert torch.equal(seen["E"][2], x[:2])  # the cycle's style is the input's
    # D: all reals, the fakes (D step), the fakes and their 4 x 2 patches (G step); the momentum copy D_ema: the
    # augmented views' keys and the references' 4 x 2 patches
    assert seen["D"] == [4, 2, 2, 8] and seen["D_ema"] == [4, 8]
    with pytest.raises(UnitEvalError, match="even size"):
        r.train_step({"main": {**batch["main"], "image": x[:3]}}, 2)


def test_lazy_r1_only_every_interval_with_its_scale(digits):
    r = _recipe(r1_every=3, r1_gamma=2.0)
    queue0 = r.queue.clone()
    steps, adam_step = [], r.opt_D.step

    def record(*args, **kwargs):  # D's weights and gradients at each of its optimiser steps
        steps.append(({n: p.detach().clone() for n, p in r.D.named_parameters()},
                      {n: p.grad.detach().clone() for n, p in r.D.named_parameters() if p.grad is not None}))
        return adam_step(*args, **kwargs)

    r.opt_D.step = record
    batches = _batches(digits, 4)
    hist = [r.train_step(b, it) for it, b in enumerate(batches)]
    # the R1 step (the second D step of iteration 0) descends r1_every * gamma * 0.5 E||grad_x D(x)||^2, by hand
    weights, grads = steps[1]
    D = copy.deepcopy(r.D)
    D.load_state_dict(weights, strict=False)
    x = batches[0]["main"]["image"].detach().clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(D.logit(x).sum(), x, create_graph=True)
    penalty = 3 * 2.0 * 0.5 * gx.pow(2).flatten(1).sum(1).mean()
    names = [n for n, _ in D.named_parameters()]
    expected = torch.autograd.grad(penalty, list(D.parameters()), allow_unused=True)
    for name, g in zip(names, expected):
        if g is not None:
            assert torch.allclose(grads[name], g, rtol=1e-4, atol=1e-7), name
    assert ["D/r1" in h for h in hist] == [True, False, False, True]
    w_con, w_sty, w_cyc = 0.1, 1.0, 3.0  # the published defaults (test_published_config_and_refusals)
    for h in hist:
        assert h["D/total"] == pytest.approx(h["D/real"] + h["D/fake"] + w_con * h["D/con"], rel=1e-5)
        assert h["G/total"] == pytest.approx(h["G/adv"] + w_sty * h["G/style"] + w_cyc * h["G/cyc"], rel=1e-5)
        assert all(math.isfinite(v) for v in h.values())
    assert hist[0]["D/r1"] > 0
    # R1 is its own D step (StyleGAN2's lazy regularisation): 4 iterations, 2 of them lazy, 6 Adam steps for the
    # GAN logit's weights (the representation head gets no R1 gradient and stays at 4)
    counts = {n: float(r.opt_D.state[p]["step"]) for n, p in r.D.named_parameters()}
    assert {counts[n] for n in grads} == {6.0} and {c for n, c in counts.items() if n not in grads} == {4.0}
    assert {float(s["step"]) for s in r.opt_G.state.values()} == {4.0}
    # the dictionary: first in, first out, 4 keys per step, unit vectors
    assert r.queue.shape == (64, 16) and torch.equal(r.queue[:48], queue0[16:])
    assert torch.allclose(r.queue.norm(dim=1), torch.ones(64), atol=1e-5)


# ----------------------------------------------------------------------------- runs, checkpoints, resume
def _train(digits, out, iters, **kw):
    return train("cluit", digits, out, iters=iters, seed=kw.pop("seed", 1), device="cpu", progress=False, log_every=1,
                 extra={"toy": True}, overrides={"r1_every": 2}, sample_every=kw.pop("sample_every", 3),
                 ckpt_every=kw.pop("ckpt_every", 3), **kw)


@pytest.fixture(scope="module")
def runs(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("cluit_runs")
    _train(digits, root / "a", 5)
    _train(digits, root / "b", 3, ckpt_every=0)
    _train(digits, root / "b", 5, resume=True)
    _train(digits, root / "c", 5, sample_every=0)
    return root


def test_exact_resume_and_seeded_determinism(runs):
    a, b, c = (load_resume(runs / n / "resume.pt", "cluit") for n in "abc")
    assert a["iteration"] == b["iteration"] == 5
    assert_same_state(a["recipe"], b["recipe"])  # networks, EMA, optimisers, dictionary: 5 == 3 + resume + 2
    assert_same_state(a["recipe"], c["recipe"])  # same seed, fresh run
    la = [json.loads(line) for line in (runs / "a" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(line) for line in (runs / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in lb] == [1, 2, 3, 4, 5]
    assert [r["G/total"] for r in la] == [r["G/total"] for r in lb]
    assert ["D/r1" in r for r in la] == [True, False, True, False, True]  # iterations 0, 2, 4 (r1_every 2)
    assert len({r["G/total"] for r in la}) == 5 and all(math.isfinite(v) for r in la for v in r.values())


def test_checkpoint_roundtrip(runs, digits):
    tr = load_checkpoint_translator(runs / "a" / "run.pt")
    assert tr.image_size == 32 and tr.num_domains is None and tr.domain_names is None and tr.iteration == 5
    state = load_resume(runs / "a" / "resume.pt", "cluit")
    recipe = CluitRecipe(state["config"], 3, CPU)
    recipe.load_state_dict(state["recipe"])
    live = recipe.translator()
    index = data_mod.scan(digits)
    x = data_mod.load_eval_images(index, [0, 9, 17, 5], 32)
    ref = data_mod.load_eval_images(index, [20, 1, 12, 8], 32)
    out = tr.translate(x, ref)
    assert out.shape == (4, 3, 32, 32) and float(out.abs().max()) <= 1
    assert torch.equal(out, live.translate(x, ref))
    assert torch.equal(tr.style(ref), live.style(ref)) and tr.style(ref).shape == (4, 16)
    with torch.no_grad():  # the EMA networks, clamped
        assert torch.equal(out, recipe.G_ema(x, recipe.E_ema(ref)).clamp(-1, 1))
    assert torch.equal(tr.translate(x, ref[:1]), tr.translate_with_style(x, tr.style(ref[:1])))
    with pytest.raises(UnitEvalError, match="works at 32x32"):
        tr.translate(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))
    with pytest.raises(UnitEvalError, match="1 or 4 references"):
        tr.translate(x, ref[:2])
    run = torch.load(runs / "a" / "run.pt", weights_only=True)
    assert {k.split(".")[0] for k in run["state_dict"]} == {"generator", "style_encoder"}
    assert sorted(p.name for p in (runs / "a" / "samples").iterdir()) == ["iter_0000003.png", "iter_0000005.png"]


def test_bad_checkpoints(runs, tmp_path):
    run = torch.load(runs / "a" / "run.pt", weights_only=True)
    save_run(tmp_path / "broken.pt", model="cluit", config=run["config"], state_dict={"generator.nope": torch.zeros(1)},
             meta={})
    with pytest.raises(UnitEvalError, match="do not match its config"):
        load_checkpoint_translator(tmp_path / "broken.pt")
    save_run(tmp_path / "noconf.pt", model="cluit", config={"img_size": 32}, state_dict={}, meta={})
    with pytest.raises(UnitEvalError, match="config lacks 'ch'"):
        load_checkpoint_translator(tmp_path / "noconf.pt")
    run["model"] = "tunit"
    with pytest.raises(UnitEvalError, match="not a CLUIT checkpoint"):
        adapter.from_run(run)
    with pytest.raises(UnitEvalError, match="a 'cluit' run, not 'tunit'"):
        load_resume(runs / "a" / "resume.pt", "tunit")
    state = load_resume(runs / "a" / "resume.pt", "cluit")
    recipe = CluitRecipe({**state["config"], "queue_size": 32}, 3, CPU)
    with pytest.raises(UnitEvalError, match="dictionary"):
        recipe.load_state_dict(state["recipe"])


# ----------------------------------------------------------------------------- protocols on the checkpoint
@pytest.fixture(scope="module")
def split_digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluit_split")
    write_digits(root / "train", per_class=5, offset=0)
    write_digits(root / "test", per_class=4, offset=50)
    return root


def test_cluit_mfid_and_translation_accuracy_on_the_checkpoint(runs, split_digits, tmp_path):
    from unit_eval.classifier import Classifier, load_classifier, predict, save_classifier
    from unit_eval.datasets import resolve_dataset
    from unit_eval.evaluation import ProtocolRunner, Settings
    from unit_eval.evaluation.sampling import sample_reference_class
    from unit_eval.images import float_to_uint8, load_image, uint8_to_float
    from unit_eval.protocol_specs import load_protocol

    from .test_protocol_runner import FakeExtractor

    tr = load_checkpoint_translator(runs / "a" / "run.pt")
    ds = resolve_dataset(split_digits)
    torch.manual_seed(0)
    clf_path = tmp_path / "clf.pt"
    save_classifier(Classifier("resnet18", ["0", "1", "2"], 32), clf_path, {"held_out_accuracy": None})
    extractors = {}
    runner = ProtocolRunner(ds, model=tr, settings=Settings(device=CPU, batch_size=16, progress=False,
                                                            classifier=str(clf_path)),
                            extractor_factory=lambda p: extractors.setdefault(p, FakeExtractor(p)))
    mfid = runner.run(replace(load_protocol("cluit-mfid"), references_per_input=3))
    acc = runner.run(replace(load_protocol("translation-accuracy"), references_per_input=3))
    assert mfid.n_fake["mean"] == acc.n_fake["mean"] == 12 * 3
    assert set(mfid.values) == {"mfid", "fid"} and set(mfid.values["fid"]) == {"0", "1", "2"}
    assert all(math.isfinite(v) and v > 0 for v in mfid.values["fid"].values())
    assert mfid.values["mfid"]["mean"] == pytest.approx(np.mean(list(mfid.values["fid"].values())))
    # translation accuracy by hand: the protocol's pairs, translated, saved as uint8, classified
    spec = replace(load_protocol("translation-accuracy"), references_per_input=3)
    test = ds.split("test")
    plan = sample_reference_class(test, test, 3, spec.exclude_self, 0, same_class=spec.same_class_references)
    clf = load_classifier(clf_path)
    hits = total = 0
    for cls, jobs in plan.items():
        assert not any(j.source_flip or j.reference_flip for j in jobs)
        load = lambda paths: uint8_to_float(torch.from_numpy(np.stack([load_image(p, 32, "bilinear") for p in paths]))
                                            .permute(0, 3, 1, 2))
        out = tr.translate(load([j.source for j in jobs]), load([j.reference for j in jobs]))
        pred = predict(clf, uint8_to_float(float_to_uint8(out)))
        hits += int((pred == ["0", "1", "2"].index(cls)).sum())
        total += len(jobs)
        assert acc.n_fake[cls] == len(jobs)
    assert total == 36
    assert acc.values["translation_accuracy"]["mean"] == pytest.approx(hits / total, abs=1e-12)


# ----------------------------------------------------------------------------- the CLI
def _cli(args, capsys):
    from unit_eval.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def test_cli_train_and_errors(digits, tmp_path, capsys):
    out = tmp_path / "cli_run"
    code, stdout, _ = _cli(["train", "cluit", "--data", str(digits / "1"), "--out", str(out), "--toy", "--iters", "2",
                            "--quiet", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["iterations"] == 2 and (out / "run.pt").exists()
    cases = [
        (["--k", "3"], "no number of domains"),
        (["--batch-size", "3"], "even batch size"),
        (["--img-size", "48"], "power-of-two"),
        (["--set", "n_patches=0"], "n_patches must be at least 1"),
        (["--set", "nonsense=1"], "unknown cluit config key"),
    ]
    for extra, message in cases:
        code, _, err = _cli(["train", "cluit", "--data", str(digits), "--out", str(tmp_path / "bad"), "--toy",
                             "--iters", "1", "--quiet", *extra], capsys)
        assert code == 1 and message in err and err.strip().count("\n") == 0, (extra, err)
