"""Protocol files (loading, validation, listing) and the seeded sampling plans, without any network."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from unit_eval.cli import cli
from unit_eval.errors import UnitEvalError
from unit_eval.evaluation import (legacy_real_flips, legacy_real_paths, sample_class_fid, sample_diversity,
                                       sample_legacy, sample_pairs_uniform, sample_reference_class)
from unit_eval.protocol_specs import KINDS, ClassFID, LegacyTunitMFID, list_protocols, load_protocol, protocol_names

SHIPPED = {"tunit-mfid", "tunit-mkid", "tunit-mfid-legacy", "tunit-dc", "tunit-cluster", "cluit-mfid",
           "lpips-diversity", "lpips-diversity-latent", "lpips-content", "unit-maps", "translation-accuracy",
           "stargan-v2-fid", "stargan-v2-fid-latent"}


def fabricated(k: int, per_class: int, prefix: str = "val") -> dict[str, list[Path]]:
    """A class index of paths that need not exist (samplers never open files)."""
    return {f"c{c}": [Path(f"/{prefix}/c{c}/{i:03d}.png") for i in range(per_class)] for c in range(k)}


# ---------------------------------------------------------------------------------------------------
# protocol files


def test_every_shipped_protocol_loads_and_states_its_source():
    specs = {s.name: s for s in list_protocols()}
    assert set(specs) == SHIPPED == set(protocol_names())
    for spec in specs.values():
        assert spec.source and spec.description and spec.kind in KINDS
        assert spec.file.endswith(f"{spec.name}.toml")
        assert isinstance(spec.seed, int)
    mfid = specs["tunit-mfid"]
    assert isinstance(mfid, ClassFID)
    assert (mfid.sources_per_class, mfid.references_per_source, mfid.source_split, mfid.real_split) == (18, 5, "test", "train")
    assert mfid.preprocessing == "tf1-bilinear"
    # tunit-mkid: tunit-mfid's sampling (the same fakes), with class-wise KID beside class-wise FID
    mkid = specs["tunit-mkid"]
    assert mkid.kid and not mfid.kid
    same = lambda spec: {k: v for k, v in spec.options().items() if k not in ("name", "kid")}  # noqa: E731
    assert same(mkid) == same(mfid)
    legacy = specs["tunit-mfid-legacy"]
    assert isinstance(legacy, LegacyTunitMFID) and legacy.preprocessing == "tunit-legacy" and legacy.fid_batch == 50
    assert specs["tunit-dc"].k == 5
    assert specs["lpips-diversity"].outputs_per_input == 10 and specs["lpips-diversity"].net == "alex"
    assert specs["unit-maps"].threshold == 16 and specs["unit-maps"].target_domain == "map"
    assert specs["tunit-cluster"].guiding_network == "non-ema"  # validation.py scores C, not C_EMA
    assert specs["cluit-mfid"].references_per_input == 10


def test_unknown_protocol_name_is_a_one_line_error():
    with pytest.raises(UnitEvalError, match="unknown protocol 'nope'; available: cluit-mfid") as info:
        load_protocol("nope")
    assert "\n" not in str(info.value)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "custom.toml"
    path.write_text(text)
    return path


BASE = """
name = "custom"
kind = "class-fid"
description = "d"
source = "s"
seed = 3
source_split = "test"
real_split = "train"
sources_per_class = 2
references_per_source = 2
resize_filter = "bilinear"
preprocessing = "tf1-bilinear"
"""


def test_protocol_file_by_path(tmp_path):
    spec = load_protocol(_write(tmp_path, BASE))
    assert isinstance(spec, ClassFID) and spec.seed == 3 and spec.sources_per_class == 2
    assert spec.options()["sources_per_class"] == 2 and "file" not in spec.options()


@pytest.mark.parametrize("edit, message", [
    (lambda t: t + 'colour = "red"\n', "unknown key"),
    (lambda t: t.replace('seed = 3\n', ''), "missing key"),
    (lambda t: t.replace('sources_per_class = 2', 'sources_per_class = 0'), "at least 1"),
    (lambda t: t.replace('sources_per_class = 2', 'sources_per_class = "2"'), "must be int"),
    (lambda t: t.replace('source_split = "test"', 'source_split = "validation2"'), "must be one of train, test"),
    (lambda t: t.replace('resize_filter = "bilinear"', 'resize_filter = "cubic"'), "resize_filter must be one of"),
    (lambda t: t.replace('kind = "class-fid"', 'kind = "magic"'), "'kind' must be one of"),
    (lambda t: t.replace('preprocessing = "tf1-bilinear"', 'preprocessing = "torchvision"'), "preprocessing must be"),
    (lambda t: t + "[broken", "invalid TOML"),
])
def test_protocol_file_validation(tmp_path, edit, message):
    with pytest.raises(UnitEvalError, match=message) as info:
        load_protocol(_write(tmp_path, edit(BASE)))
    assert "\n" not in str(info.value)


def test_protocols_command_lists_sources():
    result = CliRunner().invoke(cli, ["protocols", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    names = {p["name"]: p for p in payload["protocols"]}
    assert set(names) == SHIPPED
    assert "Appendix C" in names["tunit-mfid"]["source"]
    assert names["tunit-cluster"]["needs"] == ["cluster", "style"]
    text = CliRunner().invoke(cli, ["protocols"]).output
    assert "tunit-mfid-legacy" in text and "source:" in text


# ---------------------------------------------------------------------------------------------------
# sampling plans


def test_tunit_mfid_sampler_gives_810_fakes_per_class_for_k10():
    val = fabricated(10, 50)
    plan = sample_class_fid(val, 18, 5, seed=0)
    assert list(plan) == list(val)
    for target, jobs in plan.items():
        assert len(jobs) == 810
        assert all(j.group == target and j.reference.parent.name == target for j in jobs)
        sources = Counter(j.source for j in jobs)
        assert len(sources) == 18 * 9 and set(sources.values()) == {5}  # 18 distinct sources per other class, 5 refs each
        assert Counter(j.source.parent.name for j in jobs) == {c: 90 for c in val if c != target}
        for src in sources:  # references of one source are distinct
            refs = [j.reference for j in jobs if j.source == src]
            assert len(set(refs)) == 5


def test_sampler_is_seeded_and_independent_per_class():
    val = fabricated(4, 20)
    a, b, c = sample_class_fid(val, 3, 2, seed=0), sample_class_fid(val, 3, 2, seed=0), sample_class_fid(val, 3, 2, seed=1)
    assert a == b and a != c
    fewer = {k: v for k, v in val.items() if k != "c3"}  # dropping a class does not move another class's draws
    d = sample_class_fid(fewer, 3, 2, seed=0)
    assert [j for j in d["c0"] if j.source.parent.name != "c3"] == [j for j in a["c0"] if j.source.parent.name != "c3"]


def test_sampler_needs_enough_images():
    val = fabricated(3, 10)
    val["c1"] = val["c1"][:4]
    with pytest.raises(UnitEvalError, match="sources of class 'c1': needs 5 images, the split has 4"):
        sample_class_fid(val, 5, 2, seed=0)
    with pytest.raises(UnitEvalError, match="references of class 'c1'"):
        sample_class_fid(val, 1, 6, seed=0)


def test_single_class_takes_sources_from_itself():
    plan = sample_class_fid(fabricated(1, 10), 4, 3, seed=0)
    assert len(plan["c0"]) == 12


def test_legacy_sampler_matches_calcfidbatch_counts():
    val = fabricated(10, 50)
    train_counts = {c: 700 + 25 * i for i, c in enumerate(val)}  # min 700, max 925 -> T = 812
    plan = sample_legacy(val, train_counts, fid_batch=50, seed=0, branch="animal_faces")
    assert (plan.target_count, plan.multiples, plan.num_each) == (812, 5, 18)
    for ti, (target, jobs) in enumerate(plan.jobs.items()):
        assert len(jobs) == 9 * 18 * 5 == 810
        # contents: the FIRST num_each images of the other classes, in calcFIDBatch's order (t+1)%K, (t+2)%K, ...
        order = [f"c{(ti + j + 1) % 10}" for j in range(9)]
        assert [j.source.parent.name for j in jobs[::18 * 5]] == order
        assert {j.source.name for j in jobs} == {f"{i:03d}.png" for i in range(18)}
        # m = 5 draws of 18 distinct references each; content n pairs with reference n of each draw
        block = jobs[: 18 * 5]
        draws = [block[d * 18:(d + 1) * 18] for d in range(5)]
        for draw in draws:
            assert len({j.reference for j in draw}) == 18
            assert [j.source.name for j in draw] == [f"{i:03d}.png" for i in range(18)]
        # the same draws are reused for every content class
        assert [j.reference for j in jobs[18 * 5: 2 * 18 * 5]] == [j.reference for j in block]
    # animal_faces branch: validation images go through the training transform (flipped once each)
    flips = {j.source: j.source_flip for js in plan.jobs.values() for j in js}
    assert 0 < sum(flips.values()) < len(flips)
    other = sample_legacy(val, train_counts, fid_batch=50, seed=0, branch="other")
    assert not any(j.source_flip or j.reference_flip for js in other.jobs.values() for j in js)


def test_legacy_sampler_two_classes_copies_the_content_quirk():
    """clovaai/tunit calcFIDBatch with K = 2 runs one inner iteration and takes x_val_list[j] with j = 0, so both
    targets get class 0's contents: target 0 is a self-translation (validation.py, the inner_iter == 1 branch)."""
    val = fabricated(2, 40)
    plan = sample_legacy(val, {"c0": 60, "c1": 80}, fid_batch=50, seed=0, branch="other")
    # T = (60 + 80) // 2 = 70, m = 50 // 2 = 25, n = (70 // 25) // 1 = 2; 1 x 2 x 25 = 50 fakes per target
    assert (plan.target_count, plan.multiples, plan.num_each) == (70, 25, 2)
    for target in ("c0", "c1"):
        jobs = plan.jobs[target]
        assert len(jobs) == 50
        assert {j.source.parent.name for j in jobs} == {"c0"}
        assert {j.reference.parent.name for j in jobs} == {target}
        assert {j.source.name for j in jobs} == {"000.png", "001.png"}


