"""The CLI contract of the metric commands on real images: --json keys, values, one-line errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from unit_eval.cli import main

from .conftest import shared_reference


def run_cli(capsys, *args):
    """Run ``unit-eval ARGS``; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def run_json(capsys, *args):
    code, out, err = run_cli(capsys, *args, "--json")
    assert code == 0, err
    assert len(out.strip().splitlines()) == 1  # exactly one JSON object on stdout
    return json.loads(out)


@pytest.mark.integration
def test_fid_mfid_dc_json(capsys, tmp_path, digits_real, digits_fake):
    from unit_eval.features import InceptionFeatures
    from unit_eval.folders import folder_fid, summary

    results = tmp_path / "results.jsonl"
    fid = run_json(capsys, "fid", str(digits_real), str(digits_fake), "--device", "cpu", "--out", str(results), "--run", "digits")
    assert {"fid", "n_real", "n_fake", "extractor"} <= set(fid)
    assert (fid["n_real"], fid["n_fake"]) == (36, 30)
    direct = summary(folder_fid(digits_real, digits_fake, InceptionFeatures(device="cpu", progress=False)))["fid"]
    assert fid["fid"] == pytest.approx(direct, rel=1e-12)

    mfid = run_json(capsys, "mfid", "--real", str(digits_real), "--fake", str(digits_fake), "--device", "cpu",
                    "--out", str(results), "--run", "digits")
    assert set(mfid["per_class"]) == {"0", "1", "2"}
    assert mfid["mfid"] == pytest.approx(np.mean(list(mfid["per_class"].values())))

    dc = run_json(capsys, "dc", str(digits_real), str(digits_fake), "--k", "5", "--device", "cpu", "--batch-size", "7")
    assert {"density", "coverage", "precision", "recall"} <= set(dc)
    assert 0 <= dc["coverage"] <= 1 and dc["density"] >= 0

    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["metric"], r["class"]) for r in rows] == [("fid", "mean"), ("mfid", "mean"), ("fid", "0"), ("fid", "1"), ("fid", "2")]
    assert all(r["run"] == "digits" and r["extractor"].startswith("inception-v3-tf") for r in rows)

    # The opt-in fast numerics are named in the row (never mistaken for exact numbers), and move FID only a little.
    fast = run_json(capsys, "fid", str(digits_real), str(digits_fake), "--device", "cpu", "--numerics", "bf16",
                    "--out", str(results), "--run", "digits-bf16")
    assert fast["extractor"].endswith("/bf16") and fast["fid"] != fid["fid"]
    assert fast["fid"] == pytest.approx(fid["fid"], rel=0.02)
    assert json.loads(results.read_text().splitlines()[-1])["extractor"] == fast["extractor"]


@pytest.mark.integration
def test_lpips_published_values(capsys, tmp_path):
    ref = shared_reference() / "lpips"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(ref / "ex_ref.png", a / "p0.png")
    shutil.copy(ref / "ex_ref.png", a / "p1.png")
    shutil.copy(ref / "ex_p0.png", b / "p0.png")
    shutil.copy(ref / "ex_p1.png", b / "p1.png")
    result = run_json(capsys, "lpips", str(a), str(b), "--per-pair", "--device", "cpu")
    assert result["per_pair"]["p0.png"] == pytest.approx(0.722, abs=1e-3)
    assert result["per_pair"]["p1.png"] == pytest.approx(0.138, abs=1e-3)
    assert result["lpips"] == pytest.approx((result["per_pair"]["p0.png"] + result["per_pair"]["p1.png"]) / 2)
    assert result["n_pairs"] == 2


