"""--config campaign.yaml: every option in one file for cron; flags win; typos refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from engine.cli import cli
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE


@pytest.fixture
def campaign(tmp_path: Path) -> Path:
    """A campaign folder holding the demo and a YAML file naming its parts relatively."""
    folder = tmp_path / "campaign"
    folder.mkdir()
    shutil.copy(DEMO_CSV, folder / "contacts.csv")
    shutil.copy(DEMO_TEMPLATE, folder / "template.json")
    (folder / "campaign.yaml").write_text(
        "jobs: contacts.csv\n"
        "template: template.json\n"
        "key_column: contact_id\n"
        "ledger: out/contacts.db\n"
        "sandbox: true\n"
        "rate: 100/s\n"
        "no-progress: true\n",
        encoding="utf-8",
    )
    return folder


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"HEYGEN_API_KEY": None})


def test_run_then_poll_from_one_file_with_paths_from_its_folder(
    campaign: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "cron"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # cron starts in another folder
    result = invoke("run", "--config", str(campaign / "campaign.yaml"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"]["submitted"] == 12
    assert (campaign / "out" / "contacts.db").is_file()
    assert not (elsewhere / "out").exists()

    # The same file serves poll: its run-only keys (jobs, template, ...) are left alone.
    polled = invoke("poll", "--config", str(campaign / "campaign.yaml"), "--json")
    assert polled.exit_code == 0, polled.output
    assert json.loads(polled.stdout)["checked"] == 12


def test_flags_given_on_the_command_line_win(campaign: Path) -> None:
    config = str(campaign / "campaign.yaml")
    keyed_by_file = invoke("validate", "--config", config, "--json")
    keyed_by_flag = invoke("validate", "--config", config, "--key-column", "email", "--json")
    assert keyed_by_file.exit_code == keyed_by_flag.exit_code == 0, keyed_by_flag.output
    first_by_file = json.loads(keyed_by_file.stdout.splitlines()[0])
    first_by_flag = json.loads(keyed_by_flag.stdout.splitlines()[0])
    assert first_by_file["key"] == "c-001"
    assert first_by_flag["key"] == "ava.thompson@northwind.example"


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("concurency: 4\n", "unknown key 'concurency'; did you mean 'concurrency'?"),
        ("templat: t.json\n", "unknown key 'templat'; did you mean 'template'?"),
        ("concurrency: lots\n", "key 'concurrency'"),
        ("sandbox: maybe\n", "key 'sandbox'"),
        ("max_wait: soon\n", "key 'max_wait'"),
        ("template:\n", "key 'template' has no value"),
        ("- rate: 1/s\n", "must be a mapping"),
        ("rate: [1\n", "cannot read"),
    ],
)
def test_unknown_keys_and_bad_values_are_refused_naming_the_key(
    tmp_path: Path, text: str, named: str
) -> None:
    config = tmp_path / "campaign.yaml"
    config.write_text(text, encoding="utf-8")
    result = invoke("run", "x.csv", "--config", str(config), "--sandbox")
    assert result.exit_code == 2
    assert named in result.output
    assert not list(tmp_path.glob("*.db"))


def test_a_refused_file_still_gives_one_json_object(tmp_path: Path) -> None:
    config = tmp_path / "campaign.yaml"
    config.write_text("concurency: 4\n", encoding="utf-8")
    result = invoke("run", "x.csv", "--config", str(config), "--json")
    assert result.exit_code == 2
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 2
    assert "concurency" in summary["reason"]


def test_a_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("validate", "x.csv", "--config", str(tmp_path / "none.yaml"))
    assert result.exit_code == 2
    assert "none.yaml" in result.output


def test_help_says_where_relative_paths_are_read_from() -> None:
    for name in ("run", "validate", "poll"):
        text = " ".join(invoke(name, "--help").output.split())
        assert "--config FILE" in text
        assert "relative paths in it are read from the YAML file's folder" in text


def test_an_option_of_a_command_without_config_is_refused(tmp_path: Path) -> None:
    # `port` is the sandbox's: no command reading this file has it, so it is a mistake.
    config = tmp_path / "campaign.yaml"
    config.write_text("port: 8000\n", encoding="utf-8")
    result = invoke("run", "x.csv", "--config", str(config))
    assert result.exit_code == 2
    assert "unknown key 'port'" in result.output
