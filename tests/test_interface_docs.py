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


def _everything(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path, the groups (``webhook``) as well as their commands."""
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _everything(command, (*prefix, name))


EVERY_PATH = list(_everything(cli))


def _command(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("path", EVERY_PATH, ids=" ".join)
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


@pytest.mark.parametrize("path", EVERY_PATH, ids=" ".join)
def test_a_command_help_names_only_options_the_command_has(path: tuple[str, ...]) -> None:
    # Exit-code texts copied from `run` named --max-wait and --json on commands without them.
    command = _command(path)
    own = {opt for param in command.params for opt in param.opts}
    epilog = " ".join((command.epilog or "").split())
    text = epilog.split("Example:", 1)[0]
    for option in ("--max-wait", "--json"):
        if option not in own:
            assert option not in text, f"{' '.join(path)} names {option}"
    exits = re.sub(r"`[^`]*`", "", text.split("Exit code", 1)[1])
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", exits))
    assert named <= own, f"{' '.join(path)}'s exit codes name {sorted(named - own)}"


def _run_examples(text: str) -> list[str]:
    return re.findall(r"heygen-batch run [^`\n]*", text.replace("\\\n", " "))


def test_every_example_of_a_campaign_names_its_key_column() -> None:
    # Without --key-column an edited row is a new job (its key is the body's hash): paid again.
    helps = [
        " ".join((_command(path).epilog or "").split("Example:")[-1].split()) for path in EVERY_PATH
    ]
    helps.append(" ".join((cli.help or "").split()))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    interface = INTERFACE.read_text(encoding="utf-8")
    examples = [e for text in [*helps, readme, interface] for e in _run_examples(text)]
    assert len(examples) >= 5
    for example in examples:
        assert "--key-column" in example or "--config" in example, example


def _synopses() -> dict[tuple[str, ...], set[str]]:
    """Each command's options as the interface doc's synopsis gives them."""
    block = INTERFACE.read_text(encoding="utf-8").split("```", 2)[1]
    found: dict[tuple[str, ...], set[str]] = {}
    current: tuple[str, ...] = ()
    for line in block.splitlines():
        if line.startswith("heygen-batch "):
            words = line.split()[1:]
            current = next(
                p for p in sorted(COMMANDS, key=len, reverse=True) if tuple(words[: len(p)]) == p
            )
            found[current] = set()
        if current:
            found[current] |= set(re.findall(r"(?<![\w-])--?[a-z][a-z-]*", line))
    return found


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_the_interface_synopsis_gives_every_option_of_the_command(path: tuple[str, ...]) -> None:
    options = [
        set(p.opts)
        for p in _command(path).params
        if isinstance(p, click.Option) and p.name != "help"
    ]
    given = _synopses()[path]
    unknown = given - set().union(*options)
    assert not unknown, f"the synopsis of {' '.join(path)} names {sorted(unknown)}"
    if path != ("sandbox",):  # its many fault flags are left to its --help
        missing = [sorted(opts)[-1] for opts in options if not opts & given]
        assert not missing, f"the synopsis of {' '.join(path)} lacks {missing}"


def test_run_help_says_why_the_key_column_matters() -> None:
    text = _help(("run",))
    assert "--key-column COL" in text
    assert "a row edited after it was sent (a typo fixed) is a new job and a second, paid" in text


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
