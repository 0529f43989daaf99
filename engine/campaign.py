"""A whole run: jobs file → prepared jobs → ledger → rate-limited pool → reconcile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiolimiter import AsyncLimiter

from engine.errors import AbortRun, ConfigError
from engine.ledger import statements
from engine.ledger.store import KindGuard, Ledger, Videos
from engine.ledger.triage import Triage, Triaged, Verdict
from engine.ledger.writer import BatchWriter
from engine.prepare import Preparer
from engine.progress import ProgressDisplay
from engine.reader import JobsFormat, in_chunks, open_rows
from engine.run_report import RunReport
from engine.service import Service, service_address
from engine.settling import Settler
from engine.submitter.client import HeyGenClient
from engine.submitter.constants import DEFAULT_GRACE_S, DEFAULT_MAX_WAIT_S, SHUTDOWN_GRACE_S
from engine.submitter.control import RunControl
from engine.submitter.pool import (
    NewJob,
    PoolStats,
    SubmitItem,
    Submitter,
    marking_depth,
    run_workers,
)
from engine.submitter.rate import Rate, make_limiter

log = logging.getLogger(__name__)

# Rows are looked up in the ledger and recorded this many at a time.
_CHUNK = 500


@dataclass
class RunOptions:
    jobs: str
    fmt: JobsFormat
    preparer: Preparer
    ledger_path: Path
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
    #: The CSV delimiter --delimiter gave; None detects it from the header.
    delimiter: str | None = None
    #: Seams for tests: the clock stamping attempts, and how the end-of-run wait sleeps.
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] | None = None


class _Budget:
    """``--limit``: how many new submissions this run may still start."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def take(self) -> bool:
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class _Notices:
    """Per-row warnings on stderr, up to a limit: a million bad rows must not flood a cron mail."""

    LIMIT = 50

    def __init__(self) -> None:
        self.hidden = 0
        self._shown = 0

    def say(self, text: str) -> None:
        if self._shown < self.LIMIT:
            self._shown += 1
            log.warning(text)
        else:
            self.hidden += 1

    def close(self) -> None:
        if self.hidden:
            log.warning(
                "%d more row warnings not shown; `heygen-batch validate` lists every bad row, "
                "and the ledger has each job's error.",
                self.hidden,
            )


class _Feeder:
    """Classifies each prepared job against the ledger, records it, queues what must be sent."""

    def __init__(
        self,
        ledger: Ledger,
        writer: BatchWriter,
        queue: asyncio.Queue[SubmitItem | None],
        control: RunControl,
        budget: _Budget,
        report: RunReport,
        unsent: Callable[[SubmitItem], None],
        videos: Videos | None,
    ) -> None:
        self._ledger = ledger
        self._writer = writer
        self._queue = queue
        self._control = control
        self._budget = budget
        self._report = report
        self._unsent = unsent
        #: Keyed jobs: the kind of the bodies this run sends, set by the first one and
        #: recorded when it is queued (committed no later than its mark), so a run that
        #: sends nothing leaves the ledger free for either kind.
        self._kinds = KindGuard(ledger, ledger.path) if videos is not None else None
        self._kind_recorded = False
        #: Test and real videos mixed on a keyed ledger: the run's refusal (exit 2).
        self.refused: ConfigError | None = None
        self._columns = ledger.source_columns()
        self._notices = _Notices()

    def _add_columns(self, columns: Iterator[str] | list[str]) -> None:
        added = [c for c in dict.fromkeys(columns) if c not in self._columns]
        if added:
            self._columns += added
            self._writer.write(statements.set_source_columns(self._columns))

    async def feed(self, opts: RunOptions) -> None:
        triage = Triage(self._ledger, opts.preparer, opts.fingerprint_salt)
        try:
            await self._feed(triage, opts)
        finally:
            self._notices.close()

    async def _feed(self, triage: Triage, opts: RunOptions) -> None:
        with open_rows(opts.jobs, opts.fmt, opts.delimiter) as source:
            self._report.delimiter = source.delimiter
            if source.header is not None:
                self._add_columns(source.header)
            for chunk in in_chunks(source.rows, _CHUNK):
                if self._control.stopping or self.refused is not None:
                    return
                if source.header is None:
                    self._add_columns([c for row in chunk for c in row.values])
                await self._act(triage.sort(chunk), opts.preparer)
                # Let the workers run between chunks even when nothing had to be queued.
                await asyncio.sleep(0)

    async def _act(self, verdicts: list[Triaged], preparer: Preparer) -> None:
        report = self._report
        for t in verdicts:
            if self.refused is not None:
                return
            report.add(t)
            job, previous = t.job, t.previous
            if t.verdict is Verdict.DUPLICATE:
                note = preparer.repeated_key(t.key)
                self._notices.say(f"line {t.line}: {note}; not sent twice")
            elif t.verdict is Verdict.INVALID:
                assert job is not None
                self._notices.say(f"line {t.line}: invalid: {job.error_text}")
                if previous is None:
                    self._writer.write(
                        statements.insert_job(
                            t.key, t.line, "invalid", job.source, None, job.error_text
                        )
                    )
            elif t.verdict is Verdict.NEW:
                await self._new(t)
            elif t.changed:
                # A test body sent, a real one now (or the other way): not "done".
                if job is not None and job.body is not None and not self._same_kind(job.body):
                    return
                self._notices.say(
                    f"line {t.line}: job {t.key} changed since it was sent; not sent again"
                )
            elif job is not None and t.fingerprint is not None:
                # Unchanged but rendered (a ledger from before fingerprints, or a new
                # template byte-for-byte equal in effect): skip the rendering next time.
                self._writer.write(statements.set_fingerprint(t.key, t.fingerprint))

    async def _new(self, t: Triaged) -> None:
        """Record a job to send and queue it, unless --limit holds it back.

        A job the ledger has never seen is queued unrecorded: the marking stage
        inserts it already ``submitting``, one statement instead of two. One held
        back, or never marked because a stop came first, is recorded ``pending``.
        """
        job, previous = t.job, t.previous
        assert job is not None
        assert job.body is not None
        assert job.sha256 is not None
        if not self._same_kind(job.body):
            return
        if previous is not None:
            refresh = (job.sha256, job.source, t.fingerprint, job.body_json or "", job.callback_id)
            self._writer.write(statements.refresh_pending(t.key, t.line, *refresh))
        item = SubmitItem(
            t.key,
            job.body,
            job.sha256,
            previous.attempts if previous else 0,
            job.body_json or "",
            None if previous else NewJob(t.line, job.source, t.fingerprint),
        )
        if not self._budget.take():
            self._unsent(item)
            self._report.held_by_limit += 1
            return
        if self._kinds is not None and self._kinds.kind and not self._kind_recorded:
            self._writer.write(statements.set_videos(self._kinds.kind))
            self._kind_recorded = True
        try:
            await self._queue.put(item)
        except asyncio.CancelledError:
            self._unsent(item)
            raise

    def _same_kind(self, body: Mapping[str, object]) -> bool:
        """False stops the feeding (queued jobs go on: a stop, not a cancellation)."""
        try:
            if self._kinds is not None:
                self._kinds.check(body)
        except ConfigError as err:
            self.refused = err
        return self.refused is None


