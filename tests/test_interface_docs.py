"""The repository's own docs carry the interface; every command's help has its exit
codes, environment and an example; the README never points outside the repository."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.export import RESULT_COLUMNS
from engine.ledger.store import STATUSES
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE, ROOT
from tests.threaded_sandbox import threaded_sandbox

INTERFACE = ROOT / "docs" / "interface.md"
DOCS = [ROOT / "README.md", INTERFACE]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


COMMANDS = list(_commands(cli))


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_help_has_exit_codes_and_an_example(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert "Example: heygen-batch " in text
    assert "Exit code" in text


@pytest.mark.parametrize(
    "path", [p for p in COMMANDS if "--base-url URL" in _help(p)], ids=" ".join
)
def test_commands_that_reach_the_service_name_its_environment(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert "HEYGEN_API_KEY" in text
    assert "HEYGEN_BASE_URL" in text
    for code in ("0", "2", "3"):
        assert re.search(rf"\b{code} ", text.split("Exit code", 1)[1])


def test_the_readme_never_links_outside_the_repository() -> None:
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        assert "../" not in text, doc
        assert not re.search(r"\bshared/", text), doc
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if not re.match(r"https?://", target):
                assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_the_interface_doc_holds_what_a_user_needs() -> None:
    text = INTERFACE.read_text(encoding="utf-8")
    for path in COMMANDS:
        assert f"heygen-batch {' '.join(path)}" in text, f"{path} missing from {INTERFACE}"
    table = text.split("## Exit codes", 1)[1].split("##", 1)[0]
    for code in (0, 1, 2, 3, 75, 130):
        assert f"| {code} |" in table
    for variable in ("HEYGEN_API_KEY", "HEYGEN_BASE_URL", "HEYGEN_WEBHOOK_SECRET"):
        assert f"`{variable}`" in text
    export = text.split("## The export", 1)[1]
    assert ", ".join(RESULT_COLUMNS[:9]) in export
    assert ", ".join(RESULT_COLUMNS[9:]) in export
    ledger = text.split("## The ledger", 1)[1].split("## The export", 1)[0]
    for status in STATUSES:
        assert f"`{status}`" in ledger
    for column in ("key", "line", "video_id", "attempts", "error", "request_sha256"):
        assert f"`{column}`" in ledger
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ids = readme.split("## Templates", 1)[1].split("##", 1)[0]
    assert "`heygen-batch avatars` and `heygen-batch voices`" in " ".join(ids.split())


def test_a_standalone_sandbox_needs_some_key_set_as_documented(tmp_path: Path) -> None:
    args = ["run", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE), "--no-progress"]
    with threaded_sandbox() as (base_url, _):
        ledger = f"{tmp_path}/demo.db"
        unset = CliRunner().invoke(
            cli, [*args, "--base-url", base_url, "--ledger", ledger], env={"HEYGEN_API_KEY": None}
        )
        anything = CliRunner().invoke(
            cli, [*args, "--base-url", base_url, "--ledger", ledger], env={"HEYGEN_API_KEY": "x"}
        )
    assert unset.exit_code == 2
    assert "HEYGEN_API_KEY" in unset.output
    assert anything.exit_code == 0, anything.output


def test_make_run_polls_until_rendered_before_it_exports() -> None:
    planned = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    steps = [line for line in planned if "heygen-batch" in line]
    poll = next(i for i, line in enumerate(steps) if " poll " in line)
    export = next(i for i, line in enumerate(steps) if " export " in line)
    assert "--until-done" in steps[poll]
    assert poll < export
