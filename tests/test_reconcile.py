"""Reconcile: uncertain jobs found by callback_id, proven absent, or left alone."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiolimiter import AsyncLimiter

from engine.api.client import HeyGenClient
from engine.api.port import RenderStatus
from engine.campaign import RunOptions, run_campaign
from engine.cli.preparing import make_preparer
from engine.errors import ServerError
from engine.ledger import statements
from engine.ledger.reconcile import reconcile
from engine.ledger.statements import Statement
from engine.ledger.store import Ledger
from engine.reader import JobsFormat
from engine.request.responses import VideoListItem
from engine.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from engine.service import Service
from engine.submitter.constants import WINDOW_MARGIN_S
from engine.submitter.rate import Rate
from tests.conftest import DEMO_TEMPLATE, LedgerSpec
from tests.one_api import OneApi
from tests.processes import counters, standalone_sandbox
from tests.test_crash_resume import cli_env, write_contacts
from tests.test_sandbox import FakeClock, make_body

T0 = 1_700_000_000.0


def limiter() -> AsyncLimiter:
    return AsyncLimiter(10_000, 1)


def job(
    key: str,
    status: str,
    *,
    line: int = 1,
    callback_id: str | None = None,
    attempted_at: float = T0,
    video_id: str | None = None,
) -> list[Statement]:
    """Statements putting one job into ``status`` the way a run would have."""
    body = json.dumps(make_body(callback_id or key))
    work = [statements.insert_job(key, line, "pending", {"name": key}, "sha-" + key, None)]
    if status == "pending":
        return work
    work.append(
        statements.mark_submitting(key, body, "sha-" + key, callback_id or key, attempted_at)
    )
    if status == "uncertain":
        work.append(statements.mark_outcome(key, "uncertain", 1, "connection dropped"))
    elif status == "submitted":
        assert video_id is not None
        work.append(statements.mark_submitted(key, video_id, 1))
    return work


def post_video(base_url: str, body: dict[str, Any]) -> str:
    request = urllib.request.Request(
        base_url + "/v2/video/generate",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        video_id: str = json.load(answer)["data"]["video_id"]
    return video_id


@asynccontextmanager
async def sandbox_and_client(
    clock: FakeClock, **config: Any
) -> AsyncIterator[tuple[RunningSandbox, HeyGenClient]]:
    async with (
        running_sandbox(SandboxConfig(**config), clock=clock) as sandbox,
        HeyGenClient(sandbox.base_url, None) as client,
    ):
        yield sandbox, client


async def test_found_absent_and_waiting_for_grace(store: LedgerSpec) -> None:
    clock = FakeClock(T0)
    ledger = store.open()
    async with sandbox_and_client(clock) as (sandbox, client):
        created = await client.create_video(make_body("found"))
        ledger.transaction(
            [
                *job("found", "uncertain", line=1),
                *job("gone", "uncertain", line=2, attempted_at=T0 - 100),
                *job("recent", "uncertain", line=3, attempted_at=T0 - 10),
            ]
        )
        result = await reconcile(ledger, client, limiter(), grace_s=60, clock=clock)

    assert (result.found, result.absent, result.still_uncertain) == (1, 1, 1)
    found = ledger.get("found")
    assert found is not None
    assert (found.status, found.video_id, found.error) == ("submitted", created, None)
    gone = ledger.get("gone")
    assert gone is not None
    # Pending again, with the body kept so the run can send exactly what it sent before.
    assert gone.status == "pending"
    assert gone.body is not None
    assert json.loads(gone.body)["callback_id"] == "gone"
    recent = ledger.get("recent")
    assert recent is not None
    assert recent.status == "uncertain"
    assert sandbox.state.counters.status_requests == 1
    ledger.close()


async def test_two_uncertain_jobs_sharing_a_callback_id_are_never_guessed(
    store: LedgerSpec,
) -> None:
    clock = FakeClock(T0 + 1000)
    ledger = store.open()
    async with sandbox_and_client(clock) as (_, client):
        await client.create_video(make_body("shared"))
        ledger.transaction(
            [
                *job("a", "uncertain", line=1, callback_id="shared"),
                *job("b", "uncertain", line=2, callback_id="shared"),
                *job("c", "uncertain", line=3, callback_id="also-shared"),
                *job("d", "uncertain", line=4, callback_id="also-shared"),
            ]
        )
        result = await reconcile(ledger, client, limiter(), grace_s=0, clock=clock)

    # One video for two jobs names neither; no video for two jobs proves neither absent.
    assert (result.found, result.absent, result.still_uncertain) == (0, 0, 4)
    assert ledger.counts()["uncertain"] == 4
    ledger.close()


async def test_pages_back_skipping_videos_the_ledger_knows(store: LedgerSpec) -> None:
    clock = FakeClock(T0)
    ledger = store.open()
    async with sandbox_and_client(clock) as (sandbox, client):
        # The oldest video is the lost one: every page of the list must be read.
        lost = await client.create_video(make_body("lost"))
        work = job("lost", "uncertain", line=1)
        for i in range(250):
            video_id = await client.create_video(make_body(f"done-{i}"))
            work += job(f"done-{i}", "submitted", line=i + 2, video_id=video_id)
        ledger.transaction(work)
        sandbox.state.counters.status_requests = 0
        result = await reconcile(ledger, client, limiter(), grace_s=0, clock=clock)

    assert result.found == 1
    record = ledger.get("lost")
    assert record is not None
    assert (record.status, record.video_id) == ("submitted", lost)
    assert sandbox.state.counters.list_requests == 3
    # Only the one video the ledger did not know was looked up.
    assert sandbox.state.counters.status_requests == 1
    ledger.close()


async def test_listing_stops_at_videos_older_than_every_attempt(store: LedgerSpec) -> None:
    clock = FakeClock(T0)
    ledger = store.open()
    async with sandbox_and_client(clock) as (sandbox, client):
        for i in range(400):
            await client.create_video(make_body(f"old-{i}"))
        clock.now = T0 + WINDOW_MARGIN_S + 3600
        await client.create_video(make_body("stranger"))
        ledger.transaction(job("never-sent", "uncertain", attempted_at=clock.now))
        result = await reconcile(ledger, client, limiter(), grace_s=0, clock=clock)

    assert (result.found, result.absent) == (0, 1)
    # Each of the two listings (100 and 97 a page) stops at its first page wholly
    # older than the attempt: 4 pages of the 10 the whole list takes, and the older
    # videos were never looked up.
    assert sandbox.state.counters.list_requests == 4
    assert sandbox.state.counters.status_requests == 1
    ledger.close()


class FlakyLister(OneApi):
    """Lists one unknown video; its status (or the list itself) cannot be read."""

    def __init__(self, fail_list: bool) -> None:
        self.fail_list = fail_list

    async def video_list(
        self, token: str | None = None, limit: int = 100
    ) -> tuple[list[VideoListItem], str | None]:
        if self.fail_list:
            raise ServerError(503, None, None, "unavailable")
        return [VideoListItem(video_id="v1", created_at=int(T0))], None

    async def video_status(self, video_id: str) -> RenderStatus:
        raise ServerError(500, None, None, "boom")

    def service_clock_offset(self) -> float | None:
        return 0.0


async def test_a_failed_look_up_proves_nothing(store: LedgerSpec) -> None:
    ledger = store.open()
    ledger.transaction(job("x", "uncertain", attempted_at=T0 - 1000))
    reasons = {True: "listing the service's videos failed", False: "could not be checked"}
    for fail_list, reason in reasons.items():
        result = await reconcile(
            ledger, FlakyLister(fail_list), limiter(), grace_s=0, clock=lambda: T0
        )
        assert (result.found, result.absent, result.still_uncertain) == (0, 0, 1)
        record = ledger.get("x")
        assert record is not None
        assert record.status == "uncertain"
        # The job's own cause stays; the reason it is not settled replaces the last one.
        assert record.error is not None
        assert record.error.startswith("connection dropped; not settled: ")
        assert reason in record.error
        assert record.error.count("not settled") == 1
    ledger.close()


async def test_nothing_uncertain_asks_nothing(store: LedgerSpec) -> None:
    clock = FakeClock(T0)
    ledger = store.open()
    ledger.transaction(job("p", "pending"))
    async with sandbox_and_client(clock) as (sandbox, client):
        result = await reconcile(ledger, client, limiter(), grace_s=0, clock=clock)
    assert (result.found, result.absent, result.still_uncertain) == (0, 0, 0)
    assert sandbox.state.counters.list_requests == 0
    ledger.close()


def campaign_options(jobs: Path, ledger: Path | LedgerSpec, base_url: str) -> RunOptions:
    return RunOptions(
        jobs=str(jobs),
        fmt=JobsFormat.CSV,
        preparer=make_preparer(DEMO_TEMPLATE, None, JobsFormat.CSV),
        ledger=ledger if isinstance(ledger, LedgerSpec) else LedgerSpec(ledger),
        service=Service(base_url, "sk-test"),
        rate=Rate(1000, 1.0),
        concurrency=16,
        grace_s=0.0,
    )


async def test_a_run_with_dropped_after_create_connections_ends_fully_reconciled(
    tmp_path: Path, store: LedgerSpec
) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 200)
    async with running_sandbox(SandboxConfig(drop_after=0.3, seed=7)) as sandbox:
        report = await run_campaign(campaign_options(jobs, store, sandbox.base_url))
        seen = sandbox.state.counters_view()

    # Roughly 60 answers were lost after their videos were made; none was sent again.
    assert report.sent_uncertain > 30
    assert report.reconciled_found == report.sent_uncertain
    assert report.exit_code == 0
    assert seen["duplicates"] == 0
    assert seen["created"] == 200
    ledger = store.open(create=False)
    jobs_by_key = {j.key: j for j in ledger.iter_jobs()}
    campaign = ledger.campaign_id
    ledger.close()
    assert {j.status for j in jobs_by_key.values()} == {"submitted"}
    assert campaign is not None
    assert all(j.callback_id == f"{campaign}:{key}" for key, j in jobs_by_key.items())
    assert seen["created_by_callback_id"] == {j.callback_id: 1 for j in jobs_by_key.values()}
    # Each job holds the very video its request created.
    owner = {v.video_id: v.callback_id for v in sandbox.state.videos.values()}
    assert all(owner[j.video_id or ""] == j.callback_id for j in jobs_by_key.values())


def test_reconcile_command_settles_a_killed_runs_ledger(tmp_path: Path) -> None:
    ledger_path = tmp_path / "l.db"
    ledger = Ledger(ledger_path)
    with standalone_sandbox() as url:
        created = post_video(url, make_body("in-flight"))
        # A killed run leaves 'submitting'; an earlier dropped answer left 'uncertain'.
        ledger.transaction(
            [
                *job("in-flight", "submitting", line=1, attempted_at=time.time()),
                *job("never-arrived", "uncertain", line=2, attempted_at=time.time()),
            ]
        )
        ledger.close()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine",
                "reconcile",
                "--ledger",
                str(ledger_path),
                "--base-url",
                url,
            ],
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=60,
        )
        assert counters(url)["requests"] == 1
    assert done.returncode == 0, done.stderr
    assert "1 found" in done.stdout
    assert "1 proven absent" in done.stdout
    ledger = Ledger(ledger_path)
    found, absent = ledger.get("in-flight"), ledger.get("never-arrived")
    ledger.close()
    assert found is not None
    assert (found.status, found.video_id) == ("submitted", created)
    assert absent is not None
    assert absent.status == "pending"


async def test_grace_counts_from_the_send_not_from_the_mark(store: LedgerSpec) -> None:
    """Marked long ago but sent just now (it waited for the limiter): not yet absent."""
    clock = FakeClock(T0)
    ledger = store.open()
    async with sandbox_and_client(clock) as (_, client):
        ledger.transaction(
            [
                *job("late", "uncertain", attempted_at=T0 - 600)[:2],
                statements.mark_outcome("late", "uncertain", 1, "dropped", sent_at=T0 - 5),
                *job("early", "uncertain", line=2, attempted_at=T0 - 600)[:2],
                statements.mark_outcome("early", "uncertain", 1, "dropped", sent_at=T0 - 100),
            ]
        )
        result = await reconcile(ledger, client, limiter(), grace_s=60, clock=clock)
    assert (result.absent, result.still_uncertain) == (1, 1)
    late = ledger.get("late")
    assert late is not None
    assert late.status == "uncertain"


async def test_a_crash_restarts_the_grace_of_jobs_caught_in_flight(store: LedgerSpec) -> None:
    """A killed run's in-flight job may have been sent up to the restart: grace from there."""
    clock = FakeClock(T0)
    ledger = store.open()
    async with sandbox_and_client(clock) as (_, client):
        ledger.transaction(
            [
                *job("caught", "pending"),
                statements.mark_submitting("caught", "{}", "s", "caught", T0 - 600),
            ]
        )
        ledger.transaction([statements.in_flight_to_uncertain(T0)])
        early = await reconcile(ledger, client, limiter(), grace_s=60, clock=clock)
        clock.now = T0 + 61
        late = await reconcile(ledger, client, limiter(), grace_s=60, clock=clock)
    assert (early.absent, early.still_uncertain) == (0, 1)
    assert late.absent == 1
