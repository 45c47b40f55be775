"""Translation accuracy (CLUIT Sec. 4): the oracle classifier (``unit-eval train classifier``), its weights-only
checkpoint, and the ``translation-accuracy`` protocol end to end on the embedded digits.

A ResNet-18 trained for a few CPU epochs at 32 px stands in for the paper's ResNet-50 (the same code path, the
``--arch`` option). Expected values are computed here independently of the product: predictions by torchvision's
ResNet-18 on images decoded with PIL and normalised by hand, pairs' classes from the file layout.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from unit_eval.cli import cli, main
from unit_eval.errors import UnitEvalError
from unit_eval.evaluation.runner import ProtocolRunner, Settings
from unit_eval.evaluation.sampling import sample_reference_class
from unit_eval.protocol_specs import load_protocol
from unit_eval.reference_models import ReferenceCopy, SourceCopy

from .conftest import assert_no_absolute_paths

SIZE = 32
TRAIN_PER_CLASS, TEST_PER_CLASS = 100, 20
EPOCHS = 8
CPU = torch.device("cpu")
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """The embedded digits, 100 train and 20 test images of each of the 10 classes."""
    from unit_eval.commands.demo import digits_subset
    from unit_eval.embedded import materialize

    return digits_subset(materialize("digits", progress=False), tmp_path_factory.mktemp("ta") / "digits",
                         TRAIN_PER_CLASS, TEST_PER_CLASS)


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """``unit-eval train classifier`` through the CLI: (checkpoint path, the command's JSON summary)."""
    out = tmp_path_factory.mktemp("clf") / "digits_resnet18.pt"
    before = torch.get_num_threads()
    result = CliRunner().invoke(cli, ["train", "classifier", "--data", str(digits), "--out", str(out), "--arch",
                                      "resnet18", "--img-size", str(SIZE), "--epochs", str(EPOCHS), "--batch-size", "64",
                                      "--no-hflip", "--seed", "0", "--device", "cpu", "--quiet", "--json"])
    torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def reference_predictions(ckpt: Path, paths: list[Path]) -> dict[Path, str]:
    """Independent of unit_eval: torchvision's ResNet-18 with the checkpoint's tensors, on PIL-decoded images."""
    import torchvision

    data = torch.load(ckpt, weights_only=True)
    net = torchvision.models.resnet18(num_classes=len(data["class_names"]))
    net.load_state_dict(data["state_dict"])
    net.eval()
    out = {}
    for start in range(0, len(paths), 128):
        chunk = paths[start:start + 128]
        arrays = [np.asarray(Image.open(p).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)) for p in chunk]
        x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
        with torch.no_grad():
            ids = net((x - IMAGENET_MEAN) / IMAGENET_STD).argmax(1)
        out.update({p: data["class_names"][int(i)] for p, i in zip(chunk, ids)})
    return out


def pairs_of(digits, spec, seed):
    """(source class, reference class, source, reference) of every output, in the protocol's sampling."""
    from unit_eval.datasets import resolve_dataset

    test = resolve_dataset(digits).split("test")
    plan = sample_reference_class(test, test, spec.references_per_input, spec.exclude_self, seed,
                                  same_class=spec.same_class_references)
    return [(j.source.parent.name, j.reference.parent.name, j.source, j.reference) for jobs in plan.values() for j in jobs]



def run(digits, model, classifier, spec=None, seed=None, **settings):
    from unit_eval.datasets import resolve_dataset

    spec = spec or load_protocol("translation-accuracy")
    runner = ProtocolRunner(resolve_dataset(digits), model=model, fake_dir=settings.pop("fake_dir", None),
                            settings=Settings(device=CPU, batch_size=50, progress=False,
                                              classifier=None if classifier is None else str(classifier), **settings))
    return runner.run(spec, seed)


# -- the classifier ----------------------------------------------------------------------------------------------


