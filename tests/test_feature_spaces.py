"""DINOv2 and CLIP feature spaces (FD_DINOv2, CMMD) against independent references, with SEEDED RANDOM weights.

The real DINOv2 / CLIP files cannot be downloaded here, so every network test loads the same seeded random
tensors, in the official checkpoint layout, into unit-eval's pipeline and into a reference implementation:

- DINOv2: transformers' ``Dinov2Model`` (an independent port), fed by the reference preprocessing (torchvision's
  dgm-eval transform; EDM2's ``F.interpolate`` lines); its own position-embedding resize uses an output size
  where the official code uses a scale factor, so it gets the embeddings resampled by a NumPy transcription of
  the official bicubic-with-scale-factor call. With ``UNIT_EVAL_DINOV2_SOURCE`` pointing at a checkout of
  facebookresearch/dinov2, the official ``vision_transformer.py`` itself is compared end to end.
- CLIP: open_clip's vision tower (independent of torch-fidelity's copy of OpenAI's code that unit-eval runs),
  a small random tower at CMMD's 336 px, read from a TorchScript archive as OpenAI ships it; the ViT-L/14@336px
  layout is compared with open_clip's on the meta device.
- CMMD: a NumPy transcription of google-research ``cmmd/distance.py`` and analytic values.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from unit_eval.errors import UnitEvalError
from unit_eval.extractors import clip as uclip
from unit_eval.extractors import dinov2 as udino
from unit_eval.extractors import get_extractor
from unit_eval.metrics.cmmd import cmmd
from unit_eval.weights import catalog

torch.set_num_threads(2)
timm = pytest.importorskip("timm")
transformers = pytest.importorskip("transformers")
open_clip = pytest.importorskip("open_clip")


def _photos() -> list[np.ndarray]:
    import skimage.data

    return [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]  # 512², 400x600, 300x451


def _u8(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]


def _random_state(layout: dict[str, tuple[int, ...]], seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in layout.items():
        if key.endswith(".gamma") or ("norm" in key or "ln_" in key) and key.endswith("weight"):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=g) if not key.endswith(".gamma") else torch.rand(shape, generator=g)
        else:
            state[key] = 0.05 * torch.randn(shape, generator=g)
    return state


def _pin(monkeypatch, name: str, path) -> str:
    from unit_eval.cache import sha256_file

    digest = sha256_file(path)
    monkeypatch.setitem(catalog.FEATURE_NETS, name, dataclasses.replace(catalog.FEATURE_NETS[name], sha256=(digest,)))
    return digest


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in catalog.ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def dino_b14(tmp_path_factory):
    state = _random_state(udino.official_layout("dinov2-vitb14"), seed=1)
    path = tmp_path_factory.mktemp("dino") / "dinov2_vitb14_pretrain.pth"
    torch.save(state, path)
    return path, state


# ----------------------------------------------------------------------------------------------------
# DINOv2


def _bicubic_scale_numpy(grid: np.ndarray, scale: float, out: int) -> np.ndarray:
    """PyTorch's bicubic (A = -0.75, align_corners=False) driven by a scale factor, on C x M x M, in NumPy."""
    def weights_1d(n_in):
        w = np.zeros((out, n_in))
        for i in range(out):
            src = (i + 0.5) / scale - 0.5
            x0 = int(np.floor(src))
            t = src - x0
            a = -0.75
            ks = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
                  ((a + 2) * t - (a + 3)) * t * t + 1,
                  ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
                  ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]
            for k, kw in zip(range(x0 - 1, x0 + 3), ks):
                w[i, min(max(k, 0), n_in - 1)] += kw
        return w

    w = weights_1d(grid.shape[-1])
    return np.einsum("ih,chw,jw->cij", w, grid.astype(np.float64), w)


