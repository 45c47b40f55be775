import numpy as np
import pytest
from PIL import Image

from unit_eval.errors import UnitEvalError
from unit_eval.images import float_to_uint8, list_class_folders, list_images, load_image, to_tensor_uint8


def test_modes_become_rgb_uint8(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    Image.fromarray(gray, mode="L").save(tmp_path / "gray.png")
    rgba = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "palette.png")
    sixteen = (gray.astype(np.uint16) * 257)
    Image.fromarray(sixteen).save(tmp_path / "sixteen.png")
    Image.fromarray(rgba[..., :3]).save(tmp_path / "photo.bmp")
    Image.fromarray(rgba[..., :3]).save(tmp_path / "photo.webp", lossless=True)

    g = load_image(tmp_path / "gray.png")
    assert g.shape == (5, 7, 3) and g.dtype == np.uint8 and (g[..., 0] == gray).all()
    assert load_image(tmp_path / "rgba.png").shape == (5, 7, 3)
    assert load_image(tmp_path / "palette.png").shape == (5, 7, 3)
    s = load_image(tmp_path / "sixteen.png")
    assert (s[..., 1] == gray).all()  # 16-bit scaled back to 8 bits exactly
    assert (load_image(tmp_path / "photo.bmp") == rgba[..., :3]).all()
    assert (load_image(tmp_path / "photo.webp") == rgba[..., :3]).all()
    assert load_image(tmp_path / "gray.png", size=16).shape == (16, 16, 3)


def test_recursive_listing_sorted_and_filtered(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    for p in ["b/1.png", "a/deep/2.jpg", "a/0.JPEG", "notes.txt", ".hidden.png"]:
        (tmp_path / p).write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert names == ["a/0.JPEG", "a/deep/2.jpg", "b/1.png"]


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(UnitEvalError, match="folder not found"):
        list_images(tmp_path / "nope")
    with pytest.raises(UnitEvalError, match="no images"):
        list_images(tmp_path)
    with pytest.raises(UnitEvalError, match="no class subfolders"):
        list_class_folders(tmp_path)
    (tmp_path / "cat").mkdir()
    with pytest.raises(UnitEvalError, match="no images"):
        list_class_folders(tmp_path)


def test_unreadable_image(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(UnitEvalError, match="cannot read image .*broken.png"):
        load_image(bad)


def test_mixed_sizes_in_a_batch_are_reported():
    with pytest.raises(UnitEvalError, match="--size"):
        to_tensor_uint8([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 5, 3), np.uint8)])


def test_nan_model_output_is_an_error():
    import torch

    with pytest.raises(UnitEvalError, match="NaN"):
        float_to_uint8(torch.tensor([[[[float("nan")]]]]).expand(1, 3, 1, 1))
    assert float_to_uint8(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
