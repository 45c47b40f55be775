"""Every unit-eval command shown in the README parses against the real CLI (options, choices, arguments).

What each command computes is tested in the test file of its area; this keeps the README from drifting.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from unit_eval.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```(?:bash|yaml)\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"^- run: ", "", line.strip())
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("unit-eval "):
                    commands.append(part)
    return commands


def test_readme_starts_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    first_block = re.search(r"```bash\n(.*?)```", text, flags=re.S).group(1).strip().splitlines()
    assert first_block == ["python3 -m pip install -e . && unit-eval demo", "python3 -m pytest -q"]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "python3 -m pytest -q" in ci  # CI runs the README's test command


def test_readme_shows_many_commands():
    assert len(readme_commands()) >= 30


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "downloads").mkdir()  # the folder the README's `weights fetch --from` example names
    (tmp_path / "downloads" / "inception_v3_google-0cc3c7bd.pth").touch()  # and the file another one names
    args = shlex.split(command)[1:]
    ctx = cli.make_context("unit-eval", list(args), resilient_parsing=True)
    group, name, rest = cli, args[0], args[1:]
    cmd = group.get_command(ctx, name)
    assert cmd is not None, f"unknown command {name!r}"
    while isinstance(cmd, click.Group):
        sub = cmd.get_command(ctx, rest[0])
        assert sub is not None, f"unknown subcommand {rest[0]!r} of {name}"
        name, cmd, rest = rest[0], sub, rest[1:]
    cmd.make_context(name, list(rest))  # raises on unknown options, bad choices, missing arguments
