"""Issue 14: ``--max-rendering N`` and ``--until-done``.

At most N of the ledger's videos render at once (the sandbox counts the most it saw,
and with as many slots as N it would refuse a create beyond them); completions are
learned by status calls; after a kill the count is rebuilt from the ledger; a failed
render is reported and makes the exit code 1, never resent. Renders here last a few
hundredths of a second, and the tracker's first check is made as short.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from engine.api.port import RenderStatus, render_state
from engine.campaign import RunOptions, run_campaign
from engine.ledger import statements
from engine.ledger.store import Ledger
from engine.prepare import Preparer
from engine.progress import ProgressLine
from engine.reader import JobsFormat
from engine.run_report import RunReport
from engine.sandbox import RunningSandbox, SandboxConfig, running_sandbox
from engine.service import Service
from engine.submitter import slots as slots_module
from engine.submitter.control import RunControl
from engine.submitter.rate import Rate
from engine.submitter.slots import RenderTracker
from engine.submitter.stats import PoolStats
from tests.conftest import LedgerSpec
from tests.processes import counters, standalone_sandbox
from tests.test_crash_resume import cli_env
from tests.test_signals import interrupt_run, run_args
from tests.test_submission_sandbox import audit, statuses, write_jobs
from tests.threaded_sandbox import Handler, threaded_sandbox

pytestmark = pytest.mark.usefixtures("no_backoff")


@pytest.fixture(autouse=True)
def quick_first_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slots_module, "SLOT_FIRST_CHECK_S", 0.01)


async def slotted_campaign(
    sandbox: RunningSandbox, tmp_path: Path, jobs: int, max_rendering: int | None
) -> RunReport:
    jobs_file = write_jobs(tmp_path / "jobs.jsonl", jobs)
    options = RunOptions(
        jobs=str(jobs_file),
        fmt=JobsFormat.JSONL,
        preparer=Preparer(None, "callback_id"),
        ledger=LedgerSpec(tmp_path / "jobs.ledger.db"),
        service=Service(sandbox.base_url, "sk-any"),
        rate=Rate(1000, 1.0),
        concurrency=8,
        grace_s=0.0,
        max_rendering=max_rendering,
        until_done=True,
    )
    return await run_campaign(options)


async def test_max_rendering_3_never_has_a_fourth_render_and_ends_with_all_completed(
    tmp_path: Path,
) -> None:
    config = SandboxConfig(render_slots=3, render_seconds=0.03)
    async with running_sandbox(config) as sandbox:
        report = await slotted_campaign(sandbox, tmp_path, 15, max_rendering=3)
        jobs = audit(sandbox, Path(report.ledger))
        view = sandbox.state.counters_view()
    assert view["max_rendering"] == 3
    assert view["slot_refusals"] == 0  # the engine never asked for a fourth slot
    assert view["created"] == 15
    assert statuses(jobs) == {"submitted": 15}
    assert {job.video_status for job in jobs.values()} == {"completed"}
    assert report.renders == {"completed": 15, "failed": 0, "rendering": 0}
    assert report.exit_code == 0


async def test_without_a_cap_until_done_waits_for_every_render(tmp_path: Path) -> None:
    config = SandboxConfig(render_seconds=0.05)
    async with running_sandbox(config) as sandbox:
        report = await slotted_campaign(sandbox, tmp_path, 6, max_rendering=None)
    assert report.renders == {"completed": 6, "failed": 0, "rendering": 0}
    assert report.exit_code == 0


async def test_a_failed_render_is_reported_with_its_reason_exit_1_and_not_resent(
    tmp_path: Path,
) -> None:
    config = SandboxConfig(render_seconds=0.02, render_failure_ratio=1.0)
    async with running_sandbox(config) as sandbox:
        report = await slotted_campaign(sandbox, tmp_path, 3, max_rendering=2)
        created = sandbox.state.counters_view()["created"]
    assert created == 3
    assert report.renders == {"completed": 0, "failed": 3, "rendering": 0}
    assert report.exit_code == 1
    assert report.reason is not None
    assert "3 renders failed" in report.reason
    assert "job-0000: render failed: render_failed: Video rendering failed" in report.reason


def test_kill_9_while_the_slots_are_full_then_until_done_completes_every_video_once(
    tmp_path: Path,
) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 6)
    ledger = tmp_path / "jobs.ledger.db"
    flags = ("--rate", "100/s", "--max-rendering", "2")
    with standalone_sandbox("--render-slots", "2", "--render-seconds", "1") as base_url:
        first = subprocess.Popen(
            run_args(jobs, base_url, *flags),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env(),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while counters(base_url)["created"] < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            first.kill()
        finally:
            first.wait(30)
        again = subprocess.run(
            [*run_args(jobs, base_url, *flags), "--until-done", "--json"],
            capture_output=True, text=True, env=cli_env(), timeout=120, check=False,
        )  # fmt: skip
        seen = counters(base_url)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["renders"] == {"completed": 6, "failed": 0, "rendering": 0}
    assert seen["created"] == 6
    assert seen["duplicates"] == 0
    assert seen["slot_refusals"] == 0  # the videos the killed run left held their slots
    assert seen["max_rendering"] == 2
    # A few status calls per video, not a stream of them.
    assert seen["status_requests"] <= 24
    with closing(Ledger(ledger)) as opened:
        assert {job.video_status for job in opened.iter_jobs()} == {"completed"}


# --- the tracker alone ------------------------------------------------------------------------


class Scripted:
    """A ``StatusSource`` answering from a table the test changes."""

    def __init__(self) -> None:
        self.states: dict[str, str | None] = {}
        self.asked: list[str] = []

    def batch(self, api: str) -> int:
        return 1

    async def statuses(self, api: str, video_ids: Sequence[str]) -> dict[str, RenderStatus | None]:
        self.asked.extend(video_ids)
        found: dict[str, RenderStatus | None] = {}
        for video_id in video_ids:
            state = self.states.get(video_id, "processing")
            found[video_id] = None if state is None else RenderStatus(video_id, render_state(state))
        return found


class NullWriter:
    def write(self, *statements: object) -> None:
        pass


def tracker(source: Scripted, stats: PoolStats, cap: int | None) -> RenderTracker:
    return RenderTracker(source, NullWriter(), stats, cap)  # type: ignore[arg-type]


async def test_videos_the_ledger_holds_as_rendering_take_slots_until_checked() -> None:
    source = Scripted()
    stats = PoolStats()
    slots = tracker(source, stats, cap=2)
    control = RunControl()
    slots.adopt([("a", "vid-a", None, "v2"), ("b", "vid-b", None, "v2")])
    poller = asyncio.create_task(slots.run(control))
    try:
        waiter = asyncio.create_task(slots.acquire(control))
        await asyncio.sleep(0.05)
        assert not waiter.done()  # both slots are held by the killed run's videos
        assert stats.waiting_slot == 1
        assert set(source.asked) >= {"vid-a", "vid-b"}  # and they were asked about
        source.states["vid-b"] = "completed"
        assert await asyncio.wait_for(waiter, 5) is True
        assert stats.rendering == 1
        assert stats.rendered == 1
        # A video the service does not know frees its slot too.
        source.states["vid-a"] = None
        assert await asyncio.wait_for(slots.acquire(control), 5) is True
        assert stats.rendering == 0
    finally:
        poller.cancel()


async def test_a_stop_while_waiting_for_a_slot_gives_up_the_wait() -> None:
    slots = tracker(Scripted(), PoolStats(), cap=1)
    control = RunControl()
    slots.adopt([("a", "vid-a", None, "v2")])
    waiter = asyncio.create_task(slots.acquire(control))
    await asyncio.sleep(0)
    control.interrupted = True
    assert await asyncio.wait_for(waiter, 5) is False


def test_the_progress_line_shows_the_renders_and_an_eta_from_their_time() -> None:
    stats = PoolStats(
        submitted=30, rendering=10, rendered=20, render_failed=1, waiting_slot=4,
        render_estimate_s=60.0, slots=10,
    )  # fmt: skip
    text = ProgressLine(stats, total=50, clock=lambda: 0.0).render().plain
    assert "rendering 10  completed 20  render failed 1  waiting 4" in text
    # 20 jobs still to send and 10 rendering: three rounds of ten slots, a minute each.
    assert "ETA 3:00" in text


# --- --retry-failed -----------------------------------------------------------------------------


def test_retry_failed_sends_the_refused_jobs_once_more_rendered_from_their_rows(
    tmp_path: Path,
) -> None:
    refused: list[str] = []

    async def refuse_job_1_once(
        body: dict[str, Any], request: web.Request, handler: Handler
    ) -> web.Response | None:
        if body["callback_id"].endswith(":job-0001") and not refused:
            refused.append(body["callback_id"])
            payload = {"error": {"code": "invalid_parameter", "message": "avatar busy"}}
            return web.json_response(payload, status=400)
        return None

    jobs = write_jobs(tmp_path / "jobs.jsonl", 3)
    ledger = tmp_path / "jobs.ledger.db"
    with threaded_sandbox(refuse_job_1_once) as (url, state):

        def run(*extra: str) -> subprocess.CompletedProcess[str]:
            args = [*run_args(jobs, url, "--rate", "100/s", "--json"), *extra]
            return subprocess.run(
                args, capture_output=True, text=True, env=cli_env(), timeout=60, check=False
            )

        runs = [run(), run(), run("--retry-failed")]
        made = dict(state.counters.created_by_callback_id)
    first, plain, retried = (json.loads(r.stdout) for r in runs)
    assert [r.returncode for r in runs] == [1, 1, 0], runs[2].stderr
    assert first["counts"]["failed"] == 1
    assert plain["this_run"]["submitted"] == 0  # a failed job is never resent unasked
    assert retried["this_run"]["submitted"] == 1
    assert (retried["counts"]["submitted"], retried["counts"]["failed"]) == (3, 0)
    assert "1 failed jobs are sent once more" in runs[2].stderr
    assert sorted(made.values()) == [1, 1, 1]
    with closing(Ledger(ledger)) as opened:
        job = opened.get("job-0001")
    assert job is not None
    assert (job.status, job.error) == ("submitted", None)


async def test_no_render_ending_within_max_wait_stops_the_run_for_later() -> None:
    slots = tracker(Scripted(), PoolStats(), cap=1)
    control = RunControl(max_wait_s=0.01)
    slots.adopt([("a", "vid-a", None, "v2")])  # never ends: the source says "processing"
    assert await asyncio.wait_for(slots.acquire(control), 5) is False
    assert control.stopping
    assert control.too_long is not None
    assert "No render ended for 0 s, the --max-wait" in control.too_long.message


def test_sigterm_while_jobs_wait_for_a_slot_leaves_them_pending(tmp_path: Path) -> None:
    jobs = write_jobs(tmp_path / "jobs.jsonl", 5)
    with standalone_sandbox("--render-seconds", "600") as base_url:
        returncode, _, err = interrupt_run(
            run_args(jobs, base_url, "--rate", "100/s", "--max-rendering", "2"),
            base_url,
            signal.SIGTERM,
            counter="created",
            at_least=2,
            env=cli_env(),
        )
        seen = counters(base_url)
    assert returncode == 130, err
    assert seen["created"] == 2
    with closing(Ledger(tmp_path / "jobs.ledger.db")) as opened:
        counts = opened.counts()
    # The three waiting for a slot were never marked: pending, nothing to reconcile.
    assert (counts["submitted"], counts["pending"], counts["uncertain"]) == (2, 3, 0)


def test_only_videos_sent_lately_are_counted_as_rendering_at_the_start(store: LedgerSpec) -> None:
    """A ledger of old jobs never polled costs no status call before the first new send."""
    now = time.time()
    with closing(store.open()) as ledger:
        work = []
        for key, sent_at in (("old", now - 2 * 86400), ("new", now - 60)):
            work += [
                statements.insert_job(key, 1, "pending", {}, f"sha-{key}", None),
                statements.mark_submitting(key, "{}", f"sha-{key}", None, sent_at),
                statements.mark_submitted(key, f"vid-{key}", 1),
            ]
        ledger.transaction(work)
        assert [r[0] for r in ledger.renders_to_check("", 10)] == ["new", "old"]
        assert [r[0] for r in ledger.renders_to_check("", 10, now - 86400)] == ["new"]


async def test_a_render_seen_done_late_counts_half_way_from_its_last_busy_check() -> None:
    """Before any render time is known, checks back off (1 s, then 2 s later): a 2-second
    render is first seen done at 3 s. Taken as 3 s, every later check would come 1 s late."""
    now = [0.0]
    source = Scripted()
    stats = PoolStats()
    slots = RenderTracker(source, NullWriter(), stats, None, clock=lambda: now[0])  # type: ignore[arg-type]
    control = RunControl()
    assert await slots.acquire(control)
    slots.started("a", "vid-a", None, "v2")
    now[0] = 1.0
    await slots._check("v2", ["vid-a"])  # still processing
    now[0] = 3.0
    source.states["vid-a"] = "completed"
    await slots._check("v2", ["vid-a"])
    assert stats.rendered == 1
    assert stats.render_estimate_s == pytest.approx(2.0)
    assert await slots.acquire(control)
    slots.started("b", "vid-b", None, "v2")
    assert slots._renders["vid-b"].due == pytest.approx(5.0)  # checked when it should end
