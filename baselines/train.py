"""``python -m unit_eval.baselines.train MODEL --data DIR --out RUN_DIR ...``: same as ``unit-eval train``.

Convenient under torchrun: ``torchrun --nproc_per_node 2 -m unit_eval.baselines.train tunit ...``.
"""
from __future__ import annotations

import sys


def main(argv=None):
    from unit_eval.cli import main as cli_main

    cli_main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
