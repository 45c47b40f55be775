"""Protocols evaluated against a model or a folder of generated images.

- :mod:`.sampling`: seeded, pure plans of sources and references.
- :mod:`.batches`: images into a model batch by batch (the one translate loop), and the image decoding cache.
- :mod:`.realsets`: real-set features and Gaussians, memoised, cached on disk, sharded under torchrun.
- :mod:`.runner`: :class:`ProtocolRunner`, what every kind shares; the kinds themselves live in
  :mod:`.fid_kinds`, :mod:`.dc`, :mod:`.cluster`, :mod:`.lpips_kinds`, :mod:`.pixacc`, one function each, named by
  their spec class in :mod:`unit_eval.protocol_specs` (the one registry of kinds).
- :mod:`.api`: :func:`evaluate`, the entry point of the CLI.
"""
from .api import default_run_name, evaluate, load_model, protocol_summary, resolve_data, run_protocol_cli
from .runner import Networks, ProtocolRunner, Settings
from .sampling import (DiversityInput, Job, LegacyPlan, legacy_real_flips, legacy_real_paths, rng_for, sample_class_fid,
                       sample_diversity, sample_legacy, sample_pairs_uniform, sample_reference_class)

__all__ = [
    "DiversityInput", "Job", "LegacyPlan", "Networks", "ProtocolRunner", "Settings", "default_run_name", "evaluate",
    "legacy_real_flips", "legacy_real_paths", "load_model", "protocol_summary", "resolve_data", "rng_for",
    "run_protocol_cli", "sample_class_fid", "sample_diversity", "sample_legacy", "sample_pairs_uniform",
    "sample_reference_class",
]
