"""Shared training infrastructure (baselines/common): data streams, seeding, EMA, loop, resume.

A tiny stand-in recipe keeps these tests fast and independent of any real model; TUNIT has its own
file (test_tunit.py) and DDP its own (test_ddp.py). Data: scikit-learn digits as PNG class folders.
"""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from unit_eval.baselines.common import data as data_mod
from unit_eval.baselines.common.ema import ema_update, make_ema
from unit_eval.baselines.common.iterate import sample_grid
from unit_eval.baselines.common.loop import check_plain, get_recipe, load_resume, train
from unit_eval.baselines.common.recipe import Recipe
from unit_eval.baselines.common.seeding import derive_seed, get_rng_state, set_rng_state
from unit_eval.checkpoint import load_run
from unit_eval.errors import UnitEvalError

from .conftest import write_digits

pytestmark = pytest.mark.usefixtures("one_thread")


class TinyTranslator:
    def __init__(self, net, size):
        self.net, self.image_size, self.num_domains = net, size, None

    def translate(self, source, reference):
        with torch.no_grad():
            return torch.tanh(self.net(source) + reference.mean(dim=(1, 2, 3), keepdim=True))


class TinyRecipe(Recipe):
    """1x1-conv 'model' whose step uses torch, NumPy and Python randomness (to test exact resume)."""

    name = "tunit"  # save_run only accepts the bundled names; this test never loads it as TUNIT
    streams = {"a": None, "b": 1}
    min_classes = 2
    default_iters = 5

    @classmethod
    def default_config(cls, *, iters, img_size=None, batch_size=None, k=None, **extra):
        return {"img_size": img_size or 16, "load_size": 20, "hflip": True, "batch_size": batch_size or 4,
                "iters": iters, "lr": 1e-2}

    def __init__(self, config, num_classes, device, distributed=False):
        super().__init__(config, num_classes, device, distributed)
        self.net = torch.nn.Conv2d(3, 3, 1).to(device)
        self.ema = make_ema(self.net)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config["lr"])
        self.seen_b_labels = []

    def train_step(self, batch, iteration):
        x, y = batch["a"]["image"], batch["b"]["image"]
        self.seen_b_labels.extend(batch["b"]["label"].tolist())
        noise = torch.randn_like(x) * 0.1 * (1 + random.random() + float(np.random.rand()))
        loss = (self.net(x + noise) - y).pow(2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        ema_update(self.ema, self.net, 0.9)
        return {"loss": loss.item()}

    def state_dict(self):
        return {"net": self.net.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        self.net.load_state_dict(state["net"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])

    def inference_state_dict(self):
        return {f"net.{k}": v for k, v in self.ema.state_dict().items()}

    def translator(self):
        return TinyTranslator(self.ema, self.config["img_size"])


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digits(tmp_path_factory.mktemp("digits") / "data")


# ----------------------------------------------------------------------------- data
def test_scan_classes_and_flat_folder(digits, tmp_path):
    index = data_mod.scan(digits, min_classes=2, load_size=32)
    assert index.class_names == ["0", "1", "2"] and index.counts == [12, 12, 12]
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in list((digits / "0").iterdir())[:3]:
        (flat / p.name).write_bytes(p.read_bytes())
    one = data_mod.scan(flat, min_classes=1)
    assert one.flat and len(one) == 3 and one.class_names == ["flat"]
    with pytest.raises(UnitEvalError, match="needs at least 2 classes"):
        data_mod.scan(flat, model="funit", min_classes=2)


@pytest.mark.parametrize("case", ["missing", "empty", "empty_class", "too_few", "small", "corrupt"])
def test_scan_errors_are_one_line(digits, tmp_path, case):
    root = tmp_path / "d"
    kwargs = {"min_classes": 1}
    if case == "empty":
        root.mkdir()
    elif case == "empty_class":
        write_digits(root, classes=(0,), per_class=2)
        (root / "zzz").mkdir()
    elif case == "too_few":
        write_digits(root, classes=(0,), per_class=2)
        kwargs = {"min_classes": 2, "model": "funit"}
    elif case == "small":
        write_digits(root, classes=(0,), per_class=2, size=16)
        kwargs = {"load_size": 32}
    elif case == "corrupt":
        write_digits(root, classes=(0,), per_class=2)
        (root / "0" / "bad.png").write_bytes(b"not a png")
        kwargs = {"load_size": 32}
    with pytest.raises(UnitEvalError) as err:
        data_mod.scan(root, **kwargs)
    assert "\n" not in str(err.value)
    if case == "small":
        assert "--allow-upscale" in str(err.value)
        assert len(data_mod.scan(root, load_size=32, allow_upscale=True)) == 2


def test_stream_batches_are_a_function_of_the_step(digits):
    index = data_mod.scan(digits)
    ids = np.arange(len(index))
    full = data_mod.StreamBatches(ids, 8, seed=3, name="a")
    r0 = data_mod.StreamBatches(ids, 8, seed=3, name="a", rank=0, world_size=2)
    r1 = data_mod.StreamBatches(ids, 8, seed=3, name="a", rank=1, world_size=2)
    for j in (0, 4, 5, 11):  # 36 images / 8 per batch: batches 4 and 5 straddle an epoch boundary
        assert full.batch(j) == r0.batch(j) + r1.batch(j)
    first_epoch = [i for j in range(4) for i, _ in full.batch(j)] + [i for i, _ in full.batch(4)[:4]]
    assert sorted(first_epoch) == list(range(36))  # each image exactly once per epoch
    late = data_mod.StreamBatches(ids, 8, seed=3, name="a", start=7)
    assert next(iter(late)) == full.batch(7)
    assert data_mod.StreamBatches(ids, 8, seed=4, name="a").batch(0) != full.batch(0)
    with pytest.raises(UnitEvalError, match="not divisible"):
        data_mod.StreamBatches(ids, 7, seed=0, name="a", world_size=2)


def test_train_transform_crop_flip_deterministic(digits):
    index = data_mod.scan(digits)
    ds = data_mod.TrainImages(index, img_size=24, load_size=32, hflip=True)
    a, label, i = ds[(5, 123)]
    b, _, _ = ds[(5, 123)]
    assert a.shape == (3, 24, 24) and a.dtype == torch.uint8 and torch.equal(a, b) and label == 0 and i == 5
    outs = {ds[(5, s)][0].numpy().tobytes() for s in range(12)}
    assert len(outs) > 1  # crops/flips vary with the sample seed
    ev = data_mod.load_eval_images(index, [0, 13], 32)
    assert ev.shape == (2, 3, 32, 32) and ev.min() >= -1 and ev.max() <= 1


def _crop_offsets(ds, ref: np.ndarray, seeds=range(24)) -> list[tuple[int, int]]:
    """Where each sample's crop lies in ``ref`` (the resized image), found by exhaustive search."""
    size = ds.img_size
    found = []
    for seed in seeds:
        crop = ds[(0, seed)][0].permute(1, 2, 0).numpy()
        assert crop.shape == (size, size, 3)
        tops, lefts = ref.shape[0] - size + 1, ref.shape[1] - size + 1
        candidates = np.argwhere((ref[:tops, :lefts] == crop[0, 0]).all(-1))
        hits = [(int(t), int(l)) for t, l in candidates if np.array_equal(ref[t:t + size, l:l + size], crop)]
        assert len(hits) == 1, (seed, hits)
        found.append(hits[0])
    return found


def test_resize_modes_square_and_shorter_side(tmp_path):
    """FUNIT's ``Resize(140)`` + ``RandomCrop((128, 128))`` (NVlabs/FUNIT utils.py:46-48) keeps the aspect:
    a 200x100 image becomes 280x140, then a 128x128 crop anywhere in it (offsets in both axes). The
    default mode (TUNIT's ``Resize((s, s))``) squashes it to 140x140 first. Both resize bilinearly, as
    torchvision's ``Resize`` does on PIL images."""
    import torchvision.transforms as T

    arr = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)  # W 200 x H 100
    (tmp_path / "wide" / "c").mkdir(parents=True)
    Image.fromarray(arr).save(tmp_path / "wide" / "c" / "wide.png")
    index = data_mod.scan(tmp_path / "wide", load_size=140, allow_upscale=True)  # shorter side 100 < 140
    pil = Image.fromarray(arr)
    assert data_mod.shorter_side_size(200, 100, 140) == (280, 140)
    assert data_mod.shorter_side_size(100, 200, 140) == (140, 280)
    assert data_mod.shorter_side_size(150, 149, 140) == (int(140 * 150 / 149), 140)  # truncated, as torchvision
    wide = np.asarray(T.Resize(140)(pil))  # the official transform's resize
    assert wide.shape == (140, 280, 3)
    assert np.array_equal(wide, np.asarray(pil.resize((280, 140), Image.BILINEAR)))
    square = np.asarray(T.Resize((140, 140))(pil))

    funit = data_mod.TrainImages(index, 128, 140, hflip=False, resize_mode="shorter_side")
    tops, lefts = zip(*_crop_offsets(funit, wide))
    assert max(lefts) > 140 - 128 and max(lefts) <= 280 - 128 and len(set(lefts)) > 1
    assert max(tops) <= 140 - 128 and len(set(tops)) > 1
    tunit = data_mod.TrainImages(index, 128, 140, hflip=False)  # default: square
    assert tunit.resize_mode == "square"
    s_tops, s_lefts = zip(*_crop_offsets(tunit, square))
    assert max(s_tops) <= 12 and max(s_lefts) <= 12 and len(set(s_lefts)) > 1
    # no crop, flip only: load_size == img_size in square mode gives the whole squashed image
    full = data_mod.TrainImages(index, 140, 140, hflip=False)[(0, 5)][0].permute(1, 2, 0).numpy()
    assert np.array_equal(full, square)
    # shorter_side with load_size == img_size still crops along the longer side
    assert data_mod.TrainImages(index, 140, 140, resize_mode="shorter_side")[(0, 5)][0].shape == (3, 140, 140)
    # the evaluation transform is a square resize to img_size in both modes (FUNIT test_k_shot.py:50)
    ev = data_mod.TrainImages(index, 128, 140, hflip=False, train=False, resize_mode="shorter_side")[0][0]
    assert np.array_equal(ev.permute(1, 2, 0).numpy(), np.asarray(pil.resize((128, 128), Image.BILINEAR)))
    with pytest.raises(UnitEvalError, match="resize_mode"):
        data_mod.TrainImages(index, 128, 140, resize_mode="fit")


def test_published_resize_modes_and_the_loop_passes_them_on(digits, tmp_path, monkeypatch):
    assert get_recipe("funit").default_config(iters=1)["resize_mode"] == "shorter_side"
    for name in ("tunit", "unit"):
        assert get_recipe(name).default_config(iters=1).get("resize_mode", "square") == "square"
    seen = []
    real = data_mod.Streams

    def spy(*args, **kwargs):
        seen.append(kwargs.get("resize_mode"))
        return real(*args, **kwargs)

    monkeypatch.setattr(data_mod, "Streams", spy)

    class ShorterSide(TinyRecipe):
        @classmethod
        def default_config(cls, **kwargs):
            return {**TinyRecipe.default_config(**kwargs), "resize_mode": "shorter_side"}

    _run(digits, tmp_path / "a", 1, sample_every=0, ckpt_every=0)
    train(ShorterSide, digits, tmp_path / "b", iters=1, device="cpu", progress=False, sample_every=0, ckpt_every=0)
    assert seen == ["square", "shorter_side"]
    with pytest.raises(UnitEvalError, match="resize_mode"):
        train(ShorterSide, digits, tmp_path / "c", iters=1, device="cpu", progress=False,
              overrides={"resize_mode": "fit"})


# ----------------------------------------------------------------------------- helpers
def test_rng_state_roundtrip_is_weights_only_safe(tmp_path):
    torch.manual_seed(1)
    state = get_rng_state(torch.device("cpu"))
    torch.save(state, tmp_path / "rng.pt")
    a = (torch.rand(3), np.random.rand(), random.random())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True), torch.device("cpu"))
    b = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(a[0], b[0]) and a[1:] == b[1:]
    assert derive_seed(1, "x") == derive_seed(1, "x") != derive_seed(2, "x")


