"""The interface a bundled model's training recipe implements (TUNIT, FUNIT, UNIT, CLUIT, GP-UNIT).

Interface (announced to every baseline; keep in sync with ``baselines/common/loop.py``)
======================================================================================

A recipe module ``unit_eval.baselines.<model>.recipe`` defines a subclass of :class:`Recipe` and
exposes it as the module attribute ``RECIPE`` (``unit-eval train <model>`` imports it by that name)::

    class MyRecipe(Recipe):
        name = "funit"                                # = run.pt "model"
        streams = {"content": None, "style": None}   # batch streams the loop draws (see below)
        min_classes = 2                              # fewer class folders -> UnitEvalError
        default_iters = 100_000                      # --iters when not given

        @classmethod
        def default_config(cls, *, iters, img_size=None, batch_size=None, k=None, **extra) -> dict
        def __init__(self, config, num_classes, device, distributed=False)
        def train_step(self, batch, iteration) -> dict[str, float]
        def state_dict(self) -> dict                  # everything for an exact resume
        def load_state_dict(self, state) -> None
        def inference_state_dict(self) -> dict[str, Tensor]   # run.pt "state_dict" (EMA nets)
        def run_config(self) -> dict                  # run.pt "config" (plain constructor args)
        def translator(self)  -> Translator           # eval-mode view on the EMA nets (sample grids)
        def bind_data(self, index) -> None            # optional: sees the DatasetIndex once, all ranks
        def finalize(self, batches) -> None           # optional: once before run.pt is written

Config
------
``default_config`` returns a *plain* dict (str/int/float/bool/None/lists/dicts only: it is
stored in ``run.pt`` and ``resume.pt``, which load with ``weights_only=True``). ``None`` arguments
mean "use the model's published default". The loop reads these keys from it:

- ``img_size`` (int): square training / inference resolution.
- ``load_size`` (int, default ``img_size``): the resize before the random ``img_size`` crop,
  bilinear (torchvision ``Resize``'s default on PIL images); how it applies is ``resize_mode``.
  Images whose shorter side is below ``load_size`` are refused (``UnitEvalError``) unless the loop
  is called with ``allow_upscale=True`` (CLI ``--allow-upscale``).
- ``resize_mode`` (str, default ``"square"``): ``"square"`` resizes every image to
  ``load_size x load_size`` (aspect not kept, as TUNIT's ``Resize((s, s))``) and crops only when
  ``load_size > img_size``; ``"shorter_side"`` resizes the shorter side to ``load_size`` with the aspect
  kept (torchvision ``Resize(s)``: the longer side becomes ``int(s * long / short)``) and crops at offsets
  drawn in both axes of the resized image: NVlabs/FUNIT's ``Resize(140)`` + ``RandomCrop((128, 128))``
  (``utils.py:46-48``, ``configs/funit_animals.yaml:38-40``) is ``load_size=140, img_size=128,
  resize_mode="shorter_side"``. See ``baselines/common/data.py``.
- ``hflip`` (bool, default True): random horizontal flip.
- ``batch_size`` (int): the *global* batch; under DDP each of W processes draws ``batch_size / W``
  (must divide).
- ``amp`` (bool): bf16 autocast on CUDA (recipes decide which parts are safe to autocast;
  ``self.autocast()`` is a helper). Ignored (off) on CPU unless ``amp_cpu`` is also True.
Anything else is the recipe's own business (widths, loss weights, learning rates...).

Streams and batches
-------------------
``streams`` maps a stream name to ``None`` (draw from all classes) or a class index (draw from
that class folder only; UNIT uses ``{"a": 0, "b": 1}`` with the two domains as two class folders,
sorted by name). Each stream is an independent, seeded, epoch-shuffled infinite sampler; per
iteration the loop calls ``train_step(batch, iteration)`` with::

    batch = {stream_name: {"image": float B x 3 x S x S in [-1, 1] on recipe.device,
                           "label": long B (class-folder index, always the true label),
                           "index": long B (dataset index)}}

A recipe that must not see labels (TUNIT unsupervised) simply ignores ``label``. Randomness a
recipe needs beyond the loaded, flipped and cropped images (e.g. TUNIT's augmented views) must
come from torch's *global* RNG on ``self.device`` (or Python/NumPy global RNGs): the loop saves
and restores those for exact resume, and seeds them per rank.

``iteration`` is 0-based and counts completed iterations before this step (the step that makes
``iteration + 1`` iterations done). ``train_step`` returns a flat dict of Python floats (losses
and diagnostics); the loop averages it across ranks at log steps, writes it to ``log.jsonl`` and
shows it on the progress bar.

Distributed
-----------
With ``distributed=True`` the process group is already initialised (gloo on CPU, nccl on CUDA)
and all ranks built the recipe from the same seed, so initial weights agree; the recipe should
still call :func:`unit_eval.distributed.broadcast_module` on its networks for safety.
Recipes average gradients with :func:`unit_eval.distributed.average_gradients` just
before each optimiser step (no DDP wrapper: TUNIT/FUNIT run several forwards per network per step,
which DDP's reducer does not like); anything that must agree across ranks (MoCo queues) uses
``all_gather_cat``; BatchNorm statistics are kept equal with ``average_buffers``. State returned
by ``state_dict`` must be identical on all ranks (only rank 0
writes it); per-rank RNG states are handled by the loop.

State
-----
``state_dict()`` holds networks, EMA copies, optimisers, grad scalers, queues and counters:
everything needed so that N iterations == N/2, save, load, N/2 more (bit-exact on the same device
and thread count). Plain containers and tensors only. ``inference_state_dict()`` is a flat
``{name: Tensor}`` of the networks used for evaluation (EMA weights) such that the model's
``adapter.from_run(run, device)`` rebuilds the Translator from ``run_config()`` and it.

Data hook
---------
Right after construction (and after ``load_state_dict`` on resume) the loop calls
``bind_data(index)`` on every rank with the :class:`baselines.common.data.DatasetIndex`
(``class_names``, ``paths``, ``labels`` as int64 NumPy array in dataset-index order). TUNIT uses
it to pick its labelled subset in semi-supervised mode. Default: no-op.

Finalize
--------
Before writing ``run.pt`` the loop calls ``finalize(batches)`` on rank 0 only, where ``batches()``
returns a fresh iterator over the *whole* training set in the evaluation transform (square resize to
``img_size`` whatever ``resize_mode``, no flip/crop), as the same ``{"image", "label", "index"}`` dicts, on ``self.device``.
TUNIT uses it to store each cluster's average style (``translate_to_domain``). Default: no-op.
Snapshots (``--snapshot-every``) and evaluations during training (``--eval-every``) need the same
finalized weights in the middle of a run: :meth:`Recipe.finalized_state_dict` runs ``finalize`` and
restores afterwards every attribute named in ``finalize_touches`` (declare there everything
``finalize`` assigns or changes in place), so training continues exactly as without them.

Loop entry point
----------------
``baselines.common.loop.train(model, data, out, config=..., ...)`` (see its docstring) and the CLI
``unit-eval train <model> --data DIR --out RUN_DIR ...``. Files in RUN_DIR (rank 0 only):
``log.jsonl``, ``samples/iter_XXXXXXX.png``, ``resume.pt`` (exact-resume state), ``run.pt``.

Errors
------
Raise :class:`unit_eval.errors.UnitEvalError` (one line) for bad configs or data that cannot work
(e.g. FUNIT with one class). ``validate_data(class_names, counts)`` is a classmethod hook run by
the loop before building anything; the default checks ``min_classes``.
"""
from __future__ import annotations

