"""Real Inception weights (fetched by unit-eval's own code) on real images, against torch-fidelity."""
from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pytest
import torch

from unit_eval.features import FeatureCache, InceptionFeatures
from unit_eval.folders import folder_fid, folder_mfid, folder_prdc, summary
from unit_eval.images import list_images, load_image, save_image

from .conftest import photo_arrays

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def extractor():
    return InceptionFeatures(device="cpu", batch_size=64, progress=False, num_workers=0)


@pytest.fixture(scope="module")
def fidelity_weights(extractor, tmp_path_factory):
    """The same converted weights as a file torch-fidelity's strict loader accepts (its unused head NaN)."""
    state = torch.load(extractor.weights_path, map_location="cpu", weights_only=True)
    state.setdefault("fc.weight", torch.full((1008, 2048), float("nan")))
    state.setdefault("fc.bias", torch.full((1008,), float("nan")))
    path = tmp_path_factory.mktemp("fidelity") / "inception.pth"
    torch.save(state, path)
    return str(path)


def torch_fidelity_fid(real, fake, weights, batch_size=64):
    import torch_fidelity

    with contextlib.redirect_stdout(io.StringIO()):
        out = torch_fidelity.calculate_metrics(
            input1=str(fake), input2=str(real), fid=True, cuda=False, batch_size=batch_size,
            feature_extractor_weights_path=weights, verbose=False, cache=False, samples_find_deep=True,
        )
    return out["frechet_inception_distance"]


@pytest.fixture(scope="module")
def photos_pair(tmp_path_factory):
    """scikit-image photos (real) and the same photos flipped and darkened (fake), same size."""
    root = tmp_path_factory.mktemp("photos")
    for i, img in enumerate(photo_arrays(96)):
        save_image(img, root / "real" / f"{i}.png")
        save_image((img[:, ::-1] * 0.8).astype(np.uint8), root / "fake" / f"{i}.png")
    return root / "real", root / "fake"


def test_fid_equals_torch_fidelity_on_digits(extractor, fidelity_weights, digits_real, digits_fake):
    ours = summary(folder_fid(digits_real, digits_fake, extractor))["fid"]
    reference = torch_fidelity_fid(digits_real, digits_fake, fidelity_weights)
    assert ours == pytest.approx(reference, rel=1e-5)
    assert ours > 1  # different digits really differ


def test_fid_equals_torch_fidelity_on_photos(extractor, fidelity_weights, photos_pair):
    real, fake = photos_pair
    ours = summary(folder_fid(real, fake, extractor))["fid"]
    assert ours == pytest.approx(torch_fidelity_fid(real, fake, fidelity_weights), rel=1e-5)


def test_batch_size_does_not_change_features_or_fid(extractor, digits_real, digits_fake):
    small = InceptionFeatures(device="cpu", batch_size=5, progress=False, num_workers=0)
    paths = list_images(digits_real)
    a, b = extractor.files(paths), small.files(paths)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)
    f1 = summary(folder_fid(digits_real, digits_fake, extractor))["fid"]
    f2 = summary(folder_fid(digits_real, digits_fake, small))["fid"]
    assert f1 == pytest.approx(f2, rel=1e-6)


def test_deterministic(extractor, digits_real, digits_fake):
    assert summary(folder_fid(digits_real, digits_fake, extractor))["fid"] == summary(folder_fid(digits_real, digits_fake, extractor))["fid"]


def test_mfid_per_class_equals_fid_of_class_folders(extractor, digits_real, digits_fake):
    result = summary(folder_mfid(digits_real, digits_fake, extractor))
    assert set(result["per_class"]) == {"0", "1", "2"}
    one = summary(folder_fid(digits_real / "1", digits_fake / "1", extractor))["fid"]
    assert result["per_class"]["1"] == pytest.approx(one, rel=1e-12)
    assert result["mfid"] == pytest.approx(np.mean(list(result["per_class"].values())), rel=1e-12)


def test_dc_on_real_features_equals_prdc(extractor, digits_real, digits_fake):
    import prdc

    ours = summary(folder_prdc(digits_real, digits_fake, extractor, k=5))
    real = extractor.files(list_images(digits_real))
    fake = extractor.files(list_images(digits_fake))
    with contextlib.redirect_stdout(io.StringIO()):
        ref = prdc.compute_prdc(real, fake, 5)
    for key in ("precision", "recall", "density", "coverage"):
        assert abs(ours[key] - float(ref[key])) <= 1e-9


def test_trunk_replicates_torch_fidelity_forward(extractor):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    images = torch.from_numpy(np.stack(photo_arrays(64)[:3])).permute(0, 3, 1, 2).contiguous()
    x = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(299, 299), align_corners=False)
    via_trunk = extractor.trunk((x - 128) / 128).double()
    torch.testing.assert_close(via_trunk, extractor.batch(images), rtol=0, atol=1e-6)


