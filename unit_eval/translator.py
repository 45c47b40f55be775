"""The Translator interface protocols need from a model, and how models are obtained.

A translator has ``image_size`` (int), ``num_domains`` (int or None) and
``translate(source, reference) -> images`` on float tensors B x 3 x H x W in [-1, 1]. Optional:
``style(images) -> B x D codes``, ``cluster(images) -> B ids``, ``translate_to_domain(source, domain)``
(``domain`` an index), ``domain_names`` (a sequence of str: the domains' names in index order), and
``iteration`` (int: the training iteration of these weights; result rows record it, checkpoints set it).
Latent-guided translation (GP-UNIT, StarGAN v2) is the optional pair
``sample_style(n, domain=None, generator=None) -> n x D`` (n random style codes for target domain index
``domain``, drawn with the given ``torch.Generator`` (CPU) so that protocols are seeded; a model with a single
target domain accepts ``None``) and ``translate_with_style(source, style) -> images`` (one code per source).
Protocols ask for a domain by name and look its index up in ``domain_names``; they never guess a position.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Protocol, runtime_checkable

import torch

from .errors import UnitEvalError


@runtime_checkable
class Translator(Protocol):
    image_size: int
    num_domains: int | None

    def translate(self, source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor: ...


OPTIONAL_METHODS = ("style", "cluster", "translate_to_domain", "sample_style", "translate_with_style")
OPTIONAL_ATTRIBUTES = ("domain_names", "iteration")


def require(model, method: str, protocol: str):
    """Return ``model.<method>`` or raise a clear error naming the protocol that needs it."""
    fn = getattr(model, method, None)
    if not callable(fn):
        raise UnitEvalError(
            f"protocol {protocol!r} needs the model's {method}() method, which {type(model).__name__} does not provide"
        )
    return fn


def load_checkpoint_translator(path: str | os.PathLike, device: torch.device | str = "cpu",
                               official_tunit: dict | None = None):
    """Rebuild the bundled baseline stored in a run.pt, or the model of an official TUNIT ``.ckpt``, and return
    its Translator (eval mode). ``official_tunit`` holds what an official file cannot tell (``img_size``,
    ``output_k``, ``sty_dim``; unset keys take the official defaults); a run.pt states its own, so giving any
    of them with one is an error rather than silently ignored."""
    from .cache import sha256_file
    from .checkpoint import is_official_tunit, load_checkpoint, validate_run

    payload = load_checkpoint(path)
    given = {k: v for k, v in (official_tunit or {}).items() if v is not None}
    if is_official_tunit(payload):
        tunit = importlib.import_module("unit_eval.baselines.tunit.adapter")
        translator = tunit.from_official_state(payload, path, device=torch.device(device), **given)
        translator.ckpt_sha256 = sha256_file(path)
        return translator
    run = validate_run(payload, path)
    if given:
        flags = ", ".join({"img_size": "--img-size", "output_k": "--k", "sty_dim": "--sty-dim"}.get(k, k) for k in given)
        raise UnitEvalError(f"{flags} apply to official TUNIT .ckpt files only; {path} is a run.pt, which states its own")
    return translator_from_run(run, device)


def translator_from_run(run: dict, device: torch.device | str = "cpu"):
    """The Translator of a validated run.pt payload (``unit_eval.checkpoint.validate_run``, or one built in memory
    by a trainer), with ``ckpt_sha256`` (the file's, or None) and ``iteration`` (``meta["iterations"]``) set."""
    module = importlib.import_module(f"unit_eval.baselines.{run['model']}.adapter")
    translator = module.from_run(run, torch.device(device))
    translator.ckpt_sha256 = run.get("sha256")
    iteration = run["meta"].get("iterations")
    translator.iteration = iteration if isinstance(iteration, int) and not isinstance(iteration, bool) else None
    return translator


def call_factory(module_name: str, factory_name: str, device: torch.device | str, what: str):
    """Import ``module_name`` (the working directory on the path) and return ``factory(device=...)``, or
    ``factory()`` when it takes no device; ``what`` names the module in errors ("model", "classifier")."""
    if os.getcwd() not in sys.path:  # console scripts do not put the working directory on the path
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnitEvalError(f"cannot import {what} module {module_name!r}: {exc}") from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise UnitEvalError(f"{module_name!r} has no callable {factory_name!r}")
    try:
        return factory(device=torch.device(device))
    except TypeError:
        return factory()


def load_user_model(spec: str, device: torch.device | str = "cpu"):
    """``module:factory`` -> factory(device=...) or factory(); must return a Translator."""
    if ":" not in spec:
        raise UnitEvalError(f"--model expects 'module:factory', got {spec!r}")
    module_name, factory_name = spec.split(":", 1)
    model = call_factory(module_name, factory_name, device, "model")
    missing = [a for a in ("image_size", "num_domains", "translate") if not hasattr(model, a)]
    if missing:
        raise UnitEvalError(f"{spec} returned {type(model).__name__}, which lacks {', '.join(missing)} (Translator interface)")
    return model
