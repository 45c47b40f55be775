"""``stargan-v2-fid`` (StarGAN v2 / GP-UNIT FID on torchvision's ImageNet Inception) and latent-guided LPIPS diversity.

torchvision's ``inception_v3_google-0cc3c7bd.pth`` cannot be downloaded here, so the network tests load SEEDED RANDOM
tensors in its layout, given the way a user gives the real file (``UNIT_EVAL_TORCHVISION_INCEPTION_WEIGHTS``), with
the sha256 pin pointed at the random file as the DINOv2/CLIP tests do (``catalog.FEATURE_NETS`` monkeypatched).
The reference is independent of unit-eval: outputs written with ``torchvision.utils.save_image`` to PNG files, read
back through StarGAN v2's ``get_eval_loader`` transform (torchvision ``Resize([s, s])``, ``Resize([299, 299])``,
``ToTensor``, ``Normalize``), features from torchvision's own ``Inception3.forward`` (``transform_input=False``:
the official wrapper never calls ``forward``, so its ``transform_input`` never applies) at ``avgpool``, and the FID
as ``metrics/fid.py`` writes it (``np.mean``, ``np.cov``, ``scipy.linalg.sqrtm``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tomllib
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from unit_eval.cli import cli
from unit_eval.datasets import resolve_dataset
from unit_eval.errors import UnitEvalError
from unit_eval.evaluation import ProtocolRunner, Settings
from unit_eval.evaluation.sampling import sample_diversity
from unit_eval.images import float_to_uint8, float_to_uint8_saved
from unit_eval.protocol_specs import load_protocol, parse_protocol
from unit_eval.weights import catalog

from .conftest import REPO, assert_no_absolute_paths, write_digits
from .test_protocol_runner import FakeExtractor
from .tiny_translator import LatentTinyTranslator, TinyTranslator

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")
SIZE = 32
MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
NAME = "torchvision-inception"


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sg2_digits")
    write_digits(root / "train", classes=(0, 1), per_class=3, offset=0, size=40)  # resized to the model's 32 first
    write_digits(root / "test", classes=(0, 1), per_class=2, offset=50, size=SIZE)
    return root


@pytest.fixture(scope="module")
def digits3(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sg2_digits3")
    write_digits(root / "train", classes=(0, 1, 2), per_class=4, offset=0, size=SIZE)
    write_digits(root / "test", classes=(0, 1, 2), per_class=3, offset=50, size=SIZE)
    return root


def random_inception_state(seed: int) -> dict[str, torch.Tensor]:
    """torchvision's Inception3 layout with He-scaled random convolutions and random BatchNorm statistics."""
    import torchvision

    layout = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict()
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in layout.items():
        shape = value.shape
        if key.endswith("num_batches_tracked"):
            state[key] = value.clone()
        elif value.ndim >= 2:
            state[key] = torch.randn(shape, generator=g) * (2.0 / value[0].numel()) ** 0.5
        elif key.endswith("bn.weight"):
            state[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        else:  # BatchNorm bias and running mean, fc bias
            state[key] = 0.1 * torch.randn(shape, generator=g)
    return state


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory):
    from unit_eval.cache import sha256_file

    state = random_inception_state(3)
    path = tmp_path_factory.mktemp("tv_inception") / "inception_v3_google-0cc3c7bd.pth"
    torch.save(state, path)
    return path, state, sha256_file(path)


@pytest.fixture
def provided(inception_file, tmp_path, monkeypatch):
    """The random file given as the user gives the official one, its sha256 pinned in its place (test only)."""
    path, state, digest = inception_file
    monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setitem(catalog.FEATURE_NETS, NAME, dataclasses.replace(catalog.FEATURE_NETS[NAME], sha256=(digest,)))
    monkeypatch.setenv(catalog.ENV_VARS[NAME], str(path))
    return path, state, digest


def make_runner(root, model, extractor_factory=None, lpips_factory=None, batch_size=4, save_images=None):
    return ProtocolRunner(resolve_dataset(root), model=model,
                          settings=Settings(device=CPU, batch_size=batch_size, cache=None, progress=False,
                                            save_images=save_images),
                          extractor_factory=extractor_factory, lpips_factory=lpips_factory)


def fake_factory():
    made = {}
    return lambda p: made.setdefault(p, FakeExtractor(p)), made


# ----------------------------------------------------------------------------------------------------
# the reference: StarGAN v2's loop, written with torchvision, numpy and scipy


