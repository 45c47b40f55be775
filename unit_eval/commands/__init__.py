"""Click commands, one module per area, registered lazily in ``unit_eval.cli.COMMANDS``."""
