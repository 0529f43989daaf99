"""A whole run: jobs file → prepared jobs → ledger → rate-limited pool → reconcile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

from engine.api.client import HeyGenClient
from engine.errors import AbortRun, ConfigError
from engine.feeder import Budget, Feeder
from engine.ledger import statements
from engine.ledger.binding import bind_ledger, reached_service, unbind
from engine.ledger.open import LedgerSpec
from engine.ledger.store import Ledger, Videos
from engine.ledger.writer import BatchWriter
from engine.prepare import Preparer
from engine.progress import ProgressDisplay
from engine.reader import JobsFormat
from engine.run_report import RunReport
from engine.service import Service, service_address
from engine.settling import Settler
from engine.submitter.constants import (
    DEFAULT_GRACE_S,
    DEFAULT_MAX_WAIT_S,
    RENDER_HORIZON_S,
)
from engine.submitter.control import RunControl, let_finish
from engine.submitter.items import SubmitItem
from engine.submitter.pool import Submitter
from engine.submitter.rate import Rate, make_limiter
from engine.submitter.slots import ApiStatuses, RenderTracker
from engine.submitter.stats import PoolStats
from engine.submitter.workers import marking_depth, run_workers

log = logging.getLogger(__name__)

# A run --until-done names this many failed renders (key and reason) in its reason.
FAILED_RENDERS_SHOWN = 3


@dataclass
class RunOptions:
    jobs: str
    fmt: JobsFormat
    preparer: Preparer
    ledger: LedgerSpec
    service: Service
    rate: Rate
    concurrency: int = 8
    max_attempts: int = 6
    #: The longest wait for the service (a Retry-After) the run accepts; longer stops it.
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    limit: int | None = None
    progress: bool = False
    grace_s: float = DEFAULT_GRACE_S
    fingerprint_salt: bytes = b""
    #: The kind of videos, when jobs are keyed by a column (see ``Ledger.require_videos``).
    videos: Videos | None = None
    #: --strict: rows still invalid from an earlier run count toward exit 1 too.
    strict: bool = False
    #: --rebind: the ledger's service under a new key or address (see bind_ledger).
    rebind: bool = False
    #: The CSV delimiter --delimiter gave; None detects it from the header.
    delimiter: str | None = None
    #: --max-rendering: at most this many of the ledger's videos rendering at once.
    max_rendering: int | None = None
    #: --until-done: after the last submission, poll until every render has ended.
    until_done: bool = False
    #: --retry-failed: jobs the service refused are sent once more.
    retry_failed: bool = False
    #: Seams for tests: the clock stamping attempts, and how the end-of-run wait sleeps.
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] | None = None


async def _run_pool(
    opts: RunOptions,
    settler: Settler,
    writer: BatchWriter,
    client: HeyGenClient,
    control: RunControl,
    report: RunReport,
    stats: PoolStats,
    limiter: AsyncLimiter,
    known_invalid: frozenset[str],
) -> None:
    """Reconcile what a killed run left; feed the file to the workers; then settle
    (engine.settling). All of it is one task, so an interrupt's grace period and
    cancellation cover the reconciles and the waits too."""
    ledger = settler.ledger
    await settler.reconcile()
    tracker: RenderTracker | None = None
    if opts.max_rendering is not None or opts.until_done:
        tracker = RenderTracker(ApiStatuses(client, limiter), writer, stats, opts.max_rendering)
        # After a kill, what still renders is what the ledger and the service say.
        await writer.flush()
        tracker.adopt(_unfinished_renders(ledger, opts.clock() - RENDER_HORIZON_S))
    submitter = Submitter(
        client,
        limiter,
        writer,
        control,
        opts.max_attempts,
        stats,
        opts.clock,
        client.service_clock_offset,
        client.has_answered,
        opts.service.given_by,
        slots=tracker,
    )
    depth = marking_depth(opts.rate, opts.concurrency)
    budget = Budget(opts.limit)
    queue: asyncio.Queue[SubmitItem | None] = asyncio.Queue(maxsize=opts.concurrency * 4)
    feeder = Feeder(
        ledger,
        writer,
        queue,
        control,
        budget,
        report,
        submitter.record_unsent,
        opts.videos,
        known_invalid,
    )

    async def feed_then_close() -> None:
        await feeder.feed(opts)
        # Not in a finally: cancelled with the queue full, awaiting a put would hang.
        for _ in range(opts.concurrency):
            await queue.put(None)

    poller = None if tracker is None else asyncio.create_task(tracker.run(control))
    try:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(feed_then_close())
                group.create_task(run_workers(queue, submitter, opts.concurrency, control, depth))
        finally:
            # Cancelled (a stop whose grace ran out): jobs still queued were never marked.
            while not queue.empty():
                if (left := queue.get_nowait()) is not None:
                    submitter.record_unsent(left)
        await settler.settle(submitter, budget.take, opts.concurrency, depth)
        if tracker is not None and opts.until_done:
            await writer.flush()
            await tracker.drain(control, _unfinished_renders(ledger))
    finally:
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
    if feeder.refused is not None:
        raise feeder.refused


def _unfinished_renders(
    ledger: Ledger, since: float = 0.0
) -> list[tuple[str, str, str | None, str]]:
    """(key, video_id, callback_id, api) of every submitted job, sent at or after
    ``since``, whose render has not ended as far as the ledger knows."""
    found: list[tuple[str, str, str | None, str]] = []
    while page := ledger.renders_to_check(found[-1][0] if found else "", 1000, since):
        found.extend(page)
    return found


async def run_campaign(opts: RunOptions) -> RunReport:
    """Run one campaign; the caller holds the ledger lock."""
    started = time.monotonic()
    report = RunReport(ledger=str(opts.ledger), strict=opts.strict)
    control = RunControl(opts.max_wait_s)
    stats = PoolStats()
    refused: Exception | None = None
    ledger = opts.ledger.open()
    try:
        bound_now = bind_ledger(ledger, opts.service, opts.rebind)
        if opts.videos == "test":
            # --test-videos makes every body a test one: refused before any reconcile.
            ledger.require_videos(opts.videos)
    except ConfigError:
        ledger.close()
        raise
    # Read before the run clears invalid rows: one unchanged since is not news (--strict).
    known_invalid = frozenset(ledger.invalid_fingerprints())
    writer = BatchWriter(ledger.reopen)
    writer.start()
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        if not control.interrupted:
            log.warning("interrupted: finishing requests in flight, starting no new ones")
        control.interrupted = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        start = [statements.clear_invalid()]
        if not ledger.features.concurrent_workers:
            # A previous run killed mid-request left jobs that may exist at the service.
            # (Where workers share the ledger, a lost worker's lease settles its jobs.)
            start.insert(0, statements.in_flight_to_uncertain(opts.clock()))
        if opts.retry_failed and (failed := ledger.counts()["failed"]):
            log.warning("%d failed jobs are sent once more (--retry-failed)", failed)
            start.append(statements.failed_to_pending())
        await writer.write_durably(*start)
        limiter = make_limiter(opts.rate)
        async with (
            service_address(opts.service, ledger.file) as (base_url, key),
            HeyGenClient(base_url, key, opts.concurrency) as client,
        ):
            total = _estimate_total(opts, ledger) if opts.progress and sys.stderr.isatty() else None
            display = ProgressDisplay(stats, enabled=opts.progress, total=total)
            settler = Settler(
                ledger,
                writer,
                client,
                limiter,
                control,
                stats,
                opts.grace_s,
                shown=display.shown,
                clock=opts.clock,
                sleep=opts.sleep,
            )
            with display:
                work = asyncio.create_task(
                    _run_pool(
                        opts,
                        settler,
                        writer,
                        client,
                        control,
                        report,
                        stats,
                        limiter,
                        known_invalid,
                    )
                )
                try:
                    await _wait_or_interrupt(work, control)
                finally:
                    report.reconciled_found = settler.found
                    report.reconciled_absent = settler.absent
    except* AbortRun as group:
        control.abort_run(group.exceptions[0])  # type: ignore[arg-type]
    except* ConfigError as group:
        # Bodies of the other kind of video than the ledger holds: none of them was sent.
        refused = group.exceptions[0]
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await writer.close()
    report.add_sends(stats)
    report.abort = control.abort
    report.interrupted = control.interrupted
    report.wait = control.too_long
    report.counts = ledger.counts()
    if opts.until_done:
        report.renders = ledger.render_counts()
        report.failed_renders = ledger.failed_renders(FAILED_RENDERS_SHOWN)
    if bound_now and not reached_service(report.counts):
        # Nothing in the ledger reached a service (a wrong address, every row invalid): the
        # binding is left to the first run that sends, so a corrected address can take it.
        unbind(ledger, opts.service)
    ledger.close()
    if refused is not None:
        raise refused
    report.elapsed_s = time.monotonic() - started
    return report


def _estimate_total(opts: RunOptions, ledger: Ledger) -> int | None:
    """Jobs this run will settle, roughly, for the ETA: records in the file minus settled ones.

    Counting lines costs about 0.1 s per million; quoted newlines overcount a little.
    """
    if opts.jobs == "-":
        return None
    with open(opts.jobs, "rb") as f:
        records = sum(1 for line in f if line.strip())
    if opts.fmt is JobsFormat.CSV:
        records -= 1
    counts = ledger.counts()
    settled = sum(counts[s] for s in ("submitted", "failed", "uncertain"))
    total = max(records - settled, 0)
    return total if opts.limit is None else min(total, opts.limit)


async def _wait_or_interrupt(work: asyncio.Task[None], control: RunControl) -> None:
    """Wait for ``work``; after an interrupt give in-flight requests a grace period, then cancel."""
    while not work.done():
        done, _ = await asyncio.wait({work}, timeout=0.1)
        if done or not control.interrupted:
            continue
        await let_finish(work)
        return
    work.result()
