"""TUNIT: architectures vs the paper's tables, toy training, checkpoints, exact resume, bad input.

Toy runs use 32 px digits (scikit-learn) saved as PNG class folders, TUNIT's ``toy`` config
(widths 8, batch 4) and one CPU thread.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

from unit_eval.baselines.common import data as data_mod
from unit_eval.baselines.common.loop import load_resume, train
from unit_eval.baselines.tunit import adapter
from unit_eval.baselines.tunit.networks import Discriminator, Generator, GuidingNet
from unit_eval.baselines.tunit.recipe import TunitRecipe
from unit_eval.checkpoint import save_run
from unit_eval.errors import UnitEvalError
from unit_eval.translator import load_checkpoint_translator

from .conftest import assert_same_state, write_digits

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("tunit") / "digits")


def nparams(m):
    return sum(p.numel() for p in m.parameters())


def conv(k, cin, cout, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


# ----------------------------------------------------------------------------- architecture (Tables 4-6)
def test_parameter_counts_and_shapes_match_tables_at_128():
    ch, K, sty = 64, 10, 128
    # Table 5: VGG11-BN trunk (8 conv3x3 + BN), GAP, FC 128 (style) and FC K-hat (clusters)
    widths = [3, ch, 2 * ch, 4 * ch, 4 * ch, 8 * ch, 8 * ch, 8 * ch, 8 * ch]
    guide = sum(conv(3, a, b) + 2 * b for a, b in zip(widths, widths[1:])) + (8 * ch + 1) * sty + (8 * ch + 1) * K
    # Table 4: conv7x7, 3 x conv4x4 (IN has no parameters), 4 ResBlks of two conv3x3 at 8ch,
    # 3 x conv5x5, conv7x7 -> 3; plus the MLP producing AdaIN (mean, std) for 2 ResBlks + 3 convs
    gen_table = (conv(7, 3, ch) + conv(4, ch, 2 * ch) + conv(4, 2 * ch, 4 * ch) + conv(4, 4 * ch, 8 * ch)
                 + 4 * 2 * conv(3, 8 * ch, 8 * ch)
                 + conv(5, 8 * ch, 4 * ch) + conv(5, 4 * ch, 2 * ch) + conv(5, 2 * ch, ch) + conv(7, ch, 3))
    n_adain = 2 * (4 * 8 * ch + 4 * ch + 2 * ch + ch)
    mlp = (sty + 1) * 256 + (256 + 1) * 256 + (256 + 1) * n_adain
    # Table 6: conv3x3, 10 FRN ResBlks (FRN: tau, gamma, beta per channel; 1x1 shortcut without bias
    # when the width changes), conv4x4, conv1x1 -> K-hat
    pairs = [(ch, ch), (ch, 2 * ch), (2 * ch, 2 * ch), (2 * ch, 4 * ch), (4 * ch, 4 * ch), (4 * ch, 8 * ch),
             (8 * ch, 8 * ch), (8 * ch, 16 * ch), (16 * ch, 16 * ch), (16 * ch, 16 * ch)]
    disc = conv(3, 3, ch) + sum(2 * 3 * a + conv(3, a, a) + conv(3, a, b) + (a * b if a != b else 0) for a, b in pairs)
    disc += conv(4, 16 * ch, 16 * ch) + conv(1, 16 * ch, K)

    C, G, D = GuidingNet(K, sty, ch), Generator(128, sty), Discriminator(128, K)
    assert nparams(C) == guide == 9_296_778
    assert nparams(G) == gen_table + mlp == 27_333_763
    assert nparams(D) == disc == 70_935_242
    assert G.n_adain == n_adain

    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert C.features(x).shape == (1, 8 * ch, 4, 4)
        logits, s = C(x)
        assert logits.shape == (1, K) and s.shape == (1, sty)
        c = G.encode(x)
        assert c.shape == (1, 8 * ch, 16, 16)
        y = G.decode(c, s)
        assert y.shape == (1, 3, 128, 128) and y.abs().max() <= 1
        assert D.blocks(D.stem(x)).shape == (1, 16 * ch, 4, 4)
        assert D(x, torch.tensor([3])).shape == (1,)


def test_widths_follow_resolution():
    assert Generator(256, 128).content.stem.conv.out_channels == 32
    with pytest.raises(UnitEvalError, match="power-of-two"):
        Generator(48, 128)


# ----------------------------------------------------------------------------- losses
def test_loss_values():
    from unit_eval.baselines.tunit.losses import augment, contrastive_loss, iic_loss

    k = 4
    onehot = torch.eye(k).repeat(3, 1)
    assert iic_loss(onehot, onehot).item() == pytest.approx(-math.log(k), abs=1e-6)  # MI = log K
    uniform = torch.full((6, k), 1.0 / k)
    assert iic_loss(uniform, uniform).item() == pytest.approx(0.0, abs=1e-7)
    q = torch.tensor([[0.3, 0.0]])
    queue = torch.tensor([[0.0, 0.3], [-0.3, 0.0]])
    pos, neg = 0.09 / 0.07, -0.09 / 0.07
    expected = -math.log(math.exp(pos) / (math.exp(pos) + 1 + math.exp(neg)))
    assert contrastive_loss(q, q, queue).item() == pytest.approx(expected, rel=1e-5)
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    y = augment(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and not torch.equal(x, y)


# ----------------------------------------------------------------------------- training
def _recipe(p_semi=None, k=None, warmup=3, num_classes=3):
    cfg = TunitRecipe.default_config(iters=20, toy=True, p_semi=p_semi, k=k)
    cfg["warmup_iters"] = warmup
    torch.manual_seed(0)
    return TunitRecipe(cfg, num_classes, torch.device("cpu"))


def _batches(digits, n, batch=4, seed=0):
    index = data_mod.scan(digits)
    streams = data_mod.Streams(index, {"main": None}, img_size=32, load_size=32, hflip=True, global_batch=batch,
                               seed=seed, rank=0, world_size=1, start=0, device=torch.device("cpu"))
    return index, [next(streams) for _ in range(n)]


def test_toy_training_losses_finite_and_moving(digits):
    import time

    r = _recipe(warmup=3)
    index, batches = _batches(digits, 8)
    r.bind_data(index)
    g0 = {k: v.clone() for k, v in r.G.state_dict().items()}
    d0 = {k: v.clone() for k, v in r.D.state_dict().items()}
    history, times = [], []
    for it, b in enumerate(batches):
        t = time.perf_counter()
        history.append(r.train_step(b, it))
        times.append(time.perf_counter() - t)
        if it == 2:  # warm-up: only the guiding network trains
            assert all(torch.equal(g0[k], v) for k, v in r.G.state_dict().items())
            assert all(torch.equal(d0[k], v) for k, v in r.D.state_dict().items())
    assert set(history[0]) == {"E/moco", "E/iic", "E/total"}
    assert {"D/real", "D/fake", "D/r1", "G/adv", "G/rec", "G/style", "G/total"} <= set(history[-1])
    assert all(math.isfinite(v) for h in history for v in h.values())
    assert len({round(h["E/moco"], 6) for h in history}) > 1 and len({round(h["G/total"], 6) for h in history[3:]}) > 1
    # joint training changes G and D; the E loss is scaled by 0.1
    assert any(not torch.equal(g0[k], v) for k, v in r.G.state_dict().items())
    assert history[-1]["E/total"] == pytest.approx(0.1 * (history[-1]["E/moco"] + 5 * history[-1]["E/iic"]), rel=1e-4)
    assert r.queue.shape == (min(256, 4 * 9), 16)
    assert max(times[1:]) < 5.0  # generous bound on a busy machine; typically ~0.05 s warm-up / 0.2 s joint


def test_semi_supervised_uses_labels(digits):
    r = _recipe(p_semi=0.5, warmup=1)
    assert r.config["k"] == 3
    index, batches = _batches(digits, 3)
    r.bind_data(index)
    assert int(r.labelled.sum()) == 3 * 6
    hist = [r.train_step(b, i) for i, b in enumerate(batches)]
    assert all("E/ce" in h and math.isfinite(h["E/ce"]) for h in hist)
    with pytest.raises(UnitEvalError, match="K-hat = number of class folders"):
        _recipe(p_semi=0.5, k=5)


# ----------------------------------------------------------------------------- runs, checkpoints, resume
def _train(digits, out, iters, **kw):
    return train("tunit", digits, out, iters=iters, seed=kw.pop("seed", 1), device="cpu", progress=False, log_every=1,
                 extra={"toy": True}, overrides={"warmup_iters": 2}, sample_every=kw.pop("sample_every", 3),
                 ckpt_every=kw.pop("ckpt_every", 3), **kw)


@pytest.fixture(scope="module")
def runs(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("tunit_runs")
    _train(digits, root / "a", 6)
    _train(digits, root / "b", 4, ckpt_every=0)
    _train(digits, root / "b", 6, resume=True)
    _train(digits, root / "c", 6, sample_every=0)
    return root


def test_exact_resume_and_seeded_determinism(runs):
    a = load_resume(runs / "a" / "resume.pt", "tunit")
    b = load_resume(runs / "b" / "resume.pt", "tunit")
    c = load_resume(runs / "c" / "resume.pt", "tunit")
    assert a["iteration"] == b["iteration"] == 6
    assert_same_state(a["recipe"], b["recipe"])  # nets, EMA, optimisers, queue: 6 == 4 + resume + 2
    assert_same_state(a["recipe"], c["recipe"])  # same seed, fresh run
    la = [json.loads(l) for l in (runs / "a" / "log.jsonl").read_text().splitlines()]
    lb = [json.loads(l) for l in (runs / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in lb] == list(range(1, 7))
    assert [r["G/total"] for r in la[2:]] == [r["G/total"] for r in lb[2:]]


def test_checkpoint_roundtrip_identical_outputs(runs, digits):
    tr = load_checkpoint_translator(runs / "a" / "run.pt")
    assert tr.image_size == 32 and tr.num_domains == 10 and len(tr.ckpt_sha256) == 64
    state = load_resume(runs / "a" / "resume.pt", "tunit")
    recipe = TunitRecipe(state["config"], 3, torch.device("cpu"))
    recipe.load_state_dict(state["recipe"])
    live = recipe.translator()
    index = data_mod.scan(digits)
    x = data_mod.load_eval_images(index, [0, 12, 24, 5], 32)
    ref = data_mod.load_eval_images(index, [30, 1, 17, 8], 32)
    out = tr.translate(x, ref)
    assert out.shape == (4, 3, 32, 32) and torch.isfinite(out).all()
    assert torch.equal(out, live.translate(x, ref))
    assert torch.equal(tr.style(ref), live.style(ref)) and tr.style(ref).shape == (4, 16)
    ids = tr.cluster(x)
    assert ids.shape == (4,) and int(ids.max()) < 10 and torch.equal(ids, live.cluster(x))
    assert tr.cluster(x, ema=False).shape == (4,)
    assert int(tr.domain_counts.sum()) == 36  # average styles over the whole training set
    dom = int(tr.domain_counts.argmax())
    y = tr.translate_to_domain(x, dom)
    assert torch.equal(y, tr.translate_with_style(x, tr.domain_styles[dom:dom + 1]))
    empty = [i for i in range(10) if int(tr.domain_counts[i]) == 0]
    if empty:
        with pytest.raises(UnitEvalError, match="received no images"):
            tr.translate_to_domain(x, empty[0])
    with pytest.raises(UnitEvalError, match="works at 32 px"):
        tr.translate(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))
    samples = sorted(p.name for p in (runs / "a" / "samples").iterdir())
    assert samples == ["iter_0000003.png", "iter_0000006.png"]
    assert Image.open(runs / "a" / "samples" / samples[-1]).size == (9 * 32, 9 * 32)


def _to_official(sd: dict, net: str, n_downs: int) -> dict:
    """Test-side inverse of the official naming (clovaai/tunit models/*.py), with a DDP prefix."""
    out = {}
    for k, v in sd.items():
        if net == "guide":
            o = k.replace("cluster_head.", "disc.").replace("style_head.", "cont.")
        else:
            p = k.split(".")
            if p[0] == "content":
                if p[1] == "stem":
                    o = f"cnt_encoder.model.0.conv.{p[-1]}"
                elif p[1] == "down":
                    o = f"cnt_encoder.model.{int(p[2]) + 1}.conv.{p[-1]}"
                else:
                    o = f"cnt_encoder.model.{n_downs + 1}.model.{p[2]}.model.{int(p[3][-1]) - 1}.conv.{p[-1]}"
            elif p[0] == "decoder":
                if p[1] == "res":
                    o = f"decoder.model.0.model.{p[2]}.model.{int(p[3][-1]) - 1}.conv.{p[-1]}"
                elif p[1] == "up":
                    o = f"decoder.model.{2 * int(p[2]) + 2}.conv.{p[-1]}"
                else:
                    o = f"decoder.model.{2 * n_downs + 1}.conv.{p[-1]}"
            else:
                o = f"mlp.model.{int(p[1]) // 2}.fc.{p[2]}"
        out["module." + o] = v
    if net == "generator":  # AdaIN running statistics exist in official checkpoints and are ignored
        out["module.decoder.model.0.model.0.model.0.norm.running_mean"] = torch.zeros(8)
    return out


def test_official_checkpoint_layout(tmp_path):
    torch.manual_seed(3)
    size = 64
    G, C = Generator(size, 128), GuidingNet(10, 128)
    ckpt = {"G_EMA_state_dict": _to_official(G.state_dict(), "generator", 2),
            "C_EMA_state_dict": _to_official(C.state_dict(), "guide", 2),
            "C_state_dict": _to_official(C.state_dict(), "guide", 2),
            "g_optimizer": {"state": {}, "param_groups": []}, "epoch": 3}
    torch.save(ckpt, tmp_path / "model_4567.ckpt")
    tr = adapter.from_official_ckpt(tmp_path / "model_4567.ckpt", img_size=size, output_k=10)
    G.eval(), C.eval()
    x, r = torch.rand(2, 3, size, size) * 2 - 1, torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        assert torch.equal(tr.translate(x, r), G(x, C.style(r)))
    with pytest.raises(UnitEvalError, match="set_domain_styles"):
        tr.translate_to_domain(x, 0)
    tr.set_domain_styles(torch.cat([x, r]))
    assert tr.translate_to_domain(x, torch.tensor([int(tr.domain_counts.argmax())] * 2)).shape == x.shape
    torch.save({"foo": 1}, tmp_path / "other.ckpt")
    with pytest.raises(UnitEvalError, match="not an official TUNIT checkpoint"):
        adapter.from_official_ckpt(tmp_path / "other.ckpt", img_size=size)
    with pytest.raises(UnitEvalError, match="does not fit img_size 128; pass the --img-size"):  # wrong resolution
        adapter.from_official_ckpt(tmp_path / "model_4567.ckpt", img_size=128)


def _official_ckpt(path, size=32, k=3, sty=16, spread_over=None):
    """An official-layout .ckpt of random networks; ``spread_over`` (images) centres C's cluster head on them, so
    that its clusters are not all one (a random head's shared offset puts every image in one cluster)."""
    torch.manual_seed(4)
    n_downs = int(round(math.log2(size // 16)))
    G, C, C_raw = Generator(size, sty), GuidingNet(k, sty), GuidingNet(k, sty)
    if spread_over is not None:
        with torch.no_grad():
            C_raw.eval()
            h = C_raw.embed(spread_over)
            C_raw.cluster_head.weight.mul_(1000)
            C_raw.cluster_head.bias.copy_(-(h @ C_raw.cluster_head.weight.T).mean(0))
    torch.save({"G_EMA_state_dict": _to_official(G.state_dict(), "generator", n_downs),
                "C_EMA_state_dict": _to_official(C.state_dict(), "guide", n_downs),
                "C_state_dict": _to_official(C_raw.state_dict(), "guide", n_downs), "epoch": 1}, path)
    return G.eval(), C.eval(), C_raw.eval()


def test_official_checkpoint_from_the_cli(digits, tmp_path):
    """unit-eval evaluate --ckpt model.ckpt: the official layout is recognised; --img-size/--k/--sty-dim give what the
    file cannot tell; tunit-cluster scores its non-EMA guiding network C; rows name the file, not its path."""
    import subprocess
    import sys

    data = tmp_path / "data"
    for split, offset in (("train", 0), ("test", 40)):
        write_digits(data / split, classes=(0, 1, 2), per_class=4, offset=offset, size=32)
    from unit_eval.datasets import resolve_dataset
    from unit_eval.images import load_image
    from unit_eval.metrics.cluster import majority_accuracy

    split = resolve_dataset(data).split("test")
    x = torch.stack([torch.from_numpy(load_image(p, 32, "bilinear")).permute(2, 0, 1) for c in split for p in split[c]])
    x = x.float() / 127.5 - 1
    ckpt = tmp_path / "model_4567.ckpt"
    _, C_ema, C_raw = _official_ckpt(ckpt, spread_over=x)
    out = tmp_path / "rows.jsonl"
    base = [sys.executable, "-m", "unit_eval.cli", "evaluate", "--ckpt", str(ckpt), "--protocol", "tunit-cluster",
            "--data", str(data), "--device", "cpu"]
    ok = subprocess.run(base + ["--img-size", "32", "--k", "3", "--sty-dim", "16", "--out", str(out), "--json"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["metric"] for r in rows} == {"cluster_acc", "cluster_acc_majority", "nmi", "ioi"}, rows[0]["options"]
    evaluated = rows[0]["options"]["evaluated"]
    assert evaluated["kind"] == "official-tunit-ckpt" and evaluated["file"] == "model_4567.ckpt"
    assert rows[0]["options"]["cluster_network"] == "non-ema" and len(rows[0]["ckpt_sha256"]) == 64
    # the non-EMA network's clusters, computed here directly
    with torch.no_grad():
        pred = C_raw.cluster_logits(x).argmax(1).numpy()
    assert len(set(pred.tolist())) > 1
    labels = [i for i, c in enumerate(split) for _ in split[c]]
    majority = next(r for r in rows if r["metric"] == "cluster_acc_majority")["value"]
    assert majority == pytest.approx(majority_accuracy(pred, labels))
    with torch.no_grad():  # and not the EMA network's
        assert majority != pytest.approx(majority_accuracy(C_ema.cluster_logits(x).argmax(1).numpy(), labels))
    # wrong guesses: one line each, exit 1, no traceback
    for extra, message in ((["--img-size", "32", "--sty-dim", "16"], "has 3 clusters, not output_k 10; pass --k 3"),
                           (["--img-size", "32", "--k", "3"], "style codes have 16 dimensions, not sty_dim 128; pass --sty-dim 16"),
                           (["--img-size", "64", "--k", "3", "--sty-dim", "16"], "does not fit img_size 64; pass the --img-size")):
        bad = subprocess.run(base + extra, capture_output=True, text=True)
        assert bad.returncode == 1 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_official_options_refused_with_a_run_pt(runs):
    with pytest.raises(UnitEvalError, match="--k apply to official TUNIT .ckpt files only"):
        load_checkpoint_translator(runs / "a" / "run.pt", official_tunit={"output_k": 5})


# ----------------------------------------------------------------------------- bad input
def test_bad_checkpoints(tmp_path, runs):
    torch.save({"format": "nope"}, tmp_path / "wrong.pt")
    with pytest.raises(UnitEvalError, match="expected format"):
        load_checkpoint_translator(tmp_path / "wrong.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00junk")
    with pytest.raises(UnitEvalError):
        load_checkpoint_translator(tmp_path / "junk.pt")
    with pytest.raises(UnitEvalError, match="unknown model"):
        save_run(tmp_path / "x.pt", model="cyclegan", config={}, state_dict={}, meta={})
    save_run(tmp_path / "broken.pt", model="tunit", config={"img_size": 32, "k": 10, "sty_dim": 16, "e_ch": 8,
                                                             "g_ch": 8, "mlp_ch": 32},
             state_dict={"generator.nope": torch.zeros(1)}, meta={})
    with pytest.raises(UnitEvalError, match="do not match"):
        load_checkpoint_translator(tmp_path / "broken.pt")
    run = torch.load(runs / "a" / "run.pt", weights_only=True)
    run["model"] = "funit"
    with pytest.raises(UnitEvalError, match="not a TUNIT checkpoint"):
        adapter.from_run(run)
    with pytest.raises(UnitEvalError, match="not 'funit'"):
        load_resume(runs / "a" / "resume.pt", "funit")


def _cli(args, capsys):
    from unit_eval.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def test_cli_train_and_errors(digits, tmp_path, capsys):
    out = tmp_path / "cli_run"
    code, stdout, _ = _cli(["train", "tunit", "--data", str(digits / "1"), "--out", str(out), "--toy", "--iters", "2",
                            "--quiet", "--json", "--set", "warmup_iters=1"], capsys)
    assert code == 0  # a flat folder of one class is fine for TUNIT
    summary = json.loads(stdout)
    assert summary["iterations"] == 2 and (out / "run.pt").exists() and (out / "log.jsonl").exists()

    empty = tmp_path / "empty"
    empty.mkdir()
    small = write_digits(tmp_path / "small", classes=(0,), per_class=2, size=16)
    cases = [
        (["--data", str(empty)], "no images"),
        (["--data", str(small)], "smaller than the training resolution"),
        (["--data", str(digits), "--set", "nonsense=1"], "unknown tunit config key"),
        (["--data", str(digits), "--p-semi", "0.5", "--k", "4"], "K-hat = number of class folders"),
        (["--data", str(digits), "--img-size", "48"], "power-of-two"),
    ]
    for extra, message in cases:
        code, stdout, err = _cli(["train", "tunit", "--out", str(tmp_path / "bad"), "--toy", "--iters", "1", "--quiet",
                                  *extra], capsys)
        assert code == 1 and message in err and err.strip().count("\n") == 0, (extra, err)
    code, _, err = _cli(["train", "tunit", "--data", str(digits / "1"), "--out", str(out), "--toy", "--iters", "2"], capsys)
    assert code == 1 and "--resume" in err
    code, _, err = _cli(["train", "tunit", "--data", str(digits / "1"), "--out", str(out), "--resume", "--iters", "3",
                         "--batch-size", "6", "--quiet"], capsys)
    assert code == 1 and "cannot change" in err
    code, stdout, _ = _cli(["train", "tunit", "--data", str(digits / "1"), "--out", str(out), "--resume", "--iters", "3",
                            "--quiet", "--json"], capsys)
    assert code == 0 and json.loads(stdout)["iterations"] == 3 and json.loads(stdout)["trained_now"] == 1