def _hf_dinov2(name: str, official: dict[str, torch.Tensor], pos_embed: torch.Tensor):
    """transformers' Dinov2Model at 224 px (no resize of its own) holding ``official`` under its names."""
    _, d, depth = udino.VARIANTS[name]
    config = transformers.Dinov2Config(hidden_size=d, num_hidden_layers=depth, num_attention_heads=d // 64,
                                       patch_size=14, image_size=224, layer_norm_eps=1e-6, hidden_act="gelu")
    model = transformers.Dinov2Model(config).eval()
    hf = {"embeddings.cls_token": official["cls_token"], "embeddings.mask_token": official["mask_token"],
          "embeddings.position_embeddings": pos_embed,
          "embeddings.patch_embeddings.projection.weight": official["patch_embed.proj.weight"],
          "embeddings.patch_embeddings.projection.bias": official["patch_embed.proj.bias"],
          "layernorm.weight": official["norm.weight"], "layernorm.bias": official["norm.bias"]}
    for i in range(depth):
        o, h = f"blocks.{i}.", f"encoder.layer.{i}."
        for part in ("weight", "bias"):
            for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
                hf[f"{h}attention.{proj}.{part}"] = official[f"{o}attn.qkv.{part}"].chunk(3)[j]
            hf[f"{h}attention.o_proj.{part}"] = official[f"{o}attn.proj.{part}"]
            for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                hf[f"{h}{n}.{part}"] = official[f"{o}{n}.{part}"]
        hf[f"{h}layer_scale1.lambda1"] = official[f"{o}ls1.gamma"]
        hf[f"{h}layer_scale2.lambda1"] = official[f"{o}ls2.gamma"]
    hf["embeddings.mask_token"] = hf["embeddings.mask_token"].reshape(model.embeddings.mask_token.shape)
    model.load_state_dict(hf, strict=True)
    return model


def _reference_input(img: np.ndarray, mode: str) -> torch.Tensor:
    import torchvision.transforms as T

    if mode == "dgm-eval-pil":  # dgm_eval/models/dinov2.py DINOv2Encoder.transform (clean_resize=False)
        t = T.Compose([T.Resize((224, 224), T.InterpolationMode.BICUBIC), T.ToTensor(),
                       T.Normalize(np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]))])
        return t(Image.fromarray(img).convert("RGB"))[None]
    x = torch.from_numpy(img).permute(2, 0, 1)[None].to(torch.float32)  # edm2 calculate_metrics.py DINOv2Detector
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", antialias=True) / 255
    x = x - torch.tensor([0.485, 0.456, 0.406]).reshape(1, -1, 1, 1)
    return x / torch.tensor([0.229, 0.224, 0.225]).reshape(1, -1, 1, 1)


def test_pos_embed_resampling_is_the_official_scale_factor_bicubic(dino_b14):
    _, state = dino_b14
    ours = udino.resample_pos_embed(state["pos_embed"])
    d = state["pos_embed"].shape[-1]
    grid = state["pos_embed"][0, 1:].reshape(37, 37, d).permute(2, 0, 1).numpy()
    ref = _bicubic_scale_numpy(grid, (16 + 0.1) / 37, 16).transpose(1, 2, 0).reshape(256, d)
    assert torch.equal(ours[0, 0], state["pos_embed"][0, 0])
    assert np.abs(ours[0, 1:].numpy() - ref).max() < 1e-5
    by_size = torch.nn.functional.interpolate(torch.from_numpy(grid)[None], size=(16, 16), mode="bicubic")
    assert np.abs(by_size[0].permute(1, 2, 0).reshape(256, d).numpy() - ref).max() > 1e-3  # the difference is real