def load_float(path: Path) -> torch.Tensor:
    """A dataset image as StarGAN v2's test loader gives it: Resize([s, s]), ToTensor, Normalize(0.5, 0.5)."""
    import torchvision.transforms as T

    t = T.Compose([T.Resize([SIZE, SIZE]), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
    return t(Image.open(path).convert("RGB"))[None]


def official_features(state, paths: list[Path]) -> np.ndarray:
    import torchvision
    import torchvision.transforms as T

    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    net.load_state_dict(state)
    net.eval()
    pooled = []
    net.avgpool.register_forward_hook(lambda m, i, o: pooled.append(o.flatten(1)))
    t = T.Compose([T.Resize([SIZE, SIZE]), T.Resize([299, 299]), T.ToTensor(), T.Normalize(*MEAN_STD)])
    with torch.no_grad():
        for start in range(0, len(paths), 8):
            net(torch.stack([t(Image.open(p).convert("RGB")) for p in paths[start:start + 8]]))
    return torch.cat(pooled).numpy()


def official_fid(real: np.ndarray, fake: np.ndarray) -> float:
    """metrics/fid.py:56-79 as written (np.mean, np.cov, scipy's sqrtm, real part, no eps), evaluated in the span of
    the centred features and the mean difference: both covariances vanish outside it, so every term (|mu1 - mu2|^2,
    the traces, the eigenvalues of S1 S2 and so tr sqrtm(S1 S2)) is the 2048-d one, without a 15 s 2048-d sqrtm."""
    from scipy import linalg

    real, fake = real.astype(np.float64), fake.astype(np.float64)
    span = np.concatenate([real - real.mean(0), fake - fake.mean(0), (real.mean(0) - fake.mean(0))[None]])
    basis = np.linalg.qr(span.T)[0]
    real, fake = real @ basis, fake @ basis
    mu, cov = [np.mean(a, axis=0) for a in (real, fake)], [np.cov(a, rowvar=False) for a in (real, fake)]
    with warnings.catch_warnings():  # "Matrix is singular": so is the official code's, with fewer images than dims
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        cc = linalg.sqrtm(np.dot(cov[0], cov[1]))
    return float(np.real(np.sum((mu[0] - mu[1]) ** 2) + np.trace(cov[0] + cov[1] - 2 * cc)))


def official_outputs(model, root: Path, guidance: str, g: int, seed: int, out_dir: Path) -> dict[str, list[Path]]:
    """Every task's outputs saved as StarGAN v2 saves them; latent codes replayed from the model's recorded calls."""
    import torchvision.utils as vutils

    test = {c.name: sorted(c.glob("*.png")) for c in sorted((root / "test").iterdir())}
    inputs = sample_diversity(test, g, "all-other", seed)
    codes = iter(call[3] for call in model.style_calls)
    per_input = {id(inp): next(codes) for inp in inputs} if guidance == "latent" else {}
    files: dict[str, list[Path]] = {}
    for t in test:
        for s in (c for c in test if c != t):
            folder = out_dir / f"{s}2{t}"
            folder.mkdir(parents=True)
            for i, inp in enumerate(x for x in inputs if (x.source_class, x.target_class) == (s, t)):
                src = load_float(inp.source)
                for j in range(g):
                    if guidance == "latent":
                        out = model.translate_with_style(src, per_input[id(inp)][j:j + 1])
                    else:
                        out = model.translate(src, load_float(inp.references[j]))
                    vutils.save_image(((out[0] + 1) / 2).clamp_(0, 1), folder / f"{i:04d}_{j:02d}.png", nrow=1,
                                      padding=0)
            files[f"{s}->{t}"] = sorted(folder.glob("*.png"))
    return files


# ----------------------------------------------------------------------------------------------------
# end to end against the reference


def test_fid_per_task_equals_the_official_computation(digits, provided, tmp_path):
    """The real pipeline (random weights): per-task FID of unit-eval vs StarGAN v2's loop written with torchvision."""
    _, state, digest = provided
    model = LatentTinyTranslator(SIZE, 2)
    spec = replace(load_protocol("stargan-v2-fid"), outputs_per_input=2)
    result = make_runner(digits, model, batch_size=1).run(spec, seed=5)
    official = official_outputs(model, digits, "reference", 2, 5, tmp_path / "official")
    train = {c.name: sorted(c.glob("*.png")) for c in sorted((digits / "train").iterdir())}
    fids = result.values["fid"]
    assert list(fids) == ["1->0", "0->1", "mean"]  # targets in order, then sources (eval.py:37-48)
    real = {c: official_features(state, p) for c, p in train.items()}
    for task, pngs in official.items():
        reference = official_fid(real[task[-1]], official_features(state, pngs))
        assert fids[task] == pytest.approx(reference, rel=1e-6), task
        assert result.n_fake[task] == len(pngs) == 2 * 2 and result.n_real[task] == 3
    assert fids["mean"] == pytest.approx(np.mean([fids["1->0"], fids["0->1"]]), rel=1e-12)
    rows = result.rows("tiny")
    assert {r["metric"] for r in rows} == {"fid"} and {r["class"] for r in rows} == {"1->0", "0->1", "mean"}
    assert rows[0]["extractor"] == f"torchvision-inception-v3/avgpool/stargan-v2 sha256:{digest[:8]}"
    assert rows[0]["options"]["tasks"] == [["1", "0"], ["0", "1"]] and result.n_real["mean"] == 6
    assert_no_absolute_paths(rows)


class OnTies(LatentTinyTranslator):
    """Outputs snapped to the midpoints between uint8 levels, where rounding rules disagree."""

    @staticmethod
    def _snap(y: torch.Tensor) -> torch.Tensor:
        return (torch.floor((y + 1) * 127.5).clamp(0, 254) + 0.5) / 127.5 - 1

    def translate(self, source, reference):
        return self._snap(super().translate(source, reference))

    def translate_with_style(self, source, style):
        return self._snap(super().translate_with_style(source, style))


class Recording(FakeExtractor):
    """The stand-in network, keeping every uint8 image it is given."""

    def __init__(self, preprocessing):
        super().__init__(preprocessing)
        self.seen: list[bytes] = []

    def batch(self, images):
        self.seen.extend(img.permute(1, 2, 0).contiguous().numpy().tobytes() for img in images)
        return super().batch(images)


@pytest.mark.parametrize("guidance", ["reference", "latent"])
def test_scored_pixels_are_the_official_pngs(guidance, digits, tmp_path):
    """Outputs (with references, or the replayed latent codes) saved by torchvision's save_image and read back are
    exactly the uint8 images unit-eval scores (and saves); the FID of their features (a stand-in network) is the
    official formula's. The outputs sit on rounding ties, so a rounding rule other than save_image's shows."""
    model = OnTies(SIZE, 2)
    spec = replace(load_protocol(f"stargan-v2-fid{'-latent' if guidance == 'latent' else ''}"), outputs_per_input=2)
    made = {}
    runner = make_runner(digits, model, lambda p: made.setdefault(p, Recording(p)), batch_size=1,
                         save_images=tmp_path / "saved")
    result = runner.run(spec, seed=7)
    official = official_outputs(model, digits, guidance, 2, 7, tmp_path / "official")
    theirs = sorted(np.asarray(Image.open(p).convert("RGB")).tobytes() for pngs in official.values() for p in pngs)
    n_real = 2 * 3
    assert sorted(made["stargan-v2"].seen[:-n_real]) == theirs  # fakes first (task by task), then the real sets
    saved = sorted((tmp_path / "saved" / spec.name / "seed7").rglob("*.png"))
    assert sorted(np.asarray(Image.open(p)).tobytes() for p in saved) == theirs
    train = {c.name: sorted(c.glob("*.png")) for c in sorted((digits / "train").iterdir())}
    for task, pngs in official.items():
        expected = official_fid(Recording("x").files(train[task[-1]], SIZE, "bilinear"), Recording("x").files(pngs))
        assert result.values["fid"][task] == pytest.approx(expected, rel=1e-6), task


def test_png_round_trip_equals_torchvision_save_image(tmp_path):
    import torchvision.utils as vutils

    halves = torch.tensor([2 * (k + 0.5) / 255 - 1 for k in range(255)], dtype=torch.float32)  # ties at .5
    x = torch.cat([torch.linspace(-1.3, 1.3, 3 * 64 * 64 - 255 - 4), halves, torch.tensor([-1.0, 1.0, -2.0, 2.0])])
    x = x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))].reshape(3, 64, 64)
    vutils.save_image(((x + 1) / 2).clamp_(0, 1), tmp_path / "x.png", nrow=1, padding=0)
    read = torch.from_numpy(np.array(Image.open(tmp_path / "x.png").convert("RGB"))).permute(2, 0, 1)
    assert torch.equal(float_to_uint8_saved(x[None])[0], read)
    assert not torch.equal(float_to_uint8(x[None])[0], read)  # round-to-even differs at the ties: it matters


