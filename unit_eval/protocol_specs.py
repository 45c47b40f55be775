"""Evaluation protocols: declarative TOML files, loaded and validated into one dataclass per kind.

A protocol file states where it comes from (``source``: paper section or code path) and every choice that
moves a number: splits, how sources and references are drawn, counts, resize filter, extractor
preprocessing, seed. All keys of its kind are required (no silent defaults); unknown keys are errors.

Shipped protocols live in ``protocols/*.toml`` (package data of ``unit_eval.protocols``); a path to any
``.toml`` file with the same schema works wherever a protocol name does.

Schema (flat keys). Common to every kind:

``name`` (str, equals the file name for shipped files), ``kind`` (one of :data:`KINDS`),
``description`` (one line), ``source`` (paper section / code path), ``seed`` (int, the default seed;
``--seed`` overrides it), ``resize_filter`` (PIL filter bringing dataset images to the model's square
resolution), optional ``notes``. Kind-specific keys are the fields of the dataclasses below.

Images always enter a model at the model's resolution (``image_size`` of the Translator) and fakes are
scored at that resolution; for a folder of generated images, the folder's resolution takes its place.
"""
from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .errors import UnitEvalError
from .images import RESIZE_FILTERS

SPLITS = ("train", "test")
PACKAGE = "unit_eval.protocols"


@dataclass(frozen=True, kw_only=True)
class ProtocolSpec:
    """Keys every protocol file has."""

    name: str
    kind: str
    description: str
    source: str
    seed: int
    resize_filter: str
    notes: str = ""
    file: str = ""  # where it was loaded from (not a TOML key)

    # what the protocol needs from a model; whether a folder of generated images can stand in for one
    needs: ClassVar[tuple[str, ...]] = ("translate",)
    fake_folder: ClassVar[bool] = False
    metrics: ClassVar[tuple[str, ...]] = ()
    _choices: ClassVar[dict[str, tuple]] = {}
    # how the kind is evaluated: "module:function" taking (runner, spec, seed) -> ProtocolResult, an optional
    # "module:function" (runner, spec) run before any generation, and whether it reads a paired dataset
    evaluator: ClassVar[str] = ""
    check: ClassVar[str | None] = None
    paired: ClassVar[bool] = False
    # how outputs become the uint8 pixels scored and saved: "round" (to nearest, ties to even) or "stargan-v2"
    # (torchvision save_image's +0.5 and truncation: unit_eval.images.float_to_uint8_saved)
    quantisation: ClassVar[str] = "round"

    def options(self) -> dict:
        """Every number-moving setting, for result rows (``file`` and prose excluded)."""
        skip = {"file", "description", "notes", "source"}
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}

    def model_methods(self) -> tuple[str, ...]:
        """The model methods this protocol calls (``needs``; latent-guided protocols replace ``translate``)."""
        if getattr(self, "guidance", None) == "latent":
            return tuple(m for m in self.needs if m != "translate") + ("sample_style", "translate_with_style")
        return self.needs

    def summary(self) -> dict:
        return {"name": self.name, "kind": self.kind, "description": self.description, "source": self.source,
                "file": self.file, "needs": list(self.model_methods()), "fake_folder": self.fake_folder,
                "metrics": list(self.metrics), "seed": self.seed}


@dataclass(frozen=True, kw_only=True)
class ClassFID(ProtocolSpec):
    """Class-wise FID, TUNIT paper (Appendix C), seeded.

    For each target class t: ``sources_per_class`` images drawn without replacement from the
    ``source_split`` of every other class; each source gets ``references_per_source`` references drawn
    without replacement from class t's ``source_split``. Real set of t = all of t's ``real_split`` images
    at the model's resolution. Fakes are quantised to uint8 (as if saved as PNG) before ``preprocessing``.
    A one-class dataset takes its sources from the class itself (as TUNIT's code does).
    """

    source_split: str
    real_split: str
    sources_per_class: int
    references_per_source: int
    preprocessing: str
    kid: bool = False  # also class-wise KID (mkid) from the same fakes and real sets (torch-fidelity's estimator)

    fake_folder: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]] = ("mfid", "fid")
    _choices: ClassVar[dict[str, tuple]] = {"preprocessing": ("tf1-bilinear", "tunit-legacy")}
    evaluator: ClassVar[str] = "unit_eval.evaluation.fid_kinds:class_fid"


