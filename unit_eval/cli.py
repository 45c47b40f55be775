"""``unit-eval`` command line: a lazy click group (each command lives in its own module, imported on use).

Exit codes: 0 success, 1 error with a one-line reason, 2 usage error, 3 regression found.
"""
from __future__ import annotations

import importlib
import sys

import click

from .errors import UnitEvalError

# command name -> "module:attribute" of a click.Command
COMMANDS: dict[str, str] = {
    "fid": "unit_eval.commands.metrics:fid_command",
    "kid": "unit_eval.commands.metrics:kid_command",
    "mfid": "unit_eval.commands.metrics:mfid_command",
    "dc": "unit_eval.commands.metrics:dc_command",
    "lpips": "unit_eval.commands.metrics:lpips_command",
    "diversity": "unit_eval.commands.metrics:diversity_command",
    "cluster-acc": "unit_eval.commands.metrics:cluster_acc_command",
    "ioi": "unit_eval.commands.metrics:ioi_command",
    "pixacc": "unit_eval.commands.metrics:pixacc_command",
    "fd": "unit_eval.commands.feature_spaces:fd_command",
    "cmmd": "unit_eval.commands.feature_spaces:cmmd_command",
    "weights": "unit_eval.commands.weights:weights_group",
    "evaluate": "unit_eval.commands.evaluate:evaluate_command",
    "protocols": "unit_eval.commands.evaluate:protocols_command",
    "table": "unit_eval.commands.tables:table_command",
    "check": "unit_eval.commands.tables:check_command",
    "train": "unit_eval.commands.train:train_command",
    "data": "unit_eval.commands.data:data_group",
    "plot": "unit_eval.commands.plot:plot_group",
    "demo": "unit_eval.commands.demo:demo_command",
    "sweep": "unit_eval.commands.sweep:sweep_command",
    "report": "unit_eval.commands.report:report_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="unit-eval")
def cli():
    """Exact, reproducible metrics for unsupervised image-to-image translation."""


def main(argv=None):
    try:
        rv = cli.main(args=argv, prog_name="unit-eval", standalone_mode=False)
    except UnitEvalError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
