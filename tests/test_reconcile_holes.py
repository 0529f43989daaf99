"""Holes found in reconcile by review: a video the service's answer misnamed, and a
local clock stepped between an attempt and its reconcile. Each could pay twice."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.api.client import HeyGenClient
from engine.campaign import run_campaign
from engine.ledger import statements
from engine.ledger.reconcile import reconcile
from engine.ledger.store import Ledger
from engine.sandbox import SandboxConfig, running_sandbox
from tests.conftest import LedgerSpec
from tests.fake_service import FakeService, Paging, serving
from tests.test_campaign_ids import contacts, jobs_of, run_args
from tests.test_crash_resume import cli_env, write_contacts
from tests.test_reconcile import T0, campaign_options, limiter
from tests.test_reconcile_proof import reconcile_against
from tests.test_sandbox import FakeClock, make_body
from tests.threaded_sandbox import Handler, drop_after, threaded_sandbox


def _uncertain(key: str, attempted_at: float, service_offset: float | None) -> list[Any]:
    """A job marked at ``attempted_at`` (our clock) with the service's lead measured
    then, whose answer was lost."""
    body = json.dumps(make_body(key))
    return [
        statements.insert_job(key, 1, "pending", {"name": key}, "sha-" + key, None),
        statements.mark_submitting(key, body, "sha-" + key, key, attempted_at, service_offset),
        statements.mark_outcome(key, "uncertain", 1, "connection dropped"),
    ]


# The service loses c-001's answer after making its video V1, then answers c-002 (whose
# own video V2 it made) with V1. V1 is held by no job yet, so c-002 is recorded with it;
# reconcile must not skip V1 as known, prove c-001 absent and pay a third video.
def test_an_answer_naming_an_uncertain_jobs_video_is_not_taken(tmp_path: Path) -> None:
    jobs = contacts(tmp_path / "contacts.csv", 2)
    ledger = tmp_path / "contacts.ledger.db"
    seen: Counter[str] = Counter()

    async def misanswer(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.StreamResponse | None:
        callback = str(body.get("callback_id"))
        seen[callback] += 1
        if seen[callback] > 1:
            return None
        if callback.endswith(":c-001"):
            return await drop_after(request, handler)
        if callback.endswith(":c-002"):
            await handler(request)  # c-002's own video is made...
            held = next(v for v in state.videos.values() if str(v.callback_id).endswith(":c-001"))
            # ...but the answer names c-001's.
            return web.json_response({"error": None, "data": {"video_id": held.video_id}})
        return None

    with threaded_sandbox(misanswer) as (url, state):
        args = run_args(jobs, ledger, url, "--concurrency", "1", "--json")
        subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=120)
        subprocess.run(args, capture_output=True, text=True, env=cli_env(), timeout=120)
        _, by_key = jobs_of(ledger)
        owners = {v.video_id: v.callback_id for v in state.videos.values()}
        created = dict(state.counters.created_by_callback_id)

    for key, record in by_key.items():
        if record.video_id is not None:
            assert owners[record.video_id] == record.callback_id, f"{key} holds another's video"
    assert all(count == 1 for count in created.values()), created
    assert {r.status for r in by_key.values()} == {"submitted"}


# The attempt reached the service at T0 - 400 (true time); our clock, 400 s fast then,
# wrote T0, and the service's lead measured then (-400) was kept with it. NTP has
# stepped our clock back since, so today's lead is 0: placed with today's lead the
# video would lie before the window, never be looked at, and the job be paid twice.
async def test_a_local_clock_stepped_back_since_the_attempt_never_pays_twice(
    store: LedgerSpec,
) -> None:
    now = T0 + 1000
    service = FakeService(clock=FakeClock(now), paging=Paging.TRUE)
    for i in range(50):
        service.add(f"other-{i}", T0 - 2000 - i)
    service.add("hidden", T0 - 400)
    with closing(store.open()) as ledger:
        ledger.transaction(_uncertain("hidden", T0, -400.0))
        _, absent, _, _ = await reconcile_against(service, ledger)
        record = ledger.get("hidden")
    assert absent == 0, "the job's video exists: it must not be declared absent"
    assert record is not None
    assert record.status != "pending"
    assert record.status == "submitted"


# The other way: our clock was 400 s slow at the attempt (lead +400 then) and has been
# stepped forward (lead 0 now). By our clock the grace looks 400 s older than it is;
# by the service's it is not over, so the job is not declared absent yet.
async def test_a_local_clock_stepped_forward_since_the_attempt_keeps_the_grace(
    store: LedgerSpec,
) -> None:
    now = T0 + 200
    service = FakeService(clock=FakeClock(now), paging=Paging.TRUE)
    with closing(store.open()) as ledger:
        ledger.transaction(_uncertain("late", T0 - 400, 400.0))
        async with (
            serving(service) as url,
            HeyGenClient(url, None, clock=service.clock) as client,
        ):
            result = await reconcile(ledger, client, limiter(), grace_s=300, clock=service.clock)
        record = ledger.get("late")
    assert result.absent == 0
    assert record is not None
    assert record.status == "uncertain"
    # Its grace ends 300 s after the attempt on the service's clock, not on ours.
    assert result.grace_ends == [T0 + 300]


async def test_an_attempt_without_a_measured_lead_keeps_todays_window(store: LedgerSpec) -> None:
    now = T0 + 1000
    service = FakeService(clock=FakeClock(now), paging=Paging.TRUE)
    for i in range(50):
        service.add(f"other-{i}", T0 - 2000 - i)
    with closing(store.open()) as ledger:
        ledger.transaction(_uncertain("never-sent", T0, None))
        _, absent, _, problem = await reconcile_against(service, ledger)
    assert (absent, problem) == (1, None)


# Poll already reads each video's status: one whose callback_id names another job shows
# the answer misnamed it. The job is made uncertain again, without that video, and the
# next reconcile gives each job its own.
async def test_poll_hands_back_a_video_made_for_another_job(store: LedgerSpec) -> None:
    from engine.ledger.poll import poll_once
    from tests.test_reconcile import job

    async with (
        running_sandbox(SandboxConfig(render_seconds=100), clock=FakeClock(T0)) as sandbox,
        HeyGenClient(sandbox.base_url, None) as client,
    ):
        theirs = await client.create_video(make_body("a"))
        own = await client.create_video(make_body("b"))
        with closing(store.open()) as ledger:
            # a's answer was lost; b was answered with a's video.
            ledger.transaction(
                [
                    *job("a", "uncertain", line=1, attempted_at=T0 - 1000),
                    *job("b", "submitted", line=2, video_id=theirs),
                ]
            )
            polled = await poll_once(ledger, client, limiter())
            b = ledger.get("b")
            assert polled.not_theirs == 1
            assert b is not None
            assert (b.status, b.video_id) == ("uncertain", None)
            assert b.error is not None
            assert "'a'" in b.error
            settled = await reconcile(ledger, client, limiter(), grace_s=0)
            videos = {k: (r.status, r.video_id) for k in "ab" if (r := ledger.get(k))}
    assert (settled.found, settled.absent) == (2, 0)
    assert videos == {"a": ("submitted", theirs), "b": ("submitted", own)}


# A run told --max-wait 5s does not sit through a 60 s reconcile grace at its end: it
# ends, saying when the jobs can be settled, and leaves them uncertain.
async def test_the_end_of_run_grace_wait_respects_max_wait(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 3)
    clock = FakeClock(T0)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    async with running_sandbox(SandboxConfig(drop_before=1.0), clock=clock) as lost:
        options = campaign_options(jobs, tmp_path / "l.db", lost.base_url)
        report = await run_campaign(
            dataclasses.replace(options, grace_s=60, max_wait_s=5, clock=clock, sleep=sleep)
        )
    assert sleeps == []
    assert report.counts["uncertain"] == 3
    assert report.exit_code == 1
    assert "longer than --max-wait (5s): the run ends without waiting" in caplog.text


async def test_a_grace_within_max_wait_is_still_waited_out(tmp_path: Path) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 3)
    clock = FakeClock(T0)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    async with running_sandbox(SandboxConfig(drop_before=1.0), clock=clock) as lost:
        options = campaign_options(jobs, tmp_path / "l.db", lost.base_url)
        await run_campaign(
            dataclasses.replace(options, grace_s=4, max_wait_s=5, clock=clock, sleep=sleep)
        )
    assert sleeps
    assert max(sleeps) <= 5


# The lead is measured from the answers' Date headers (the sandbox's, on loopback: about
# nothing): jobs marked once one has come back keep it; those marked before any answer
# keep none (today's rule for them).
async def test_each_attempt_keeps_the_service_clocks_lead_measured_then(
    tmp_path: Path,
) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 60)
    async with running_sandbox() as sandbox:
        options = campaign_options(jobs, tmp_path / "l.db", sandbox.base_url)
        report = await run_campaign(dataclasses.replace(options, concurrency=2))
    assert report.counts["submitted"] == 60
    with closing(Ledger(tmp_path / "l.db")) as ledger:
        leads = [j.service_offset for j in ledger.iter_jobs()]
    measured = [lead for lead in leads if lead is not None]
    assert len(measured) > len(leads) // 2
    assert all(-5 < lead <= 0 for lead in measured)


# The same with a template's own callback_id behind the campaign id (not the key): the
# job it names is found all the same, and the misnamed video goes to its owner.
async def test_reconcile_corrects_a_job_answered_with_another_jobs_video(
    store: LedgerSpec,
) -> None:
    from tests.test_reconcile import job

    async with (
        running_sandbox(SandboxConfig(render_seconds=100), clock=FakeClock(T0)) as sandbox,
        HeyGenClient(sandbox.base_url, None) as client,
    ):
        with closing(store.open()) as ledger:
            campaign = ledger.campaign_id
            callbacks = {key: f"{campaign}:{key}-spring" for key in "ab"}
            theirs = await client.create_video(make_body(callbacks["a"]))
            own = await client.create_video(make_body(callbacks["b"]))
            ledger.transaction(
                [
                    *job("a", "uncertain", callback_id=callbacks["a"], attempted_at=T0 - 1000),
                    *job("b", "submitted", line=2, callback_id=callbacks["b"], video_id=theirs),
                ]
            )
            settled = await reconcile(ledger, client, limiter(), grace_s=0)
            videos = {k: (r.status, r.video_id) for k in "ab" if (r := ledger.get(k))}
    assert (settled.found, settled.absent, settled.corrected) == (1, 0, 1)
    assert videos == {"a": ("submitted", theirs), "b": ("submitted", own)}