def test_legacy_preprocessing_differs_but_is_close(extractor, digits_real):
    legacy = InceptionFeatures(device="cpu", preprocessing="tunit-legacy", progress=False, num_workers=0)
    images = torch.from_numpy(np.stack([load_image(p) for p in list_images(digits_real)[:6]])).permute(0, 3, 1, 2)
    a, b = extractor.batch(images), legacy.batch(images)
    assert a.shape == b.shape == (6, 2048)
    assert not torch.allclose(a, b)  # nearest resize + ImageNet normalisation really change features
    floats = legacy.batch(images.float() / 127.5 - 1)
    torch.testing.assert_close(floats, b, rtol=0, atol=1e-4)


def test_feature_cache_hit_and_invalidation(extractor, tmp_path, digits_real):
    import shutil

    folder = tmp_path / "real"
    shutil.copytree(digits_real / "0", folder)
    cache = FeatureCache(tmp_path / "cache")
    paths = list_images(folder)
    first = cache.features(paths, extractor)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    np.testing.assert_array_equal(cache.features(paths, extractor), first)  # hit
    key = cache.key(paths, extractor, None, "bicubic")
    os.utime(paths[0], ns=(1, 1))  # a changed file changes the key
    assert cache.key(paths, extractor, None, "bicubic") != key
    assert cache.key(paths, extractor, 16, "bicubic") != cache.key(paths, extractor, 16, "nearest")
    # A corrupt entry is recomputed, not trusted.
    entry = tmp_path / "cache" / f"{cache.key(paths, extractor, None, 'bicubic')}.npz"
    cache.features(paths, extractor)
    entry.write_bytes(b"garbage")
    np.testing.assert_array_equal(cache.features(paths, extractor), first)


def _tampered_entry(cache, paths, extractor, folder):
    """Fill the cache, then change one value of the entry, keeping it a valid .npz with its old checksum."""
    first = cache.features(paths, extractor)
    (entry,) = folder.glob("*.npz")
    with np.load(entry) as data:
        feats, stored = data["features"].copy(), data["sha256"]
    feats[0, 0] += 0.5
    np.savez(entry, features=feats, sha256=stored)
    return first, entry


def test_feature_cache_refuses_an_altered_but_valid_entry(extractor, tmp_path, digits_real, capsys):
    """One value of a cached array changed, the file still a valid .npz with its old checksum: the next read is a
    miss (one line on stderr) and the entry is rebuilt, never a silently different FID."""
    cache = FeatureCache(tmp_path / "cache")
    paths = list_images(digits_real / "0")
    first, entry = _tampered_entry(cache, paths, extractor, tmp_path / "cache")
    capsys.readouterr()
    again = cache.features(paths, extractor)
    np.testing.assert_array_equal(again, first)
    err = capsys.readouterr().err
    assert f"feature cache entry {entry.name} fails its checksum (altered or corrupt); recomputing it" in err
    assert len(err.strip().splitlines()) == 1
    with np.load(entry) as data:  # rebuilt
        np.testing.assert_array_equal(data["features"], first)
    assert oct(entry.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # group-shared caches stay readable


def test_mutation_without_the_checksum_the_altered_entry_is_trusted(extractor, tmp_path, digits_real, monkeypatch):
    """The mutation check, in the suite: with the checksum dropped (every array hashes alike), the altered entry of
    the test above is returned as is; so the checksum is what refuses it."""
    from unit_eval import features as features_module

    monkeypatch.setattr(features_module, "array_sha256", lambda array: "no checksum")
    cache = FeatureCache(tmp_path / "cache")
    paths = list_images(digits_real / "0")
    first, _ = _tampered_entry(cache, paths, extractor, tmp_path / "cache")
    assert not np.array_equal(cache.features(paths, extractor), first)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_bf16_fast_mode_is_named_keyed_and_close_to_fp32(extractor, digits_real, digits_fake, tmp_path):
    """The opt-in bf16 mode changes features (so it must never share a cache entry or a row name with fp32)
    but stays close: FID within 2% of the exact value here (benchmarks/README.md has the measured effect)."""
    fast = InceptionFeatures(device="cpu", batch_size=64, progress=False, num_workers=0, precision="bf16")
    assert fast.describe() == extractor.describe() + "/bf16"
    paths = list_images(digits_real)
    exact, approx = extractor.files(paths), fast.files(paths)
    assert not np.array_equal(exact, approx)
    assert np.linalg.norm(approx - exact) / np.linalg.norm(exact) < 0.05  # bf16 keeps 8 mantissa bits
    cache = FeatureCache(tmp_path / "cache")
    assert cache.key(paths, fast, None, "bicubic") != cache.key(paths, extractor, None, "bicubic")
    f_exact = summary(folder_fid(digits_real, digits_fake, extractor))["fid"]
    f_fast = summary(folder_fid(digits_real, digits_fake, fast))["fid"]
    assert f_fast == pytest.approx(f_exact, rel=0.02)
    # The default is untouched by a fast extractor having run in the same process.
    np.testing.assert_array_equal(extractor.files(paths), exact)


def test_tf32_needs_cuda_and_unknown_precision_is_refused():
    from unit_eval.errors import UnitEvalError

    with pytest.raises(UnitEvalError, match="tf32 needs a CUDA device"):
        InceptionFeatures(device="cpu", precision="tf32", progress=False)
    with pytest.raises(UnitEvalError, match="unknown precision 'fp16'"):
        InceptionFeatures(device="cpu", precision="fp16", progress=False)
