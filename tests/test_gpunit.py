"""GP-UNIT baseline: architecture at the published size, parity with the official networks (numbers pinned from
williamyang1991/GP-UNIT), the official content-encoder layout, stage I on user pairs, toy stage II through the
shared loop, run.pt round trip, seeded determinism and resume, latent- and exemplar-guided translation, losses
against hand computations, bad inputs. CPU only, toy sizes."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from unit_eval.baselines.common.data import load_eval_images, scan
from unit_eval.baselines.common.loop import train
from unit_eval.baselines.gpunit import losses, perceptual
from unit_eval.baselines.gpunit.content_encoder import fold_spectral_norm, load_content_encoder, official_to_ours
from unit_eval.baselines.gpunit.networks import (ContentEncoder, Discriminator, Generator, StyleSampler,
                                                 add_spectral_norm, init_kaiming)
from unit_eval.baselines.gpunit.recipe import GPUNITRecipe
from unit_eval.baselines.gpunit.sampler import fit_sampler, oversample_rare
from unit_eval.baselines.gpunit.stage1 import AutoEncoder
from unit_eval.cache import sha256_file
from unit_eval.checkpoint import load_run, save_run
from unit_eval.errors import UnitEvalError
from unit_eval.translator import Translator, load_checkpoint_translator

from .conftest import det_uniform, n_params, write_digits

pytestmark = pytest.mark.usefixtures("one_thread")

TOY = {"toy": True}
CHEAP = {"sampler_samples": 60}  # 10 sampler epochs on 6 images per class


@pytest.fixture(scope="module")
def digits3(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("gpunit_digits"), classes=(0, 1, 2), per_class=6, size=36)


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    """A toy content encoder in the official file's layout (spectral-normed convs), seeded."""
    torch.manual_seed(11)
    path = tmp_path_factory.mktemp("gpunit_enc") / "content_encoder.pt"
    torch.save(ContentEncoder(8, 3, 32, sn=True).state_dict(), path)
    return path


def _train(data, out, enc, iters=4, **kw):
    kw.setdefault("seed", 3)
    return train("gpunit", data, out, iters=iters, device="cpu", progress=False, extra=TOY, log_every=1,
                 sample_every=0, ckpt_every=0, overrides={"content_encoder": str(enc), **CHEAP}, **kw)