@dataclass(frozen=True, kw_only=True)
class LegacyTunitMFID(ProtocolSpec):
    """clovaai/tunit ``validation/validation.py`` ``calcFIDBatch``, replicated, with its randomness seeded.

    T = (min + max) // 2 of the per-class train counts; m = max(1, fid_batch // K);
    n = (T // m) // (K - 1) (T // m when K = 1). Target class t: m draws of n random validation images of t
    (one style code each); contents: the first n validation images of each other class, in the order
    (t+1) % K, (t+2) % K, ...; content i pairs with reference i of each draw; (K-1) * n * m fakes, capped at T.
    K = 1 and K = 2: the code's single inner iteration takes class 0's contents for every target, so with two
    classes target 0 is a self-translation (class 0 -> class 0); reproduced, since published two-domain curves
    (summer2winter) were computed that way.
    ``branch``: ``animal_faces`` (real = every train image; validation images go through the training
    transform, so each is flipped at random once) or ``other`` (real = the first T train images of the class,
    sorted; validation images unflipped); ``auto`` picks ``animal_faces`` for AnimalFaces datasets.
    ``real_flip``: the real set's random horizontal flips (training transform), one seeded coin per image.
    Fakes stay float (never quantised); ``preprocessing`` must be ``tunit-legacy``.
    """

    fid_batch: int
    branch: str
    real_flip: bool
    preprocessing: str

    fake_folder: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]] = ("mfid", "fid")
    _choices: ClassVar[dict[str, tuple]] = {"branch": ("auto", "animal_faces", "other"),
                                            "preprocessing": ("tunit-legacy",)}
    evaluator: ClassVar[str] = "unit_eval.evaluation.fid_kinds:legacy_mfid"


@dataclass(frozen=True, kw_only=True)
class DensityCoverage(ProtocolSpec):
    """Density & coverage (and precision/recall), TUNIT paper Appendix C / Naeem et al. 2020.

    n = min(number of ``real_split`` images, ``max_fake``) fakes; source and reference of each fake are
    drawn independently and uniformly (with replacement) from the pooled ``source_split`` of all classes.
    Real set = every ``real_split`` image of every class. prdc semantics with ``k``.
    """

    source_split: str
    real_split: str
    max_fake: int
    k: int
    preprocessing: str

    fake_folder: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]] = ("density", "coverage", "precision", "recall")
    _choices: ClassVar[dict[str, tuple]] = {"preprocessing": ("tf1-bilinear", "tunit-legacy")}
    evaluator: ClassVar[str] = "unit_eval.evaluation.dc:density_coverage"


@dataclass(frozen=True, kw_only=True)
class ClusterEval(ProtocolSpec):
    """Cluster accuracy (Hungarian one-to-one, majority many-to-one), NMI, and IOI of style codes.

    Every ``split`` image goes through ``model.cluster`` (ids) and ``model.style`` (codes) at the model's
    resolution. ``guiding_network``: ``non-ema`` (what clovaai/tunit ``validation/validation.py`` scores:
    ``cluster_eval(args, C, ...)``, the raw guiding network) or ``ema``; it is passed to the model as
    ``cluster(images, ema=...)`` / ``style(images, ema=...)`` when those methods take ``ema`` (the bundled
    TUNIT does), and a model whose methods do not is scored with the one network it has (the row says so).
    ``ioi_groups``: ``predicted`` (IOI over the model's clusters, "of each clustering result", TUNIT
    Sec. 4.2) or ``labels`` (ground-truth classes). Hungarian accuracy is reported only when the model's
    number of clusters K-hat equals the number of classes K (the official code evaluates only then); the
    majority (many-to-one) accuracy and NMI are reported for any K-hat.
    """

    split: str
    guiding_network: str
    ioi_groups: str

    needs: ClassVar[tuple[str, ...]] = ("cluster", "style")
    metrics: ClassVar[tuple[str, ...]] = ("cluster_acc", "cluster_acc_majority", "nmi", "ioi")
    _choices: ClassVar[dict[str, tuple]] = {"ioi_groups": ("predicted", "labels"), "guiding_network": ("non-ema", "ema")}
    evaluator: ClassVar[str] = "unit_eval.evaluation.cluster:cluster_scores"


