"""Issue 14, CONTRACT 5: a 429 means "not yet", never a failure.

The issue's example: a sandbox answering 429 with ``Retry-After: 2`` for half a minute
left all three rows of a small campaign ``failed`` (exit 1). Here the sandbox's clock
moves two seconds per reading and the engine's waits are zeroed (``no_backoff``), so
half a minute of storm passes without sleeping.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.cli.errors import abort_message
from engine.errors import OutOfCredit, make_status_error
from engine.progress import ProgressLine
from engine.sandbox import SandboxConfig, running_sandbox
from engine.submitter.stats import PoolStats
from tests.processes import counters, environment, standalone_sandbox
from tests.test_signals import interrupt_run, ledger_statuses, run_args
from tests.test_submission_sandbox import audit, campaign, report_path, statuses, write_jobs
from tests.threaded_sandbox import Handler, threaded_sandbox


class Ticking:
    """A clock that moves ``step`` seconds each time it is read."""

    def __init__(self, step: float, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.mark.usefixtures("no_backoff")
async def test_half_a_minute_of_429_leaves_every_row_submitted(tmp_path: Path) -> None:
    config = SandboxConfig(sustained_429_s=30, retry_after_s=2)
    async with running_sandbox(config, clock=Ticking(2.0)) as sandbox:
        report = await campaign(sandbox, tmp_path, 3, concurrency=1)
        jobs = audit(sandbox, report_path(report))
        refused = sandbox.state.counters.sustained_refusals
    assert refused >= 10  # far more than --max-attempts (6): they spent none of it
    assert statuses(jobs) == {"submitted": 3}
    assert all(job.attempts == 1 for job in jobs.values())
    assert report.sent_failed == 0
    assert report.not_yet == refused  # the summary says how often the run was told to wait
    assert report.exit_code == 0


@pytest.mark.usefixtures("no_backoff")
async def test_a_storm_with_many_workers_fails_nothing(tmp_path: Path) -> None:
    config = SandboxConfig(sustained_429_s=60, retry_after_s=1)
    async with running_sandbox(config, clock=Ticking(0.25)) as sandbox:
        report = await campaign(sandbox, tmp_path, 40, concurrency=8, max_attempts=2)
        jobs = audit(sandbox, report_path(report))
    assert statuses(jobs) == {"submitted": 40}
    assert report.exit_code == 0


def test_sigterm_while_the_pool_waits_for_the_service_leaves_the_jobs_pending(
    tmp_path: Path,
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 5)
    with standalone_sandbox("--sustained-429-s", "600", "--retry-after", "30") as base_url:
        # Once a 429 came, the whole pool waits 30 s for the service.
        returncode, out, err = interrupt_run(
            run_args(jobs, base_url, "--rate", "50/s", "--concurrency", "2"),
            base_url,
            signal.SIGTERM,
            counter="sustained_refusals",
            at_least=1,
        )
        seen = counters(base_url)
    assert returncode == 130, err
    assert "This run: 0 submitted, 0 failed, 0 uncertain" in out
    assert set(ledger_statuses(tmp_path / "jobs.ledger.db").values()) == {"pending"}
    assert seen["created"] == 0


def test_the_progress_line_says_the_run_waits_for_the_service() -> None:
    stats = PoolStats(submitted=2, refusals=7, service_wait_until=112.0)
    text = ProgressLine(stats, clock=lambda: 100.0).render().plain
    assert "waiting 0:12 for the service (429, 7 so far)" in text
    over = ProgressLine(PoolStats(service_wait_until=99.0), clock=lambda: 100.0)
    assert "waiting" not in over.render().plain


def test_a_trial_keys_daily_cap_stops_the_run_as_a_daily_cap() -> None:
    error = make_status_error(
        429, {"error": {"code": "trial_video_limit_exceeded", "message": "daily limit"}}
    )
    assert isinstance(error, OutOfCredit)
    message = abort_message(error)
    assert "daily cap" in message
    assert "tomorrow" in message


async def trial_cap(body: dict[str, Any], request: web.Request, handler: Handler) -> web.Response:
    payload = {"error": {"code": "trial_video_limit_exceeded", "message": "Daily limit"}}
    return web.json_response(payload, status=429)


def test_a_trial_keys_daily_cap_exits_3_with_the_jobs_pending(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 3)
    with threaded_sandbox(trial_cap) as (url, state):
        done = subprocess.run(
            [*run_args(jobs, url, "--json")],
            capture_output=True, text=True, env=environment(HEYGEN_API_KEY="sk-any"), timeout=60,
        )  # fmt: skip
        requests = len(state.counters.created_by_callback_id)
    assert done.returncode == 3, done.stderr
    summary = json.loads(done.stdout)
    assert "daily cap" in summary["reason"]
    assert summary["counts"]["pending"] == 3
    assert requests == 0