@pytest.fixture(scope="module")
def toy_run(digits3, encoder_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpunit_run")
    return out, _train(digits3, out, encoder_file)


# ----------------------------------------------------------------------------- architecture
def test_published_architecture_at_256():
    """Counts by hand from the official code (content_encoder.py, generator.py, discriminator.py, sampler.py;
    3x3 conv cin->cout = 9 cin cout + cout, AdaIN(c) = Linear(256, 2c) = 514 c):
      content encoder  layer1 1,792 + 36,928 | layer2 36,928 + 73,856 | layer3 147,584 + 295,168
                       | layer4 590,080 + 1,180,160 | layer5 2 x 2,359,808 | layer6 2,359,808 + 4,609   =  9,446,529
      style encoder    7x7 3->64 9,472 + 4x4 64->128 131,200 + 128->256 524,544 + 3 x 256->256 1,048,832
                       + MLP 256->64 16,448 + 64->256 16,640 + 256->256 65,792                      =  3,910,592
      generator layers (AdaRes blocks, 7x7 RGB 147 c + 3, dynamic skip 9 h f + 54 f^2 + 4 f):
        0: AdaRes(1, 512) 2,629,636 + AdaRes(512, 512) 5,245,952 + RGB 75,267                   =  7,950,855
        1: AdaRes(512, 512) 5,245,952 + RGB 75,267 + skip(1, 512) 14,162,432                    = 19,483,651
        2: AdaRes(512, 256) 2,558,976 + RGB 37,635 + skip(512, 256) 4,719,616                   =  7,316,227
        3: AdaRes(256, 128) 804,352 + 18,819 | 4: AdaRes(128, 64) 283,392 + 9,411 | 5: 139,648 + 9,411
      generator                                                                                 = 39,926,358
      discriminator 1,792 + blocks 118,976 + 475,520 + 1,901,312 + 3 x 4,719,616 + 4x4 4,194,816 + 513
                                                                    (one domain, + 513 per extra)  = 20,851,777
      sampler 128x128 + BN 256 + 128x128 + BN 256 + 128x256                                      =     66,048
      stage-I autoencoder (292 classes): E_c 9,446,529 + E_s 6,270,592 + F 14,023,814 + C 403,672
                       + lift 1,024 + embedding 37,376                                          = 30,183,007
    The official constructors give the same totals (Generator(), Discriminator(), ContentEncoder(),
    AutoEncoder(), _netT(128, 256), counted once on 2026-12-02)."""
    torch.manual_seed(0)
    g = Generator()
    assert n_params(g.style_encoder) == 3_910_592
    assert [n_params(m) for m in g.model] == [7_950_855, 19_483_651, 7_316_227, 823_171, 292_803, 149_059]
    assert n_params(g) == 39_926_358
    assert n_params(ContentEncoder()) == 9_446_529
    assert n_params(add_spectral_norm(Discriminator(1))) == 20_851_777
    assert n_params(add_spectral_norm(Discriminator(3))) == 20_851_777 + 2 * 513
    assert n_params(StyleSampler()) == 66_048
    assert n_params(AutoEncoder(292)) == 30_183_007


def test_default_config_is_the_published_one():
    cfg = GPUNITRecipe.default_config(iters=75_000)
    assert (cfg["img_size"], cfg["load_size"], cfg["resize_mode"], cfg["hflip"], cfg["batch_size"]) == (256, 286, "square", True, 16)
    assert (cfg["lr"], cfg["betas"], cfg["weight_decay"], cfg["ema_beta"]) == (1e-4, [0.0, 0.99], 1e-4, 0.999)
    assert (cfg["lambda_content"], cfg["lambda_style"], cfg["lambda_mask"], cfg["lambda_rec"], cfg["vgg_w"]) == (1, 50, 1, 1, 1)
    assert (cfg["style_layer"], cfg["use_allskip"], cfg["flip_style"], cfg["stage"]) == (4, False, True, 2)
    assert (cfg["s1_lr"], cfg["s1_betas"], cfg["lambda_shape_rec"], cfg["lambda_reg"], cfg["lambda_shape_dist"]) == (2e-4, [0.9, 0.999], 5, 0.001, 5)
    assert GPUNITRecipe.default_iters == 75_000 and cfg["sampler_samples"] == 2_000_000
    with pytest.raises(UnitEvalError, match="does not take"):
        GPUNITRecipe.default_config(iters=1, bogus=1)
    with pytest.raises(UnitEvalError, match="pseudo-domain"):
        GPUNITRecipe.default_config(iters=1, k=3)


# ----------------------------------------------------------------------------- parity with the official code
# Pinned from williamyang1991/GP-UNIT commit d59695e (2022), on 2026-12-02: a scratch script outside this
# repository imported the unmodified official model/generator.py, discriminator.py, content_encoder.py and
# sampler.py (faiss stubbed: only _netT was used) on CPU (torch 2.14, 1 thread, float32), set every parameter
# and buffer with ``_det_state`` below (no RNG of either implementation involved), switched to eval mode and
# recorded (sum, sum |.|, sum of squares) of:
#   feats = ContentEncoder(nef=8)(x, get_feature=True)
#   g = Generator(content_nc=[1, 1, 64, 32, 16, 8], ngf=8): g.style_encoder(y), g(feats, y) (image and masks),
#       g(feats, y, useskip=False), and pixel (0, :, 100, 37) of g(feats, y)
#   Discriminator()(cat([g(feats, y), y]), 4) (logits and style feature)
#   AutoEncoder(nf=8, ncls=5): decode(styleE(cat[x, y]), embed([1, 3]), z) (image, mask) and classify(z)
#   _netT(128, 256)(e)
# with x, y, z, e = det_uniform("x" | "y" | "z" | "e", ...). The official names are ours, so the same state
# dicts load here; the content encoder goes through ``official_to_ours`` (the official file's layout).
OFFICIAL = {
    "enc": [(20.351388189010322, 30.52708335686475, 41.43343535399746),
            (1307.5780279927912, 1961.3670561788258, 2144.993257300424),
            (5232.970533237454, 7849.455861191165, 8519.444184679627),
            (10440.43513770328, 15660.652826459176, 17058.64266157626),
            (20876.62269025054, 31314.934330671877, 34141.26033992393),
            (41778.30034426782, 62667.45071405525, 68140.8104190527)],
    "style": (82.63373923301697, 82.63373923301697, 80.71642945796262),
    "gen": (-45416.28228779798, 122181.79577709336, 94130.15889818541),
    "masks": [(4241.989778093295, 4241.989778093295, 2927.3407198596274),
              (6593.611181788903, 6593.611181788903, 4123.15190500121)],
    "gen_noskip": (-46133.47357376714, 117631.11000340796, 88786.30411357176),
    "gen_px": (-0.8494387269020081, -0.9130127429962158, -0.07835184037685394),
    "dis": (0.0705932080745697, 0.07046779245138168),
    "dis_style": (-4.801244749553007, 42.48195128138832, 2.5437940462144994),
    "ae_rec": (-28715.602345536667, 75280.76871174652, 24558.462163145465),
    "ae_mask": (56.96276072008186, 265.6609041559568, 66.17719070760118),
    "ae_cls": [(-0.21139422059059143, 0.0017010988667607307, -0.12190434336662292, -0.20148487389087677, 0.20657019317150116),
               (-0.25592178106307983, 0.07993778586387634, 0.09057493507862091, -0.2628646492958069, 0.19891048967838287)],
    "netT": (3.9749081335030496, 50.994343649130315, 3.8980868898190764),
}


def _det_state(module, prefix: str) -> dict:
    """Every tensor of ``module.state_dict()`` from its name: weights uniform * sqrt(6 / fan_in), vectors * 0.1,
    BatchNorm running_var 1 + |.| / 2, counters 10; spectral-norm u, v from 30 float64 power iterations
    started at a fixed v (so sigma is the top singular value and activations stay O(1))."""
    out = {}
    for k, v in module.state_dict().items():
        shape = tuple(v.shape)
        if k.endswith("running_var"):
            t = 1 + 0.5 * det_uniform(prefix + k, shape).abs()
        elif k.endswith("num_batches_tracked"):
            t = torch.tensor(10)
        elif len(shape) > 1:
            t = det_uniform(prefix + k, shape) * math.sqrt(6.0 / math.prod(shape[1:]))
        else:
            t = det_uniform(prefix + k, shape) * 0.1
        out[k] = t.to(v.dtype)
    for k in [k for k in out if k.endswith("_orig")]:
        base = k[:-5]
        w = out[k].double().reshape(out[k].shape[0], -1)
        v = det_uniform(prefix + base + "_v", (w.shape[1],))
        v = v / v.norm()
        for _ in range(30):
            u = w @ v
            u = u / u.norm()
            v = w.t() @ u
            v = v / v.norm()
        out[base + "_u"], out[base + "_v"] = u.float(), v.float()
    return out


def _sums(t):
    t = t.double()
    return (t.sum().item(), t.abs().sum().item(), t.pow(2).sum().item())


def _close(got, want, rel=2e-5):
    assert got == pytest.approx(want, rel=rel, abs=1e-4)


@torch.no_grad()
def test_networks_match_official_gpunit():
    """Our content encoder (loaded from the official layout), generator, discriminator, stage-I autoencoder
    and sampler compute the official functions (numbers pinned above)."""
    enc = ContentEncoder(8, 5, 256)
    enc.load_state_dict(official_to_ours(_det_state(ContentEncoder(8, 5, 256, sn=True), "enc."), 8, 5, "synthetic"))
    x, y = det_uniform("x", (1, 3, 256, 256)).float(), det_uniform("y", (1, 3, 256, 256)).float()
    feats = enc.features(x)
    for f, want in zip(feats, OFFICIAL["enc"]):
        _close(_sums(f), want)
    g = Generator(ngf=8, n_down=5, style_nef=64, style_dim=256)
    g.load_state_dict(_det_state(g, "gen."))
    s = g.style_encoder(y)
    _close(_sums(s), OFFICIAL["style"])
    img, masks = g(feats, s)
    _close(_sums(img), OFFICIAL["gen"])
    for m, want in zip(masks, OFFICIAL["masks"]):
        _close(_sums(m), want)
    _close(_sums(g(feats, s, useskip=False)[0]), OFFICIAL["gen_noskip"])
    assert img[0, :, 100, 37].tolist() == pytest.approx(OFFICIAL["gen_px"], abs=2e-5)
    d = add_spectral_norm(Discriminator(1)).eval()
    d.load_state_dict(_det_state(d, "dis."))
    logits, style = d(torch.cat([img, y]), torch.tensor([0, 0]), 4)
    assert logits.tolist() == pytest.approx(OFFICIAL["dis"], rel=1e-4)
    _close(_sums(style), OFFICIAL["dis_style"])
    ae = AutoEncoder(5, 8, 5, 256, 128).eval()
    ae.load_state_dict(_det_state(ae, "ae."))
    z = det_uniform("z", (2, 1, 8, 8)).float()
    rec, mask = ae.decode(ae.styles(torch.cat([x, y])), ae.embed(torch.tensor([1, 3])), z)
    _close(_sums(rec), OFFICIAL["ae_rec"])
    _close(_sums(mask), OFFICIAL["ae_mask"])
    assert ae.classify(z).flatten().tolist() == pytest.approx([v for row in OFFICIAL["ae_cls"] for v in row], abs=2e-6)
    t = StyleSampler(128, 256, 128).eval()
    t.load_state_dict(_det_state(t, "T."))
    _close(_sums(t(det_uniform("e", (4, 128)).float())), OFFICIAL["netT"])


def test_discriminator_head_is_the_style_images_domain_and_init_is_kaimings():
    torch.manual_seed(0)
    d = add_spectral_norm(Discriminator(3, 32, 8, 32)).eval()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        every = d.linear(d.model(x)).flatten(1)  # B x 3 logits
        picked, style = d(x, torch.tensor([2, 0, 1, 2]), 3)
    assert torch.equal(picked, every[torch.arange(4), torch.tensor([2, 0, 1, 2])]) and style.shape == (4, 32)
    # official init_weights('kaiming'): every conv/linear weight N(0, 2 / fan_in), every bias 0 (AdaIN's included)
    recipe_gen = Generator(64, 5, 64, 256)
    init_kaiming(recipe_gen)
    lin = recipe_gen.model[1].reslayer.norm_0.style
    assert torch.count_nonzero(lin.bias) == 0 and torch.count_nonzero(recipe_gen.model[1].rgblayer.bias) == 0
    assert lin.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.05)
    conv = recipe_gen.model[1].skiplayer.reset.weight
    assert conv.std().item() == pytest.approx(math.sqrt(2 / conv[0].numel()), rel=0.05)