@dataclass(frozen=True, kw_only=True)
class ReferenceClassFID(ProtocolSpec):
    """CLUIT (Sec. 4, AFHQ): every ``input_split`` image translated with ``references_per_input``
    references drawn without replacement from the pooled ``reference_split`` (excluding the input itself
    when ``exclude_self``); fakes grouped by the reference's ground-truth class; class-wise FID against
    the class's ``real_split`` images; mean over classes."""

    input_split: str
    reference_split: str
    real_split: str
    references_per_input: int
    exclude_self: bool
    preprocessing: str
    kid: bool = False  # also class-wise KID (mkid), as in ClassFID

    fake_folder: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]] = ("mfid", "fid")
    _choices: ClassVar[dict[str, tuple]] = {"preprocessing": ("tf1-bilinear", "tunit-legacy")}
    evaluator: ClassVar[str] = "unit_eval.evaluation.fid_kinds:reference_class_fid"


@dataclass(frozen=True, kw_only=True)
class LpipsDiversity(ProtocolSpec):
    """LPIPS diversity (StarGAN v2 ``metrics/lpips.py``, GP-UNIT Table 1).

    A task is (source class, target class t). ``targets = "all-other"``: every ``input_split`` image of
    every class other than t is an input of task t (a one-class set uses its own class);
    ``"one-random"``: each input gets one target class drawn uniformly among the others. Each input is
    translated ``outputs_per_input`` times (``guidance``, see :class:`TaskFID`); score of an input = mean
    LPIPS (``net``, v0.1, float outputs in [-1, 1] at the model's resolution) over its unordered output pairs;
    task = mean over inputs; target-class row = mean over its tasks; ``mean`` row = mean over all tasks.
    """

    input_split: str
    outputs_per_input: int
    targets: str
    net: str
    guidance: str = "reference"

    metrics: ClassVar[tuple[str, ...]] = ("lpips_diversity",)
    _choices: ClassVar[dict[str, tuple]] = {"targets": ("all-other", "one-random"), "net": ("alex", "vgg"),
                                            "guidance": ("reference", "latent")}
    evaluator: ClassVar[str] = "unit_eval.evaluation.lpips_kinds:diversity"
    check: ClassVar[str | None] = "unit_eval.evaluation.guided:check"


@dataclass(frozen=True, kw_only=True)
class TaskFID(ProtocolSpec):
    """StarGAN v2 ``metrics/eval.py`` (GP-UNIT Table 1): one FID per task (source class s, target class t, s != t).

    Every ``input_split`` image of s is translated ``outputs_per_input`` times into t. ``guidance``:
    ``reference`` = with that many references drawn without replacement from t's ``input_split`` (the same
    draws as ``lpips-diversity`` with ``targets = "all-other"`` and the same seed); ``latent`` = with that many
    style codes from ``model.sample_style(n, domain=<t's index in domain_names>, generator=<seeded>)`` through
    ``model.translate_with_style``. Outputs are written to uint8 as StarGAN v2 saves them (PNG) and scored
    with ``preprocessing``; real set of the task = every ``real_split`` image of t. Rows: ``fid`` per task
    (class ``"s->t"``) and its ``mean`` over tasks.
    """

    input_split: str
    real_split: str
    outputs_per_input: int
    guidance: str
    preprocessing: str

    metrics: ClassVar[tuple[str, ...]] = ("fid",)
    _choices: ClassVar[dict[str, tuple]] = {"guidance": ("reference", "latent"), "preprocessing": ("stargan-v2",)}
    evaluator: ClassVar[str] = "unit_eval.evaluation.task_fid:task_fid"
    quantisation: ClassVar[str] = "stargan-v2"
    check: ClassVar[str | None] = "unit_eval.evaluation.guided:check"