async def _run_pool(
    opts: RunOptions,
    settler: Settler,
    writer: BatchWriter,
    client: HeyGenClient,
    control: RunControl,
    report: RunReport,
    stats: PoolStats,
    limiter: AsyncLimiter,
) -> None:
    """Reconcile what a killed run left; feed the file to the workers; then settle
    (engine.settling). All of it is one task, so an interrupt's grace period and
    cancellation cover the reconciles and the waits too."""
    ledger = settler.ledger
    await settler.reconcile()
    submitter = Submitter(
        client,
        limiter,
        writer,
        control,
        opts.max_attempts,
        stats,
        opts.clock,
        client.service_clock_offset,
    )
    depth = marking_depth(opts.rate, opts.concurrency)
    budget = _Budget(opts.limit)
    queue: asyncio.Queue[SubmitItem | None] = asyncio.Queue(maxsize=opts.concurrency * 4)
    feeder = _Feeder(
        ledger, writer, queue, control, budget, report, submitter.record_unsent, opts.videos
    )

    async def feed_then_close() -> None:
        await feeder.feed(opts)
        # Not in a finally: cancelled with the queue full, awaiting a put would hang.
        for _ in range(opts.concurrency):
            await queue.put(None)

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
    if feeder.refused is not None:
        raise feeder.refused


async def run_campaign(opts: RunOptions) -> RunReport:
    """Run one campaign; the caller holds the ledger lock."""
    started = time.monotonic()
    report = RunReport(ledger=str(opts.ledger_path))
    control = RunControl(opts.max_wait_s)
    stats = PoolStats()
    refused: Exception | None = None
    ledger = Ledger(opts.ledger_path)
    if opts.videos == "test":
        # --test-videos makes every body a test one: refused before any reconcile.
        try:
            ledger.require_videos(opts.videos)
        except ConfigError:
            ledger.close()
            raise
    writer = BatchWriter(opts.ledger_path)
    writer.start()
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        if not control.interrupted:
            log.warning("interrupted: finishing requests in flight, starting no new ones")
        control.interrupted = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        # A previous run killed mid-request left jobs that may exist at the service.
        await writer.write_durably(
            statements.in_flight_to_uncertain(opts.clock()), statements.clear_invalid()
        )
        limiter = make_limiter(opts.rate)
        async with (
            service_address(opts.service, opts.ledger_path) as (base_url, key),
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
                    _run_pool(opts, settler, writer, client, control, report, stats, limiter)
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
    report.sent_submitted = stats.submitted
    report.sent_failed = stats.failed
    report.sent_uncertain = stats.uncertain
    report.abort = control.abort
    report.interrupted = control.interrupted
    report.wait = control.too_long
    report.counts = ledger.counts()
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
        try:
            await asyncio.wait_for(asyncio.shield(work), SHUTDOWN_GRACE_S)
        except TimeoutError:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        return
    work.result()
