"""Every command has help text and a place in the README."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from engine.cli import cli
from tests.conftest import ROOT

COMMANDS = sorted(cli.commands)


def test_the_contract_commands_exist() -> None:
    assert {"run", "validate", "poll", "reconcile", "export", "sandbox"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    command = cli.commands[name]
    assert command.help
    assert len(command.help.strip()) > 20
    for param in command.params:
        if param.param_type_name == "option":
            assert getattr(param, "help", None), f"{name} {param.opts} has no help"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_is_in_readme(name: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"`{name}\b", readme), f"README.md does not mention `{name}`"
