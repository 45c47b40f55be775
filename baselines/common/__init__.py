"""Shared training infrastructure for the bundled baselines.

``recipe`` (the interface a model implements), ``loop`` (the training loop behind ``unit-eval
train``), ``data`` (class folders, training transform, deterministic streams), ``distributed``
(torchrun / gloo / nccl helpers), ``seeding`` (seeds and RNG state for exact resume), ``ema``.
"""