# ----------------------------------------------------------------------------- official content-encoder file
def test_official_content_encoder_layout_is_folded_and_checked(tmp_path):
    torch.manual_seed(1)
    sn = ContentEncoder(8, 3, 32, sn=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    sn(x)  # one training-mode forward: u, v are power-iterated once
    sn.eval()
    with torch.no_grad():
        want = sn.features(x)
    state = sn.state_dict()
    assert {k.rsplit(".", 1)[1] for k in state} == {"weight_orig", "weight_u", "weight_v", "bias"}
    assert "layer4.1.conv.weight_orig" in state and state["layer4.1.conv.weight_orig"].shape == (1, 32, 3, 3)
    path = tmp_path / "content_encoder.pt"
    torch.save(state, path)
    ours, digest = load_content_encoder(path, 8, 3)
    assert len(digest) == 64 and all(k.endswith((".weight", ".bias")) for k in ours)
    enc = ContentEncoder(8, 3, 32)
    enc.load_state_dict(ours)
    with torch.no_grad():
        got = enc.features(x)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(got, want))  # eval-mode spectral norm, folded
    # the folded weight is weight_orig / (u . W v)
    w, u, v = state["layer1.0.conv.weight_orig"], state["layer1.0.conv.weight_u"], state["layer1.0.conv.weight_v"]
    sigma = torch.dot(u, w.reshape(w.shape[0], -1) @ v)
    assert torch.allclose(fold_spectral_norm(state)["layer1.0.conv.weight"], w / sigma)
    # wrong files: one line each
    bad = dict(state)
    bad.pop("layer2.0.conv.weight_u")
    torch.save(bad, tmp_path / "missing.pt")
    torch.save({**state, "layer1.0.conv.bias": torch.zeros(3)}, tmp_path / "shape.pt")
    torch.save({"ae_ema": state}, tmp_path / "wrapped.pt")
    for name, match in (("missing.pt", "lacks layer2.0.conv.weight_u"), ("shape.pt", "has shape"),
                        ("wrapped.pt", "not a state dict of tensors"), ("absent.pt", "is not a file")):
        with pytest.raises(UnitEvalError, match=match) as err:
            load_content_encoder(tmp_path / name, 8, 3)
        assert "\n" not in str(err.value)
    with pytest.raises(UnitEvalError, match="nef=16"):
        load_content_encoder(path, 16, 3)


