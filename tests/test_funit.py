"""FUNIT baseline: architecture at the published size, toy training through the shared loop, run.pt
round trip, seeded determinism and resume, class codes, bad inputs. CPU only, small and fast."""
from __future__ import annotations

import json

import pytest
import torch

from .conftest import n_params, write_digits
from unit_eval.baselines.common.data import load_eval_images, scan
from unit_eval.baselines.common.loop import train
from unit_eval.baselines.funit import losses
from unit_eval.baselines.funit.networks import FewShotGenerator, ProjectionResDiscriminator
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


def test_gradient_penalty_matches_definition():
    # sum over pixels of (d mean(D) / dx)^2, divided by the batch size (official calc_grad2)
    x = torch.randn(3, 3, 4, 4, requires_grad=True)
    resp = (x * 2.0).sum(dim=(1, 2, 3))
    # d mean(resp)/dx = 2/3 everywhere: sum = 3*48*(4/9), / 3 = 48*4/9
    assert torch.allclose(losses.real_gradient_penalty(resp, x), torch.tensor(48 * 4 / 9))
