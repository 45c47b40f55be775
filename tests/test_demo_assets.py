"""The demo's shipped checkpoints (pinned sha256, weights-only, small) and its two reference translators."""
from __future__ import annotations

import shutil

import pytest
import torch

from unit_eval.demo_assets import DEMO_CHECKPOINTS, checkpoint_folder, verified_checkpoint
from unit_eval.errors import UnitEvalError
from unit_eval.reference_models import ReferenceCopy, SourceCopy, identity, reference_copy


def test_demo_checkpoints_are_shipped():
    assert {"tunit_digits", "funit_digits"} <= set(DEMO_CHECKPOINTS)


@pytest.mark.parametrize("name", sorted(DEMO_CHECKPOINTS))
def test_shipped_checkpoint_matches_its_pin_and_loads_weights_only(name):
    from unit_eval.checkpoint import load_run
    from unit_eval.translator import load_checkpoint_translator

    entry = DEMO_CHECKPOINTS[name]
    path = verified_checkpoint(name)
    assert path.parent == checkpoint_folder() and path.name == entry.file
    assert path.stat().st_size < 5 * 2 ** 20  # a few MB at most
    torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and containers only
    run = load_run(path)
    assert run["model"] == entry.model and run["sha256"] == entry.sha256
    assert run["meta"]["iterations"] == entry.iterations and run["meta"]["seed"] == entry.seed
    assert f"--seed {entry.seed}" in entry.command and f"--iters {entry.iterations}" in entry.command
    assert entry.command.startswith(f"unit-eval train {entry.model} ")
    model = load_checkpoint_translator(path, "cpu")
    x = torch.rand(2, 3, model.image_size, model.image_size) * 2 - 1
    assert model.translate(x, x.flip(0)).shape == x.shape


def test_altered_checkpoint_is_refused_in_one_line(tmp_path):
    entry = DEMO_CHECKPOINTS["tunit_digits"]
    copy = tmp_path / entry.file
    shutil.copyfile(verified_checkpoint("tunit_digits"), copy)
    assert verified_checkpoint("tunit_digits", tmp_path) == copy  # an unaltered copy passes
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside the weights
    copy.write_bytes(bytes(data))
    with pytest.raises(UnitEvalError) as exc:
        verified_checkpoint("tunit_digits", tmp_path)
    message = str(exc.value)
    assert "\n" not in message and "sha256" in message and str(copy) in message
    copy.unlink()
    with pytest.raises(UnitEvalError, match="missing"):
        verified_checkpoint("tunit_digits", tmp_path)
    with pytest.raises(UnitEvalError, match="unknown demo checkpoint"):
        verified_checkpoint("nope")


def test_reference_translators_return_reference_or_source():
    src, ref = torch.rand(3, 3, 16, 16) * 2 - 1, torch.rand(3, 3, 16, 16) * 2 - 1
    floor, same = ReferenceCopy(16), SourceCopy(16, domain_names=("photo", "render"))
    assert torch.equal(floor.translate(src, ref), ref) and torch.equal(same.translate(src, ref), src)
    assert torch.equal(same.translate_to_domain(src, 1), src)
    assert same.num_domains == 2 and same.domain_names == ("photo", "render")
    assert not hasattr(floor, "cluster") and not hasattr(same, "cluster")  # cluster protocols do not apply
    assert not hasattr(floor, "translate_to_domain")  # nor pixel accuracy to the floor
    out = floor.translate(src, ref)
    out += 1
    assert not torch.equal(out, ref)  # outputs are copies: a caller writing into them leaves the inputs alone
    assert reference_copy().image_size == identity().image_size == 128
    with pytest.raises(UnitEvalError):
        ReferenceCopy(0)
    with pytest.raises(UnitEvalError):
        floor.translate(src, ref[:2])