def test_ema_update():
    net = torch.nn.Linear(2, 2)
    ema = make_ema(net)
    assert all(not p.requires_grad for p in ema.parameters())
    with torch.no_grad():
        net.weight.add_(1.0)
    before = ema.weight.clone()
    ema_update(ema, net, beta=0.75)
    assert torch.allclose(ema.weight, 0.75 * before + 0.25 * net.weight)


def test_sample_grid_layout():
    src = torch.full((2, 3, 8, 8), -1.0)
    ref = torch.full((3, 3, 8, 8), 1.0)
    tr = TinyTranslator(torch.nn.Identity(), 8)
    grid = sample_grid(tr, src, ref, torch.device("cpu"))
    assert grid.shape == (3 * 8, 4 * 8, 3) and grid.dtype == np.uint8
    assert (grid[:8, 8:] == 255).all()  # references across the top
    assert (grid[8:, :8] == 0).all()  # sources down the left


def test_check_plain_and_recipe_lookup():
    check_plain({"a": [1, 2.0, None, {"b": "c"}]})
    with pytest.raises(UnitEvalError):
        check_plain({"a": torch.zeros(1)})
    with pytest.raises(UnitEvalError, match="unknown model"):
        get_recipe("cyclegan")
    assert get_recipe("tunit").name == "tunit"


