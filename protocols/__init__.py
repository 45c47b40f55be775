"""Declarative evaluation protocols (TOML files), shipped as package data of ``unit_eval.protocols``."""
from unit_eval.protocol_specs import list_protocols, load_protocol, protocol_names

__all__ = ["list_protocols", "load_protocol", "protocol_names"]