def test_classifier_trains_and_reports_its_held_out_accuracy(trained, digits):
    ckpt, summary = trained
    assert summary["arch"] == "resnet18" and summary["image_size"] == SIZE
    assert summary["classes"] == [str(d) for d in range(10)]
    assert summary["n_train"] == 10 * TRAIN_PER_CLASS and summary["n_test"] == 10 * TEST_PER_CLASS
    assert summary["held_out_accuracy"] > 0.8, summary
    # the reported accuracy is the test split's, recomputed here without unit_eval
    test = sorted((digits / "test").glob("*/*.png"))
    pred = reference_predictions(ckpt, test)
    assert summary["held_out_accuracy"] == pytest.approx(np.mean([pred[p] == p.parent.name for p in test]), abs=1e-12)
    per_class = {c: np.mean([pred[p] == c for p in test if p.parent.name == c]) for c in summary["classes"]}
    assert summary["held_out_per_class"] == pytest.approx(per_class, abs=1e-12)


def test_checkpoint_is_weights_only_and_reloads_to_identical_predictions(trained, digits, tmp_path):
    from unit_eval.cache import sha256_file
    from unit_eval.classifier import load_classifier, predict
    from unit_eval.images import load_image, uint8_to_float

    ckpt, summary = trained
    data = torch.load(ckpt, weights_only=True)  # plain tensors and containers only
    assert data["format"] == "unit-eval-classifier/1" and data["arch"] == "resnet18" and data["image_size"] == SIZE
    assert data["meta"]["held_out_accuracy"] == summary["held_out_accuracy"] and data["meta"]["initial_weights"] == "scratch"
    assert summary["sha256"] == sha256_file(ckpt)
    paths = sorted((digits / "test").glob("*/*.png"))[::7]
    x = uint8_to_float(torch.from_numpy(np.stack([load_image(p, SIZE, "bilinear") for p in paths])).permute(0, 3, 1, 2))
    a, b = load_classifier(ckpt), load_classifier(ckpt)
    assert a.sha256 == summary["sha256"] and not a.training
    assert torch.equal(a.classify(x), b.classify(x))
    ref = reference_predictions(ckpt, paths)
    assert [a.class_names[int(i)] for i in predict(a, x)] == [ref[p] for p in paths]
    # a 64 px input is resized to the classifier's 32 px (bilinear, antialiased), not refused
    assert predict(a, torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")).shape == (len(paths),)
    # a file holding pickled code is refused in one line, never unpickled
    evil = tmp_path / "evil.pt"
    torch.save({"format": "unit-eval-classifier/1", "payload": Path("x")}, evil)
    with pytest.raises(UnitEvalError, match="only tensors and plain containers"):
        load_classifier(evil)
    other = tmp_path / "other.pt"
    torch.save({"format": "unit-eval/1", "state_dict": {}}, other)
    with pytest.raises(UnitEvalError, match="not a unit-eval classifier checkpoint"):
        load_classifier(other)


def test_imagenet_initialisation_is_pinned_by_sha256(tmp_path, monkeypatch):
    """Only torchvision's official ResNet-50 files initialise a classifier; the head is replaced."""
    import torchvision

    from unit_eval import classifier as clf_module
    from unit_eval.cache import sha256_file

    assert set(clf_module.IMAGENET_WEIGHTS["resnet50"]) == {
        "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
        "11ad3fa62ca79e40addfd354a8ec4b7c75143b3038b8d2a807fbc68deab379ca"}
    torch.manual_seed(1)
    fake = tmp_path / "resnet50-0676ba61.pth"  # the official name, other contents
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), fake)
    with pytest.raises(UnitEvalError, match="is not torchvision's resnet50-0676ba61.pth"):
        clf_module.imagenet_state_dict(fake, "resnet50")
    with pytest.raises(UnitEvalError, match="offered for resnet50 only"):
        clf_module.imagenet_state_dict(fake, "resnet18")
    # with this file's digest pinned (standing in for the official one) the backbone loads and the head is new
    monkeypatch.setitem(clf_module.IMAGENET_WEIGHTS, "resnet50",
                        {sha256_file(fake): ("IMAGENET1K_V1", "resnet50-0676ba61.pth", fake.stat().st_size)})
    state, name = clf_module.imagenet_state_dict(fake, "resnet50")
    assert name == "IMAGENET1K_V1" and not any(k.startswith("fc.") for k in state)
    net = clf_module.Classifier("resnet50", ["a", "b", "c"], SIZE)
    net.net.load_state_dict(state, strict=False)
    assert torch.equal(net.net.conv1.weight, torch.load(fake, weights_only=True)["conv1.weight"])
    assert net.net.fc.out_features == 3


