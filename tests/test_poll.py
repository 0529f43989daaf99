"""poll: render status, URLs and failure reasons, in rounds until done."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from aiolimiter import AsyncLimiter

from engine.api.client import HeyGenClient
from engine.api.port import RenderStatus
from engine.errors import KeyRefused, RequestTimeout
from engine.ledger.poll import PollResult, poll_once, poll_until_done
from engine.ledger.statements import Statement
from engine.ledger.store import Ledger
from engine.sandbox import SandboxConfig, running_sandbox
from tests.conftest import LedgerSpec
from tests.one_api import OneApi
from tests.processes import standalone_sandbox
from tests.test_crash_resume import cli_env, run_args, write_contacts
from tests.test_reconcile import T0, job
from tests.test_sandbox import FakeClock, make_body


def limiter() -> AsyncLimiter:
    return AsyncLimiter(10_000, 1)


async def submitted_ledger(store: LedgerSpec, client: HeyGenClient, count: int) -> Ledger:
    ledger = store.open()
    work: list[Statement] = []
    for i in range(count):
        video_id = await client.create_video(make_body(f"k{i}"))
        work += job(f"k{i}", "submitted", line=i + 1, video_id=video_id)
    work += job("not-sent", "pending", line=count + 1)
    ledger.transaction(work)
    return ledger


async def test_fills_status_and_urls_as_renders_finish(store: LedgerSpec) -> None:
    clock = FakeClock(T0)
    config = SandboxConfig(render_seconds=100)
    async with (
        running_sandbox(config, clock=clock) as sandbox,
        HeyGenClient(sandbox.base_url, None) as client,
    ):
        ledger = await submitted_ledger(store, client, 5)
        first = await poll_once(ledger, client, limiter())
        assert (first.checked, first.rendering, first.completed) == (5, 5, 0)
        assert {j.video_status for j in ledger.with_status("submitted")} == {"pending"}

        clock.now += 50
        await poll_once(ledger, client, limiter())
        assert {j.video_status for j in ledger.with_status("submitted")} == {"processing"}

        clock.now += 60
        done = await poll_once(ledger, client, limiter())
        assert (done.checked, done.completed, done.done) == (5, 5, True)
        before = sandbox.state.counters.status_requests
        again = await poll_once(ledger, client, limiter())
        assert again.checked == 0  # finished renders are never asked about again
        assert sandbox.state.counters.status_requests == before

    for record in ledger.with_status("submitted"):
        assert record.video_status == "completed"
        assert record.video_url
        assert f"/videos/{record.video_id}.mp4?" in record.video_url
        assert record.thumbnail_url
        assert f"/videos/{record.video_id}.jpg" in record.thumbnail_url
        assert record.error is None
    pending = ledger.get("not-sent")
    assert pending is not None
    assert pending.video_status is None
    ledger.close()


async def test_a_failed_render_keeps_its_reason(store: LedgerSpec) -> None:
    clock = FakeClock(T0)
    config = SandboxConfig(render_seconds=1, render_failure_ratio=1)
    async with (
        running_sandbox(config, clock=clock) as sandbox,
        HeyGenClient(sandbox.base_url, None) as client,
    ):
        ledger = await submitted_ledger(store, client, 3)
        clock.now += 5
        result = await poll_once(ledger, client, limiter())
    assert (result.failed, result.completed) == (3, 0)
    for record in ledger.with_status("submitted"):
        assert record.video_status == "failed"
        assert record.video_url is None
        assert record.error == (
            "render failed: render_failed: Video rendering failed: "
            "Simulated failure (sandbox render_failure_ratio)"
        )
    ledger.close()


async def test_until_done_waits_in_rounds_and_stops(store: LedgerSpec) -> None:
    clock = FakeClock(T0)
    config = SandboxConfig(render_seconds=100, render_failure_ratio=0.5, seed=3)
    waits: list[float] = []
    rounds: list[PollResult] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.now += seconds

    async with (
        running_sandbox(config, clock=clock) as sandbox,
        HeyGenClient(sandbox.base_url, None) as client,
    ):
        ledger = await submitted_ledger(store, client, 20)
        result = await poll_until_done(
            ledger, client, limiter(), 30.0, sleep=fake_sleep, on_round=rounds.append
        )
    # Unfinished after 0, 30, 60 and 90 seconds; all final at 120.
    assert waits == [30.0] * 4
    assert [r.rendering for r in rounds] == [20] * 4
    assert [r.checked for r in rounds] == [20, 40, 60, 80]
    assert result.done
    assert result.completed + result.failed == 20
    assert 0 < result.failed < 20
    states = {j.video_status for j in ledger.with_status("submitted")}
    assert states == {"completed", "failed"}
    ledger.close()


async def test_videos_the_service_does_not_know_do_not_keep_it_waiting(store: LedgerSpec) -> None:
    clock = FakeClock(T0)
    async with (
        running_sandbox(SandboxConfig(), clock=clock) as old,
        HeyGenClient(old.base_url, None) as client,
    ):
        ledger = await submitted_ledger(store, client, 3)

    async def no_sleep(seconds: float) -> None:
        raise AssertionError("nothing to wait for")

    # A fresh sandbox has never heard of these videos: it answers 404.
    async with (
        running_sandbox(SandboxConfig(), clock=clock) as fresh,
        HeyGenClient(fresh.base_url, None) as client,
    ):
        result = await poll_until_done(ledger, client, limiter(), 30.0, sleep=no_sleep)
    assert (result.missing, result.checked, result.done) == (3, 0, True)
    ledger.close()


class CountingReader(OneApi):
    """Answers at once; notes how many tasks exist and fails the way it is told."""

    def __init__(self, fail_after: int | None = None, timeout_ids: frozenset[str] = frozenset()):
        self.calls = 0
        self.most_tasks = 0
        self.fail_after = fail_after
        self.timeout_ids = timeout_ids

    async def video_status(self, video_id: str) -> RenderStatus:
        self.calls += 1
        self.most_tasks = max(self.most_tasks, len(asyncio.all_tasks()))
        await asyncio.sleep(0)
        if self.fail_after is not None and self.calls > self.fail_after:
            raise KeyRefused(401, None, "unauthorized", "bad key")
        if video_id in self.timeout_ids:
            raise RequestTimeout("no answer")
        return RenderStatus(video_id=video_id, state="completed", video_url="https://v/" + video_id)


def ledger_of(store: LedgerSpec, count: int) -> Ledger:
    ledger = store.open()
    work: list[Statement] = []
    for i in range(count):
        work += job(f"k{i:05d}", "submitted", line=i + 1, video_id=f"v{i:05d}")
    ledger.transaction(work)
    return ledger


async def test_a_fixed_set_of_workers_however_many_jobs(store: LedgerSpec) -> None:
    ledger = ledger_of(store, 2000)
    reader = CountingReader(timeout_ids=frozenset({"v00007"}))
    result = await poll_once(ledger, reader, limiter(), concurrency=8)
    assert reader.calls == 2000
    assert (result.completed, result.errors, result.done) == (1999, 1, False)
    # The test's own task, a feeder and eight workers: not one task per job.
    assert reader.most_tasks <= 10
    assert ledger.counts()["submitted"] == 2000
    left = ledger.get("k00007")
    assert left is not None
    assert left.video_status is None
    ledger.close()


async def test_a_refused_key_stops_the_poll_and_keeps_what_was_learnt(store: LedgerSpec) -> None:
    ledger = ledger_of(store, 600)
    with pytest.raises(KeyRefused):
        await poll_once(ledger, CountingReader(fail_after=450), limiter(), concurrency=4)
    learnt = [j for j in ledger.iter_jobs() if j.video_status == "completed"]
    # Every answer that came back is kept; the few in flight at the refusal are dropped.
    assert 450 - 4 <= len(learnt) <= 450
    ledger.close()


def test_poll_command_until_done_then_export(tmp_path: Path) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 6)
    ledger = tmp_path / "contacts.ledger.db"
    with standalone_sandbox("--render-seconds", "0.3", "--render-failure-ratio", "0.5") as url:
        sent = subprocess.run(run_args(jobs, url), capture_output=True, text=True, env=cli_env())
        assert sent.returncode == 0, sent.stderr
        polled = subprocess.run(
            [
                sys.executable,
                "-m",
                "engine",
                "poll",
                "--ledger",
                str(ledger),
                "--base-url",
                url,
                "--rate",
                "100/s",
                "--until-done",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=cli_env(HEYGEN_BATCH_POLL_INTERVAL_S="0.1"),
            timeout=60,
        )
    assert polled.returncode == 0, polled.stderr
    summary = json.loads(polled.stdout)
    assert summary["completed"] + summary["failed"] == 6
    assert summary["rendering"] == 0
    exported = subprocess.run(
        [sys.executable, "-m", "engine", "export", "--ledger", str(ledger)],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(rows) == 6
    for row in rows:
        assert row["video_status"] in ("completed", "failed")
        if row["video_status"] == "completed":
            assert row["video_url"].startswith(url)
            assert row["thumbnail_url"].startswith(url)
        else:
            assert row["error"].startswith("render failed:")
            assert row["video_url"] == ""