# ----------------------------------------------------------------------------- stage II through the loop
def test_toy_training_through_the_loop(toy_run):
    out, summary = toy_run
    assert summary["iterations"] == 4
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [1, 2, 3, 4]
    for key in ("g_adv", "g_con", "g_sty", "g_msk", "g_rec", "d_adv", "d_r1"):
        vals = [r[key] for r in rows]
        assert all(math.isfinite(v) and abs(v) < 1e4 for v in vals), (key, vals)
        assert len(set(vals)) > 1, f"{key} did not move: {vals}"
    assert all(r["g_rec_vgg"] == 0 for r in rows)  # toy: no VGG19 weights, vgg_w = 0
    run = load_run(out / "run.pt")
    assert run["model"] == "gpunit" and run["config"]["num_classes"] == 3 and run["config"]["stage"] == 2
    assert len(run["config"]["content_encoder_sha256"]) == 64
    sd = run["state_dict"]
    assert sd["style_means"].shape == (3, 32) and all(f"sampler.{c}.lin1.weight" in sd for c in range(3))


def test_run_roundtrip_and_translator_interface(toy_run, digits3):
    out, _ = toy_run
    tr = load_checkpoint_translator(out / "run.pt")
    assert isinstance(tr, Translator) and tr.image_size == 32 and tr.num_domains == 3
    assert tr.domain_names == ["0", "1", "2"] and tr.iteration == 4
    index = scan(digits3)
    src, ref = load_eval_images(index, [0, 7, 13], 32), load_eval_images(index, [6, 12, 1], 32)
    y = tr.translate(src, ref)
    assert y.shape == (3, 3, 32, 32) and y.abs().max() <= 1
    assert torch.equal(y, tr.translate_with_style(src, tr.style(ref)))
    assert torch.allclose(tr.translate(src, ref[:1]), tr.translate(src, ref[:1].expand(3, -1, -1, -1)), atol=1e-4)
    # translate_to_domain uses the mean style code of the domain's training images (eval transform)
    ids = [i for i, lab in enumerate(index.labels) if lab == 2]
    mean = tr.style(load_eval_images(index, ids, 32)).mean(0)
    assert torch.allclose(tr.style_means[2], mean, atol=1e-5)
    assert torch.equal(tr.translate_to_domain(src, 2), tr.translate_with_style(src, tr.style_means[2:3]))
    # the live translator of a rebuilt recipe with the run's weights gives the same images
    run = load_run(out / "run.pt")
    live = GPUNITRecipe(run["config"], 3, torch.device("cpu"))
    live.gen_ema.load_state_dict({k[4:]: v for k, v in run["state_dict"].items() if k.startswith("gen.")})
    assert torch.equal(live.translator().translate(src, ref), y)
    with pytest.raises(UnitEvalError, match="works at 32x32"):
        tr.translate(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))


def test_latent_guided_sampling(toy_run):
    tr = load_checkpoint_translator(toy_run[0] / "run.pt")
    a = tr.sample_style(5, 1, torch.Generator().manual_seed(7))
    b = tr.sample_style(5, 1, torch.Generator().manual_seed(7))
    c = tr.sample_style(5, 1, torch.Generator().manual_seed(8))
    assert a.shape == (5, 32) and torch.equal(a, b) and not torch.allclose(a, c)
    # eval-mode sampler: a code does not depend on the other draws of its batch
    assert torch.allclose(tr.sample_style(2, 1, torch.Generator().manual_seed(7)), a[:2], atol=1e-6)
    # domains have their own samplers
    assert not torch.allclose(tr.sample_style(5, 0, torch.Generator().manual_seed(7)), a)
    src = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    outs = tr.translate_with_style(src.expand(5, -1, -1, -1), a)
    assert (outs[1:] - outs[:1]).abs().amax(dim=(1, 2, 3)).min() > 1e-4  # different codes, different images
    assert torch.allclose(tr.translate_with_style(src, a[2:3]), outs[2:3], atol=1e-5)
    with pytest.raises(UnitEvalError, match="name the target domain"):
        tr.sample_style(2)
    with pytest.raises(UnitEvalError, match="0..2"):
        tr.sample_style(2, 3)
    with pytest.raises(UnitEvalError, match="style codes must be"):
        tr.translate_with_style(src.expand(2, -1, -1, -1), a[:3])