@pytest.mark.integration
def test_diversity_is_mean_over_pairs_then_inputs(capsys, tmp_path):
    import lpips
    import torch

    from unit_eval.weights import load_lpips

    rng = np.random.default_rng(0)
    groups = {"in0": rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), "in1": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)}
    for name, images in groups.items():
        (tmp_path / name).mkdir()
        for i, img in enumerate(images):
            Image.fromarray(img).save(tmp_path / name / f"{i}.png")
    result = run_json(capsys, "diversity", str(tmp_path), "--device", "cpu")
    net = load_lpips("alex", "cpu")
    expected = []
    for images in groups.values():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1
        pairs = [float(net(x[i : i + 1], x[j : j + 1])) for i in range(len(x)) for j in range(i + 1, len(x))]
        expected.append(np.mean(pairs))
    assert result["lpips_diversity"] == pytest.approx(np.mean(expected), rel=1e-6)
    assert result["n_inputs"] == 2
    # the reference package agrees with the loaded network on one pair (independent forward)
    assert isinstance(net, lpips.LPIPS)


def test_cluster_acc_csv(capsys, tmp_path):
    csv = tmp_path / "clusters.csv"
    csv.write_text("pred,label\n" + "\n".join(f"{(i % 3 + 1) % 3},{i % 3}" for i in range(30)) + "\n3,0\n")
    result = run_json(capsys, "cluster-acc", str(csv))
    assert result["accuracy"] == pytest.approx(30 / 31)
    assert result["accuracy_majority"] == pytest.approx(31 / 31)
    assert set(result) >= {"accuracy", "accuracy_majority", "nmi", "n"}


def test_ioi_npz(capsys, tmp_path):
    e1, e2, e3 = np.eye(3)
    np.savez(tmp_path / "codes.npz", codes=np.stack([e1 + e3, e1 - e3, e2 + e3, e2 - e3]), clusters=np.array([0, 0, 1, 1]))
    result = run_json(capsys, "ioi", str(tmp_path / "codes.npz"))
    assert result["ioi"] == pytest.approx(1 / (1 - 1 / np.sqrt(2)))


def test_pixacc_folders(capsys, tmp_path):
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    gt = np.zeros((4, 4, 3), np.uint8)
    pred = gt.copy()
    pred[0, :] = 16  # 4 of 16 pixels off by exactly the threshold: wrong
    Image.fromarray(gt).save(tmp_path / "gt" / "a.png")
    Image.fromarray(pred).save(tmp_path / "pred" / "a.png")
    result = run_json(capsys, "pixacc", str(tmp_path / "pred"), str(tmp_path / "gt"))
    assert result["pixel_accuracy"] == pytest.approx(12 / 16)
    assert run_json(capsys, "pixacc", str(tmp_path / "pred"), str(tmp_path / "gt"), "--threshold", "17")["pixel_accuracy"] == 1.0


def _bad_inputs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.png").write_bytes(b"\x89PNG but not really")
    one = tmp_path / "one" / "cat"
    one.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(one / "a.png")
    other = tmp_path / "other" / "dog"
    other.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(other / "a.png")
    csv = tmp_path / "bad.csv"
    csv.write_text("prediction,label\n1,2\n")
    return {
        "missing folder": (["fid", str(tmp_path / "nope"), str(empty)], "folder not found"),
        "empty folder": (["dc", str(empty), str(empty)], "no images"),
        "unreadable image": (["pixacc", str(broken), str(broken)], "cannot read image"),
        "class sets differ": (["mfid", "--real", str(tmp_path / "one"), "--fake", str(tmp_path / "other")], "class sets differ"),
        "csv columns": (["cluster-acc", str(csv)], "lacks column"),
        "unpaired": (["lpips", str(tmp_path / "one"), str(tmp_path / "other")], "unpaired images"),
        "tf32 on cpu": (["fid", str(tmp_path / "one"), str(tmp_path / "other"), "--device", "cpu", "--numerics", "tf32"],
                        "tf32 needs a CUDA device"),
    }


@pytest.mark.parametrize("case", ["missing folder", "empty folder", "unreadable image", "class sets differ", "csv columns", "unpaired",
                                  "tf32 on cpu"])
def test_bad_input_is_one_line_exit_1(capsys, tmp_path, case):
    args, message = _bad_inputs(tmp_path)[case]
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    code, out, err = run_cli(capsys, *args)
    assert code == 1
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and message in err
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before  # nothing lost or written


def test_usage_error_exit_2(capsys):
    code, _, _ = run_cli(capsys, "fid", "only-one-arg")
    assert code == 2