@dataclass(frozen=True, kw_only=True)
class LpipsContent(ProtocolSpec):
    """LPIPS between each source and its translation (TUNIT Appendix, Fig. 26: LPIPS beside FID).

    Sources and references are drawn exactly as in ``tunit-mfid`` (``sources_per_class`` from each other
    class x ``references_per_source`` references of the target class); rows per target class and mean.
    Float outputs and sources in [-1, 1] at the model's resolution.
    """

    source_split: str
    sources_per_class: int
    references_per_source: int
    net: str

    metrics: ClassVar[tuple[str, ...]] = ("lpips_content",)
    _choices: ClassVar[dict[str, tuple]] = {"net": ("alex", "vgg")}
    evaluator: ClassVar[str] = "unit_eval.evaluation.lpips_kinds:content"


@dataclass(frozen=True, kw_only=True)
class MapsPixelAccuracy(ProtocolSpec):
    """UNIT (Sec. 4.1, Fig. 2): every test pair's source goes through ``model.translate_to_domain(source,
    index)``, where ``index`` is the position of the domain *named* ``target_domain`` in the model's
    ``domain_names`` (never a guessed position: a trainer that orders domains by folder name puts ``map``
    before ``satellite``); a model without ``domain_names`` needs an explicit index (``--target-domain``).
    The dataset's pairs are oriented so that their target side is the domain ``target_domain`` (either
    domain of a paired set may be named). Pixel accuracy against the paired ground truth: max over RGB of
    |pred - gt| strictly below ``threshold``, pooled over all pixels of all images (GcGAN's evaluate_maps.py reading).
    Resolution: sources resized to the model's resolution with ``resize_filter``; ground truth resized to
    the same resolution with ``target_resize_filter`` (nearest keeps the flat map colours exact); for a
    folder of predictions, the ground truth is resized to each prediction's size instead."""

    split: str
    target_domain: str
    threshold: int
    target_resize_filter: str

    needs: ClassVar[tuple[str, ...]] = ("translate_to_domain",)
    fake_folder: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]] = ("pixel_accuracy",)
    evaluator: ClassVar[str] = "unit_eval.evaluation.pixacc:pixel_accuracy"
    check: ClassVar[str | None] = "unit_eval.evaluation.pixacc:check"
    paired: ClassVar[bool] = True


@dataclass(frozen=True, kw_only=True)
class TranslationAccuracy(ProtocolSpec):
    """CLUIT (Sec. 4, A.2): the fraction of outputs that an oracle classifier (a ResNet-50 trained on the dataset's
    train split; ``unit-eval train classifier``, or any ``--classifier module:factory``) assigns to the
    reference's class. Pairs are drawn as in ``reference-class-fid`` (the same sampler and random streams: with
    equal keys and seed, the same pairs as ``cluit-mfid``): every ``input_split`` image with
    ``references_per_input`` references drawn without replacement from the pooled ``reference_split`` (never
    the input itself when ``exclude_self``; references of the input's own class allowed when
    ``same_class_references``). Outputs are quantised to uint8 (as if saved) and classified at the model's
    resolution (the classifier resizes to its own). Rows per reference class; ``mean`` = pooled over all outputs."""

    input_split: str
    reference_split: str
    references_per_input: int
    exclude_self: bool
    same_class_references: bool

    fake_folder: ClassVar[bool] = True
    metrics: ClassVar[tuple[str, ...]] = ("translation_accuracy",)
    evaluator: ClassVar[str] = "unit_eval.evaluation.accuracy:translation_accuracy"
    check: ClassVar[str | None] = "unit_eval.evaluation.accuracy:check"