# ----------------------------------------------------------------------------------------------------
# sampling: tasks, references, latent codes


class Recorder(TinyTranslator):
    """Records the uint8 pixels of every (source, reference) pair it translates."""

    def __init__(self):
        super().__init__(SIZE, 3, domain_names=["0", "1", "2"])
        self.pairs = []

    def translate(self, source, reference):
        for s, r in zip(float_to_uint8(source), float_to_uint8(reference)):
            self.pairs.append((s.numpy().tobytes(), r.numpy().tobytes()))
        return super().translate(source, reference)


def test_tasks_are_every_ordered_pair_and_references_come_from_the_target(digits3):
    from unit_eval.images import load_image

    model = Recorder()
    factory, _ = fake_factory()
    spec = replace(load_protocol("stargan-v2-fid"), outputs_per_input=2)
    result = make_runner(digits3, model, factory).run(spec)
    tasks = [k for k in result.values["fid"] if k != "mean"]
    assert tasks == ["1->0", "2->0", "0->1", "2->1", "0->2", "1->2"]
    assert all(result.n_fake[t] == 3 * 2 for t in tasks)
    class_of = {load_image(p).transpose(2, 0, 1).tobytes(): c.name
                for c in (digits3 / "test").iterdir() for p in c.glob("*.png")}
    seen = [(class_of[s], class_of[r]) for s, r in model.pairs]
    assert len(seen) == 6 * 3 * 2 and all(s != t for s, t in seen)
    assert [f"{s}->{t}" for s, t in seen[::6]] == tasks  # each task's 3 inputs x 2 references, in task order