def test_seeded_determinism(digits3, encoder_file, toy_run, tmp_path):
    ref = load_run(toy_run[0] / "run.pt")["state_dict"]
    _train(digits3, tmp_path / "again", encoder_file)
    again = load_run(tmp_path / "again" / "run.pt")["state_dict"]
    assert ref.keys() == again.keys() and all(torch.equal(ref[k], again[k]) for k in ref)


def test_exact_resume(digits3, encoder_file, toy_run, tmp_path):
    ref = load_run(toy_run[0] / "run.pt")["state_dict"]
    _train(digits3, tmp_path / "res", encoder_file, iters=2)
    (tmp_path / "res" / "run.pt").unlink()
    train("gpunit", digits3, tmp_path / "res", iters=4, device="cpu", progress=False, resume=True, sample_every=0,
          ckpt_every=0)
    resumed = load_run(tmp_path / "res" / "run.pt")["state_dict"]
    assert all(torch.equal(ref[k], resumed[k]) for k in ref)


# ----------------------------------------------------------------------------- stage I
def test_stage1_on_user_pairs_feeds_stage2(tmp_path):
    data = write_digits(tmp_path / "pairs", classes=(4, 7), per_class=3, size=36)
    for p in data.rglob("*.png"):  # instance masks: the thresholded digit, same <class>/<name>
        m = tmp_path / "masks" / p.parent.name / p.name
        m.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(((np.asarray(Image.open(p)) > 100) * 255).astype(np.uint8)).save(m)
    s = train("gpunit", data, tmp_path / "s1", iters=2, seed=0, device="cpu", progress=False, extra=TOY, log_every=1,
              sample_every=0, ckpt_every=0, overrides={"stage": 1, "masks": str(tmp_path / "masks")})
    assert s["iterations"] == 2
    rows = [json.loads(line) for line in (tmp_path / "s1" / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r[k]) for r in rows for k in ("ae_arec", "ae_srec", "ae_fdist", "ae_sdist", "ae_reg"))
    run = load_run(tmp_path / "s1" / "run.pt")
    assert set(run["state_dict"]) == {f"content_encoder.{k}" for k in ContentEncoder(8, 3, 32, sn=True).state_dict()}
    with pytest.raises(UnitEvalError, match="stage-I content encoder, not a translator"):
        load_checkpoint_translator(tmp_path / "s1" / "run.pt")
    s2 = train("gpunit", data, tmp_path / "s2", iters=1, seed=0, device="cpu", progress=False, extra=TOY,
               sample_every=0, ckpt_every=0, overrides={"content_encoder": str(tmp_path / "s1" / "run.pt"), **CHEAP})
    assert s2["iterations"] == 1
    (tmp_path / "masks" / "7" / "001.png").unlink()
    with pytest.raises(UnitEvalError, match="no mask for 7/001.png"):
        train("gpunit", data, tmp_path / "s3", iters=1, device="cpu", progress=False, extra=TOY,
              overrides={"stage": 1, "masks": str(tmp_path / "masks")})
    with pytest.raises(UnitEvalError, match="--set masks=DIR"):
        train("gpunit", data, tmp_path / "s4", iters=1, device="cpu", progress=False, extra=TOY, overrides={"stage": 1})


def test_stage1_pair_batches_share_crops_and_partners(tmp_path):
    from unit_eval.baselines.gpunit.stage1 import PairData
    from unit_eval.images import load_image

    data = write_digits(tmp_path / "pairs", classes=(4, 7), per_class=2, size=36)
    for p in data.rglob("*.png"):  # mask = the image itself: image and mask crops must agree
        m = tmp_path / "masks" / p.parent.name / p.name
        m.parent.mkdir(parents=True, exist_ok=True)
        Image.open(p).save(m)
    index = scan(data)
    pairs = PairData(index, tmp_path / "masks", 36, 32)
    torch.manual_seed(0)
    ids = torch.tensor([0, 1, 2, 3])
    xa, ma, la, crops = pairs.batch(ids, torch.device("cpu"))
    xb, mb, lb, _ = pairs.batch(ids, torch.device("cpu"), crops=crops)
    assert torch.equal(xa, ma) and torch.equal(xb, mb) and la.tolist() == [0, 0, 1, 1]

    def cropped(j, crop):
        top, left, flip = crop
        a = load_image(index.paths[j], size=36, resize_filter="bilinear")[top:top + 32, left:left + 32]
        a = a[:, ::-1] if flip else a
        return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float() / 127.5 - 1

    assert any(c[:2] != (0, 0) for c in crops)  # some crops are off the corner (random crop of 36 -> 32)
    for i in range(4):
        assert torch.equal(xa[i], cropped(i, crops[i]))
        # the partner holds the same file name (its class drawn among those that have it), cropped alike
        same_name = [j for j, p in enumerate(index.paths) if p.name == index.paths[i].name]
        assert any(torch.equal(xb[i], cropped(j, crops[i])) and int(lb[i]) == index.labels[j] for j in same_name)