@pytest.mark.parametrize("mode", ["dgm-eval-pil", "edm2-torch"])
def test_dinov2_b14_pipeline_equals_reference(dino_b14, monkeypatch, mode):
    path, state = dino_b14
    digest = _pin(monkeypatch, "dinov2-vitb14", path)
    ext = get_extractor("dinov2-vitb14", device="cpu", weights=path, preprocessing=mode, progress=False)
    assert (ext.feature_dim, ext.weights_sha256, ext.preprocessing) == (768, digest, mode)
    d = state["pos_embed"].shape[-1]
    grid = state["pos_embed"][0, 1:].reshape(37, 37, d).permute(2, 0, 1).numpy()
    pos = _bicubic_scale_numpy(grid, (16 + 0.1) / 37, 16).transpose(1, 2, 0).reshape(1, 256, d)
    pos = torch.cat([state["pos_embed"][:, :1], torch.from_numpy(pos).float()], dim=1)
    ref_model = _hf_dinov2("dinov2-vitb14", state, pos)
    worst = 0.0
    for img in _photos():
        ours = ext.batch(_u8(img))
        with torch.no_grad():
            ref = ref_model(pixel_values=_reference_input(img, mode)).pooler_output.double()
        assert ours.shape == (1, 768) and ours.dtype == torch.float64
        worst = max(worst, float((ours - ref).abs().max()))
    print(f"DINOv2 B/14 {mode}: max |ours - transformers| = {worst:.2e}")
    assert worst < 1e-4


def test_dinov2_preprocessing_equals_reference_on_photos():
    for img in _photos():
        for mode in udino.PREPROCESSING:
            assert torch.allclose(udino.preprocess(_u8(img), mode), _reference_input(img, mode), atol=1e-6, rtol=0)
    # the two modes are different resizes (EDM2: "almost the same results")
    img = _photos()[1]
    assert (udino.preprocess(_u8(img), "dgm-eval-pil") - udino.preprocess(_u8(img), "edm2-torch")).abs().max() > 1e-3


@pytest.mark.skipif(not os.environ.get("UNIT_EVAL_DINOV2_SOURCE"),
                    reason="UNIT_EVAL_DINOV2_SOURCE (a facebookresearch/dinov2 checkout) not set")
def test_dinov2_equals_official_code(dino_b14, monkeypatch):
    monkeypatch.syspath_prepend(os.environ["UNIT_EVAL_DINOV2_SOURCE"])
    from dinov2.models import vision_transformer as vits  # the official code (hub defaults of backbones.py)

    path, state = dino_b14
    _pin(monkeypatch, "dinov2-vitb14", path)
    official = vits.vit_base(patch_size=14, img_size=518, init_values=1.0, block_chunks=0, num_register_tokens=0,
                             interpolate_antialias=False, interpolate_offset=0.1).eval()
    official.load_state_dict(state, strict=True)
    ext = get_extractor("dinov2-vitb14", device="cpu", weights=path, progress=False)
    worst = 0.0
    for img in _photos():
        with torch.no_grad():
            ref = official(_reference_input(img, "dgm-eval-pil")).double()
        worst = max(worst, float((ext.batch(_u8(img)) - ref).abs().max()))
    print(f"DINOv2 B/14 vs official code: {worst:.2e}")
    assert worst < 1e-5


def test_dinov2_l14_layout_and_architecture():
    _, d, depth = udino.VARIANTS["dinov2-vitl14"]
    with torch.device("meta"):
        hf = transformers.Dinov2Model(transformers.Dinov2Config(
            hidden_size=d, num_hidden_layers=depth, num_attention_heads=16, patch_size=14, image_size=518))
        ours = udino.build_model("dinov2-vitl14")
    layout = udino.official_layout("dinov2-vitl14")
    assert sum(int(np.prod(s)) for s in layout.values()) == sum(p.numel() for p in hf.parameters())
    assert sum(p.numel() for p in ours.parameters()) == sum(int(np.prod(s)) for k, s in layout.items()
                                                            if k != "mask_token") - (1369 - 256) * d
    assert len(layout) == 4 + 1 + 14 * depth + 2 and layout["pos_embed"] == (1, 1370, 1024)


# ----------------------------------------------------------------------------------------------------
# CLIP

TINY = uclip.VisionSpec(width=64, layers=2, patch=14, resolution=336, embed_dim=32)