def test_latent_mode_asks_sample_style_for_the_target_by_name_with_seeded_generators(digits3):
    names = ["2", "0", "1"]  # not the dataset's order: the index must come from domain_names
    factory, _ = fake_factory()
    spec = replace(load_protocol("stargan-v2-fid-latent"), outputs_per_input=2)
    runs = {}
    for seed in (0, 0, 1):
        model = LatentTinyTranslator(SIZE, 3, domain_names=names)
        runs.setdefault(seed, []).append((make_runner(digits3, model, factory).run(spec, seed=seed), model))
    (first, model), (again, _) = runs[0]
    test = {c.name: sorted(c.glob("*.png")) for c in sorted((digits3 / "test").iterdir())}
    inputs = sample_diversity(test, 2, "all-other", 0)
    assert [(n, d) for n, d, *_ in model.style_calls] == [(2, names.index(i.target_class)) for i in inputs]
    seeds = [s for _, _, s, _ in model.style_calls]
    assert None not in seeds and len(set(seeds)) == len(seeds)
    assert first.values == again.values
    assert runs[1][0][0].values["fid"]["mean"] != first.values["fid"]["mean"]
    assert [s for _, _, s, _ in runs[1][0][1].style_calls] != seeds


def test_latent_mode_needs_sample_style_and_domain_names(digits3):
    factory, _ = fake_factory()
    for protocol in ("stargan-v2-fid-latent", "lpips-diversity-latent"):
        with pytest.raises(UnitEvalError, match=r"needs the model's sample_style\(\) method, which TinyTranslator"):
            make_runner(digits3, TinyTranslator(SIZE, 3), factory).run(protocol)
    unnamed = LatentTinyTranslator(SIZE, 3)
    unnamed.domain_names = None
    with pytest.raises(UnitEvalError, match="does not name its domains"):
        make_runner(digits3, unnamed, factory).run("stargan-v2-fid-latent")
    with pytest.raises(UnitEvalError, match=r"classes \['2'\] are not among the model's domain_names"):
        make_runner(digits3, LatentTinyTranslator(SIZE, 2), factory).run("stargan-v2-fid-latent")


# ----------------------------------------------------------------------------------------------------
# latent-guided LPIPS diversity