# -- the protocol --------------------------------------------------------------------------------------------------


def test_reference_copy_scores_the_classifiers_accuracy_on_its_references(trained, digits):
    ckpt, summary = trained
    spec = load_protocol("translation-accuracy")
    result = run(digits, ReferenceCopy(SIZE), ckpt)
    pairs = pairs_of(digits, spec, spec.seed)
    assert len(pairs) == 10 * TEST_PER_CLASS * 10  # every test image with 10 references
    pred = reference_predictions(ckpt, sorted({r for *_, r in pairs}))
    expected = np.mean([pred[ref] == rc for _, rc, _, ref in pairs])
    values = result.values["translation_accuracy"]
    assert values["mean"] == pytest.approx(expected, abs=1e-12)
    for c in summary["classes"]:
        group = [pred[ref] == rc for _, rc, _, ref in pairs if rc == c]
        assert values[c] == pytest.approx(np.mean(group), abs=1e-12) and result.n_fake[c] == len(group)
    assert result.n_fake["mean"] == len(pairs) and result.n_real == {}
    # about the classifier's own held-out accuracy: the references are the test split, each used about 10 times
    assert abs(values["mean"] - summary["held_out_accuracy"]) < 0.05
    rows = result.rows("reference-copy")
    assert {r["metric"] for r in rows} == {"translation_accuracy"} and len(rows) == 11
    info = rows[0]["options"]["classifier"]
    assert info["sha256"] == summary["sha256"] and info["arch"] == "resnet18" and info["image_size"] == SIZE
    assert rows[0]["extractor"] == f"classifier resnet18 sha256:{summary['sha256'][:12]}"
    assert_no_absolute_paths(rows)


def test_source_copy_scores_near_chance(trained, digits):
    """A translator that ignores its reference: right only where the reference happens to share the input's class
    (the paper's sampling allows that: chance is that share, about 1/K), and about 0 with other-class references."""
    ckpt, summary = trained
    spec = load_protocol("translation-accuracy")
    value = run(digits, SourceCopy(SIZE), ckpt).values["translation_accuracy"]["mean"]
    pairs = pairs_of(digits, spec, spec.seed)
    pred = reference_predictions(ckpt, sorted({s for _, _, s, _ in pairs}))
    assert value == pytest.approx(np.mean([pred[src] == rc for _, rc, src, _ in pairs]), abs=1e-12)
    chance = np.mean([sc == rc for sc, rc, _, _ in pairs])  # the share of same-class references
    assert chance == pytest.approx((TEST_PER_CLASS - 1) / (10 * TEST_PER_CLASS - 1), abs=0.03)
    assert abs(value - chance) < 0.05 and value < 0.2
    other = replace(spec, same_class_references=False)
    pairs = pairs_of(digits, other, spec.seed)
    assert all(sc != rc for sc, rc, _, _ in pairs)
    value_other = run(digits, SourceCopy(SIZE), ckpt, spec=other).values["translation_accuracy"]["mean"]
    assert value_other == pytest.approx(np.mean([pred[src] == rc for _, rc, src, _ in pairs]), abs=1e-12)
    assert value_other < 0.05  # only the classifier's mistakes on sources can land on a reference's class
    reference = run(digits, ReferenceCopy(SIZE), ckpt, spec=other).values["translation_accuracy"]["mean"]
    assert reference > 0.8


