"""The protocol runner: generation, features, metrics and rows with the tiny translator on digits folders.

Most tests use a cheap deterministic stand-in for Inception (``FakeExtractor``, 32-d features) and for LPIPS;
one end-to-end test runs the real Inception weights through the CLI.
"""
from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from unit_eval import features as features_module
from unit_eval.cli import cli
from unit_eval.datasets import resolve_dataset, resolve_paired
from unit_eval.errors import UnitEvalError
from unit_eval.features import FeatureCache
from unit_eval.images import load_image
from unit_eval.evaluation import ProtocolRunner, Settings, run_protocol_cli
from unit_eval.protocol_specs import load_protocol

from .conftest import assert_no_absolute_paths, write_digits
from .tiny_translator import NoClusterTranslator, TinyTranslator

CPU = torch.device("cpu")
MODEL_SPEC = "tests.tiny_translator:factory"


class FakeExtractor:
    """Deterministic 32-d features (pooled pixels through a fixed projection), per sample, float64."""

    def __init__(self, preprocessing: str = "tf1-bilinear", batch_size: int = 64, dim: int = 32):
        self.preprocessing = preprocessing
        self.batch_size = batch_size
        self.feature_dim = dim
        self.device = CPU
        self.weights_sha256 = "fake-weights"
        self.projection = torch.randn(48, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        self.files_calls = 0
        self.batch_calls = 0

    def describe(self) -> str:
        return f"fake/{self.preprocessing}"

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        self.batch_calls += 1
        if images.dtype == torch.uint8:
            x = images.double() / 127.5 - 1
        else:
            assert self.preprocessing == "tunit-legacy", "standard features take uint8 images"
            x = images.double()
        pooled = F.adaptive_avg_pool2d(x, 4).flatten(1)
        return torch.tanh(pooled @ self.projection)

    def stream(self, batches, total=None, desc=""):
        out = [self.batch(b[i: i + self.batch_size]).numpy() for b in batches for i in range(0, b.shape[0], self.batch_size)]
        if not out:
            raise UnitEvalError("no images to extract features from")
        return np.concatenate(out)

    def files(self, paths, size=None, resize_filter="bicubic", desc=""):
        self.files_calls += len(paths)
        images = torch.from_numpy(np.stack([load_image(p, size, resize_filter) for p in paths])).permute(0, 3, 1, 2)
        return self.stream([images])


class FakeLpips(torch.nn.Module):
    """Stands in for LPIPS: mean squared difference per pair, B x 1 x 1 x 1."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, y, normalize=False):
        return ((x - y) ** 2).mean(dim=(1, 2, 3), keepdim=True)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("digits_split")
    write_digits(root / "train", classes=(0, 1, 2), per_class=6, offset=0, size=32)
    write_digits(root / "test", classes=(0, 1, 2), per_class=5, offset=50, size=32)
    return root


def small(name: str, **changes):
    return replace(load_protocol(name), **changes)


SMALL = {
    "mfid": lambda: small("tunit-mfid", sources_per_class=2, references_per_source=2),
    "legacy": lambda: small("tunit-mfid-legacy", fid_batch=6),  # K=3: m = 2, T = 6, n = (6 // 2) // 2 = 1
    "dc": lambda: small("tunit-dc", k=2, max_fake=12),
    "cluster": lambda: load_protocol("tunit-cluster"),
    "cluit": lambda: small("cluit-mfid", references_per_input=3),
    "diversity": lambda: small("lpips-diversity", outputs_per_input=3),
    "content": lambda: small("lpips-content", sources_per_class=2, references_per_source=2),
}


def runner(dataset, batch_size=4, cache=None, extractors=None, model=None, **kw) -> ProtocolRunner:
    extractors = {} if extractors is None else extractors

    def factory(preprocessing):
        extractors.setdefault(preprocessing, FakeExtractor(preprocessing))
        return extractors[preprocessing]

    return ProtocolRunner(dataset, model=model if model is not None or "fake_dir" in kw else TinyTranslator(),
                          settings=Settings(device=CPU, batch_size=batch_size, cache=cache, progress=False),
                          extractor_factory=factory, lpips_factory=lambda net: FakeLpips(), **kw)


def test_every_protocol_kind_runs_and_counts(digits):
    ds = resolve_dataset(digits)
    r = runner(ds)
    res = {k: r.run(make()) for k, make in SMALL.items()}
    mfid = res["mfid"]
    assert set(mfid.values) == {"mfid", "fid"} and list(mfid.values["fid"]) == ["0", "1", "2"]
    assert mfid.n_fake == {"0": 8, "1": 8, "2": 8, "mean": 24}  # 2 sources x 2 other classes x 2 references
    assert mfid.n_real == {"0": 6, "1": 6, "2": 6, "mean": 18}
    assert mfid.values["mfid"]["mean"] == pytest.approx(np.mean(list(mfid.values["fid"].values())))
    assert res["legacy"].n_fake["0"] == 2 * 1 * 2 and res["legacy"].options["branch"] == "other"
    assert res["dc"].n_fake["mean"] == 12 and res["dc"].n_real["mean"] == 18
    assert set(res["dc"].values) == {"density", "coverage", "precision", "recall"}
    assert set(res["cluster"].values) == {"cluster_acc", "cluster_acc_majority", "nmi", "ioi"}
    assert res["cluster"].n_real["mean"] == 15
    assert res["cluit"].n_fake["mean"] == 15 * 3
    assert set(res["diversity"].values["lpips_diversity"]) == {"0", "1", "2", "mean"}
    assert res["diversity"].n_fake["mean"] == 15 * 2 * 3  # every input into both other classes, 3 outputs each
    assert res["content"].n_fake["mean"] == 24
    for result in res.values():
        for row in result.rows("tiny", None):
            assert row["run"] == "tiny" and row["seed"] == 0 and np.isfinite(row["value"])
            assert row["options"]["dataset"]["classes"] == ["0", "1", "2"]
            assert row["options"]["protocol"]["seed"] == 0


def test_results_do_not_depend_on_batch_size(digits):
    """Same fakes (sampling never sees the batch size); numbers equal up to float32 round-off inside the model
    (a convolution's result moves by ~1e-7 with the batch it runs in), hence rel 1e-6 rather than bitwise."""
    ds = resolve_dataset(digits)
    values = []
    for bs in (1, 3, 64):
        r = runner(ds, batch_size=bs)
        values.append({k: r.run(SMALL[k]()).values for k in ("mfid", "legacy", "dc", "cluster", "cluit", "diversity", "content")})
    for other in values[1:]:
        for k in values[0]:
            for metric, per in values[0][k].items():
                for cls, v in per.items():
                    assert other[k][metric][cls] == pytest.approx(v, rel=1e-6, abs=1e-9), (k, metric, cls)


def test_seeds_reproduce_and_differ(digits):
    ds = resolve_dataset(digits)
    a = runner(ds).run(SMALL["mfid"](), seed=5)
    b = runner(ds).run(SMALL["mfid"](), seed=5)
    c = runner(ds).run(SMALL["mfid"](), seed=6)
    assert a.values == b.values and a.seed == 5
    assert a.values != c.values
    assert all(row["seed"] == 6 for row in c.rows("x"))


def test_feature_cache_hit_and_invalidation(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(features_module, "FEATURE_DIM", 32)  # the fake extractor's width
    cache = FeatureCache(root=tmp_path / "cache")
    ds = resolve_dataset(digits)
    first: dict = {}
    v1 = runner(ds, cache=cache, extractors=first).run(SMALL["mfid"]()).values
    assert first["tf1-bilinear"].files_calls == 18 and len(list((tmp_path / "cache").glob("*.npz"))) == 3
    again: dict = {}
    v2 = runner(resolve_dataset(digits), cache=cache, extractors=again).run(SMALL["mfid"]()).values
    assert again["tf1-bilinear"].files_calls == 0 and v1 == v2  # every real set came from the cache
    touched = sorted((digits / "train" / "1").glob("*.png"))[0]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    third: dict = {}
    runner(resolve_dataset(digits), cache=cache, extractors=third).run(SMALL["mfid"]())
    assert third["tf1-bilinear"].files_calls == 6  # only class 1 got a new key
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 4
    # legacy real sets: the flip pattern (seeded) is part of the key
    legacy: dict = {}
    r = runner(resolve_dataset(digits), cache=cache, extractors=legacy)
    r.run(SMALL["legacy"](), seed=0)
    n0 = len(list((tmp_path / "cache").glob("*.npz")))
    r.run(SMALL["legacy"](), seed=0)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == n0
    calls = legacy["tunit-legacy"].batch_calls
    runner(resolve_dataset(digits), cache=cache, extractors={}).run(SMALL["legacy"](), seed=0)
    r.run(SMALL["legacy"](), seed=1)
    assert len(list((tmp_path / "cache").glob("*.npz"))) > n0 and legacy["tunit-legacy"].batch_calls > calls


def test_missing_method_and_folder_errors(digits, tmp_path):
    ds = resolve_dataset(digits)
    with pytest.raises(UnitEvalError, match=r"'tunit-cluster' needs the model's cluster\(\) method"):
        runner(ds, model=NoClusterTranslator()).run(SMALL["cluster"]())
    fake = tmp_path / "fake"
    write_digits(fake, classes=(0, 1), per_class=3, size=32)
    with pytest.raises(UnitEvalError, match=r"class sets differ: only in the dataset \['2'\]"):
        runner(ds, fake_dir=fake).run(SMALL["mfid"]())
    with pytest.raises(UnitEvalError, match="needs a model"):
        runner(ds, fake_dir=fake).run(SMALL["diversity"]())
    with pytest.raises(UnitEvalError, match="needs 6 images, the split has 5"):
        runner(ds).run(small("tunit-mfid", sources_per_class=6, references_per_source=1))
    with pytest.raises(UnitEvalError, match="unknown protocol"):
        runner(ds).run("tunit-mfid-v9")


def test_fake_folder_mfid_and_dc(digits, tmp_path):
    ds = resolve_dataset(digits)
    fake = tmp_path / "fake"
    write_digits(fake, classes=(0, 1, 2), per_class=4, offset=100, size=32)
    res = runner(ds, fake_dir=fake).run(SMALL["mfid"]())
    assert res.n_fake == {"0": 4, "1": 4, "2": 4, "mean": 12} and res.options["image_size"] == 32
    dc = runner(ds, fake_dir=fake).run(SMALL["dc"]())
    assert dc.n_fake["mean"] == 12


def _paired(root: Path, n: int = 5, size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        sat = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        flat = np.zeros_like(sat) + np.array([200, 220, 240], dtype=np.uint8)
        for d, img in (("satellite", sat), ("map", flat)):
            (root / "test" / d).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "test" / d / f"{i}.png")
    return root


def test_pixel_accuracy_model_and_folder(tmp_path):
    ds = resolve_paired(_paired(tmp_path / "maps"))
    spec = load_protocol("unit-maps")
    res = runner(ds, model=TinyTranslator(domain_names=["satellite", "map", "other"])).run(spec)
    assert 0 <= res.values["pixel_accuracy"]["mean"] <= 1 and res.n_fake["mean"] == 5
    assert res.options["target_domain_index"] == 1
    pred = tmp_path / "pred"
    pred.mkdir()
    for pair in ds.pairs("test"):  # the folder's domains sort as (map, satellite): the maps are the pairs' first side
        Image.fromarray(pair.source.load()).save(pred / f"{pair.stem}.png")
    exact = runner(ds, fake_dir=pred).run(spec)
    assert exact.values["pixel_accuracy"]["mean"] == 1.0
    os.remove(pred / "0.png")
    with pytest.raises(UnitEvalError, match="1 of 5 test pairs have no prediction"):
        runner(ds, fake_dir=pred).run(spec)
    with pytest.raises(UnitEvalError, match="needs the model's translate_to_domain"):
        class NoDomain(TinyTranslator):
            translate_to_domain = None
        runner(ds, model=NoDomain()).run(spec)


class TwoGuides(TinyTranslator):
    """A TUNIT-like model with an EMA and a non-EMA guiding network that cluster differently: the non-EMA one
    by the true digit (perfect), the EMA one in bands of brightness."""

    def __init__(self, truth: dict[bytes, int], num_domains: int = 3):
        super().__init__(num_domains=num_domains)
        self.truth = truth

    @torch.no_grad()
    def cluster(self, images, ema=True):
        if ema:
            return super().cluster(images)
        from unit_eval.images import float_to_uint8

        keys = float_to_uint8(images).numpy()
        return torch.tensor([self.truth[k.tobytes()] for k in keys])

    @torch.no_grad()
    def style(self, images, ema=True):
        return super().style(images) if ema else -super().style(images)


def _truth(ds, split="test") -> dict[bytes, int]:
    from unit_eval.images import load_image

    return {load_image(p, 32, "bilinear").transpose(2, 0, 1).tobytes(): ci
            for ci, (c, paths) in enumerate(ds.split(split).items()) for p in paths}


def test_cluster_protocol_scores_the_non_ema_guiding_network(digits):
    """tunit-cluster scores the non-EMA network (the official validation.py passes C); EMA is an explicit option."""
    ds = resolve_dataset(digits)
    model = TwoGuides(_truth(ds))
    default = runner(ds, model=model).run(load_protocol("tunit-cluster"))
    assert default.values["cluster_acc"]["mean"] == 1.0 and default.options["cluster_network"] == "non-ema"
    ema = runner(ds, model=model).run(replace(load_protocol("tunit-cluster"), guiding_network="ema"))
    assert ema.values["cluster_acc"]["mean"] < 1.0 and ema.options["cluster_network"] == "ema"
    plain = runner(ds, model=TinyTranslator()).run(load_protocol("tunit-cluster"))
    assert plain.options["cluster_network"].startswith("the model's only network")


def test_cluster_protocol_reports_hungarian_only_when_k_hat_equals_k(digits):
    """As the official code (cluster_eval only when output_k == len(att_to_use)): with K-hat != K there is no
    Hungarian row; majority accuracy, NMI and IOI remain."""
    ds = resolve_dataset(digits)
    res = runner(ds, model=TwoGuides(_truth(ds), num_domains=5)).run(load_protocol("tunit-cluster"))
    assert set(res.values) == {"cluster_acc_majority", "nmi", "ioi"}
    assert res.values["cluster_acc_majority"]["mean"] == 1.0 and "K-hat 5 != K 3" in res.options["hungarian"]


class MapOracle(TinyTranslator):
    """Returns the exact ground-truth map of a satellite only when asked for the index of the domain named
    ``map`` in its ``domain_names``; for any other index it returns the source unchanged."""

    def __init__(self, dataset, domain_names):
        super().__init__(domain_names=domain_names, num_domains=len(domain_names))
        self.map_index = domain_names.index("map")
        sources = {p.stem: p for p in ds_pairs(dataset)}
        self.maps = {}
        for pair in sources.values():
            sat, gt = (pair.source, pair.target) if dataset.domains[1] == "map" else (pair.target, pair.source)
            self.maps[sat.load().tobytes()] = gt.load()
        self.asked: list[int] = []

    @torch.no_grad()
    def translate_to_domain(self, source, domain):
        self.asked.append(int(domain))
        if int(domain) != self.map_index:
            return source.clone()
        from unit_eval.images import float_to_uint8, uint8_to_float

        keys = float_to_uint8(source).permute(0, 2, 3, 1).numpy()
        maps = np.stack([self.maps[k.tobytes()] for k in keys])
        return uint8_to_float(torch.from_numpy(maps).permute(0, 3, 1, 2))


def ds_pairs(dataset):
    return dataset.pairs("test")


@pytest.mark.parametrize("names", [["map", "satellite"], ["satellite", "map"], ["a", "b", "map"]])
def test_maps_protocol_asks_for_the_domain_named_map(tmp_path, names):
    """unit-maps scores 1.0 with a model that returns the exact map only for the index of the domain named 'map',
    wherever 'map' sits in domain_names; a trainer ordering folders by name has map = 0."""
    ds = resolve_paired(_paired(tmp_path / "maps"))
    assert ds.domains == ("map", "satellite")  # sorted folder names: the pairs run map -> satellite
    oracle = MapOracle(ds, names)
    res = runner(ds, model=oracle).run(load_protocol("unit-maps"))
    assert res.values["pixel_accuracy"]["mean"] == 1.0
    assert set(oracle.asked) == {names.index("map")} and res.options["target_domain_index"] == names.index("map")


def test_maps_protocol_without_domain_names(tmp_path):
    ds = resolve_paired(_paired(tmp_path / "maps"))
    spec = load_protocol("unit-maps")
    with pytest.raises(UnitEvalError, match=r"does not name its domains \(no domain_names\).*--target-domain INDEX"):
        runner(ds, model=TinyTranslator()).run(spec)
    with pytest.raises(UnitEvalError, match=r"the model's domains are \['x', 'y'\], none is named 'map'"):
        runner(ds, model=TinyTranslator(domain_names=["x", "y"])).run(spec)
    oracle = MapOracle(ds, ["satellite", "map"])
    oracle.domain_names = None
    explicit = ProtocolRunner(ds, model=oracle, settings=Settings(device=CPU, batch_size=2, progress=False, target_domain=1))
    res = explicit.run(spec)
    assert res.values["pixel_accuracy"]["mean"] == 1.0 and "--target-domain 1" in res.options["target_domain_from"]
    with pytest.raises(UnitEvalError, match=r"domains 'map' and 'satellite'"):
        runner(ds, model=oracle).run(replace(spec, target_domain="render"))


def test_evaluate_cli_with_fake_extractor(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(features_module, "InceptionFeatures", lambda **kw: FakeExtractor(kw["preprocessing"], kw["batch_size"]))
    monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path / "cache"))
    toml = tmp_path / "mfid-small.toml"
    toml.write_text(_toml(name="mfid-small", base="tunit-mfid", sources_per_class=2, references_per_source=2))
    out = tmp_path / "results.jsonl"
    args = ["evaluate", "--model", MODEL_SPEC, "--protocol", str(toml), "--protocol", "tunit-cluster", "--data", str(digits),
            "--out", str(out), "--seed", "0", "--seed", "1", "--device", "cpu", "--batch-size", "5",
            "--save-images", str(tmp_path / "png"), "--json", "--run", "tiny"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [r["seed"] for r in payload["results"]] == [0, 1, 0, 1]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(payload["rows"]) == 2 * (1 + 3) + 2 * 4
    assert {(r["protocol"], r["metric"]) for r in rows} >= {("mfid-small", "mfid"), ("mfid-small", "fid"), ("tunit-cluster", "ioi")}
    assert all(r["run"] == "tiny" and r["ckpt_sha256"] is None and r["dataset"] == digits.name for r in rows)
    assert_no_absolute_paths(rows)
    assert rows[0]["options"]["protocol_file"] == "mfid-small.toml"
    assert rows[-1]["options"]["protocol_file"] == "unit_eval.protocols/tunit-cluster.toml"
    assert len(list((tmp_path / "png" / "mfid-small" / "seed1").rglob("*.png"))) == 24
    # the mfid command's model path goes through run_protocol_cli
    summary = run_protocol_cli(protocol=str(toml), model_spec=MODEL_SPEC, data=str(digits), seed=0, device="cpu",
                               batch_size=7, out=None)
    first = next(r for r in payload["results"] if r["protocol"] == "mfid-small" and r["seed"] == 0)
    assert summary["mfid"] == pytest.approx(first["mfid"], rel=1e-9) and set(summary["per_class"]) == {"0", "1", "2"}
    via_mfid = CliRunner().invoke(cli, ["mfid", "--model", MODEL_SPEC, "--protocol", str(toml), "--data", str(digits),
                                        "--seed", "0", "--device", "cpu", "--json"])
    assert via_mfid.exit_code == 0, via_mfid.output
    assert json.loads(via_mfid.stdout)["mfid"] == pytest.approx(first["mfid"], rel=1e-9)
    bad = CliRunner().invoke(cli, ["evaluate", "--model", MODEL_SPEC, "--protocol", "nope", "--data", str(digits)])
    assert bad.exit_code != 0 and "unknown protocol 'nope'" in str(bad.exception)


def test_rows_from_a_checkpoint_and_a_fake_folder_carry_no_paths(digits, tmp_path):
    ds = resolve_dataset(digits)
    fake = tmp_path / "fake"
    write_digits(fake, classes=(0, 1, 2), per_class=4, offset=100, size=32)
    r = runner(ds, fake_dir=fake, evaluated={"kind": "fake-folder", "folder": fake.name})
    rows = r.run(SMALL["mfid"]()).rows("x")
    assert_no_absolute_paths(rows)
    assert rows[0]["dataset"] == digits.name and rows[0]["options"]["dataset"]["counts"]["train"]["0"] == 6


def _toml(name: str, base: str, **changes) -> str:
    spec = replace(load_protocol(base), **changes)
    lines = [f'name = "{name}"', f'kind = "{spec.kind}"', f'description = "{spec.description}"', f'source = "{spec.source}"']
    for key, value in spec.options().items():
        if key in ("name", "kind"):
            continue
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


@pytest.mark.integration
def test_end_to_end_with_real_inception(digits, tmp_path, monkeypatch):
    """The CLI with the real TF-Inception weights: mFID and D&C on two digit classes, two seeds."""
    monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "two"
    write_digits(data / "train", classes=(3, 7), per_class=5, size=32)
    write_digits(data / "test", classes=(3, 7), per_class=3, offset=60, size=32)
    mfid = tmp_path / "mfid2.toml"
    mfid.write_text(_toml("mfid2", "tunit-mfid", sources_per_class=2, references_per_source=2))
    dc = tmp_path / "dc2.toml"
    dc.write_text(_toml("dc2", "tunit-dc", k=2, max_fake=6))
    out = tmp_path / "r.jsonl"
    args = ["evaluate", "--model", MODEL_SPEC, "--protocol", str(mfid), "--protocol", str(dc), "--data", str(data),
            "--out", str(out), "--seed", "0", "--seed", "1", "--device", "cpu", "--batch-size", "8", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 * (1 + 2) + 2 * 4
    for row in rows:
        assert row["extractor"] == "inception-v3-tf-2015-12-05/pool3/tf1-bilinear"
        assert np.isfinite(row["value"]) and row["n_fake"] and row["n_real"]
    m = {(r["seed"], r["class"]): r for r in rows if r["protocol"] == "mfid2"}
    assert m[(0, "mean")]["n_fake"] == 8 and m[(0, "3")]["n_fake"] == 4 and m[(0, "3")]["n_real"] == 5
    assert m[(0, "mean")]["value"] > 0 and m[(0, "mean")]["value"] != m[(1, "mean")]["value"]
    # the real sets went into the feature cache (one entry per class)
    assert len(list((tmp_path / "cache" / "features").glob("*.npz"))) == 2


def test_fast_numerics_are_checked_before_any_work(tmp_path):
    from unit_eval.errors import UnitEvalError
    from unit_eval.evaluation import evaluate

    with pytest.raises(UnitEvalError, match="tf32 needs a CUDA device"):
        evaluate(["tunit-mfid"], ckpt=str(tmp_path / "missing.pt"), data=str(tmp_path), device="cpu", precision="tf32")
    assert list(tmp_path.iterdir()) == []