def test_stage1_loss_terms_reach_the_right_networks():
    """Each stage-I term alone (the others' weights 0): which networks it trains; the classifier's gradient reaches
    the content encoder reversed (gradient reversal layer)."""
    from unit_eval.baselines.gpunit.stage1 import stage1_losses

    torch.manual_seed(0)
    ae = AutoEncoder(3, 8, 3, 32, 16)
    g = torch.Generator().manual_seed(1)
    imgs = [torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(6)]
    labs = [torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([2, 0])]
    names = ("lambda_app_rec", "lambda_shape_rec", "lambda_feat_dist", "lambda_shape_dist", "lambda_reg", "lambda_class")
    trained = {}
    for name in names:
        cfg = {**{n: 0.0 for n in names}, name: 1.0, "vgg_w": 0.0}
        ae.zero_grad(set_to_none=True)
        total, _ = stage1_losses(ae, *imgs[:3], *labs, *imgs[3:], cfg)
        total.backward()
        trained[name] = {part for part in ("contentE", "styleE", "G", "C", "fc", "embed")
                         if any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(ae, part).parameters())}
    assert trained["lambda_app_rec"] == {"contentE", "styleE", "G", "fc", "embed"}
    assert trained["lambda_shape_rec"] == trained["lambda_shape_dist"] == {"contentE", "G", "fc", "embed"}
    assert trained["lambda_feat_dist"] == trained["lambda_reg"] == {"contentE"}
    assert trained["lambda_class"] == {"contentE", "C"}
    # the feature distance pulls E_c(x_a) towards a detached E_c(x_b): no gradient through x_b
    xa, xb = imgs[1].clone().requires_grad_(True), imgs[2].clone().requires_grad_(True)
    cfg = {**{n: 0.0 for n in names}, "lambda_feat_dist": 1.0, "vgg_w": 0.0}
    stage1_losses(ae, imgs[0], xa, xb, *labs, *imgs[3:], cfg)[0].backward()
    assert xa.grad.abs().sum() > 0 and (xb.grad is None or xb.grad.abs().sum() == 0)
    ae.eval()  # no power iteration between the two passes
    content = torch.randn(2, 1, 4, 4, requires_grad=True)
    F.cross_entropy(ae.classify(content), torch.tensor([0, 2])).backward()
    reversed_grad = content.grad.clone()
    content.grad = None
    x = content
    for name in ("layer1", "layer2", "layer3"):
        x = getattr(ae.C, name)(x)
    F.cross_entropy(ae.C.fc3(x.flatten(1)), torch.tensor([0, 2])).backward()
    assert torch.allclose(reversed_grad, -content.grad) and content.grad.abs().sum() > 0


def test_ema_and_stage1_partner_crops_in_the_recipe(encoder_file, tmp_path, monkeypatch):
    torch.manual_seed(0)
    cfg = {**GPUNITRecipe.default_config(iters=1, **TOY), "content_encoder": str(encoder_file)}
    recipe = GPUNITRecipe(cfg, 2, torch.device("cpu"))
    before = {k: v.clone() for k, v in recipe.gen_ema.state_dict().items()}
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    lab = torch.tensor([0, 1, 0, 1])
    recipe.train_step({"source": {"image": x, "label": lab}, "target": {"image": x.flip(0), "label": lab}}, 0)
    after, gen = recipe.gen_ema.state_dict(), recipe.gen.state_dict()
    assert all(torch.allclose(after[k], 0.999 * before[k] + 0.001 * gen[k], atol=1e-7) for k in before)
    assert not all(torch.equal(after[k], before[k]) for k in before)
    # stage 1: the partners are loaded with the anchors' crops and flips
    data = write_digits(tmp_path / "pairs", classes=(4, 7), per_class=2, size=36)
    for p in data.rglob("*.png"):
        m = tmp_path / "masks" / p.parent.name / p.name
        m.parent.mkdir(parents=True, exist_ok=True)
        Image.open(p).save(m)
    s1 = GPUNITRecipe({**GPUNITRecipe.default_config(iters=1, **TOY), "stage": 1, "masks": str(tmp_path / "masks")},
                      2, torch.device("cpu"))
    s1.bind_data(scan(data))
    calls = []
    real = s1.pairs.batch

    def spy(ids, device, crops=None):
        out = real(ids, device, crops)
        calls.append((crops, out[3]))
        return out

    monkeypatch.setattr(s1.pairs, "batch", spy)
    idx = {"index": torch.tensor([0, 3]), "image": torch.zeros(2, 3, 32, 32), "label": torch.tensor([0, 1])}
    s1.train_step({"source": idx, "target": idx}, 0)
    assert [c[0] is None for c in calls] == [True, True, False] and calls[2][0] == calls[1][1]


# ----------------------------------------------------------------------------- losses by hand
def test_r1_and_adversarial_losses_by_hand():
    x = torch.randn(3, 3, 4, 4, requires_grad=True)
    out = (2.0 * x).sum(dim=(1, 2, 3))  # d out_i / d x_i = 2 everywhere: per sample 48 * 4, halved, mean
    assert torch.allclose(losses.r1_reg(out, x), torch.tensor(0.5 * 48 * 4.0))
    logits = torch.tensor([0.0, 2.0])
    assert torch.allclose(losses.adv_loss(logits, 1), torch.tensor((math.log(2) + math.log(1 + math.exp(-2))) / 2))
    assert torch.allclose(losses.adv_loss(logits, 0), torch.tensor((math.log(2) + math.log(1 + math.exp(2))) / 2))


