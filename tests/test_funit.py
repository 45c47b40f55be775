"""FUNIT baseline: architecture at the published size, toy training through the shared loop, run.pt
round trip, seeded determinism and resume, class codes, bad inputs, and parity with the official NVlabs/FUNIT
networks (numbers pinned from the official code). CPU only, small and fast."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch

from .conftest import det_uniform, n_params, write_digits
from unit_eval.baselines.common.data import load_eval_images, scan
from unit_eval.baselines.common.loop import train
from unit_eval.baselines.funit import losses
from unit_eval.baselines.funit.networks import ActFirstResBlock, FewShotGenerator, ProjectionResDiscriminator
from unit_eval.baselines.funit.recipe import FUNITRecipe
from unit_eval.checkpoint import load_run, save_run
from unit_eval.errors import UnitEvalError
from unit_eval.translator import Translator, load_checkpoint_translator

pytestmark = pytest.mark.usefixtures("one_thread")

TOY = {"toy": True}


@pytest.fixture(scope="module")
def digits3(tmp_path_factory):
    # 36 px >= the toy load_size (32 px crops from 36 px, the official 140/128 ratio)
    return write_digits(tmp_path_factory.mktemp("funit_digits"), classes=(0, 1, 2), per_class=6, size=36)


@pytest.fixture(scope="module")
def toy_run(digits3, tmp_path_factory):
    out = tmp_path_factory.mktemp("funit_run")
    summary = train("funit", digits3, out, iters=4, seed=3, device="cpu", progress=False, extra=TOY,
                    log_every=1, sample_every=0, ckpt_every=0)
    return out, summary


def test_published_architecture_at_128():
    """Counts derived by hand from funit_animals.yaml (nf 64, nf_mlp 256, latent 64, 2 res blocks,
    3 content / 4 class downsamplings; D: nf 64, 10 blocks, 119 classes):
      class encoder  9,472 + 131,200 + 524,544 + 2 x 1,048,832 + 16,448        =  2,779,328
      content enc.   9,472 + 131,200 + 524,544 + 2,097,664 + 4 x 2,359,808      = 12,202,112
      decoder        4 x 2,359,808 + 3,277,056 + 819,328 + 204,864 + 9,411      = 13,749,891
      MLP (64 -> 256 -> 256 -> 4 AdaIN x 2 x 512 = 4096)                        =  1,135,104
      generator                                                                  = 29,866,435
      D features 7x7 conv + blocks 64,64 | 64,128 | 128,128 | 128,256 | ... | 1024,1024 x 2
                                                                                 = 54,130,624
      D classifier 1024 x 119 + 119 = 121,975                       D total      = 54,252,599
    """
    torch.manual_seed(0)
    g = FewShotGenerator()
    assert n_params(g.enc_class) == 2_779_328
    assert n_params(g.enc_content) == 12_202_112
    assert n_params(g.dec) == 13_749_891
    assert n_params(g.mlp) == 1_135_104
    assert n_params(g) == 29_866_435
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        content, code = g.content(x), g.class_code(x)
        y = g.decode(content, code)
    assert content.shape == (1, 512, 16, 16) and code.shape == (1, 64) and y.shape == (1, 3, 128, 128)
    assert y.abs().max() <= 1
    d = ProjectionResDiscriminator(119)
    assert n_params(d.features) == 54_130_624 and n_params(d) == 54_252_599
    with torch.no_grad():
        resp, feat = d(x, torch.tensor([7]))
    assert resp.shape == (1, 8, 8) and feat.shape == (1, 1024, 8, 8)


def test_default_config_is_the_published_one():
    cfg = FUNITRecipe.default_config(iters=100_000)
    assert (cfg["img_size"], cfg["load_size"], cfg["batch_size"]) == (128, 140, 64)
    assert cfg["resize_mode"] == "shorter_side"  # utils.py:48 Resize(140): shorter side, aspect kept
    assert (cfg["lr_gen"], cfg["lr_dis"], cfg["weight_decay"]) == (1e-4, 1e-4, 1e-4)
    assert (cfg["gan_w"], cfg["fm_w"], cfg["r_w"], cfg["gp_w"], cfg["ema_beta"]) == (1.0, 1.0, 0.1, 10.0, 0.999)
    assert FUNITRecipe.default_config(iters=1, img_size=64)["load_size"] == 70  # 140/128 kept
    with pytest.raises(UnitEvalError, match="does not take"):
        FUNITRecipe.default_config(iters=1, bogus=1)
    with pytest.raises(UnitEvalError, match="pseudo-domain"):
        FUNITRecipe.default_config(iters=1, k=10)


def test_toy_training_through_the_loop(toy_run):
    out, summary = toy_run
    assert summary["iterations"] == 4
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [1, 2, 3, 4]
    keys = ("d_real", "d_fake", "d_gp", "g_adv", "g_rec", "g_fm_rec", "g_fm_trans", "g_total")
    for key in keys:
        vals = [r[key] for r in rows]
        assert all(v is not None and abs(v) < 1e4 for v in vals), (key, vals)
        assert len(set(vals)) > 1, f"{key} did not move: {vals}"
    run = load_run(out / "run.pt")
    assert run["model"] == "funit" and run["meta"]["class_names"] == ["0", "1", "2"]
    assert run["config"]["num_classes"] == 3 and run["state_dict"]["class_codes"].shape == (3, 16)


def test_run_roundtrip_identical_outputs(digits3, tmp_path):
    torch.manual_seed(0)
    cfg = FUNITRecipe.default_config(iters=2, **TOY)
    recipe = FUNITRecipe(cfg, 3, torch.device("cpu"))
    x = load_eval_images(scan(digits3), range(8), 32)
    batch = {"content": {"image": x[:4], "label": torch.tensor([0, 0, 1, 2])},
             "style": {"image": x[4:], "label": torch.tensor([1, 2, 2, 0])}}
    for it in range(2):
        recipe.train_step(batch, it)
    save_run(tmp_path / "run.pt", model="funit", config=recipe.run_config(),
             state_dict=recipe.inference_state_dict(), meta={"class_names": ["0", "1", "2"]})
    loaded = load_checkpoint_translator(tmp_path / "run.pt")
    live = recipe.translator()
    assert isinstance(loaded, Translator) and loaded.num_domains == 3 and loaded.image_size == 32
    src, ref = x[:3], x[3:6]
    assert torch.equal(loaded.translate(src, ref), live.translate(src, ref))
    assert torch.equal(loaded.style(ref), live.style(ref))
    assert torch.equal(loaded.translate_to_domain(src, [0, 1, 2]), live.translate_to_domain(src, [0, 1, 2]))
    # K-shot: the mean code of the references, applied to every source (official test_k_shot)
    expect = live.translate_with_code(src, live.style(ref).mean(0, keepdim=True))
    assert torch.allclose(loaded.translate_k_shot(src, ref), expect, atol=1e-6)
    # one reference for many sources broadcasts
    assert torch.allclose(live.translate(src, ref[:1]), live.translate(src, ref[:1].expand(3, -1, -1, -1)), atol=1e-5)
    with pytest.raises(UnitEvalError, match="works at 32x32"):
        live.translate(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16))


def test_finalize_stores_exact_class_mean_codes(toy_run, digits3):
    out, _ = toy_run
    tr = load_checkpoint_translator(out / "run.pt")
    index = scan(digits3)
    for c in range(3):
        ids = [i for i, lab in enumerate(index.labels) if lab == c]
        mean = tr.style(load_eval_images(index, ids, 32)).mean(0)
        assert torch.allclose(tr.class_codes[c], mean, atol=1e-5)
    # translate_to_domain(c) == decoding with class c's stored code
    src = load_eval_images(index, [0, 7], 32)
    assert torch.equal(tr.translate_to_domain(src, 2), tr.translate_with_code(src, tr.class_codes[2:3]))


def test_seeded_determinism(digits3, toy_run, tmp_path):
    out, _ = toy_run
    ref = load_run(out / "run.pt")["state_dict"]
    train("funit", digits3, tmp_path / "again", iters=4, seed=3, device="cpu", progress=False, extra=TOY,
          sample_every=0, ckpt_every=0)
    again = load_run(tmp_path / "again" / "run.pt")["state_dict"]
    assert ref.keys() == again.keys() and all(torch.equal(ref[k], again[k]) for k in ref)


def test_exact_resume(digits3, toy_run, tmp_path):
    # 2 iterations, then resume to 4: identical to 4 straight
    ref = load_run(toy_run[0] / "run.pt")["state_dict"]
    train("funit", digits3, tmp_path / "res", iters=2, seed=3, device="cpu", progress=False, extra=TOY,
          sample_every=0, ckpt_every=0)
    (tmp_path / "res" / "run.pt").unlink()
    train("funit", digits3, tmp_path / "res", iters=4, device="cpu", progress=False, resume=True,
          sample_every=0, ckpt_every=0)
    resumed = load_run(tmp_path / "res" / "run.pt")["state_dict"]
    assert all(torch.equal(ref[k], resumed[k]) for k in ref)


def test_unlabelled_mode_on_one_class(tmp_path):
    data = write_digits(tmp_path / "one", classes=(5,), per_class=4, size=36)
    summary = train("funit", data, tmp_path / "run", iters=1, device="cpu", progress=False,
                    extra={**TOY, "use_labels": False}, sample_every=0, ckpt_every=0)
    assert summary["iterations"] == 1
    tr = load_checkpoint_translator(tmp_path / "run" / "run.pt")
    assert tr.num_domains is None and "class_codes" not in load_run(tmp_path / "run" / "run.pt")["state_dict"]
    with pytest.raises(UnitEvalError, match="no class codes"):
        tr.translate_to_domain(torch.zeros(1, 3, 32, 32), 0)


def test_bad_inputs_are_one_line_errors(tmp_path):
    one = write_digits(tmp_path / "one", classes=(5,), per_class=4, size=36)
    with pytest.raises(UnitEvalError) as err:
        train("funit", one, tmp_path / "r1", iters=1, device="cpu", progress=False, extra=TOY)
    assert "at least 2 class folders" in str(err.value) and "\n" not in str(err.value)
    small = write_digits(tmp_path / "small", classes=(0, 1), per_class=3, size=16)
    with pytest.raises(UnitEvalError) as err:
        train("funit", small, tmp_path / "r2", iters=1, device="cpu", progress=False, extra=TOY)
    assert "smaller than the training resolution" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UnitEvalError, match="divisible"):
        FUNITRecipe(FUNITRecipe.default_config(iters=1, img_size=36, **TOY), 2, torch.device("cpu"))


def test_bf16_autocast_step_is_finite():
    torch.manual_seed(0)
    cfg = FUNITRecipe.default_config(iters=1, **TOY)
    cfg.update(amp=True, amp_cpu=True)
    recipe = FUNITRecipe(cfg, 2, torch.device("cpu"))
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    lab = torch.tensor([0, 1, 0, 1])
    out = recipe.train_step({"content": {"image": x, "label": lab}, "style": {"image": x.flip(0), "label": lab}}, 0)
    assert all(torch.isfinite(torch.tensor(v)) for v in out.values())
    assert all(torch.isfinite(p).all() for p in recipe.gen.parameters())


def _step_gradients(micro_batch, whole_batch_losses=False, monkeypatch=None):
    """Gradients D and G receive in one toy step (captured at each optimiser step, which is then skipped), and the
    logged parts, from one fixed initial state and batch."""
    torch.manual_seed(0)
    cfg = FUNITRecipe.default_config(iters=1, **TOY)
    cfg["micro_batch"] = micro_batch
    recipe = FUNITRecipe(cfg, 3, torch.device("cpu"))
    g = torch.Generator().manual_seed(1)
    x_a, x_b = torch.rand(6, 3, 32, 32, generator=g) * 2 - 1, torch.rand(6, 3, 32, 32, generator=g) * 2 - 1
    l_a, l_b = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([2, 2, 1, 0, 0, 1])
    grads = {}
    for name, opt, net in (("d", recipe.opt_d, recipe.dis), ("g", recipe.opt_g, recipe.gen)):
        opt.step = (lambda name=name, net=net: grads.__setitem__(
            name, torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None]).clone()))
    if whole_batch_losses:  # mutation: every micro-batch scored as if it were the whole batch
        for fn in ("discriminator_loss", "generator_loss"):
            original = getattr(losses, fn)
            monkeypatch.setattr(losses, fn, lambda *a, _f=original, **k: _f(*a, **{**k, "batch": None}))
    parts = recipe.train_step({"content": {"image": x_a, "label": l_a}, "style": {"image": x_b, "label": l_b}}, 0)
    return grads, parts


@pytest.mark.parametrize("micro_batch", [2, 4])  # 4: uneven micro-batches (4 + 2)
def test_micro_batches_give_the_whole_batch_gradient(micro_batch, monkeypatch):
    whole, whole_parts = _step_gradients(0)
    micro, micro_parts = _step_gradients(micro_batch)
    close = lambda a, b: torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()))  # noqa: E731  float32 sums
    for net in ("d", "g"):
        assert close(micro[net], whole[net]), net
    assert micro_parts == pytest.approx(whole_parts, rel=1e-5, abs=1e-7)
    mutated, _ = _step_gradients(micro_batch, whole_batch_losses=True, monkeypatch=monkeypatch)
    assert not close(mutated["d"], whole["d"]) and not close(mutated["g"], whole["g"])


def test_micro_batch_gradient_penalty_keeps_the_whole_batch_normalisation():
    # the official penalty: grad of the whole batch's mean -> 1/B per sample, then / B
    x = torch.randn(4, 3, 4, 4, requires_grad=True)
    resp = (x * 2.0).sum(dim=(1, 2, 3))
    whole = losses.real_gradient_penalty(resp, x)
    halves = sum(losses.real_gradient_penalty((x[i:i + 2] * 2.0).sum(dim=(1, 2, 3)), x, batch=4) for i in (0, 2))
    assert torch.allclose(halves, whole)


def test_gradient_penalty_matches_definition():
    # sum over pixels of (d mean(D) / dx)^2, divided by the batch size (official calc_grad2)
    x = torch.randn(3, 3, 4, 4, requires_grad=True)
    resp = (x * 2.0).sum(dim=(1, 2, 3))
    # d mean(resp)/dx = 2/3 everywhere: sum = 3*48*(4/9), / 3 = 48*4/9
    assert torch.allclose(losses.real_gradient_penalty(resp, x), torch.tensor(48 * 4 / 9))


# ----------------------------------------------------------------------------- parity with NVlabs/FUNIT
# Pinned from the official code, NVlabs/FUNIT commit 198f430b6ef1abe940251b30f51d5cc68a476787
# (2021-04-21), on 2026-12-01: a scratch script outside this repository imported the unmodified official
# networks.py/blocks.py (``torch.Tensor.cuda`` patched to a no-op so that it runs on CPU, torch 2.14,
# 1 thread, float32), built ``FewShotGen(OFFICIAL_GEN)`` and ``GPPatchMcResDis(OFFICIAL_DIS)``, set
# every parameter ``name`` to ``_det_param(name, shape)`` (below: splitmix64 of crc32(name) and the
# element index -> uniform [-1, 1), times sqrt(6 / fan_in) for weights and 0.1 for biases; no RNG of
# either implementation is involved), fed ``det_uniform("content"|"class", (2, 3, 32, 32))`` with
# labels [0, 2] and recorded:
#   resp, feat = dis(x_b, labels); reg = dis.calc_grad2(resp, x_b)      (x_b.requires_grad_())
#   x_t = gen.decode(gen.enc_content(x_a), gen.enc_class_model(x_b))    (per-sample translation)
#   k_shot = gen(x_a[:1], x_b)                                          (class codes averaged)
# OFFICIAL_PARAMS lists the official model's named_parameters() (name, shape) in order.
OFFICIAL_GEN = dict(nf=8, nf_mlp=16, latent_dim=8, n_mlp_blks=3, n_res_blks=2, n_downs_content=2, n_downs_class=3)
OFFICIAL_DIS = dict(nf=8, n_res_blks=6, num_classes=3)
OFFICIAL_PARAMS = """
enc_class_model.model.0.conv.weight 8,3,7,7
enc_class_model.model.0.conv.bias 8
enc_class_model.model.1.conv.weight 16,8,4,4
enc_class_model.model.1.conv.bias 16
enc_class_model.model.2.conv.weight 32,16,4,4
enc_class_model.model.2.conv.bias 32
enc_class_model.model.3.conv.weight 32,32,4,4
enc_class_model.model.3.conv.bias 32
enc_class_model.model.5.weight 8,32,1,1
enc_class_model.model.5.bias 8
enc_content.model.0.conv.weight 8,3,7,7
enc_content.model.0.conv.bias 8
enc_content.model.1.conv.weight 16,8,4,4
enc_content.model.1.conv.bias 16
enc_content.model.2.conv.weight 32,16,4,4
enc_content.model.2.conv.bias 32
enc_content.model.3.model.0.model.0.conv.weight 32,32,3,3
enc_content.model.3.model.0.model.0.conv.bias 32
enc_content.model.3.model.0.model.1.conv.weight 32,32,3,3
enc_content.model.3.model.0.model.1.conv.bias 32
enc_content.model.3.model.1.model.0.conv.weight 32,32,3,3
enc_content.model.3.model.1.model.0.conv.bias 32
enc_content.model.3.model.1.model.1.conv.weight 32,32,3,3
enc_content.model.3.model.1.model.1.conv.bias 32
dec.model.0.model.0.model.0.conv.weight 32,32,3,3
dec.model.0.model.0.model.0.conv.bias 32
dec.model.0.model.0.model.1.conv.weight 32,32,3,3
dec.model.0.model.0.model.1.conv.bias 32
dec.model.0.model.1.model.0.conv.weight 32,32,3,3
dec.model.0.model.1.model.0.conv.bias 32
dec.model.0.model.1.model.1.conv.weight 32,32,3,3
dec.model.0.model.1.model.1.conv.bias 32
dec.model.2.conv.weight 16,32,5,5
dec.model.2.conv.bias 16
dec.model.4.conv.weight 8,16,5,5
dec.model.4.conv.bias 8
dec.model.5.conv.weight 3,8,7,7
dec.model.5.conv.bias 3
mlp.model.0.fc.weight 16,8
mlp.model.0.fc.bias 16
mlp.model.1.fc.weight 16,16
mlp.model.1.fc.bias 16
mlp.model.2.fc.weight 256,16
mlp.model.2.fc.bias 256
cnn_f.0.conv.weight 8,3,7,7
cnn_f.0.conv.bias 8
cnn_f.1.conv_0.conv.weight 8,8,3,3
cnn_f.1.conv_0.conv.bias 8
cnn_f.1.conv_1.conv.weight 8,8,3,3
cnn_f.1.conv_1.conv.bias 8
cnn_f.2.conv_0.conv.weight 8,8,3,3
cnn_f.2.conv_0.conv.bias 8
cnn_f.2.conv_1.conv.weight 16,8,3,3
cnn_f.2.conv_1.conv.bias 16
cnn_f.2.conv_s.conv.weight 16,8,1,1
cnn_f.5.conv_0.conv.weight 16,16,3,3
cnn_f.5.conv_0.conv.bias 16
cnn_f.5.conv_1.conv.weight 16,16,3,3
cnn_f.5.conv_1.conv.bias 16
cnn_f.6.conv_0.conv.weight 16,16,3,3
cnn_f.6.conv_0.conv.bias 16
cnn_f.6.conv_1.conv.weight 32,16,3,3
cnn_f.6.conv_1.conv.bias 32
cnn_f.6.conv_s.conv.weight 32,16,1,1
cnn_f.9.conv_0.conv.weight 32,32,3,3
cnn_f.9.conv_0.conv.bias 32
cnn_f.9.conv_1.conv.weight 32,32,3,3
cnn_f.9.conv_1.conv.bias 32
cnn_f.10.conv_0.conv.weight 32,32,3,3
cnn_f.10.conv_0.conv.bias 32
cnn_f.10.conv_1.conv.weight 64,32,3,3
cnn_f.10.conv_1.conv.bias 64
cnn_f.10.conv_s.conv.weight 64,32,1,1
cnn_c.0.conv.weight 3,64,1,1
cnn_c.0.conv.bias 3
"""
# (sum, sum of |.|, sum of squares) and values at fixed positions of the official outputs
OFFICIAL_SUMS = {
    "resp": (-189.914498, 197.910651, 441.044002),
    "feat": (8730.38484, 11921.221, 35768.4124),
    "x_t": (1209.76234, 3480.65802, 2510.53089),
    "k_shot": (605.886353, 1744.86956, 1267.65069),
}
OFFICIAL_REG = 0.153531581
OFFICIAL_VALUES = [
    (("resp", (0, 0, slice(0, 4))), [-0.37127122, -0.21302184, -1.15215266, -0.66211730]),
    (("resp", (1, 5, slice(3, 7))), [-3.31476045, -0.88146001, 1.01798618, -1.29086506]),
    (("feat", (0, slice(0, 4), 1, 2)), [-0.59893644, 3.01600575, 4.88005495, -0.04541745]),
    (("feat", (1, slice(60, 64), 7, 0)), [4.28146029, 1.29596055, 0.59810102, 2.75503111]),
    (("x_t", (0, slice(None), 3, 5)), [-0.64074451, -0.26296499, 0.67900562]),
    (("x_t", (1, slice(None), 30, 17)), [-0.89145327, -0.67708737, 0.59771734]),
    (("k_shot", (0, slice(None), 16, 16)), [0.88779366, -0.06873438, 0.07984608]),
]


def _det_param(name: str, shape) -> torch.Tensor:
    v = det_uniform(name, shape)
    return (v * math.sqrt(6.0 / math.prod(shape[1:])) if len(shape) > 1 else v * 0.1).float()


def _official_to_local(name: str) -> str:
    """NVlabs/FUNIT parameter name -> ours (FewShotGenerator / ProjectionResDiscriminator)."""
    rules = [
        (r"enc_class_model\.model\.(\d+)\.(conv\.)?(weight|bias)",
         lambda m: f"enc_class.model.{m[1]}.{m[2] or ''}{m[3]}"),
        # ResBlocks (official: one Sequential at index 1 + n_downs) are flattened into our Sequential
        (r"enc_content\.model\.(\d+)\.model\.(\d+)\.model\.(\d+)\.conv\.(weight|bias)",
         lambda m: f"enc_content.model.{int(m[1]) + int(m[2])}.c{int(m[3]) + 1}.conv.{m[4]}"),
        (r"enc_content\.model\.(\d+)\.conv\.(weight|bias)", lambda m: f"enc_content.model.{m[1]}.conv.{m[2]}"),
        (r"dec\.model\.0\.model\.(\d+)\.model\.(\d+)\.conv\.(weight|bias)",
         lambda m: f"dec.res.{m[1]}.conv{int(m[2]) + 1}.{m[3]}"),
        (r"dec\.model\.(\d+)\.conv\.(weight|bias)", lambda m: f"dec.up.{int(m[1]) - 1}.conv.{m[2]}"),
        (r"mlp\.model\.(\d+)\.fc\.(weight|bias)", lambda m: f"mlp.model.{2 * int(m[1])}.{m[2]}"),
        (r"cnn_f\.(\d+)\.conv_s\.conv\.weight", lambda m: f"features.{m[1]}.shortcut.weight"),
        (r"cnn_f\.(\d+)\.((conv_[01]\.)?conv\.(weight|bias))", lambda m: f"features.{m[1]}.{m[2]}"),
        (r"cnn_c\.0\.conv\.(weight|bias)", lambda m: f"classifier.conv.{m[1]}"),
    ]
    for pattern, local in rules:
        m = re.fullmatch(pattern, name)
        if m:
            return local(m)
    raise AssertionError(f"no mapping for official parameter {name}")


def _load_official_weights(gen: torch.nn.Module, dis: torch.nn.Module) -> None:
    params = {f"{net}.{k}": v for net, module in (("gen", gen), ("dis", dis)) for k, v in module.named_parameters()}
    seen = set()
    with torch.no_grad():
        for line in OFFICIAL_PARAMS.strip().splitlines():
            name, shape = line.split()
            shape = tuple(int(s) for s in shape.split(","))
            net = "dis" if name.startswith("cnn_") else "gen"
            local = f"{net}.{_official_to_local(name)}"
            assert local in params and local not in seen, (name, local)
            assert tuple(params[local].shape) == shape, (name, local, tuple(params[local].shape), shape)
            params[local].copy_(_det_param(name, shape))
            seen.add(local)
    assert seen == set(params), sorted(set(params) - seen)  # a bijection: no parameter left unset


def test_networks_match_official_funit():
    """Our generator and discriminator compute the official functions (numbers pinned from NVlabs/FUNIT)."""
    gen = FewShotGenerator(**OFFICIAL_GEN)
    dis = ProjectionResDiscriminator(OFFICIAL_DIS["num_classes"], OFFICIAL_DIS["nf"], OFFICIAL_DIS["n_res_blks"])
    _load_official_weights(gen, dis)
    x_a = det_uniform("content", (2, 3, 32, 32)).float()
    x_b = det_uniform("class", (2, 3, 32, 32)).float().requires_grad_(True)
    resp, feat = dis(x_b, torch.tensor([0, 2]))
    reg = losses.real_gradient_penalty(resp, x_b)
    with torch.no_grad():
        x_t = gen.decode(gen.content(x_a), gen.class_code(x_b))
        k_shot = gen.decode(gen.content(x_a[:1]), gen.class_code(x_b).mean(0, keepdim=True))
    outs = {"resp": resp.detach(), "feat": feat.detach(), "x_t": x_t, "k_shot": k_shot}
    for key, (s, a, q) in OFFICIAL_SUMS.items():
        t = outs[key].double()
        got = (t.sum().item(), t.abs().sum().item(), t.pow(2).sum().item())
        assert got == pytest.approx((s, a, q), rel=2e-5, abs=1e-3), key
    for (key, idx), values in OFFICIAL_VALUES:
        assert outs[key][idx].tolist() == pytest.approx(values, abs=2e-5), (key, idx)
    assert reg.item() == pytest.approx(OFFICIAL_REG, rel=1e-4)


def test_act_first_block_shortcut_carries_activated_input():
    """Official blocks.py: the in-place LeakyReLU of conv_0 overwrites x before the identity shortcut reads
    it (lrelu(x) + F(x)); a learned shortcut reads x first (W x + F(x)). Gradients flow (no in-place op)."""
    import torch.nn.functional as F

    def residual(block, x):  # F(x) = conv_1(lrelu(conv_0(lrelu(x)))), 3x3 convs with reflection padding
        h = block.conv_0.conv(F.pad(F.leaky_relu(x, 0.2), (1, 1, 1, 1), mode="reflect"))
        return block.conv_1.conv(F.pad(F.leaky_relu(h, 0.2), (1, 1, 1, 1), mode="reflect"))

    torch.manual_seed(0)
    same, wider = ActFirstResBlock(4, 4), ActFirstResBlock(4, 6)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    assert torch.allclose(same(x), F.leaky_relu(x, 0.2) + residual(same, x), atol=1e-6)
    assert torch.allclose(wider(x), wider.shortcut(x) + residual(wider, x), atol=1e-6)
    (same(x).sum() + wider(x).sum()).backward()
    assert torch.isfinite(x.grad).all()


def test_finalize_pass_shows_progress_and_quiet_hides_it(digits3, tmp_path):
    """Found at paper scale: the pass over the training set after the last iteration (FUNIT's class codes, TUNIT's
    domain styles) ran for minutes without a word on a CPU. It now has its own bar on stderr."""
    import subprocess
    import sys

    def train_cli(out, *extra):
        return subprocess.run([sys.executable, "-m", "unit_eval.cli", "train", "funit", "--data", str(digits3), "--out",
                               str(out), "--iters", "1", "--toy", "--device", "cpu", *extra],
                              capture_output=True, text=True, timeout=300)

    shown = train_cli(tmp_path / "a")
    assert shown.returncode == 0, shown.stderr
    assert "funit: finalize over the training set" in shown.stderr
    quiet = train_cli(tmp_path / "b", "--quiet")
    assert quiet.returncode == 0 and "finalize over the training set" not in quiet.stderr