# The one registry of protocol kinds: TOML ``kind`` -> spec class; each class names its evaluator (see above).
KINDS: dict[str, type[ProtocolSpec]] = {
    "class-fid": ClassFID,
    "tunit-legacy-mfid": LegacyTunitMFID,
    "density-coverage": DensityCoverage,
    "cluster": ClusterEval,
    "reference-class-fid": ReferenceClassFID,
    "lpips-diversity": LpipsDiversity,
    "stargan-v2-fid": TaskFID,
    "lpips-content": LpipsContent,
    "pixel-accuracy": MapsPixelAccuracy,
    "translation-accuracy": TranslationAccuracy,
}

_POSITIVE = {"sources_per_class", "references_per_source", "fid_batch", "max_fake", "k", "references_per_input",
             "outputs_per_input", "threshold"}


def _validate(data: dict, where: str) -> ProtocolSpec:
    kind = data.get("kind")
    if kind not in KINDS:
        raise UnitEvalError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    cls = KINDS[kind]
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "file"}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UnitEvalError(f"{where}: unknown key(s) {unknown} for kind {kind!r}; allowed: {', '.join(sorted(fields))}")
    missing = [n for n, f in fields.items() if n not in data and f.default is dataclasses.MISSING]
    if missing:
        raise UnitEvalError(f"{where}: missing key(s) {missing} (kind {kind!r} states every setting explicitly)")
    for name, value in data.items():
        expected = hints[name]
        ok = isinstance(value, bool) if expected is bool else (
            isinstance(value, expected) and not isinstance(value, bool))
        if not ok:
            raise UnitEvalError(f"{where}: {name} must be {expected.__name__}, got {value!r}")
        if name in _POSITIVE and value < 1:
            raise UnitEvalError(f"{where}: {name} must be at least 1, got {value}")
        if (name.endswith("split") and name != "split") or name == "split":
            if value not in SPLITS:
                raise UnitEvalError(f"{where}: {name} must be one of {', '.join(SPLITS)}, got {value!r}")
        if name.endswith("resize_filter") and value not in RESIZE_FILTERS:
            raise UnitEvalError(f"{where}: {name} must be one of {', '.join(RESIZE_FILTERS)}, got {value!r}")
        choices = cls._choices.get(name)
        if choices is not None and value not in choices:
            raise UnitEvalError(f"{where}: {name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    if data["seed"] < 0:
        raise UnitEvalError(f"{where}: seed must be non-negative, got {data['seed']}")
    if "target_domain" in data and not data["target_domain"].strip():
        raise UnitEvalError(f"{where}: target_domain must name a domain (e.g. \"map\")")
    return cls(**data, file=where)


def _package_files() -> dict[str, object]:
    from importlib import resources

    root = resources.files(PACKAGE)
    return {entry.name[: -len(".toml")]: entry for entry in root.iterdir() if entry.name.endswith(".toml")}


def protocol_names() -> list[str]:
    return sorted(_package_files())


def parse_protocol(text: str, where: str) -> ProtocolSpec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UnitEvalError(f"{where}: invalid TOML ({exc})") from None
    return _validate(data, where)


def load_protocol(name_or_path: str | os.PathLike) -> ProtocolSpec:
    """A shipped protocol by name, or a ``.toml`` file by path."""
    text = os.fspath(name_or_path)
    path = Path(text).expanduser()
    if text.endswith(".toml") or path.is_file():
        if not path.is_file():
            raise UnitEvalError(f"protocol file not found: {path}")
        return parse_protocol(path.read_text(encoding="utf-8"), str(path))
    files = _package_files()
    if text not in files:
        raise UnitEvalError(f"unknown protocol {text!r}; available: {', '.join(sorted(files))} (or a path to a .toml file)")
    spec = parse_protocol(files[text].read_text(encoding="utf-8"), f"{PACKAGE}/{text}.toml")
    if spec.name != text:
        raise UnitEvalError(f"{PACKAGE}/{text}.toml declares name {spec.name!r}; it must match the file name")
    return spec


def list_protocols() -> list[ProtocolSpec]:
    return [load_protocol(n) for n in protocol_names()]