def test_generator_loss_is_the_weighted_sum(monkeypatch):
    torch.manual_seed(0)
    enc = ContentEncoder(8, 3, 32)
    g, d = Generator(8, 3, 8, 32), add_spectral_norm(Discriminator(2, 32, 8, 32))
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    lab = torch.tensor([0, 1])
    with torch.no_grad():
        cx, cy = enc.features(x), enc.features(y)
    d.eval()  # no power iteration between the calls
    kw = dict(style_layer=3, lambda_content=2.0, lambda_style=50.0, lambda_mask=3.0, lambda_rec=0.5)
    total, parts = losses.generator_loss(g, d, enc, cx, cy, y, y.flip(3), lab, **kw)
    s = g.style_encoder(y.flip(3))
    yhat, masks = g(cx, s)
    ybar, _ = g(cy, s, useskip=False)
    logits, st = d(torch.cat([yhat, y]), torch.cat([lab, lab]), 3)
    want = {"g_adv": F.binary_cross_entropy_with_logits(logits[:2], torch.ones(2)),
            "g_con": 2.0 * F.l1_loss(enc(yhat), cx[0]), "g_sty": 50.0 * F.l1_loss(st[:2], st[2:]),
            "g_msk": 3.0 * (masks[0].mean() + masks[1].mean()), "g_rec": 0.5 * F.l1_loss(ybar, y)}
    for key, value in want.items():
        assert torch.allclose(parts[key], value, rtol=1e-5), key
    assert torch.allclose(total, sum(want.values()), rtol=1e-5) and len(masks) == 2


def test_perceptual_loss_and_vgg19_file(tmp_path, monkeypatch):
    torch.manual_seed(0)
    net = perceptual.VGG19Features()
    tv = {f"features.{i}.{p}": getattr(net.features[i], p).detach().clone() for i in perceptual.CONVS for p in ("weight", "bias")}
    tv["classifier.0.weight"] = torch.zeros(2, 2)
    path = tmp_path / perceptual.VGG19_FILE
    torch.save(tv, path)
    with pytest.raises(UnitEvalError, match="not that of torchvision's vgg19-dcbb9e9d.pth") as err:
        perceptual.load_vgg19(str(path), torch.device("cpu"))
    assert "\n" not in str(err.value)
    vgg = perceptual.load_vgg19(str(path), torch.device("cpu"), check_pin=False)
    x, y = torch.rand(1, 3, 32, 32) * 2 - 1, torch.rand(1, 3, 32, 32) * 2 - 1
    fx, fy = vgg(x), vgg(y)
    assert [f.shape[1] for f in fx] == [64, 128, 256, 512, 512] and fx[-1].shape[-1] == 2  # relu1_1 .. relu5_1
    # ImageNet normalisation of [-1, 1] images, then 0.3 x L1 per layer
    first = F.relu(F.conv2d(((x + 1) / 2 - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
                            tv["features.0.weight"], tv["features.0.bias"], padding=1))
    assert torch.allclose(fx[0], first, atol=1e-5)
    assert torch.allclose(perceptual.vgg_loss(vgg, x, y), sum(0.3 * F.l1_loss(a, b) for a, b in zip(fx, fy)))
    # stage II with the perceptual term: the recipe finds the file through $UNIT_EVAL_VGG19_WEIGHTS (pin of this file)
    monkeypatch.setattr(perceptual, "VGG19_SHA256_PREFIX", sha256_file(path)[:8])
    monkeypatch.setenv(perceptual.ENV_VAR, str(path))
    torch.manual_seed(0)
    enc = tmp_path / "enc.pt"
    torch.save(ContentEncoder(8, 3, 32, sn=True).state_dict(), enc)
    recipe = GPUNITRecipe({**GPUNITRecipe.default_config(iters=1, **TOY), "content_encoder": str(enc), "vgg_w": 1.0},
                          2, torch.device("cpu"))
    lab = torch.tensor([0, 1])
    parts = recipe.train_step({"source": {"image": x.expand(2, -1, -1, -1), "label": lab},
                               "target": {"image": torch.cat([x, y]), "label": lab}}, 0)
    assert parts["g_rec_vgg"] > 0 and parts["g_rec"] == pytest.approx(parts["g_rec_l1"] + parts["g_rec_vgg"], rel=1e-5)
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(UnitEvalError, match="does not hold torchvision VGG19"):
        perceptual.load_vgg19(str(tmp_path / "bad.pth"), torch.device("cpu"), check_pin=False)
    monkeypatch.setenv(perceptual.ENV_VAR, "")
    monkeypatch.setattr(perceptual, "cache_dir", lambda: tmp_path / "nowhere")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "nowhere"))
    with pytest.raises(UnitEvalError, match="cannot download them"):
        perceptual.find_weights(None)


def test_sampler_fit_and_style_bias_oversampling():
    codes = torch.randn(2000, 3, generator=torch.Generator().manual_seed(0))
    far = (codes - codes.mean(0)).abs().sum(1).argsort()  # official: L1 distance to the mean code, ascending
    more = oversample_rare(codes)  # 2,000 codes: 2 rounds, the farthest 1,000 then the farthest 500 appended
    assert more.shape[0] == 3500 and torch.equal(more[:2000], codes)
    assert torch.equal(more[2000:3000], codes[far[-1000:]]) and torch.equal(more[3000:], codes[far[-500:]])
    torch.manual_seed(0)
    w = torch.randn(40, 4) * 0.1 + torch.tensor([3.0, -2.0, 1.0, 0.5])
    t = fit_sampler(w, noise_dim=4, hidden=16, samples=8000, batch_size=8)
    assert not t.training and not any(p.requires_grad for p in t.parameters())
    with torch.no_grad():
        sampled = t(torch.randn(500, 4))
    assert (sampled.mean(0) - w.mean(0)).norm() < 0.15  # mapped onto the codes' region (3.8 from the origin)