def test_latent_diversity_equals_lpips_of_the_outputs(digits3):
    from unit_eval.weights import load_lpips

    net = load_lpips("alex", "cpu")
    spec = replace(load_protocol("lpips-diversity-latent"), outputs_per_input=3)
    model = LatentTinyTranslator(SIZE, 3)
    result = make_runner(digits3, model, lpips_factory=lambda n: net).run(spec, seed=2)
    test = {c.name: sorted(c.glob("*.png")) for c in sorted((digits3 / "test").iterdir())}
    inputs = sample_diversity(test, 3, "all-other", 2)
    per_task: dict[tuple[str, str], list[float]] = {}
    with torch.no_grad():
        for inp, (_, _, _, codes) in zip(inputs, model.style_calls, strict=True):
            src = load_float(inp.source)
            outs = [model.translate_with_style(src, codes[j:j + 1]) for j in range(3)]
            pairs = [float(net(outs[a], outs[b]).mean()) for a in range(3) for b in range(a + 1, 3)]
            per_task.setdefault((inp.source_class, inp.target_class), []).append(np.mean(pairs))
    expected = np.mean([np.mean(v) for v in per_task.values()])
    assert result.values["lpips_diversity"]["mean"] == pytest.approx(expected, rel=1e-5)
    assert result.values["lpips_diversity"]["mean"] > 0.01  # the codes move the outputs
    again = make_runner(digits3, LatentTinyTranslator(SIZE, 3), lpips_factory=lambda n: net).run(spec, seed=2)
    other = make_runner(digits3, LatentTinyTranslator(SIZE, 3), lpips_factory=lambda n: net).run(spec, seed=3)
    assert again.values == result.values and other.values != result.values
    assert "sample_style" in result.options["style_codes"]


def test_reference_diversity_is_unchanged_by_the_guidance_key(digits3):
    """Files written before the key (no ``guidance``) mean reference-guided, with the same draws and numbers."""
    from .test_protocol_runner import FakeLpips

    text = (REPO / "protocols" / "lpips-diversity.toml").read_text()
    old = parse_protocol("\n".join(line for line in text.splitlines() if not line.startswith("guidance")), "old.toml")
    assert old.guidance == "reference" == load_protocol("lpips-diversity").guidance
    values = [make_runner(digits3, TinyTranslator(SIZE, 3), lpips_factory=lambda n: FakeLpips()).run(
        replace(spec, outputs_per_input=2)).values for spec in (old, load_protocol("lpips-diversity"))]
    assert values[0] == values[1]
    with pytest.raises(UnitEvalError, match="guidance must be one of reference, latent"):
        parse_protocol(text.replace('guidance = "reference"', 'guidance = "random"'), "bad.toml")
    assert tomllib.loads(text)["guidance"] == "reference"


# ----------------------------------------------------------------------------------------------------
# weights


def test_missing_weights_is_one_line_through_the_cli(digits, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in catalog.ENV_VARS.values()}
    env.update(UNIT_EVAL_CACHE=str(tmp_path / "cache"), TORCH_HOME=str(tmp_path / "torch"))
    proc = subprocess.run([sys.executable, "-m", "unit_eval.cli", "evaluate", "--model", "tests.tiny_translator:latent_factory",
                           "--protocol", "stargan-v2-fid", "--data", str(digits), "--device", "cpu"],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: no torchvision ImageNet Inception-V3 weights (unit-eval cannot download them): download "
        "inception_v3_google-0cc3c7bd.pth (https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth) and "
        "run `unit-eval weights fetch torchvision-inception --from FILE`, or set "
        "UNIT_EVAL_TORCHVISION_INCEPTION_WEIGHTS=FILE (evaluation 1 of 1: stargan-v2-fid, seed 0)"]