class _OpenAIArchive(torch.nn.Module):
    """A module shaped like OpenAI's CLIP archive (``visual.*`` and text tensors), to be traced and saved."""

    def __init__(self, visual: torch.nn.Module):
        super().__init__()
        self.visual = visual
        self.text_projection = torch.nn.Parameter(torch.randn(64, TINY.embed_dim))
        self.logit_scale = torch.nn.Parameter(torch.ones([]))

    def forward(self, x):
        return self.visual(x)


@pytest.fixture(scope="module")
def clip_tiny(tmp_path_factory):
    state = _random_state(uclip.visual_layout(TINY), seed=2)
    model = uclip.build_model(TINY, state)
    archive = torch.jit.trace(_OpenAIArchive(model.visual).eval(), torch.zeros(1, 3, 336, 336))
    path = tmp_path_factory.mktemp("clip") / "ViT-L-14-336px.pt"
    torch.jit.save(archive, str(path))
    return path, state


def _cmmd_reference_input(img: np.ndarray) -> torch.Tensor:
    """google-research cmmd io_util._center_crop_and_resize + /255 + scenic normalize_image (float32 as in JAX)."""
    im = Image.fromarray(img)
    w, h = im.size
    side = min(w, h)
    top, left = (h - side) // 2, (w - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((336, 336), resample=Image.BICUBIC)
    x = np.asarray(im).astype(np.float32) / 255.0
    x = (x - np.array([0.48145466, 0.4578275, 0.40821073], np.float32)) / np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)[None]


def _open_clip_tower(spec: uclip.VisionSpec):
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    cfg = CLIPVisionCfg(layers=spec.layers, width=spec.width, patch_size=spec.patch, image_size=spec.resolution,
                        head_width=64)
    return _build_vision_tower(spec.embed_dim, cfg, quick_gelu=True)


def test_clip_pipeline_equals_open_clip(clip_tiny, monkeypatch):
    path, state = clip_tiny
    digest = _pin(monkeypatch, "clip-vitl14-336", path)
    from unit_eval.weights import feature_nets

    loaded = feature_nets.load_state(feature_nets.check_file("clip-vitl14-336", path, "test"))
    ext = uclip.CLIPFeatures(loaded, digest, spec=TINY, device="cpu", progress=False)
    ref_tower = _open_clip_tower(TINY).eval()
    ref_tower.load_state_dict({k[len("visual."):]: v for k, v in state.items()}, strict=True)
    worst = 0.0
    for img in _photos():
        ours = ext.batch(_u8(img))
        with torch.no_grad():
            ref = ref_tower(_cmmd_reference_input(img)).double()
        ref = ref / ref.norm(dim=-1, keepdim=True)
        assert ours.shape == (1, 32) and torch.allclose(ours.norm(dim=-1), torch.ones(1, dtype=torch.float64))
        worst = max(worst, float((ours - ref).abs().max()))
    print(f"CLIP tiny@336: max |ours - open_clip| = {worst:.2e}")
    assert worst < 1e-5


def test_clip_preprocessing_equals_cmmd_reference_on_photos():
    for img in _photos():
        assert torch.allclose(uclip.preprocess(_u8(img), 336), _cmmd_reference_input(img), atol=1e-6, rtol=0)


def test_clip_l14_336_layout_matches_open_clip():
    with torch.device("meta"):
        tower = _open_clip_tower(uclip.VITL14_336)
    theirs = {f"visual.{k}": tuple(v.shape) for k, v in tower.state_dict().items()}
    assert theirs == uclip.visual_layout(uclip.VITL14_336)
    assert open_clip.get_model_config("ViT-L-14-336")["embed_dim"] == uclip.VITL14_336.embed_dim


# ----------------------------------------------------------------------------------------------------
# CMMD