def test_legacy_real_sets_and_flips():
    val = fabricated(3, 10)
    train = fabricated(3, 40, prefix="train")
    counts = {c: 20 + 10 * i for i, c in enumerate(val)}  # T = (20 + 40) // 2 = 30
    plan_af = sample_legacy(val, counts, 10, 0, "animal_faces")
    assert (plan_af.target_count, plan_af.multiples, plan_af.num_each) == (30, 3, 5)
    assert all(len(j) == 2 * 5 * 3 for j in plan_af.jobs.values())
    assert all(len(p) == 40 for p in legacy_real_paths(train, plan_af).values())  # every train image
    plan_other = sample_legacy(val, counts, 10, 0, "other")
    reals = legacy_real_paths(train, plan_other)
    assert all(p == train[c][:30] for c, p in reals.items())  # the first (min+max)//2 train images
    f0 = legacy_real_flips(reals, list(reals), 0)
    again = legacy_real_flips(reals, list(reals), 0)
    other_seed = legacy_real_flips(reals, list(reals), 1)
    assert all(f0[c].tolist() == again[c].tolist() for c in reals)
    assert any(f0[c].tolist() != other_seed[c].tolist() for c in reals)
    assert 0 < sum(int(f.sum()) for f in f0.values()) < 90


def test_legacy_sampler_rejects_what_the_official_code_would_get_wrong():
    val = fabricated(3, 5)
    with pytest.raises(UnitEvalError, match="leaves 0 sources"):
        sample_legacy(val, {c: 10 for c in val}, 50, 0, "other")
    with pytest.raises(UnitEvalError, match="num_each = 12 per class"):
        sample_legacy(val, {c: 100 for c in val}, 12, 0, "other")  # m = 4, n = (100 // 4) // 2 = 12 > 5