def test_weights_fetch_from_file_pin_and_layout(provided, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from unit_eval.commands.weights import weights_group
    from unit_eval.extractors import get_extractor
    from unit_eval.weights import feature_nets

    path, state, digest = provided
    monkeypatch.delenv(catalog.ENV_VARS[NAME])
    result = CliRunner().invoke(weights_group, ["fetch", NAME, "--from", str(path), "--json"])
    assert result.exit_code == 0, result.output
    resolved = feature_nets.require(NAME)
    assert resolved.path.name == "inception_v3_google-0cc3c7bd.pth" and resolved.sha256 == digest
    assert get_extractor(NAME, device="cpu").describe().endswith(f"sha256:{digest[:8]}")
    # the real pin (a prefix for 0cc3c7bd, the full digest for 1a9a5a14) refuses the random file, in one line
    monkeypatch.setitem(catalog.FEATURE_NETS, NAME, catalog.FEATURE_NETS[NAME].__class__(
        *[getattr(feature_nets.FEATURE_NETS[NAME], f) for f in ("files",)], sha256=("0cc3c7bd", "1a9a5a14" + "0" * 56),
        url=catalog.FEATURE_NETS[NAME].url))
    with pytest.raises(UnitEvalError, match="not that of the official inception_v3_google-0cc3c7bd.pth") as exc:
        get_extractor(NAME, device="cpu", weights=path)
    assert "\n" not in str(exc.value)
    # a pinned file of another layout: one line naming what differs
    other = tmp_path / "other.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, other)
    monkeypatch.setitem(catalog.FEATURE_NETS, NAME, dataclasses.replace(catalog.FEATURE_NETS[NAME],
                                                                        sha256=(feature_nets.artifacts._sha256(other),)))
    with pytest.raises(UnitEvalError, match="is not torchvision's ImageNet Inception-V3 layout: 2 missing keys"):
        get_extractor(NAME, device="cpu", weights=other)


def test_fid_and_diversity_score_the_same_outputs_for_one_seed(digits3):
    """One seed: stargan-v2-fid and lpips-diversity translate the same (source, reference) pairs, and their latent
    variants draw the same codes, so FID and diversity describe the same outputs (as in StarGAN v2's one loop)."""
    from .test_protocol_runner import FakeLpips

    factory, _ = fake_factory()
    pairs = []
    for name in ("stargan-v2-fid", "lpips-diversity"):
        model = Recorder()
        make_runner(digits3, model, factory, lpips_factory=lambda n: FakeLpips()).run(
            replace(load_protocol(name), outputs_per_input=2), seed=4)
        pairs.append(sorted(model.pairs))
    assert pairs[0] == pairs[1] and len(pairs[0]) == 9 * 2 * 2
    codes = []
    for name in ("stargan-v2-fid-latent", "lpips-diversity-latent"):
        model = LatentTinyTranslator(SIZE, 3)
        make_runner(digits3, model, factory, lpips_factory=lambda n: FakeLpips()).run(
            replace(load_protocol(name), outputs_per_input=2), seed=4)
        codes.append([(d, s, c.numpy().tobytes()) for _, d, s, c in model.style_calls])
    assert codes[0] == codes[1] and len(codes[0]) == 9 * 2


def test_latent_mode_needs_no_references(digits3):
    """Latent-guided inputs draw no references: 5 outputs per input from 3 test images per class is fine."""
    factory, _ = fake_factory()
    spec = replace(load_protocol("stargan-v2-fid-latent"), outputs_per_input=5)
    result = make_runner(digits3, LatentTinyTranslator(SIZE, 3), factory).run(spec)
    assert result.n_fake["mean"] == 9 * 2 * 5
    with pytest.raises(UnitEvalError, match="references of class '0': needs 5 images, the split has 3"):
        make_runner(digits3, LatentTinyTranslator(SIZE, 3), factory).run(replace(spec, guidance="reference"))


def test_bootstrap_intervals_per_task_and_mean(digits3):
    from unit_eval.evaluation.intervals import BootstrapPlan

    factory, made = fake_factory()
    settings = Settings(device=CPU, batch_size=4, cache=None, progress=False, bootstrap=BootstrapPlan(20, real=True))
    runner = ProtocolRunner(resolve_dataset(digits3), model=TinyTranslator(SIZE, 3), settings=settings,
                            extractor_factory=factory)
    result = runner.run(replace(load_protocol("stargan-v2-fid"), outputs_per_input=2))
    assert set(result.intervals) == {"fid"} and set(result.intervals["fid"]) == set(result.values["fid"])
    assert all(r["ci_low"] is not None and r["ci_low"] <= r["ci_high"] for r in result.rows("tiny"))
    assert made["stargan-v2"].files_calls == 3 * 4  # each class's train set extracted once, not once per task


def test_folders_with_unit_eval_fd_equal_calculate_fid_given_paths(digits, provided, tmp_path):
    """``unit-eval fd --features torchvision-inception --size S --resize-filter bilinear REAL FAKE``: StarGAN v2's
    ``calculate_fid_given_paths([REAL, FAKE], img_size=S)`` on folders of saved images (e.g. the official code's own
    outputs), against torchvision + numpy/scipy on the same files."""
    path, state, digest = provided
    real, fake = digits / "train", digits / "test"  # 40 px train images: the first resize (to 32) is exercised
    result = CliRunner().invoke(cli, ["fd", str(real), str(fake), "--features", "torchvision-inception", "--size",
                                      str(SIZE), "--resize-filter", "bilinear", "--device", "cpu", "--no-cache", "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    want = official_fid(official_features(state, sorted(real.rglob("*.png"))),
                        official_features(state, sorted(fake.rglob("*.png"))))
    assert got["fid_torchvision"] == pytest.approx(want, rel=1e-6)
    assert got["weights_sha256"] == digest and got["preprocessing"] == "stargan-v2"
    assert (got["n_real"], got["n_fake"]) == (6, 4)
