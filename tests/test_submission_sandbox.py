"""Whole runs against the real sandbox under fault injection.

Every scenario ends with the same audit of the ledger against the sandbox:
no job left ``submitting``; a ``submitted`` job owns exactly the one video the
sandbox made for its callback_id; a ``pending`` or ``failed`` job owns none; an
``uncertain`` one at most one; and no callback_id has two videos.
"""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from engine.campaign import RunOptions, run_campaign
from engine.errors import KeyRefused, OutOfCredit
from engine.ledger.open import LedgerSpec
from engine.ledger.store import JobRecord, Ledger
from engine.prepare import Preparer
from engine.reader import JobsFormat
from engine.run_report import RunReport
from engine.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from engine.service import Service
from engine.submitter.constants import DEFAULT_MAX_WAIT_S
from engine.submitter.rate import Rate
from tests.test_rate_limiter import max_in_window

KEY = "sk-sandbox-secret-4242"
FAST = Rate(1000, 1.0)

pytestmark = pytest.mark.usefixtures("no_backoff")


def body(n: int) -> dict[str, Any]:
    return {
        "callback_id": f"job-{n:04d}",
        "title": f"Video {n}",
        "dimension": {"width": 1280, "height": 720},
        "video_inputs": [
            {
                "character": {"type": "avatar", "avatar_id": "Brent_sitting_office_front"},
                "voice": {"type": "text", "voice_id": "v1", "input_text": f"Hello number {n}."},
            }
        ],
    }


def write_jobs(path: Path, count: int) -> Path:
    path.write_text("".join(json.dumps(body(n)) + "\n" for n in range(count)), encoding="utf-8")
    return path


async def campaign(
    sandbox: RunningSandbox,
    tmp_path: Path,
    jobs: int,
    *,
    rate: Rate = FAST,
    concurrency: int = 8,
    key: str = KEY,
    limit: int | None = None,
    max_attempts: int = 6,
    max_wait_s: float = DEFAULT_MAX_WAIT_S,
) -> RunReport:
    jobs_file = tmp_path / "jobs.jsonl"
    if not jobs_file.exists():
        write_jobs(jobs_file, jobs)
    options = RunOptions(
        jobs=str(jobs_file),
        fmt=JobsFormat.JSONL,
        preparer=Preparer(None, "callback_id"),
        ledger=LedgerSpec(tmp_path / "jobs.ledger.db"),
        service=Service(sandbox.base_url, key),
        rate=rate,
        concurrency=concurrency,
        max_attempts=max_attempts,
        max_wait_s=max_wait_s,
        limit=limit,
        grace_s=0.0,
    )
    return await run_campaign(options)


def audit(sandbox: RunningSandbox, ledger_path: Path) -> dict[str, JobRecord]:
    """Check every job against what the sandbox made; the jobs by key."""
    with closing(Ledger(ledger_path)) as ledger:
        jobs = {job.key: job for job in ledger.iter_jobs()}
        campaign = ledger.campaign_id
    view = sandbox.state.counters_view()
    made: dict[str, int] = view["created_by_callback_id"]
    assert view["duplicates"] == 0
    assert all(n == 1 for n in made.values())
    # Each body's callback_id (the key here) is sent behind the ledger's campaign id.
    sent_as = {key: f"{campaign}:{key}" for key in jobs}
    assert set(made) <= set(sent_as.values())
    for key, job in jobs.items():
        assert job.status != "submitting", key
        if job.status == "submitted":
            assert made.get(sent_as[key]) == 1, key
            assert job.video_id is not None
            assert sandbox.state.videos[job.video_id].callback_id == sent_as[key]
        elif job.status in ("pending", "failed"):
            assert sent_as[key] not in made, (key, job.status)
        else:
            assert job.status == "uncertain", (key, job.status)
    return jobs