# ----------------------------------------------------------------------------- bad inputs
def test_bad_inputs_are_one_line_errors(digits3, encoder_file, tmp_path):
    with pytest.raises(UnitEvalError) as err:
        train("gpunit", digits3, tmp_path / "r0", iters=1, device="cpu", progress=False, extra=TOY)
    assert "needs the stage-I content encoder" in str(err.value) and "\n" not in str(err.value)
    one = write_digits(tmp_path / "one", classes=(5,), per_class=3, size=36)
    with pytest.raises(UnitEvalError, match="at least 2 class folders"):
        _train(one, tmp_path / "r1", encoder_file, iters=1)
    with pytest.raises(UnitEvalError, match="n_down=5") as err:  # a toy file given to the published-size model
        train("gpunit", digits3, tmp_path / "r2", iters=1, device="cpu", progress=False, allow_upscale=True,
              overrides={"content_encoder": str(encoder_file), "vgg_w": 0.0})
    assert "\n" not in str(err.value)
    toy = GPUNITRecipe.default_config(iters=1, **TOY)
    with pytest.raises(UnitEvalError, match="stage must be 1"):
        GPUNITRecipe({**toy, "stage": 3}, 2, torch.device("cpu"))
    with pytest.raises(UnitEvalError, match="power of two"):
        GPUNITRecipe({**toy, "img_size": 48, "load_size": 48}, 2, torch.device("cpu"))
    with pytest.raises(UnitEvalError, match="style_layer must be in 1..4"):
        GPUNITRecipe({**toy, "style_layer": 5}, 2, torch.device("cpu"))


def test_content_encoder_from_the_environment_and_finalize_leaves_the_rng(digits3, encoder_file, monkeypatch):
    monkeypatch.setenv("UNIT_EVAL_GPUNIT_CONTENT_ENCODER", str(encoder_file))
    recipe = GPUNITRecipe({**GPUNITRecipe.default_config(iters=1, **TOY), **CHEAP}, 3, torch.device("cpu"))
    assert recipe.run_config()["content_encoder_sha256"] == sha256_file(encoder_file)
    from unit_eval.baselines.common.data import eval_batches

    rng = torch.get_rng_state()
    recipe.finalize(eval_batches(scan(digits3), 32, torch.device("cpu")))
    assert torch.equal(torch.get_rng_state(), rng) and len(recipe.samplers) == 3


def test_bf16_autocast_step_is_finite(encoder_file):
    torch.manual_seed(0)
    cfg = {**GPUNITRecipe.default_config(iters=1, **TOY), "content_encoder": str(encoder_file), "amp": True, "amp_cpu": True}
    recipe = GPUNITRecipe(cfg, 2, torch.device("cpu"))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    lab = torch.tensor([0, 1, 0, 1])
    out = recipe.train_step({"source": {"image": x, "label": lab}, "target": {"image": x.flip(0), "label": lab}}, 0)
    assert all(math.isfinite(v) for v in out.values())
    assert all(torch.isfinite(p).all() for p in recipe.gen.parameters())


def test_stage1_run_save_roundtrip_is_weights_only(tmp_path):
    """A stage-I run.pt written by save_run loads as a content encoder for stage II (official layout inside)."""
    torch.manual_seed(2)
    ae = AutoEncoder(3, 8, 3, 32, 16)
    save_run(tmp_path / "run.pt", model="gpunit", config={**GPUNITRecipe.default_config(iters=1, **TOY), "stage": 1},
             state_dict={f"content_encoder.{k}": v for k, v in ae.contentE.state_dict().items()}, meta={})
    ours, _ = load_content_encoder(tmp_path / "run.pt", 8, 3)
    assert torch.equal(ours["layer1.0.conv.bias"], ae.contentE.state_dict()["layer1.0.conv.bias"])
    save_run(tmp_path / "s2.pt", model="gpunit", config={"stage": 2}, state_dict={}, meta={})
    with pytest.raises(UnitEvalError, match="not a gpunit stage-I run"):
        load_content_encoder(tmp_path / "s2.pt", 8, 3)


def test_unit_eval_train_gpunit_on_the_command_line(digits3, encoder_file, tmp_path, capsys, monkeypatch):
    """``unit-eval train gpunit`` as a user runs it: stage II with the content encoder given by ``--set``, the run's
    JSON summary on stdout; without an encoder, one line and exit 1 before any work."""
    from unit_eval.cli import main

    monkeypatch.delenv("UNIT_EVAL_GPUNIT_CONTENT_ENCODER", raising=False)
    before = torch.get_num_threads()
    out = tmp_path / "cli_run"
    with pytest.raises(SystemExit) as exc:
        main(["train", "gpunit", "--data", str(digits3), "--out", str(out), "--toy", "--iters", "2", "--device", "cpu",
              "--quiet", "--json", "--set", f"content_encoder={encoder_file}", "--set", "sampler_samples=60"])
    torch.set_num_threads(before)
    captured = capsys.readouterr()
    assert exc.value.code in (0, None), captured.err
    summary = json.loads(captured.out)
    assert summary["iterations"] == 2 and (out / "run.pt").is_file()
    assert load_checkpoint_translator(out / "run.pt").domain_names == ["0", "1", "2"]
    with pytest.raises(SystemExit) as exc:
        main(["train", "gpunit", "--data", str(digits3), "--out", str(tmp_path / "none"), "--toy", "--iters", "1",
              "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 1 and len(err.splitlines()) == 1 and "content encoder" in err, err
    assert not (tmp_path / "none" / "run.pt").exists()
