"""A run does not end with uncertain jobs it can settle by waiting (CONTRACT section 5).

A kill -9 leaves jobs marked ``submitting`` that never left; the next run makes them
``uncertain`` with the grace counting from its start. It waits the grace out,
reconciles, sends them, and exits 0, in one run.
"""

from __future__ import annotations

import dataclasses
import signal
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

from engine.campaign import run_campaign
from engine.ledger.store import Ledger
from engine.progress import ProgressLine
from engine.sandbox import SandboxConfig, running_sandbox
from engine.submitter.constants import SETTLE_WAIT_MAX_S
from engine.submitter.stats import PoolStats
from tests.fake_service import FakeService, Paging, serving
from tests.processes import counters, standalone_sandbox
from tests.test_crash_resume import cli_env, ledger_rows, run_args, write_contacts
from tests.test_reconcile import T0, campaign_options
from tests.test_sandbox import FakeClock

ROWS = 16


def left_submitting(ledger: Path) -> None:
    """As a kill -9 leaves them: marked, with their bodies, never answered. The next
    sandbox stands for the same service come back at another port, so the ledger's
    binding to the first one's address (engine.ledger.binding) is dropped too."""
    with closing(sqlite3.connect(ledger)) as conn, conn:
        conn.execute("UPDATE jobs SET status = 'submitting'")
        conn.execute("DELETE FROM meta WHERE name = 'service'")


async def test_a_run_waits_out_the_grace_of_jobs_a_kill_left_and_sends_them(
    tmp_path: Path,
) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, ROWS)
    ledger_path = tmp_path / "l.db"
    clock = FakeClock(T0)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    # Every request is lost before it reaches the service: all jobs end uncertain.
    async with running_sandbox(SandboxConfig(drop_before=1.0), clock=clock) as lost:
        base = campaign_options(jobs, ledger_path, lost.base_url)
        first = await run_campaign(dataclasses.replace(base, grace_s=10_000, clock=clock))
    assert first.counts["uncertain"] == ROWS
    assert first.exit_code == 1
    left_submitting(ledger_path)

    clock.now += 30
    async with running_sandbox(clock=clock) as sandbox:
        options = campaign_options(jobs, ledger_path, sandbox.base_url)
        report = await run_campaign(
            dataclasses.replace(options, grace_s=120, clock=clock, sleep=sleep)
        )
        seen = sandbox.state.counters_view()

    # One wait, for the whole grace counted from this run's start, then one send each.
    assert sleeps == [120.5]
    assert report.reconciled_absent == ROWS
    assert report.exit_code == 0
    assert report.counts["submitted"] == ROWS
    with closing(Ledger(ledger_path)) as ledger:
        callback_ids = {j.callback_id for j in ledger.iter_jobs()}
    assert seen["created_by_callback_id"] == dict.fromkeys(callback_ids, 1)


async def test_a_grace_ending_beyond_the_wait_limit_is_left_to_a_later_run(
    tmp_path: Path,
) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 3)
    ledger_path = tmp_path / "l.db"
    clock = FakeClock(T0)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    async with running_sandbox(SandboxConfig(drop_before=1.0), clock=clock) as lost:
        options = campaign_options(jobs, ledger_path, lost.base_url)
        report = await run_campaign(
            dataclasses.replace(options, grace_s=SETTLE_WAIT_MAX_S + 1, clock=clock, sleep=sleep)
        )
    assert sleeps == []
    assert report.counts["uncertain"] == 3
    assert report.exit_code == 1


async def test_a_listing_that_proves_nothing_is_not_waited_on(tmp_path: Path) -> None:
    """Every first answer lost, and a list out of order: waiting would prove nothing more."""
    clock = FakeClock(T0)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    service = FakeService(clock=clock, paging=Paging.UNSORTED)
    for i in range(5):
        service.add(f"other-{i}", T0 + 100 + i)
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, 3)
    async with serving(service) as url:
        options = campaign_options(jobs, tmp_path / "l.db", url)
        report = await run_campaign(
            dataclasses.replace(options, grace_s=60, clock=clock, sleep=sleep)
        )
    assert sleeps == []
    assert report.counts["uncertain"] == 3
    assert report.exit_code == 1
    assert sum(service.created.values()) == 5 + 3


def test_the_progress_line_shows_the_wait() -> None:
    stats = PoolStats(settling=14, settling_until=1000.0 + 83)
    line = ProgressLine(stats, clock=lambda: 1000.0)
    assert "waiting 1:23 for 14 uncertain to settle" in line.render().plain


def test_one_run_settles_what_a_kill_left_from_the_command_line(tmp_path: Path) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, ROWS)
    ledger = tmp_path / "contacts.ledger.db"
    never_long = cli_env(HEYGEN_BATCH_RECONCILE_GRACE_S="100000")
    with standalone_sandbox("--drop-before", "1") as url:
        first = subprocess.run(
            run_args(jobs, url), capture_output=True, text=True, env=never_long, timeout=60
        )
    assert first.returncode == 1, first.stderr
    left_submitting(ledger)

    with standalone_sandbox() as url:
        done = subprocess.run(
            run_args(jobs, url),
            capture_output=True,
            text=True,
            env=cli_env(HEYGEN_BATCH_RECONCILE_GRACE_S="1"),
            timeout=60,
        )
        seen = counters(url)
    assert done.returncode == 0, done.stderr
    assert f"for the reconcile grace of {ROWS} uncertain job(s)" in done.stderr
    rows = ledger_rows(ledger)
    assert {status for _, status, _ in rows} == {"submitted"}
    assert seen["created"] == ROWS
    assert seen["duplicates"] == 0


def test_a_signal_during_the_wait_stops_the_run_at_once(tmp_path: Path) -> None:
    jobs = tmp_path / "contacts.csv"
    write_contacts(jobs, 0, ROWS)
    ledger = tmp_path / "contacts.ledger.db"
    with standalone_sandbox("--drop-before", "1") as url:
        subprocess.run(
            run_args(jobs, url),
            capture_output=True,
            env=cli_env(HEYGEN_BATCH_RECONCILE_GRACE_S="100000"),
            timeout=60,
        )
    left_submitting(ledger)

    # A grace of 200 s: the run is stopped long before it could end by itself.
    with (
        standalone_sandbox() as url,
        subprocess.Popen(
            run_args(jobs, url),
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=cli_env(HEYGEN_BATCH_RECONCILE_GRACE_S="200"),
        ) as proc,
    ):
        assert proc.stderr is not None
        for line in proc.stderr:
            if "for the reconcile grace" in line:
                break
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        created = counters(url)["created"]
    assert code == 130
    assert created == 0
    assert {status for _, status, _ in ledger_rows(ledger)} == {"uncertain"}