# ----------------------------------------------------------------------------- loop
def _run(digits, out, iters, **kw):
    kw.setdefault("sample_every", 2)
    kw.setdefault("ckpt_every", 2)
    return train(TinyRecipe, digits, out, iters=iters, seed=kw.pop("seed", 7), device="cpu", progress=False,
                 log_every=1, **kw)


def test_loop_writes_run_files_and_resumes_exactly(digits, tmp_path):
    straight = tmp_path / "straight"
    summary = _run(digits, straight, 6)
    assert summary["iterations"] == 6
    rows = [json.loads(l) for l in (straight / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows] == [1, 2, 3, 4, 5, 6] and all(np.isfinite(r["loss"]) for r in rows)
    assert sorted(p.name for p in (straight / "samples").iterdir()) == [f"iter_{i:07d}.png" for i in (2, 4, 6)]
    assert Image.open(straight / "samples" / "iter_0000006.png").size == (9 * 16, 9 * 16)
    run = load_run(straight / "run.pt")  # weights_only=True inside
    assert run["meta"]["iterations"] == 6 and run["meta"]["class_names"] == ["0", "1", "2"]
    assert set(run["state_dict"]) == {"net.weight", "net.bias"}
    with pytest.raises(UnitEvalError, match="already holds a run"):
        _run(digits, straight, 6)

    split = tmp_path / "split"
    _run(digits, split, 3, ckpt_every=0)
    with open(split / "log.jsonl", "a") as fh:  # a row written after the last checkpoint is dropped on resume
        fh.write(json.dumps({"iter": 99, "loss": 0.0}) + "\n")
    _run(digits, split, 6, resume=True)
    a = load_resume(straight / "resume.pt", "tunit")
    b = load_resume(split / "resume.pt", "tunit")
    for part in ("net", "ema"):
        for k in a["recipe"][part]:
            assert torch.equal(a["recipe"][part][k], b["recipe"][part][k]), (part, k)
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    rows_b = [json.loads(l) for l in (split / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows_b] == [1, 2, 3, 4, 5, 6]
    assert [r["loss"] for r in rows_b] == [r["loss"] for r in rows]

    other = tmp_path / "other_seed"
    _run(digits, other, 6, seed=8, sample_every=0)
    c = load_resume(other / "resume.pt", "tunit")
    assert not torch.equal(a["recipe"]["net"]["weight"], c["recipe"]["net"]["weight"])
    assert not (other / "samples").exists()


def test_class_stream_draws_only_its_class(digits, tmp_path):
    seen = []
    orig = TinyRecipe.train_step

    def spy(self, batch, iteration):
        seen.extend(batch["b"]["label"].tolist())
        return orig(self, batch, iteration)

    TinyRecipe.train_step = spy
    try:
        _run(digits, tmp_path / "r", 3, sample_every=0)
    finally:
        TinyRecipe.train_step = orig
    assert seen and set(seen) == {1}


def test_resume_file_errors(digits, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    torch.save({"format": "something-else"}, out / "resume.pt")
    with pytest.raises(UnitEvalError, match="not a unit-eval resume file"):
        _run(digits, out, 2, resume=True)
    (out / "resume.pt").write_bytes(b"garbage")
    with pytest.raises(UnitEvalError, match="not a loadable resume file"):
        _run(digits, out, 2, resume=True)


def test_loader_workers_do_not_change_the_data(digits, tmp_path):
    _run(digits, tmp_path / "w0", 3, sample_every=0, workers=0)
    _run(digits, tmp_path / "w2", 3, sample_every=0, workers=2)
    a = load_resume(tmp_path / "w0" / "resume.pt", "tunit")
    b = load_resume(tmp_path / "w2" / "resume.pt", "tunit")
    for k in a["recipe"]["net"]:
        assert torch.equal(a["recipe"]["net"][k], b["recipe"]["net"][k])
