"""Two reference translators that give a results table its scale, evaluated through the same protocols as any model.

- :class:`ReferenceCopy` returns its **reference** unchanged. In a reference-guided protocol its outputs are held-out
  real images of the target class (the test split's references), so its mFID and D&C are those of *real* images
  against the real set: the **floor** a translator can at best reach (mFID) or the values real data gets (D&C).
  It has no domain index to translate to, so protocols that use ``translate_to_domain`` (pixel accuracy) do not
  apply, and it has no ``cluster()``: cluster protocols do not apply either (no number is made up for them).
- :class:`SourceCopy` returns its **source** unchanged (the identity): a translator that ignores the reference.
  Its mFID is high (its outputs belong to the source's class, not the target's), while class-blind metrics
  such as D&C score it as real images: a reminder that D&C alone cannot tell a translator from a copier. It
  serves ``translate_to_domain`` too (the source, whatever the domain), so pixel accuracy reports how far the
  untouched input already is from the target (UNIT maps: the identity baseline). No ``cluster()``.

Both work at any ``image_size``: the protocols load dataset images at that size, so the outputs are the inputs at
the model's resolution. ``unit-eval evaluate --model unit_eval.reference_models:reference_copy`` (or ``identity``)
uses them at 128 px, the papers' resolution; other sizes: construct the classes (``ReferenceCopy(64)``) in a
factory of your own.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .errors import UnitEvalError

DEFAULT_SIZE = 128


def _check(source: torch.Tensor, reference: torch.Tensor | None = None) -> None:
    if not torch.is_tensor(source) or source.ndim != 4:
        raise UnitEvalError(f"expected a B x 3 x H x W tensor, got {getattr(source, 'shape', type(source).__name__)}")
    if reference is not None and tuple(reference.shape) != tuple(source.shape):
        raise UnitEvalError(f"source {tuple(source.shape)} and reference {tuple(reference.shape)} differ in shape")


class ReferenceCopy:
    """translate(source, reference) = reference: real images of the target class, the table's floor."""

    kind = "reference-copy"

    def __init__(self, image_size: int = DEFAULT_SIZE, num_domains: int | None = None):
        if not isinstance(image_size, int) or image_size < 1:
            raise UnitEvalError(f"image_size must be a positive int, got {image_size!r}")
        self.image_size = image_size
        self.num_domains = num_domains

    def translate(self, source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        _check(source, reference)
        return reference.float().clone()


class SourceCopy:
    """translate(source, reference) = source (the identity): a translator that ignores the reference."""

    kind = "identity"

    def __init__(self, image_size: int = DEFAULT_SIZE, num_domains: int | None = None,
                 domain_names: Sequence[str] | None = None):
        if not isinstance(image_size, int) or image_size < 1:
            raise UnitEvalError(f"image_size must be a positive int, got {image_size!r}")
        self.image_size = image_size
        self.num_domains = num_domains if num_domains is not None else (len(domain_names) if domain_names else None)
        if domain_names is not None:
            self.domain_names = tuple(domain_names)

    def translate(self, source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        _check(source, reference)
        return source.float().clone()

    def translate_to_domain(self, source: torch.Tensor, domain: int) -> torch.Tensor:
        _check(source)
        return source.float().clone()


def reference_copy(device=None) -> ReferenceCopy:
    """``--model unit_eval.reference_models:reference_copy`` (128 px)."""
    return ReferenceCopy(DEFAULT_SIZE)


def identity(device=None) -> SourceCopy:
    """``--model unit_eval.reference_models:identity`` (128 px)."""
    return SourceCopy(DEFAULT_SIZE)
