"""A GP-UNIT checkpoint trained by ``unit-eval train gpunit`` evaluated with GP-UNIT's Table 1 protocols through
``unit-eval evaluate --ckpt``: FID per task (latent- and exemplar-guided, torchvision's Inception with seeded random
weights in place of the official file) and latent-guided LPIPS diversity (real AlexNet LPIPS). The protocols' numbers
are checked against independent computations in ``tests/test_stargan_fid.py``; here: every task of the checkpoint's
domains is scored, the mean is the mean over tasks, latent codes differ per output, and a seed reproduces its rows."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from unit_eval.baselines.common.loop import train
from unit_eval.cli import cli
from unit_eval.protocol_specs import _package_files

from .conftest import write_digits
from .test_gpunit import CHEAP, TOY, encoder_file
from .test_stargan_fid import inception_file, provided

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.integration]
FIXTURES = (encoder_file, inception_file, provided)  # from the models' and the protocol's own tests
PROTOCOLS = ("stargan-v2-fid-latent", "stargan-v2-fid", "lpips-diversity-latent")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("gp_protocols")
    write_digits(root / "train", classes=(0, 1, 2), per_class=6, size=36)
    write_digits(root / "test", classes=(0, 1, 2), per_class=2, offset=60, size=32)
    return root


@pytest.fixture(scope="module")
def checkpoint(dataset, encoder_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("gp_protocols_run")
    train("gpunit", dataset / "train", out, iters=3, seed=5, device="cpu", progress=False, extra=TOY, log_every=1,
          sample_every=0, ckpt_every=0, overrides={"content_encoder": str(encoder_file), **CHEAP})
    return out / "run.pt"


def small_protocols(folder):
    """The shipped files with 2 outputs per input (the CPU budget); everything else as shipped."""
    paths = []
    for name in PROTOCOLS:
        text = _package_files()[name].read_text()
        assert "outputs_per_input = 10" in text
        path = folder / f"{name}-2.toml"
        path.write_text(text.replace(f'name = "{name}"', f'name = "{name}-2"')
                        .replace("outputs_per_input = 10", "outputs_per_input = 2"))
        paths.append(path)
    return paths


def evaluate(checkpoint, dataset, protocols, out, seed):
    args = ["evaluate", "--ckpt", str(checkpoint), "--data", str(dataset), "--device", "cpu", "--out", str(out),
            "--seed", str(seed), "--json"]
    for p in protocols:
        args += ["--protocol", str(p)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_gpunit_checkpoint_scores_gpunit_table1_protocols(checkpoint, dataset, provided, tmp_path):
    protocols = small_protocols(tmp_path)
    rows = evaluate(checkpoint, dataset, protocols, tmp_path / "a.jsonl", seed=0)
    tasks = {f"{s}->{t}" for s in "012" for t in "012" if s != t}
    for name in ("stargan-v2-fid-latent-2", "stargan-v2-fid-2"):
        fid = {r["class"]: r["value"] for r in rows if r["protocol"] == name}
        assert set(fid) == tasks | {"mean"}, name
        assert all(np.isfinite(v) and v > 0 for v in fid.values())
        assert fid["mean"] == pytest.approx(np.mean([fid[t] for t in tasks]), rel=1e-12)
        assert {r["n_fake"] for r in rows if r["protocol"] == name and r["class"] != "mean"} == {2 * 2}
        assert all(r["extractor"].startswith("torchvision-inception-v3") for r in rows if r["protocol"] == name)
    latent = {r["class"]: r["value"] for r in rows if r["protocol"] == "stargan-v2-fid-latent-2"}
    reference = {r["class"]: r["value"] for r in rows if r["protocol"] == "stargan-v2-fid-2"}
    assert latent != reference  # sampled codes, not the references' codes
    diversity = {r["class"]: r["value"] for r in rows if r["protocol"] == "lpips-diversity-latent-2"}
    assert set(diversity) == {"0", "1", "2", "mean"}
    assert all(v > 0 for v in diversity.values())  # two codes per input give two different outputs
    assert {r["iteration"] for r in rows} == {3} and len({r["ckpt_sha256"] for r in rows}) == 1
    # a seed reproduces its rows; another seed draws other codes
    first = [r["value"] for r in rows if r["protocol"] == "stargan-v2-fid-latent-2"]
    assert [r["value"] for r in evaluate(checkpoint, dataset, protocols[:1], tmp_path / "b.jsonl", seed=0)] == first
    assert [r["value"] for r in evaluate(checkpoint, dataset, protocols[:1], tmp_path / "c.jsonl", seed=1)] != first

