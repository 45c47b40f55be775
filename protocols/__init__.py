"""Declarative evaluation protocols (TOML files), shipped as package data of ``unit_eval.protocols``."""