def _mmd_reference(x, y, sigma=10.0, scale=1000.0):
    """google-research cmmd/distance.py mmd, transcribed to NumPy (float64)."""
    x_sq, y_sq = np.diag(x @ x.T), np.diag(y @ y.T)
    gamma = 1 / (2 * sigma ** 2)
    k_xx = np.mean(np.exp(-gamma * (-2 * x @ x.T + x_sq[:, None] + x_sq[None, :])))
    k_xy = np.mean(np.exp(-gamma * (-2 * x @ y.T + x_sq[:, None] + y_sq[None, :])))
    k_yy = np.mean(np.exp(-gamma * (-2 * y @ y.T + y_sq[:, None] + y_sq[None, :])))
    return scale * (k_xx + k_yy - 2 * k_xy)


def test_cmmd_equals_reference_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 16)) * 4
    y = rng.normal(size=(25, 16)) * 4 + 1.0
    assert cmmd(x, y) == pytest.approx(_mmd_reference(x, y), rel=1e-12, abs=1e-12)
    assert cmmd(x, y) == pytest.approx(cmmd(y, x), rel=1e-12)
    assert abs(cmmd(x, x)) < 1e-9
    # one point each: 1000 * (1 + 1 - 2 exp(-|x - y|^2 / (2 * 10^2))), |x - y|^2 = 25
    assert cmmd([[0.0, 0.0]], [[3.0, 4.0]]) == pytest.approx(235.00619483080908, rel=1e-12)
    with pytest.raises(UnitEvalError):
        cmmd(x, y[:, :3])


# ----------------------------------------------------------------------------------------------------
# weights: status, fetch, refusals; CLI


class _Evil:
    """Unpickling this runs code (print): a weights-only load must refuse it."""

    def __reduce__(self):
        return (print, ("unpickled code ran",))


def test_weights_errors_are_one_line(dino_b14, tmp_path, monkeypatch):
    path, _ = dino_b14
    with pytest.raises(UnitEvalError, match="cannot download") as exc:
        get_extractor("dinov2-vitb14", device="cpu")
    assert "unit-eval weights fetch dinov2-vitb14 --from FILE" in str(exc.value) and "\n" not in str(exc.value)
    monkeypatch.setenv("UNIT_EVAL_DINOV2_VITB14_WEIGHTS", str(tmp_path / "absent.pth"))
    with pytest.raises(UnitEvalError, match="not a file"):
        get_extractor("dinov2-vitb14", device="cpu")
    with pytest.raises(UnitEvalError, match="not that of the official dinov2_vitb14_pretrain.pth") as exc:
        get_extractor("dinov2-vitb14", device="cpu", weights=path)  # real pin, random file
    assert "\n" not in str(exc.value)
    evil = tmp_path / "evil.pth"
    torch.save({"state": _Evil()}, evil)
    _pin(monkeypatch, "dinov2-vitb14", evil)
    with pytest.raises(UnitEvalError, match="pickled objects or code") as exc:
        get_extractor("dinov2-vitb14", device="cpu", weights=evil)
    assert "\n" not in str(exc.value)


def test_weights_status_and_fetch_from(dino_b14, monkeypatch):
    from unit_eval.commands.weights import weights_group

    path, _ = dino_b14
    runner = CliRunner()
    status = json.loads(runner.invoke(weights_group, ["status", "--json"]).stdout)
    assert {"dinov2-vitl14", "dinov2-vitb14", "clip-vitl14-336"} <= set(status)
    assert status["dinov2-vitl14"]["present"] is False and "cannot download" in status["dinov2-vitl14"]["problem"]
    digest = _pin(monkeypatch, "dinov2-vitb14", path)
    result = runner.invoke(weights_group, ["fetch", "dinov2-vitb14", "--from", str(path), "--json"])
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["dinov2-vitb14"]
    assert entry["present"] is True and entry["sha256"] == digest and "official file" in entry["source"]
    ext = get_extractor("dinov2-vitb14", device="cpu", progress=False)  # now found in <cache>/weights
    assert ext.weights_sha256 == digest


