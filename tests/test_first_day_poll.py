"""Issue 18, item 4: ``poll`` has its own --rate (status calls, 5/s), shows progress
within a round on a terminal and one line a round elsewhere; sandbox runs are not
held to the real service's defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import cli, service_cmds
from engine.cli.service_cmds import RoundProgress
from engine.ledger.poll import PollResult
from engine.submitter.rate import Rate, make_limiter
from tests.processes import standalone_sandbox
from tests.test_dry_run import ROWS, TEMPLATE, invoke, write_jobs

pytestmark = pytest.mark.usefixtures("no_backoff")


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> list[Rate]:
    """The rate of every limiter ``poll`` makes."""
    made: list[Rate] = []

    def spy(rate: Rate) -> Any:
        made.append(rate)
        return make_limiter(rate)

    monkeypatch.setattr(service_cmds, "make_limiter", spy)
    return made


def sandbox_ledger(tmp_path: Path) -> Path:
    jobs = write_jobs(tmp_path / "jobs.csv", ROWS[:2])
    ledger = tmp_path / "jobs.ledger.db"
    sent = invoke(
        "run", jobs, "--template", TEMPLATE, "--key-column", "id", "--ledger", str(ledger),
        "--sandbox", "--no-progress",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    return ledger


def test_poll_has_its_own_rate_default_of_5_per_second(tmp_path: Path, limits: list[Rate]) -> None:
    ledger = sandbox_ledger(tmp_path)
    own = invoke("poll", "--ledger", str(ledger), "--sandbox", "--rate", "2/s")
    sandbox = invoke("poll", "--ledger", str(ledger), "--sandbox")
    assert (own.exit_code, sandbox.exit_code) == (0, 0), own.output + sandbox.output
    assert limits == [Rate(2, 1.0), Rate(50, 1.0)]
    help_text = invoke("poll", "--help").stdout
    assert "default: 5/s; 50/s with --sandbox" in " ".join(help_text.split())


def test_poll_against_a_real_address_defaults_to_5_per_second(
    tmp_path: Path, limits: list[Rate]
) -> None:
    ledger = tmp_path / "empty.ledger.db"
    with standalone_sandbox() as base_url:
        jobs = write_jobs(tmp_path / "jobs.csv", ROWS[:1])
        args = ["--template", TEMPLATE, "--key-column", "id", "--ledger", str(ledger)]
        result = CliRunner(env={"HEYGEN_API_KEY": "sk-any"}).invoke(
            cli, ["run", jobs, *args, "--base-url", base_url, "--no-progress"]
        )
        assert result.exit_code == 0, result.output
        polled = CliRunner(env={"HEYGEN_API_KEY": "sk-any"}).invoke(
            cli, ["poll", "--ledger", str(ledger), "--base-url", base_url]
        )
    assert polled.exit_code == 0, polled.output
    assert limits == [Rate(5, 1.0)]


def test_a_sandbox_run_is_not_held_to_the_real_services_rate(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.csv", ROWS[:2])
    args = ["run", jobs, "--template", TEMPLATE, "--key-column", "id", "--dry-run", "--json"]
    real = json.loads(invoke(*args).stdout)
    sandbox = json.loads(invoke(*args, "--sandbox").stdout)
    chosen = json.loads(invoke(*args, "--sandbox", "--rate", "3/s").stdout)
    assert real["estimate"]["rate"] == "1/s"
    assert sandbox["estimate"]["rate"] == "50/s"
    assert chosen["estimate"]["rate"] == "3/s"


def test_the_progress_line_shows_a_rounds_counts_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = RoundProgress(enabled=True)
    shown(PollResult(checked=3, completed=1, failed=1, rendering=1))
    shown(PollResult(checked=4, completed=2, failed=1, rendering=1))  # within EVERY_S: skipped
    shown.clear()
    silent = RoundProgress(enabled=False)
    silent(PollResult(checked=3))
    silent.clear()
    err = capsys.readouterr().err
    assert err == ("\rthis round: 3 asked, 1 completed, 1 failed, 1 rendering\x1b[K" + "\r\x1b[K")


def test_off_a_terminal_poll_prints_one_line_a_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = sandbox_ledger(tmp_path)
    rounds: list[PollResult] = []
    real_progress = service_cmds._progress

    def counted(result: PollResult) -> None:
        rounds.append(result)
        real_progress(result)

    monkeypatch.setattr(service_cmds, "_progress", counted)
    result = CliRunner(env={"HEYGEN_BATCH_POLL_INTERVAL_S": "0"}).invoke(
        cli, ["poll", "--ledger", str(ledger), "--sandbox", "--until-done"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert rounds  # the sandbox takes a few rounds to render
    assert len(lines) == len(rounds)
    assert all(line.endswith("checking again shortly") for line in lines)
    assert "\r" not in result.stderr


def test_a_poll_with_every_render_ended_says_there_is_nothing_to_check(tmp_path: Path) -> None:
    ledger = sandbox_ledger(tmp_path)
    first = invoke("poll", "--ledger", str(ledger), "--sandbox", "--until-done")
    assert first.exit_code == 0, first.output
    again = invoke("poll", "--ledger", str(ledger), "--sandbox")
    assert again.exit_code == 0, again.output
    assert "Nothing to check: the render of every submitted job" in again.stdout
    assert "0 status checks" not in again.stdout