import abc
import contextlib
from typing import Any, ClassVar

import torch

from unit_eval.errors import UnitEvalError


class Recipe(abc.ABC):
    """One model's training recipe: owns networks, EMA copies, optimisers; steps; (de)serialises."""

    #: run.pt "model" name ("tunit" | "funit" | "unit").
    name: ClassVar[str] = ""
    #: stream name -> None (all classes) or a class-folder index (see module docstring).
    streams: ClassVar[dict[str, int | None]] = {"main": None}
    #: fewest class folders the data must have (1: a flat folder of images is accepted as one class).
    min_classes: ClassVar[int] = 1
    #: iterations when the CLI gets no --iters.
    default_iters: ClassVar[int] = 100_000

    def __init__(self, config: dict, num_classes: int, device: torch.device, distributed: bool = False):
        self.config = dict(config)
        self.num_classes = int(num_classes)
        self.device = torch.device(device)
        self.distributed = bool(distributed)

    # ------------------------------------------------------------------ configuration
    @classmethod
    @abc.abstractmethod
    def default_config(
        cls,
        *,
        iters: int,
        img_size: int | None = None,
        batch_size: int | None = None,
        k: int | None = None,
        **extra: Any,
    ) -> dict:
        """The model's published defaults, overridden by the non-None CLI options.

        ``k`` is the number of pseudo-domains (TUNIT's K-hat); models without one may ignore it
        or raise ``UnitEvalError`` if given. ``extra`` carries model-specific keys (e.g. TUNIT's
        ``p_semi``, ``toy``); unknown keys must raise ``UnitEvalError``.
        """

    @classmethod
    def validate_data(cls, class_names: list[str], counts: list[int]) -> None:
        """Refuse data this model cannot train on, with a one-line ``UnitEvalError``."""
        if len(class_names) < cls.min_classes:
            raise UnitEvalError(
                f"{cls.name} needs at least {cls.min_classes} class folders, found {len(class_names)}"
                + (f" ({', '.join(class_names)})" if class_names else "")
            )

    # ------------------------------------------------------------------ training
    @abc.abstractmethod
    def train_step(self, batch: dict[str, dict[str, torch.Tensor]], iteration: int) -> dict[str, float]:
        """One optimisation step (all networks); returns losses as Python floats."""

    # ------------------------------------------------------------------ state
    @abc.abstractmethod
    def state_dict(self) -> dict:
        """Everything for an exact resume (networks, EMA, optimisers, scalers, queues)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Inverse of :meth:`state_dict`."""

    @abc.abstractmethod
    def inference_state_dict(self) -> dict[str, torch.Tensor]:
        """Flat name -> tensor of the evaluation networks (EMA), stored as run.pt "state_dict"."""

    def run_config(self) -> dict:
        """Plain constructor arguments stored as run.pt "config" (default: the full config)."""
        return dict(self.config)

    @abc.abstractmethod
    def translator(self):
        """A Translator (eval mode, EMA networks) sharing this recipe's weights."""

    def bind_data(self, index) -> None:
        """Optional: see the dataset index once, on every rank (module docstring). Default no-op."""

    def finalize(self, batches) -> None:
        """Optional last step on rank 0 before run.pt (see module docstring); default no-op."""

    #: attributes ``finalize`` assigns or changes in place (restored after a mid-run snapshot)
    finalize_touches: ClassVar[tuple[str, ...]] = ()

    def finalized_state_dict(self, batches) -> dict:
        """``finalize(batches)`` then a copy of ``inference_state_dict()``, with every attribute in
        ``finalize_touches`` put back as it was: the run.pt weights at this iteration, training state untouched."""
        saved = {name: _copy(getattr(self, name)) for name in self.finalize_touches}
        try:
            self.finalize(batches)
            return {k: v.detach().clone() for k, v in self.inference_state_dict().items()}
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

    # ------------------------------------------------------------------ helpers
    def amp_enabled(self) -> bool:
        if not self.config.get("amp", False):
            return False
        if self.device.type == "cuda":
            return True
        return bool(self.config.get("amp_cpu", False))

    def autocast(self):
        """bf16 autocast when ``amp`` is on for this device, else a no-op context."""
        if self.amp_enabled():
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def check_extra(name: str, extra: dict, allowed: set[str]) -> None:
    """Raise a one-line error for model options a recipe does not know."""
    unknown = sorted(set(k for k, v in extra.items() if v is not None) - allowed)
    if unknown:
        raise UnitEvalError(f"{name} does not take option(s) {', '.join(unknown)}; it accepts {', '.join(sorted(allowed)) or 'none'}")