def statuses(jobs: dict[str, JobRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in jobs.values():
        counts[job.status] = counts.get(job.status, 0) + 1
    return counts


async def test_a_clean_run_submits_every_job_once(tmp_path: Path) -> None:
    async with running_sandbox(SandboxConfig(api_key=KEY)) as sandbox:
        report = await campaign(sandbox, tmp_path, 40)
        jobs = audit(sandbox, report_path(report))
    assert statuses(jobs) == {"submitted": 40}
    assert sandbox.state.counters.requests == 40
    assert report.exit_code == 0


def report_path(report: RunReport) -> Path:
    return Path(report.ledger)


async def test_a_429_storm_with_retry_after(tmp_path: Path) -> None:
    config = SandboxConfig(rate_429=0.4, retry_after_s=0.01, seed=3)
    async with running_sandbox(config) as sandbox:
        report = await campaign(sandbox, tmp_path, 60, max_attempts=10)
        jobs = audit(sandbox, report_path(report))
    assert sandbox.state.counters.requests > 60  # the storm really happened
    assert statuses(jobs) == {"submitted": 60}


async def test_5xx_bursts_are_retried_and_give_up_cleanly(tmp_path: Path) -> None:
    config = SandboxConfig(rate_5xx=0.5, seed=5)
    async with running_sandbox(config) as sandbox:
        report = await campaign(sandbox, tmp_path, 60, max_attempts=2)
        jobs = audit(sandbox, report_path(report))
    counts = statuses(jobs)
    # With two attempts and half the answers 5xx, some jobs must give up (503s). A V2
    # 500/502/504 may hide a video, so its job is uncertain, reconciled and resent once
    # proven absent; a resend meeting another one may leave it uncertain at the end.
    assert counts.get("failed", 0) > 0
    assert set(counts) <= {"submitted", "failed", "uncertain"}, counts
    assert sum(counts.values()) == 60
    assert all(
        (job.error or "").startswith("gave up after 2 attempts")
        for job in jobs.values()
        if job.status == "failed"
    )
    assert report.exit_code == 1


async def test_drops_before_creation_are_uncertain_then_proven_absent_and_resent(
    tmp_path: Path,
) -> None:
    config = SandboxConfig(drop_before=0.3, seed=7)
    async with running_sandbox(config) as sandbox:
        report = await campaign(sandbox, tmp_path, 50)
        jobs = audit(sandbox, report_path(report))
    assert report.sent_uncertain > 0
    assert report.reconciled_absent > 0
    # Up to three resend rounds: a job dropped every time may still be waiting.
    assert statuses(jobs).get("submitted", 0) >= 45


async def test_drops_after_creation_are_uncertain_then_found(tmp_path: Path) -> None:
    config = SandboxConfig(drop_after=0.3, seed=11)
    async with running_sandbox(config) as sandbox:
        report = await campaign(sandbox, tmp_path, 50)
        jobs = audit(sandbox, report_path(report))
    assert report.sent_uncertain > 0
    assert report.reconciled_found == report.sent_uncertain
    assert statuses(jobs) == {"submitted": 50}
    # Nothing dropped after creation was ever sent twice.
    assert sandbox.state.counters.requests == 50


async def test_the_server_side_limit_is_never_violated(tmp_path: Path) -> None:
    """200/s against a sandbox that allows 200 starts in any second: ~1 s of sending."""
    config = SandboxConfig(rate_limit=200, rate_limit_period_s=1.0)
    async with running_sandbox(config) as sandbox:
        report = await campaign(sandbox, tmp_path, 240, rate=Rate(200, 1.0))
        jobs = audit(sandbox, report_path(report))
        arrivals = list(sandbox.state.counters.request_times)
    assert statuses(jobs) == {"submitted": 240}
    assert sandbox.state.counters.violations == 0
    assert len(arrivals) == 240
    assert max_in_window(arrivals, 1.0) <= 200


async def test_every_fault_at_once(tmp_path: Path) -> None:
    config = SandboxConfig(
        seed=13,
        rate_429=0.15,
        retry_after_s=0.01,
        rate_5xx=0.15,
        drop_before=0.1,
        drop_after=0.1,
        rate_limit=100,
        latency_ms=2,
        latency_spread_ms=2,
    )
    async with running_sandbox(config) as sandbox:
        report = await campaign(sandbox, tmp_path, 80, rate=Rate(100, 1.0), max_attempts=10)
        jobs = audit(sandbox, report_path(report))
    assert statuses(jobs).get("submitted", 0) >= 70
    assert report.sent_uncertain > 0


async def test_an_empty_account_stops_the_run_and_leaves_the_rest_pending(
    tmp_path: Path,
) -> None:
    config = SandboxConfig(credit_limit=10, latency_ms=5)
    async with running_sandbox(config) as sandbox:
        report = await campaign(sandbox, tmp_path, 40, concurrency=4)
        jobs = audit(sandbox, report_path(report))
    assert isinstance(report.abort, OutOfCredit)
    assert report.exit_code == 3
    assert statuses(jobs) == {"submitted": 10, "pending": 30}
    # Only requests already in flight when the first refusal came could follow it.
    assert sandbox.state.counters.requests <= 10 + 4


async def test_a_refused_key_stops_the_run_and_never_reaches_the_ledger(tmp_path: Path) -> None:
    config = SandboxConfig(api_key=KEY, latency_ms=5)
    wrong = "sk-wrong-key-0000"
    async with running_sandbox(config) as sandbox:
        report = await campaign(sandbox, tmp_path, 30, concurrency=4, key=wrong)
        jobs = audit(sandbox, report_path(report))
    assert isinstance(report.abort, KeyRefused)
    assert statuses(jobs) == {"pending": 30}
    assert sandbox.state.counters.requests <= 4
    stored = ledger_bytes(tmp_path)
    assert wrong.encode() not in stored
    assert KEY.encode() not in stored


def ledger_bytes(folder: Path) -> bytes:
    """The ledger and its WAL, raw: a secret must not hide in either."""
    return b"".join(p.read_bytes() for p in folder.glob("jobs.ledger.db*"))


async def test_limit_caps_new_submissions_per_run(tmp_path: Path) -> None:
    async with running_sandbox(SandboxConfig()) as sandbox:
        first = await campaign(sandbox, tmp_path, 12, limit=5)
        assert statuses(audit(sandbox, report_path(first))) == {"submitted": 5, "pending": 7}
        assert first.held_by_limit == 7
        second = await campaign(sandbox, tmp_path, 12, limit=5)
        assert statuses(audit(sandbox, report_path(second))) == {"submitted": 10, "pending": 2}
        third = await campaign(sandbox, tmp_path, 12, limit=5)
        jobs = audit(sandbox, report_path(third))
    assert statuses(jobs) == {"submitted": 12}
    assert sandbox.state.counters.requests == 12
    assert third.exit_code == 0
