"""A long ``Retry-After``: honoured in full up to ``--max-wait``, said on stderr, and beyond
it the run stops cleanly (exit 75, jobs pending, the time to come back). Nothing sleeps:
the stop is decided before any wait, and ``no_backoff`` zeroes the waits that are honoured.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.cli.options import parse_duration
from engine.errors import ConfigError, RateLimited
from engine.ledger.store import Ledger
from engine.sandbox import SandboxConfig, running_sandbox
from engine.submitter.constants import DEFAULT_MAX_WAIT_S
from engine.submitter.control import RunControl
from tests.processes import counters, environment, standalone_sandbox
from tests.test_pool_decisions import pool
from tests.test_signals import run_args
from tests.test_submission_sandbox import audit, campaign, report_path, statuses, write_jobs

# --- --max-wait's value ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("600", 600.0), ("90s", 90.0), ("10m", 600.0), ("1h", 3600.0), ("1.5h", 5400.0),
     (" 2 M ", 120.0), ("0", 0.0), ("0.5s", 0.5)],
)  # fmt: skip
def test_a_duration_is_seconds_or_a_number_with_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "-5", "1d", "10 min", "1e3", "inf", "nan", "5m3s"])
def test_anything_else_is_refused_naming_the_forms(text: str) -> None:
    with pytest.raises(ConfigError, match=r"90s, 10m, 1h"):
        parse_duration(text)


def test_the_default_is_ten_minutes() -> None:
    assert DEFAULT_MAX_WAIT_S == parse_duration("10m") == 600.0


def test_a_bad_max_wait_is_a_usage_error_with_json_too(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 1)
    result = subprocess.run(
        [*run_args(jobs, "http://127.0.0.1:9", "--max-wait", "10 minutes", "--json")],
        capture_output=True, text=True, env=environment(HEYGEN_API_KEY="sk-any"), timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--max-wait" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 2
    assert "not a duration" in summary["reason"]
    assert not (tmp_path / "jobs.ledger.db").exists()


# --- beyond --max-wait: the run stops ---------------------------------------------------------


def test_a_retry_after_of_an_hour_stops_the_run_with_the_time_to_come_back(
    tmp_path: Path,
) -> None:
    """Issue 12 item 11: ``Retry-After: 3600`` was cut to 120 s; now the run stops (exit 75)."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", 12)
    with standalone_sandbox("--rate-429", "1", "--retry-after", "3600") as base_url:
        before = datetime.now(UTC)
        result = subprocess.run(
            run_args(jobs, base_url, "--rate", "100/s", "--concurrency", "1", "--json"),
            capture_output=True, text=True, env=environment(HEYGEN_API_KEY="sk-any"), timeout=60,
        )  # fmt: skip
        seen = counters(base_url)
    assert result.returncode == 75, result.stderr
    summary = json.loads(result.stdout)
    assert summary["exit_code"] == 75
    assert summary["counts"]["pending"] == 12
    assert summary["this_run"]["failed"] == 0
    assert seen["requests"] == 1  # no new request started after the answer
    reason = summary["reason"]
    assert "3600 s (Retry-After)" in reason
    assert "--max-wait (600 s)" in reason
    assert reason in result.stderr  # said to a person too
    come_back = re.search(r"Run again after (?:(\d{4}-\d\d-\d\d) )?(\d\d:\d\d:\d\d) UTC", reason)
    assert come_back, reason
    day = come_back.group(1) or before.strftime("%Y-%m-%d")
    when = datetime.fromisoformat(f"{day}T{come_back.group(2)}+00:00")
    assert before + timedelta(seconds=3590) <= when <= before + timedelta(seconds=3660)
    with closing(Ledger(tmp_path / "jobs.ledger.db")) as ledger:
        assert ledger.counts()["pending"] == 12