def published_config(name: str, published: dict, toy: dict, extra: dict, iters) -> dict:
    """A recipe's settings: the published ones, the toy ones over them when ``extra["toy"]``, then every
    given option (unknown ones refused), and ``iters``."""
    check_extra(name, extra, set(published) - {"iters"})
    cfg = dict(published)
    if extra.get("toy"):
        cfg.update(toy)
    cfg.update({key: value for key, value in extra.items() if value is not None})
    cfg["iters"] = int(iters)
    return cfg


def resize_crop_config(name: str, published: dict, toy: dict, extra: dict, iters, img_size, batch_size) -> dict:
    """:func:`published_config` with ``--img-size`` and ``--batch-size`` of a recipe that resizes to ``load_size``
    and crops ``img_size``: a new size keeps the published load/crop ratio (FUNIT 140/128, GP-UNIT 286/256) unless
    ``load_size`` is given."""
    cfg = published_config(name, published, toy, extra, iters)
    if img_size is not None:
        cfg["img_size"] = int(img_size)
        if extra.get("load_size") is None:
            cfg["load_size"] = int(round(int(img_size) * published["load_size"] / published["img_size"]))
    if batch_size is not None:
        cfg["batch_size"] = int(batch_size)
    return cfg


def _copy(value):
    return value.detach().clone() if torch.is_tensor(value) else value