def test_cli_missing_weights_is_one_line(tmp_path, digits_real):
    env = {**os.environ, "UNIT_EVAL_CACHE": str(tmp_path / "c"), "TORCH_HOME": str(tmp_path / "t")}
    for var in catalog.ENV_VARS.values():
        env.pop(var, None)
    proc = subprocess.run([sys.executable, "-m", "unit_eval.cli", "cmmd", str(digits_real), str(digits_real)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: no CLIP ViT-L/14@336px weights"), proc.stderr


@pytest.fixture(scope="module")
def small_sets(tmp_path_factory):
    """4 real and 3 fake images (scikit-image photos and scikit-learn digits, 64 x 64 RGB PNGs)."""
    from tests.conftest import photo_arrays, write_digits

    real = tmp_path_factory.mktemp("real")
    for i, img in enumerate(photo_arrays(64)[:4]):
        Image.fromarray(img).save(real / f"{i}.png")
    fake = write_digits(tmp_path_factory.mktemp("fake"), classes=(1,), per_class=3, size=64) / "1"
    return real, fake


def test_cli_fd_json_and_rows(dino_b14, monkeypatch, tmp_path, small_sets):
    from unit_eval.cli import cli
    from unit_eval.metrics.fid import fid_from_features

    path, _ = dino_b14
    digest = _pin(monkeypatch, "dinov2-vitb14", path)
    (real, fake), out = small_sets, tmp_path / "rows.jsonl"
    result = CliRunner().invoke(cli, ["fd", str(real), str(fake), "--features", "dinov2-vitb14", "--weights", str(path),
                                      "--device", "cpu", "--workers", "0", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["feature_extractor"] == "dinov2-vitb14" and got["feature_dim"] == 768
    assert got["preprocessing"] == "dgm-eval-pil" and got["weights_sha256"] == digest
    ext = get_extractor("dinov2-vitb14", device="cpu", weights=path, progress=False)
    expected = fid_from_features(ext.folder(real), ext.folder(fake))
    assert got["fd_dinov2_vitb14"] == pytest.approx(expected, rel=1e-6)  # singular covariances (4, 3 < 768)
    row = json.loads(out.read_text().splitlines()[0])
    assert row["metric"] == "fd_dinov2_vitb14" and row["extractor"] == ext.describe()
    assert row["options"]["weights_sha256"] == digest and row["options"]["feature_dim"] == 768


def test_folder_cmmd_equals_reference(clip_tiny, monkeypatch, small_sets):
    from unit_eval.commands.feature_spaces import folder_cmmd
    from unit_eval.images import list_images
    from unit_eval.weights import feature_nets

    path, state = clip_tiny
    digest = _pin(monkeypatch, "clip-vitl14-336", path)
    ext = uclip.CLIPFeatures(feature_nets.load_state(feature_nets.check_file("clip-vitl14-336", path, "test")),
                             digest, spec=TINY, device="cpu", num_workers=0, progress=False)
    real, fake = small_sets
    result = folder_cmmd(real, fake, ext)
    tower = _open_clip_tower(TINY).eval()
    tower.load_state_dict({k[len("visual."):]: v for k, v in state.items()}, strict=True)

    def embed(folder):
        with torch.no_grad():
            e = torch.cat([tower(_cmmd_reference_input(np.asarray(Image.open(p).convert("RGB")))) for p in list_images(folder)])
        return (e / e.norm(dim=-1, keepdim=True)).double().numpy()

    assert result.values["cmmd"]["mean"] == pytest.approx(_mmd_reference(embed(real), embed(fake)), rel=1e-5, abs=1e-6)
    assert result.options["weights_sha256"] == digest and result.options["preprocessing"] == "cmmd-pil"


def test_inception_satisfies_the_interface():
    from unit_eval.extractors import FeatureExtractor
    from unit_eval.features import InceptionFeatures

    for member in ("name", "feature_dim", "weights_sha256", "describe", "batch", "stream", "files"):
        assert hasattr(InceptionFeatures, member), member
    assert InceptionFeatures.name == "inception"
    assert {"name", "feature_dim", "preprocessing"} <= set(FeatureExtractor.__annotations__)
    assert all(callable(getattr(FeatureExtractor, m)) for m in ("describe", "batch", "stream", "files"))