@pytest.mark.usefixtures("no_backoff")
async def test_a_wait_beyond_max_wait_leaves_every_job_pending_and_creates_nothing(
    tmp_path: Path,
) -> None:
    async with running_sandbox(SandboxConfig(rate_429=1.0, retry_after_s=45)) as sandbox:
        report = await campaign(sandbox, tmp_path, 30, concurrency=4, max_wait_s=30.0)
        jobs = audit(sandbox, report_path(report))
        requests = sandbox.state.counters.requests
    assert statuses(jobs) == {"pending": 30}
    assert requests <= 4  # those already in flight; none started after the first answer
    assert report.exit_code == 75
    assert report.wait is not None
    assert report.wait.seconds == 45
    assert report.reason is not None
    assert "--max-wait (30 s)" in report.reason


# --- within --max-wait: honoured in full, said, and no job blamed -----------------------------


@pytest.mark.usefixtures("no_backoff")
async def test_a_wait_within_max_wait_is_said_once_and_every_job_goes_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = SandboxConfig(rate_429=0.3, retry_after_s=45, seed=4)
    with caplog.at_level(logging.WARNING):
        async with running_sandbox(config) as sandbox:
            report = await campaign(sandbox, tmp_path, 40, max_attempts=20)
            jobs = audit(sandbox, report_path(report))
            requests = sandbox.state.counters.requests
    assert requests > 40  # the 429s really came
    assert statuses(jobs) == {"submitted": 40}
    assert report.exit_code == 0
    notices = [r.getMessage() for r in caplog.records if "asked to wait" in r.getMessage()]
    assert notices, caplog.text
    assert all(
        re.fullmatch(
            r"the service asked to wait 45 s \(Retry-After\); resuming at \d\d:\d\d:\d\d UTC", n
        )
        for n in notices
    ), notices
    # Waits are zeroed here, so each 429 round is announced again only when it ends later.
    assert len(notices) < requests - 40


@pytest.mark.usefixtures("no_backoff")
async def test_an_hour_is_waited_when_max_wait_allows_it(tmp_path: Path) -> None:
    config = SandboxConfig(rate_429=0.2, retry_after_s=3600, seed=2)
    async with running_sandbox(config) as sandbox:
        report = await campaign(sandbox, tmp_path, 20, max_attempts=20, max_wait_s=3600.0)
        jobs = audit(sandbox, report_path(report))
    assert statuses(jobs) == {"submitted": 20}
    assert report.exit_code == 0


def test_short_waits_are_not_announced(caplog: pytest.LogCaptureFixture) -> None:
    control = RunControl()
    with caplog.at_level(logging.WARNING):
        assert control.service_wait(5.0, 1_000.0)
        assert control.service_wait(6.0, 1_000.0)
        assert control.service_wait(6.0, 1_000.5)  # the same pause, seen by another worker
    assert [r.getMessage()[:32] for r in caplog.records] == ["the service asked to wait 6 s (R"]


async def test_the_pool_pause_does_not_spend_a_jobs_time_budget() -> None:
    """The per-job clock stands still while the pool waits for the service."""
    control = RunControl()
    loop = asyncio.get_running_loop()
    now = [100.0]
    real_time = loop.time
    loop.time = lambda: now[0]  # type: ignore[method-assign]
    try:
        started = control.work_clock()
        now[0] += 10  # the job's own work
        control.pause_for(500)
        now[0] += 200  # half-way through the pause
        assert control.work_clock() - started == pytest.approx(10)
        now[0] += 400  # the pause is over, then 100 s more of the job's own time
        assert control.work_clock() - started == pytest.approx(110)
        control.pause_for(50)  # a second pause adds nothing either
        now[0] += 60
        assert control.work_clock() - started == pytest.approx(120)
    finally:
        loop.time = real_time  # type: ignore[method-assign]


async def test_a_long_retry_after_never_fails_the_job_by_its_time_budget(tmp_path: Path) -> None:
    """Before, a 429 asking for 500 s (within --max-wait) made the job ``failed`` at once:
    500 s is past the 300 s budget. Real waits (no ``no_backoff``); the decision sleeps none."""
    async with pool(tmp_path) as p:
        limited = RateLimited(429, None, "rate_limit_exceeded", "slow down", retry_after=500.0)
        verdict = p.submitter._not_yet(limited, "job-0", 0, 1, None)
        assert verdict == 0.0  # retry after the pool's pause
        assert p.control.paused
        assert not p.control.stopping
