"""Hostile inputs through the real CLI, each in its own process: one line on stderr naming the file or option,
exit 1 (2 for usage errors), never a traceback, and nothing half written. A subprocess is the only honest
check: click's test runner turns a crash into exit 1 too. The README's reliability table lists these cases."""
from __future__ import annotations

import io
import json
import pickle
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import write_digits


def cli(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "unit_eval.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb(path: Path, side: int = 20000) -> Path:
    """A small PNG whose header claims side x side pixels (400 million): PIL refuses it on open."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", zlib.compress(b"\x00" * (side + 1))) + _png_chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    real, fake = root / "real", root / "fake"
    write_digits(real, classes=(0, 1), per_class=4, size=32)
    write_digits(fake, classes=(0, 1), per_class=4, offset=50, size=32)
    broken = root / "broken"
    write_digits(broken, classes=(0, 1), per_class=4, size=32)  # 8 images, more than --batch-size 2
    (broken / "1" / "zz_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    bomb = root / "bomb"
    write_digits(bomb, classes=(0,), per_class=3, size=32)
    decompression_bomb(bomb / "0" / "bomb.png")
    np.savez(root / "object.npz", codes=np.array([{"a": 1}], dtype=object), clusters=np.zeros(1))
    (root / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    (root / "words.csv").write_text("pred,label\n0.5,cat\n1.5,dog\n")
    (root / "empty.csv").write_text("")
    (root / "codes.csv").write_text("cluster,x,y\n0,1.0,abc\n1,2.0,3.0\n")
    row = {"run": "a", "protocol": "p", "metric": "fid", "class": "mean", "value": 1.0}
    (root / "number.jsonl").write_text(json.dumps(row) + "\n42\n")
    (root / "null.jsonl").write_text("null\n")
    (root / "huge.jsonl").write_text(json.dumps(row)[:-1].replace('"value": 1.0', '"value": 1e400') + "}\n")
    (root / "binary.jsonl").write_bytes(bytes(range(256)) * 4)
    (root / "afile").write_text("a file, not a folder\n")
    buffer = io.BytesIO()
    pickle.dump({"format": "unit-eval/1", "run": print}, buffer)
    (root / "plain.pt").write_bytes(buffer.getvalue())
    return root


# (name, arguments given the fixture root, exit code, text the one line must contain)
CASES = [
    ("unreadable image in a set larger than --batch-size",
     lambda r: ["fid", r / "broken", r / "fake", "--batch-size", "2", "--workers", "2", "--no-cache"], 1,
     "cannot read image {root}/broken/1/zz_broken.png"),
    ("decompression bomb", lambda r: ["fid", r / "bomb", r / "fake", "--no-cache"], 1,
     "larger than PIL's decompression-bomb limit"),
    ("--size 0", lambda r: ["fid", r / "real", r / "fake", "--size", "0"], 2, "Invalid value for '--size'"),
    ("--workers -1", lambda r: ["fid", r / "real", r / "fake", "--workers", "-1"], 2, "Invalid value for '--workers'"),
    ("--device foo", lambda r: ["fid", r / "real", r / "fake", "--device", "foo"], 1, "unknown device 'foo'"),
    ("--batch-size 0 (evaluate)", lambda r: ["evaluate", "--fake", r / "fake", "--protocol", "tunit-mfid", "--data",
                                             r / "real", "--batch-size", "0"], 2, "Invalid value for '--batch-size'"),
    ("--out whose parent is a file", lambda r: ["fid", r / "real", r / "fake", "--out", r / "afile" / "rows.jsonl"], 1,
     "--out {root}/afile/rows.jsonl cannot be created: {root}/afile is a file"),
    ("--out that is a folder", lambda r: ["table", r / "number.jsonl", "--out", r], 2, "is a directory"),
    (".npz with object arrays", lambda r: ["ioi", r / "object.npz"], 1, "cannot read {root}/object.npz: Object arrays"),
    ("corrupt .npz", lambda r: ["ioi", r / "corrupt.npz"], 1, "cannot read {root}/corrupt.npz: not a valid .npz"),
    ("non-numeric CSV", lambda r: ["cluster-acc", r / "words.csv"], 1, "column 'pred' must hold integer ids or names"),
    ("non-numeric code CSV", lambda r: ["ioi", r / "codes.csv"], 1, "code columns must be numbers"),
    ("empty CSV", lambda r: ["cluster-acc", r / "empty.csv"], 1, "{root}/empty.csv is empty"),
    ("JSONL line that is a number", lambda r: ["table", r / "number.jsonl"], 1,
     "{root}/number.jsonl:2: a result row must be a JSON object, got a number"),
    ("JSONL line that is null", lambda r: ["table", r / "null.jsonl"], 1, "must be a JSON object, got null"),
    ("value 1e400", lambda r: ["check", r / "huge.jsonl", "--baseline", r / "number.jsonl"], 1,
     "{root}/huge.jsonl:1: value is not a finite number: inf"),
    ("binary file given to table", lambda r: ["table", r / "binary.jsonl"], 1, "is not a UTF-8 text file of result rows"),
    ("plain pickle as --ckpt", lambda r: ["evaluate", "--ckpt", r / "plain.pt", "--protocol", "tunit-mfid", "--data",
                                          r / "real"], 1, "it holds pickled objects or code"),
    ("checkpoint that is a folder", lambda r: ["evaluate", "--ckpt", r, "--protocol", "tunit-mfid", "--data", r / "real"],
     1, "is not a file"),
]


@pytest.mark.parametrize("name, args, code, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line(files, name, args, code, message):
    rc, out, err = cli(*args(files))
    assert "Traceback" not in err, err
    assert rc == code, err
    assert message.format(root=files) in err, err
    if code == 1:  # apart from progress bars, the one error line
        assert said(err) == [said(err)[0]] and said(err)[0].startswith("error: "), err
    assert out == ""


def said(err: str) -> list[str]:
    """stderr without progress bars (tqdm redraws with carriage returns; its lines hold '%|')."""
    return [line for line in re.split(r"[\r\n]+", err) if line.strip() and "%|" not in line]


def test_hidden_folders_and_pytorch_fid_extensions(tmp_path):
    """.ipynb_checkpoints beside the classes is not a class; .tif/.tiff/.pgm/.ppm are read (pytorch-fid's set)."""
    from unit_eval.folders import class_names
    from unit_eval.images import list_class_folders, list_images, load_image

    write_digits(tmp_path / "real", classes=(0, 1), per_class=3, size=32)
    (tmp_path / "real" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "real" / ".DS_Store").write_bytes(b"\x00")
    assert class_names(tmp_path / "real") == ["0", "1"] == list(list_class_folders(tmp_path / "real"))
    folder = tmp_path / "formats"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    for ext in ("tif", "tiff", "ppm"):
        Image.fromarray(pixels).save(folder / f"x.{ext}")
    Image.fromarray(pixels[..., 0]).save(folder / "g.pgm")
    assert sorted(p.suffix for p in list_images(folder)) == [".pgm", ".ppm", ".tif", ".tiff"]
    np.testing.assert_array_equal(load_image(folder / "x.tif"), pixels)
    assert load_image(folder / "g.pgm").shape == (20, 24, 3)


def test_animated_and_tiny_images_are_said_once(tmp_path, capsys):
    from unit_eval import images

    frames = [Image.fromarray(np.full((32, 32, 3), v, dtype=np.uint8)) for v in (10, 200)]
    for name in ("a.webp", "b.webp"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], lossless=True)
    Image.fromarray(np.zeros((1, 1, 3), dtype=np.uint8)).save(tmp_path / "dot.png")
    images._NOTED.clear()
    first = images.load_image(tmp_path / "a.webp")
    images.load_image(tmp_path / "b.webp")
    images.load_image(tmp_path / "dot.png")
    images.load_image(tmp_path / "dot.png")
    err = capsys.readouterr().err.strip().splitlines()
    assert first.max() == 10  # the first frame
    assert len(err) == 2 and "a.webp is animated (2 frames); its first frame is used" in err[0]
    assert "dot.png is only 1x1 px" in err[1]


def test_fid_prints_its_value_before_a_failed_write(files, tmp_path, monkeypatch, capsys):
    """The FID is computed once: when the rows cannot be appended at the end (disk full), the value is still
    printed and the error says it was not saved."""
    from unit_eval import results
    from unit_eval.cli import main
    from unit_eval.errors import UnitEvalError

    def disk_full(path, rows):
        raise UnitEvalError(f"cannot append to {path}: No space left on device")

    monkeypatch.setattr(results, "append_rows", disk_full)
    with pytest.raises(SystemExit) as exc:
        main(["fid", str(files / "real"), str(files / "fake"), "--no-cache", "--json", "--out", str(tmp_path / "r.jsonl")])
    out, err = capsys.readouterr()
    assert exc.value.code == 1
    assert json.loads(out)["fid"] > 0
    assert "No space left on device; the result printed above was not saved" in err


def test_a_failed_evaluation_appends_nothing(files, tmp_path):
    """evaluate appends every row at the end: the second protocol failing leaves --out untouched, and the one
    line says which evaluation failed and what was not saved."""
    from dataclasses import replace

    from unit_eval.protocol_specs import load_protocol

    data = tmp_path / "data"
    write_digits(data / "train", classes=(0, 1), per_class=4, size=32)
    write_digits(data / "test", classes=(0, 1), per_class=3, offset=40, size=32)
    spec = load_protocol("tunit-mfid")
    for name, sources in (("small", 2), ("too-big", 50)):
        lines = [f'name = "{name}"']
        for key, value in replace(spec, name=name, sources_per_class=sources, references_per_source=1).options().items():
            if key != "name":
                lines.append(f"{key} = {json.dumps(value)}")
        lines += [f'description = "{spec.description}"', f'source = "{spec.source}"']
        (tmp_path / f"{name}.toml").write_text("\n".join(lines) + "\n")
    out = tmp_path / "rows.jsonl"
    repo = Path(__file__).resolve().parents[1]
    rc, stdout, err = cli("evaluate", "--model", "tests.tiny_translator:factory", "--protocol", tmp_path / "small.toml",
                          "--protocol", tmp_path / "too-big.toml", "--data", data, "--out", out, "--device", "cpu",
                          cwd=repo)
    assert rc == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error: too-big: sources of class")
    assert "(evaluation 2 of 2: too-big, seed 0); nothing was appended to" in err and "1 finished evaluation(s) not saved" in err
    assert not out.exists()