def test_saved_outputs_score_the_same_as_a_fake_folder(trained, digits, tmp_path):
    ckpt, _ = trained
    spec = replace(load_protocol("translation-accuracy"), references_per_input=2)
    direct = run(digits, ReferenceCopy(SIZE), ckpt, spec=spec, seed=3, save_images=tmp_path / "png")
    folder = tmp_path / "png" / spec.name / "seed3"
    assert sorted(p.name for p in folder.iterdir()) == [str(d) for d in range(10)]
    from_folder = run(digits, None, ckpt, spec=spec, seed=3, fake_dir=folder)
    assert from_folder.values == direct.values and from_folder.n_fake == direct.n_fake


class Permuted:
    """A user's classifier: the trained checkpoint behind reversed class names, answering with class indices."""

    def __init__(self, ckpt):
        from unit_eval.classifier import load_classifier

        self.inner = load_classifier(ckpt)
        self.class_names = list(reversed(self.inner.class_names))
        self.sha256 = "f" * 64

    def classify(self, images):
        ids = self.inner.classify(images).argmax(1)
        return (len(self.class_names) - 1 - ids).long()


def test_a_module_factory_classifier_through_the_cli(trained, digits, tmp_path, monkeypatch):
    ckpt, _ = trained
    module = tmp_path / "my_oracle.py"
    module.write_text(
        "from unit_eval.reference_models import ReferenceCopy\n"
        "from tests.test_translation_accuracy import Permuted\n"
        f"def classifier(device=None):\n    return Permuted({str(ckpt)!r})\n"
        f"def translator(device=None):\n    return ReferenceCopy({SIZE})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "rows.jsonl"
    result = CliRunner().invoke(cli, ["evaluate", "--model", "my_oracle:translator", "--protocol", "translation-accuracy",
                                      "--classifier", "my_oracle:classifier", "--data", str(digits), "--device", "cpu",
                                      "--out", str(out), "--json", "--run", "ref"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_class = {r["class"]: r["value"] for r in rows}
    expected = run(digits, ReferenceCopy(SIZE), ckpt).values["translation_accuracy"]
    assert by_class == pytest.approx(expected, abs=1e-12)
    assert rows[0]["options"]["classifier"] == {"kind": "module", "spec": "my_oracle:classifier", "sha256": "f" * 64,
                                                "classes": [str(d) for d in range(9, -1, -1)]}
    assert rows[0]["extractor"] == "classifier my_oracle:classifier sha256:ffffffffffff"
    assert json.loads(result.stdout)["results"][0]["translation_accuracy"] == by_class["mean"]
    sys.modules.pop("my_oracle", None)


# -- errors ----------------------------------------------------------------------------------------------------------


def test_errors_are_one_line(trained, digits, tmp_path, capsys):
    ckpt, _ = trained
    with pytest.raises(UnitEvalError, match="needs a classifier: --classifier"):
        run(digits, ReferenceCopy(SIZE), None)
    three = tmp_path / "three"
    for split in ("train", "test"):
        for c in "012":
            (three / split / c).mkdir(parents=True)
            for p in sorted((digits / split / c).glob("*.png"))[:4]:
                (three / split / c / p.name).write_bytes(p.read_bytes())
    with pytest.raises(UnitEvalError, match=r"classifier's classes do not match the dataset's: only in the classifier "
                                            r"\['3', '4', '5', '6', '7', '8', '9'\], only in the dataset \[\]"):
        run(three, ReferenceCopy(SIZE), ckpt)
    with pytest.raises(UnitEvalError, match="cannot import classifier module 'no_such_module'"):
        run(digits, ReferenceCopy(SIZE), "no_such_module:make")
    with pytest.raises(UnitEvalError, match="lacks class_names, classify"):
        run(digits, ReferenceCopy(SIZE), "unit_eval.reference_models:identity")
    with pytest.raises(UnitEvalError, match="checkpoint not found"):
        run(digits, ReferenceCopy(SIZE), tmp_path / "missing.pt")
    # through the CLI: exit 1 and one line on stderr, before any translation
    for args, message in [
        (["evaluate", "--model", "unit_eval.reference_models:reference_copy", "--protocol", "translation-accuracy",
          "--data", str(three), "--device", "cpu"], "needs a classifier"),
        (["evaluate", "--model", "unit_eval.reference_models:reference_copy", "--protocol", "translation-accuracy",
          "--data", str(three), "--device", "cpu", "--classifier", str(ckpt)], "do not match the dataset's"),
        (["train", "classifier", "--data", str(three / "train"), "--out", str(tmp_path / "c.pt"), "--arch", "resnet18",
          "--epochs", "1", "--img-size", "16", "--device", "cpu", "--quiet"], "share images"),
        (["train", "classifier", "--data", str(three), "--out", str(tmp_path / "c.pt"), "--epochs", "1",
          "--pretrained", str(ckpt), "--device", "cpu", "--quiet"], "is not torchvision's"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(args)
        err = capsys.readouterr().err.strip()
        assert exc.value.code == 1 and message in err and len(err.splitlines()) == 1, err


# -- sweeps and evaluation during training ---------------------------------------------------------------------------


def test_training_and_sweeps_take_the_classifier_and_key_their_rows_by_it(trained, digits, tmp_path, monkeypatch):
    """``train --eval-classifier`` and ``sweep --classifier`` score translation accuracy; a sweep skips a checkpoint
    only for rows of the same classifier (another oracle is another evaluation)."""
    ckpt, _ = trained
    monkeypatch.setenv("UNIT_EVAL_CACHE", str(tmp_path / "cache"))
    from unit_eval.protocol_specs import _package_files

    text = _package_files()["translation-accuracy"].read_text()
    protocol = tmp_path / "ta2.toml"
    protocol.write_text(text.replace('name = "translation-accuracy"', 'name = "ta2"')
                        .replace("references_per_input = 10", "references_per_input = 2"))
    run_dir = tmp_path / "run"
    before = torch.get_num_threads()
    trained_run = CliRunner().invoke(cli, [
        "train", "tunit", "--data", str(digits / "train"), "--out", str(run_dir), "--iters", "1", "--batch-size", "4",
        "--img-size", str(SIZE), "--toy", "--device", "cpu", "--quiet", "--eval-every", "1",
        "--eval-protocol", str(protocol), "--eval-data", str(digits), "--eval-classifier", str(ckpt)])
    torch.set_num_threads(before)
    assert trained_run.exit_code == 0, trained_run.output
    live = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert {r["protocol"] for r in live} == {"ta2"} and len(live) == 11
    clf_sha = live[0]["options"]["classifier"]["sha256"]
    assert clf_sha == hashlib.sha256(ckpt.read_bytes()).hexdigest()

    module = tmp_path / "oracle_sweep.py"
    module.write_text("from tests.test_translation_accuracy import Permuted\n"
                      f"def classifier(device=None):\n    return Permuted({str(ckpt)!r})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "sweep.jsonl"

    def sweep(classifier):
        result = CliRunner().invoke(cli, ["sweep", str(run_dir), "--protocol", str(protocol), "--data", str(digits),
                                          "--device", "cpu", "--out", str(out), "--classifier", classifier, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    first = sweep(str(ckpt))
    assert len(first["evaluated"]) == 1 and first["rows"] == 11
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # the sweep's numbers are the training-time evaluation's (same weights, protocol, seed and classifier)
    assert {r["class"]: r["value"] for r in rows} == {r["class"]: r["value"] for r in live}
    again = sweep(str(ckpt))
    assert again["evaluated"] == [] and len(again["skipped"]) == 1
    other = sweep("oracle_sweep:classifier")
    assert len(other["evaluated"]) == 1 and other["rows"] == 11
    sys.modules.pop("oracle_sweep", None)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["options"]["classifier"]["sha256"] for r in rows} == {clf_sha, "f" * 64}