def test_dc_cluit_and_diversity_samplers():
    val = fabricated(3, 6)
    pairs = sample_pairs_uniform(val, 40, seed=0)
    assert len(pairs) == 40 and pairs == sample_pairs_uniform(val, 40, seed=0) != sample_pairs_uniform(val, 40, seed=1)
    plan = sample_reference_class(val, val, 10, exclude_self=True, seed=0)
    assert sum(len(j) for j in plan.values()) == 18 * 10
    assert all(j.source != j.reference and j.reference.parent.name == c for c, js in plan.items() for j in js)
    per_input = Counter(j.source for js in plan.values() for j in js)
    assert set(per_input.values()) == {10}
    div = sample_diversity(val, 5, "all-other", seed=0)
    assert len(div) == 18 * 2 and all(len(set(d.references)) == 5 and d.target_class != d.source_class for d in div)
    assert all(r.parent.name == d.target_class for d in div for r in d.references)
    one = sample_diversity(val, 5, "one-random", seed=0)
    assert len(one) == 18 and len({d.target_class for d in one}) > 1
    with pytest.raises(UnitEvalError, match="needs 7 images"):
        sample_diversity(val, 7, "all-other", seed=0)


def test_every_kind_names_an_evaluator_that_exists():
    """protocol_specs.KINDS is the one registry of kinds: each spec class names the function that evaluates it."""
    from unit_eval.evaluation.runner import resolve
    from unit_eval.protocol_specs import KINDS

    for kind, cls in KINDS.items():
        assert callable(resolve(cls.evaluator)), kind
        if cls.check is not None:
            assert callable(resolve(cls.check)), kind
    assert [k for k, c in KINDS.items() if c.paired] == ["pixel-accuracy"]
