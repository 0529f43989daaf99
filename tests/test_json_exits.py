"""``--json`` holds on every exit (issue 12 item 8): stdout is exactly one JSON object with
``exit_code`` and, when it is not 0, the ``reason``; the human message stays on stderr."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEMO_CSV, DEMO_TEMPLATE
from tests.processes import environment, standalone_sandbox
from tests.test_lock import lock_holder
from tests.test_signals import interrupt_run, run_args
from tests.test_submission_sandbox import write_jobs


def engine(*args: str, key: str | None = "sk-any") -> subprocess.CompletedProcess[str]:
    env = environment(**({"HEYGEN_API_KEY": key} if key else {}))
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip


def summary_of(result: subprocess.CompletedProcess[str], exit_code: int) -> dict[str, Any]:
    """The one JSON object on stdout, checked against the exit code."""
    assert result.returncode == exit_code, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    summary: dict[str, Any] = json.loads(lines[0])
    assert summary["exit_code"] == exit_code
    if exit_code:
        assert summary["reason"], summary
    else:
        assert summary["reason"] is None
    return summary


DEMO = ("run", str(DEMO_CSV), "--template", str(DEMO_TEMPLATE))


@pytest.mark.parametrize(
    ("args", "key", "in_reason"),
    [
        # Usage and configuration errors found by the command.
        ((*DEMO, "--base-url", "http://127.0.0.1:9"), None, "HEYGEN_API_KEY"),
        (("run", str(DEMO_CSV), "--sandbox"), "sk-any", "needs --template"),
        (("run", str(DEMO_CSV), "--template", "no-such.json", "--sandbox"), "sk-any",
         "no-such.json"),
        ((*DEMO, "--sandbox", "--base-url", "http://127.0.0.1:9"), "sk-any", "conflict"),
        (("run", "-", "--template", str(DEMO_TEMPLATE), "--sandbox"), "sk-any", "--format"),
        # click's own usage errors, found before the command runs.
        ((*DEMO, "--sandbox", "--no-such-flag"), "sk-any", "--no-such-flag"),
        ((*DEMO, "--sandbox", "--concurrency", "0"), "sk-any", "--concurrency"),
        (("run", "--sandbox"), "sk-any", "JOBS"),
    ],
    ids=["no-key", "no-template", "missing-template", "conflicting-options", "stdin-no-format",
         "unknown-flag", "bad-value", "missing-argument"],
)  # fmt: skip
def test_usage_and_configuration_errors_exit_2_with_the_summary(
    tmp_path: Path, args: tuple[str, ...], key: str | None, in_reason: str
) -> None:
    result = engine(*args, "--ledger", str(tmp_path / "l.db"), "--json", key=key)
    summary = summary_of(result, 2)
    assert in_reason in summary["reason"]
    assert in_reason in result.stderr  # the person reading stderr is told too
    assert not (tmp_path / "l.db").exists()


def test_a_missing_jobs_file_exits_2_with_the_summary(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    result = engine("run", str(missing), "--template", str(DEMO_TEMPLATE), "--sandbox", "--json")
    summary = summary_of(result, 2)
    assert "nope.csv" in summary["reason"]
    assert summary["ledger"] == str(tmp_path / "nope.ledger.db")


def test_help_is_still_help(tmp_path: Path) -> None:
    result = engine("run", "--help", "--json")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage:")


def test_a_refused_key_exits_3_with_the_summary(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 5)
    with standalone_sandbox(key="sk-right-key-000000") as base_url:
        result = engine(*run_args(jobs, base_url, "--json")[3:], key="sk-wrong-key-111111")
    summary = summary_of(result, 3)
    assert "refused the API key" in summary["reason"]
    assert summary["counts"]["pending"] == 5
    assert "refused the API key" in result.stderr


def test_a_locked_ledger_exits_75_with_the_summary(tmp_path: Path) -> None:
    """Issue 12 item 8: it printed nothing on stdout, so a cron wrapper parsed empty input."""
    ledger = tmp_path / "demo.db"
    with lock_holder(ledger):
        run = engine(*DEMO, "--ledger", str(ledger), "--sandbox", "--json")
        poll = engine("poll", "--ledger", str(ledger), "--sandbox", "--json")
    for result in (run, poll):
        summary = summary_of(result, 75)
        assert "in use by another heygen-batch run" in summary["reason"]
        assert summary["ledger"] == str(ledger)
        assert summary["counts"] is None  # nothing was read: the ledger was not opened
        assert "in use by another heygen-batch run" in result.stderr


def test_invalid_rows_exit_1_with_the_summary(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(DEMO_CSV.read_text(encoding="utf-8") + "c-999,Bo\n", encoding="utf-8")
    result = engine("run", str(jobs), "--template", str(DEMO_TEMPLATE), "--sandbox", "--json")
    summary = summary_of(result, 1)
    assert summary["counts"]["invalid"] == 1
    assert summary["reason"].startswith("1 jobs invalid, 0 failed, 0 uncertain")


def test_a_clean_run_exits_0_with_a_null_reason(tmp_path: Path) -> None:
    result = engine(*DEMO, "--ledger", str(tmp_path / "l.db"), "--sandbox", "--json")
    assert summary_of(result, 0)["counts"]["submitted"] == 12


def test_an_interrupted_run_exits_130_with_the_summary(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 40)
    with standalone_sandbox("--latency-ms", "300") as base_url:
        args = run_args(jobs, base_url, "--rate", "20/s", "--concurrency", "4", "--json")
        code, out, err = interrupt_run(args, base_url, signal.SIGINT)
    result = subprocess.CompletedProcess(args, code, out, err)
    summary = summary_of(result, 130)
    assert summary["interrupted"] is True
    assert summary["reason"].startswith("Interrupted")
    assert "Interrupted" in err


def test_poll_without_a_key_exits_2_with_the_summary(tmp_path: Path) -> None:
    ledger = tmp_path / "demo.db"
    assert engine(*DEMO, "--ledger", str(ledger), "--sandbox").returncode == 0
    result = engine("poll", "--ledger", str(ledger), "--json", key=None)
    assert "HEYGEN_API_KEY" in summary_of(result, 2)["reason"]
    ok = engine("poll", "--ledger", str(ledger), "--sandbox", "--json")
    assert summary_of(ok, 0)["checked"] == 12
